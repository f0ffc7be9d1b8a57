"""Contracts of the composition: import graph, error hierarchy, envelope splitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from constellation import errors
from constellation.net.command_server import split_envelope
from constellation.runtime.custom_commands import CustomCommand
from constellation.satellite import Satellite

PACKAGE = Path(__file__).resolve().parents[3] / "constellation"


def _imports(path: Path) -> set[str]:
    """Every constellation module ``path`` imports, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("constellation")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_parts_never_import_the_satellite() -> None:
    parts = [
        PACKAGE / "autonomy.py",
        PACKAGE / "metrics.py",
        *(PACKAGE / "runtime").glob("*.py"),
        *(PACKAGE / "roles").glob("*.py"),
    ]
    assert any(path.parent.name == "roles" for path in parts)
    for path in parts:
        imported = _imports(path)
        assert "constellation.satellite" not in imported, path.name
        assert not {"constellation.transmitter", "constellation.receiver"} & imported, path.name


def test_no_framework_override_points_left() -> None:
    """Data roles are composed objects: no ``_framework_*`` hooks on the satellite classes."""
    for path in PACKAGE.rglob("*.py"):
        assert "def _framework_" not in path.read_text(), path


def test_no_import_cycles_in_the_package() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}
    roles = [name for name in modules if name.startswith("constellation.roles")]
    assert roles
    for name in (
        "constellation.satellite",
        "constellation.autonomy",
        "constellation.metrics",
        *roles,
    ):
        seen: set[str] = set()
        todo = list(graph[name])
        while todo:
            current = todo.pop()
            assert current != name, f"{name} imports itself through a cycle"
            if current not in seen:
                seen.add(current)
                todo.extend(graph[current])


# Modules that do I/O (sockets, processes, files on disk, threads of their own) or pull it in.
_IO_MODULES = frozenset(
    {"zmq", "socket", "selectors", "asyncio", "subprocess", "multiprocessing", "os", "shutil"}
    | {"io", "signal", "h5py", "hdf5plugin", "zeroconf", "psutil", "urllib", "http", "ssl"}
)
# The layers above the pure ones: a pure module importing them would import their I/O.
_IMPURE_PACKAGES = ("constellation.net", "constellation.runtime", "constellation.reader")


def _top_level_imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    "path",
    sorted([*(PACKAGE / "protocol").glob("*.py"), *(PACKAGE / "core").glob("*.py")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_pure_layers_import_no_io(path: Path) -> None:
    """protocol/ and core/ stay pure: no module of theirs imports an I/O module or layer."""
    for name in _top_level_imports(path):
        assert name.split(".")[0] not in _IO_MODULES, f"{path.name} imports {name}"
        assert not name.startswith(_IMPURE_PACKAGES), f"{path.name} imports {name}"
        assert name not in ("constellation.satellite", "constellation.transmitter"), name
        if path.parent.name == "protocol" and name.startswith("constellation."):
            allowed = ("constellation.protocol", "constellation.errors")
            assert name.startswith(allowed), f"protocol/{path.name} imports {name}"


def test_pure_layer_check_sees_new_modules() -> None:
    """The check above covers the split modules too (a glob that found nothing proves nothing)."""
    names = {p.name for p in (PACKAGE / "protocol").glob("*.py")}
    names |= {p.name for p in (PACKAGE / "core").glob("*.py")}
    for module in ("primitives.py", "encoding.py", "decoding.py", "cdtp2_shared.py"):
        assert module in names
    for module in ("config_values.py", "config_env.py", "framework_config.py"):
        assert module in names


def test_error_hierarchy() -> None:
    assert issubclass(errors.HookError, errors.ConstellationError)
    stopped = errors.SendingStoppedError
    assert issubclass(stopped, errors.ConstellationError)
    assert not issubclass(stopped, (errors.DataTimeoutError, TimeoutError))  # not a failure
    assert issubclass(errors.DataTimeoutError, TimeoutError)
    assert issubclass(errors.LoopTimeoutError, TimeoutError)
    assert issubclass(errors.UsageError, RuntimeError)
    assert issubclass(errors.MetricDefinitionError, ValueError)
    assert issubclass(errors.CommandDefinitionError, TypeError)
    assert issubclass(errors.InvalidNameError, ValueError)
    hook = errors.HookError("do_run", ValueError("bad"))
    assert str(hook) == "ValueError in do_run: bad" and isinstance(hook.error, ValueError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.ConstellationError), name


def test_satellite_reexports_hook_error() -> None:
    from constellation import satellite

    assert satellite.HookError is errors.HookError


def test_split_envelope_of_req_dealer_and_proxied_requests() -> None:
    assert split_envelope([b"id", b"", b"h", b"p"]) == ([b"id", b""], [b"h", b"p"])
    assert split_envelope([b"proxy", b"id", b"", b"h"]) == ([b"proxy", b"id", b""], [b"h"])
    assert split_envelope([b"id", b"", b""]) == ([b"id", b""], [b""])  # empty body frame
    assert split_envelope([b"id", b""]) == ([b"id", b""], [])
    assert split_envelope([b"id", b"h", b"p"]) is None  # no delimiter: dropped like REP does
    assert split_envelope([b"", b"h"]) is None


def test_satellite_constructor_raises_project_errors() -> None:
    with pytest.raises(errors.InvalidNameError, match="bad name"):
        Satellite("bad name", "g")

    class Missing(Satellite):
        custom_commands = (CustomCommand("calibrate", "no such method"),)

    with pytest.raises(errors.CommandDefinitionError, match="calibrate"):
        Missing("m", "g")
