"""Controller configuration files (docs/controller.md): levels, precedence, variables, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from controller.config import ConfigFileError, config_warnings, load_config, read_file

TOML = """\
# every satellite
[_default]
_role = "DYNAMIC"
threshold = 1
_data = { bor_timeout = 5 }

[Example._default]
sample_period = 0.05
output = "$_{DAQ_ROOT}/runs"
remote = "${HOME}/data"
fallback = "$_{DAQ_UNSET:-/tmp}"

[Example.a]
sample_period = 0.02
"_autonomy.role" = "TRANSIENT"
_data.eor_timeout = 7

[EXAMPLE.B]
THRESHOLD = 3
"""

YAML = """\
# every satellite
_default:
  _role: DYNAMIC
  threshold: 1
  _data: {bor_timeout: 5}
Example:
  _default:
    sample_period: 0.05
    output: "$_{DAQ_ROOT}/runs"
    remote: "${HOME}/data"
    fallback: "$_{DAQ_UNSET:-/tmp}"
  a:
    sample_period: 0.02
    _autonomy.role: TRANSIENT
    _data:
      eor_timeout: 7
EXAMPLE:
  B:
    THRESHOLD: 3
"""

ENV = {"DAQ_ROOT": "/srv/daq"}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(("name", "text"), [("run.toml", TOML), ("run.yaml", YAML)])
def test_levels_merge_key_by_key_and_the_satellite_wins(
    tmp_path: Path, name: str, text: str
) -> None:
    config = load_config(write(tmp_path, name, text), environ=ENV)
    a = config.for_satellite("Example.a")
    assert a == {
        "_autonomy": {"role": "TRANSIENT"},  # own dotted key beats the global flat alias _role
        "threshold": 1,
        "_data": {"bor_timeout": 5, "eor_timeout": 7},  # sections merge key by key
        "sample_period": 0.02,  # own value beats the type default
        "output": "/srv/daq/runs",  # $_{VAR} resolved by the controller
        "remote": "${HOME}/data",  # ${VAR} left for the satellite's host
        "fallback": "/tmp",
    }
    b = config.for_satellite("example.b")  # names are case-insensitive both ways
    assert b["threshold"] == 3 and b["sample_period"] == 0.05
    assert b["_autonomy"] == {"role": "DYNAMIC"}
    other = config.for_satellite("RandomTransmitter.t1")  # no section: global defaults only
    assert other == {"_autonomy": {"role": "DYNAMIC"}, "threshold": 1, "_data": {"bor_timeout": 5}}
    assert sorted(config.satellites()) == ["example.a", "example.b"]
    assert config.has_section("EXAMPLE.A") and not config.has_section("Example.c")
    assert config.display_name("example.a") == "Example.a"


def test_toml_and_yaml_give_the_same_sections(tmp_path: Path) -> None:
    toml = load_config(write(tmp_path, "run.toml", TOML), environ=ENV)
    yaml = load_config(write(tmp_path, "run.yml", YAML), environ=ENV)
    for name in ("Example.a", "Example.b", "Example.c", "Other.x"):
        assert toml.for_satellite(name) == yaml.for_satellite(name)


def test_mapping_source_and_overrides() -> None:
    config = load_config({"Example": {"_default": {"rate": 1}, "a": {"x": {"y": 1}}}}, environ={})
    assert config.source == "<mapping>"
    changed = config.with_overrides({"Example.a": {"x.z": 2, "rate": 5}, "Other.b": {"k": 1}})
    assert changed.for_satellite("Example.a") == {"rate": 5, "x": {"y": 1, "z": 2}}
    assert changed.for_satellite("Other.b") == {"k": 1}
    assert config.for_satellite("Example.a") == {"rate": 1, "x": {"y": 1}}  # unchanged


def test_empty_files_are_valid(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "empty.toml", "")).for_satellite("A.b") == {}
    assert load_config(write(tmp_path, "empty.yaml", "# nothing\n")).satellites() == []


def test_warnings_about_missing_and_unconfigured_satellites(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "run.toml", TOML), environ=ENV)
    warnings = config_warnings(config, ["Example.a", "Example.c", "Writer.w"])
    assert any("EXAMPLE.B is configured" in w and "not present" in w for w in warnings)
    assert any("Writer.w" in w and "no [Writer.w] or [Writer._default]" in w for w in warnings)
    # Example.c has no own section but the type default applies: no warning for it.
    assert not any("Example.c" in w for w in warnings)
    assert len(warnings) == 2


# --- errors: every message names the file, the key and the line --------------------------------
ERRORS = [
    pytest.param(
        "bad.toml",
        "[Example.a]\nrate = 1\nthreshold = \n",
        "Example.a.threshold",
        3,
        "invalid TOML: Invalid value",
        id="toml-syntax",
    ),
    pytest.param(
        "dup.toml",
        "[Example.a]\nrate = 1\nrate = 2\n",
        "Example.a.rate",
        3,
        "invalid TOML: Cannot overwrite a value",
        id="toml-duplicate-key",
    ),
    pytest.param(
        "case.toml",
        "[Example.a]\nrate = 1\n\n[example.A]\nrate = 2\n",
        "example.A",
        4,
        "given twice ('Example.a' and 'example.A'",
        id="toml-duplicate-satellite-other-case",
    ),
    pytest.param(
        "keycase.toml",
        "[Example.a]\nRate = 1\nrate = 2\n",
        "Example.a.rate",
        3,
        "duplicate key (keys are case-insensitive)",
        id="toml-duplicate-key-other-case",
    ),
    pytest.param(
        "flat.toml",
        "[_default]\nx = 1\n\n[Example]\nsample_period = 1\n",
        "Example.sample_period",
        5,
        "parameters for every Example go under [Example._default]",
        id="toml-parameter-under-type",
    ),
    pytest.param(
        "name.toml",
        '[Example."bad-name"]\nx = 1\n',
        "Example.bad-name",
        1,
        "satellite name 'bad-name' must match",
        id="toml-bad-satellite-name",
    ),
    pytest.param(
        "var.toml",
        '[Example.a]\nx = 1\npath = "$_{CONFIG_TEST_UNSET}/data"\n',
        "Example.a.path",
        3,
        "environment variable 'CONFIG_TEST_UNSET'",
        id="toml-unset-controller-variable",
    ),
    pytest.param(
        "malformed.toml",
        '[Example.a]\npath = "$_{OOPS"\n',
        "Example.a.path",
        2,
        "malformed controller variable",
        id="toml-malformed-variable",
    ),
    pytest.param(
        "conflict.toml",
        "[_default]\n_data = { bor_timeout = 3 }\n\n[Example.a]\nx = 1\n_data = 5\n",
        "Example.a._data",
        6,
        "is a section in [_default] but a value in [Example.a]",
        id="toml-merge-section-vs-value",
    ),
    pytest.param(
        "alias.toml",
        '[Example.a]\n_role = "NONE"\n_autonomy.role = "TRANSIENT"\n',
        "Example.a._autonomy.role",
        3,
        "given twice, as '_role' and as '_autonomy.role'",
        id="toml-alias-and-new-spelling",
    ),
    pytest.param(
        "date.toml",
        "[Example.a]\nday = 2024-05-01\n",
        "Example.a.day",
        2,
        "date values cannot be sent",
        id="toml-date-value",
    ),
    pytest.param(
        "bad.yaml",
        "Example:\n  a:\n    rate: 1\n    list: [1, 2\n  b:\n    x: 1\n",
        "Example.a.list",
        5,
        "invalid YAML: while parsing a flow sequence (from line 4)",
        id="yaml-syntax",
    ),
    pytest.param(
        "tab.yaml",
        "Example:\n  a:\n\trate: 1\n",
        "Example.a.rate",
        3,
        "invalid YAML",
        id="yaml-tab",
    ),
    pytest.param(
        "dup.yaml",
        "Example:\n  a:\n    rate: 1\n    RATE: 2\n",
        "Example.a.RATE",
        4,
        "duplicate key (keys are case-insensitive; first given on line 3)",
        id="yaml-duplicate-key",
    ),
    pytest.param(
        "intkey.yaml",
        "Example:\n  a:\n    1: one\n",
        "Example.a.1",
        3,
        "keys must be strings",
        id="yaml-non-string-key",
    ),
    pytest.param(
        "list.yaml",
        "- Example\n- a\n",
        "",
        1,
        "the top level must be a table of satellite types",
        id="yaml-top-level-list",
    ),
    pytest.param(
        "conflict.yaml",
        "Example:\n  _default:\n    gain: {coarse: 1}\n  a:\n    gain: 2\n",
        "Example.a.gain",
        5,
        "is a section in [Example._default] but a value in [Example.a]",
        id="yaml-merge-section-vs-value",
    ),
    pytest.param(
        "scalar.yaml",
        "Example:\n  a: 5\n",
        "Example.a",
        2,
        "expected a table of parameters for satellite 'Example.a'",
        id="yaml-satellite-not-a-table",
    ),
]


@pytest.mark.parametrize(("name", "text", "key", "line", "fragment"), ERRORS)
def test_errors_name_file_key_and_line(
    tmp_path: Path, name: str, text: str, key: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigFileError) as info:
        load_config(path, environ={})
    error = info.value
    message = str(error)
    assert error.source == str(path)
    assert error.key == key
    assert error.line == line, message
    assert message.startswith(f"{path}:{line}"), message
    if key:
        assert f"key '{key}'" in message
    assert fragment in message


def test_syntax_errors_carry_the_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as info:
        load_config(write(tmp_path, "c.toml", "[A.b]\nx = @\n"))
    assert (info.value.line, info.value.column) == (2, 5)
    assert str(info.value).startswith(f"{tmp_path / 'c.toml'}:2:5: key 'A.b.x': invalid TOML")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"run\.ini: unknown configuration format"):
        load_config(write(tmp_path, "run.ini", "[a]\n"))
    with pytest.raises(ConfigFileError, match=r"nope\.toml: configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_mapping_errors_name_the_key() -> None:
    with pytest.raises(ConfigFileError) as info:
        load_config({"Example": {"a": {"x": 1, "X": 2}}})
    assert str(info.value).startswith("<mapping>: key 'Example.a.x'")
    assert info.value.line is None


def test_read_file_locates_keys(tmp_path: Path) -> None:
    raw, line_of = read_file(
        write(tmp_path, "s.toml", 'prefix = "a"\n\n[[parameter]]\nkey = "x"\n')
    )
    assert raw == {"prefix": "a", "parameter": [{"key": "x"}]}
    assert (line_of("prefix"), line_of("parameter"), line_of("parameter.key")) == (1, 3, 4)
    assert line_of("missing") is None
