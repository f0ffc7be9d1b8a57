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
