"""MissionControl web: what the page's buttons do, on the blocking controller API.

:class:`Actions` runs every command in the backend's thread pool (``await actions.run(...)``
from the web server never blocks its event loop), records each satellite's reply on its row,
and keeps the configuration files: the ones in the server's configuration directory and the
uploaded ones (kept in memory, bounded). The satellites decide whether a command is allowed in
their state: two operators acting at once get the satellite's INVALID reply, never more.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from constellation.errors import ConfigError, ConstellationError
from controller.config import ControllerConfig, load_config
from controller.web.backend import Backend
from controller.web.group_model import GroupModel, parse_arguments

__all__ = ["CONFIG_SUFFIXES", "MAX_UPLOAD", "ActionError", "Actions"]

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")
#: Largest configuration file accepted by upload (bytes).
MAX_UPLOAD = 1 << 20
_MAX_UPLOADS = 20
#: Commands the generic endpoint sends with the payload it is given.
_TRANSITIONS = ("launch", "land", "stop", "shutdown")


class ActionError(ConstellationError, ValueError):
    """A request the page made that cannot be carried out (HTTP 400, text shown on the page)."""


class Actions:
    """Commands and configuration files of one backend."""

    def __init__(
        self, backend: Backend, config: Path | None = None, config_dir: Path | None = None
    ) -> None:
        self.backend = backend
        self.default_config = config
        self.config_dir = config_dir or (config.parent if config is not None else None)
        self._uploads: OrderedDict[str, str] = OrderedDict()
        self._tmp = tempfile.TemporaryDirectory(prefix="missioncontrol-")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.backend.pool, fn, *args)

    # --- configuration files --------------------------------------------------------------------
    def configs(self) -> dict[str, Any]:
        files = []
        if self.config_dir is not None and self.config_dir.is_dir():
            files = sorted(
                p.name for p in self.config_dir.iterdir() if p.suffix.lower() in CONFIG_SUFFIXES
            )
        default = self.default_config.name if self.default_config is not None else ""
        return {"files": files, "uploaded": list(self._uploads), "default": default}

    def upload(self, name: str, data: bytes) -> str:
        """Keep an uploaded file (checked now); returns the name to initialize with."""
        if len(data) > MAX_UPLOAD:
            raise ActionError(f"{name}: {len(data)} bytes is more than {MAX_UPLOAD} allowed")
        base = Path(name).name
        if Path(base).suffix.lower() not in CONFIG_SUFFIXES:
            raise ActionError(f"{name}: not a configuration file (.toml, .yaml or .yml)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ActionError(f"{base}: not UTF-8 text ({exc.reason})") from exc
        key = f"uploaded:{base}"
        self._load_text(base, text)  # raises ConfigFileError naming the key and line
        self._uploads[key] = text
        self._uploads.move_to_end(key)
        while len(self._uploads) > _MAX_UPLOADS:
            self._uploads.popitem(last=False)
        return key

    def _load_text(self, base: str, text: str) -> ControllerConfig:
        path = Path(self._tmp.name) / base
        path.write_text(text, encoding="utf-8")
        return load_config(path)

    def load(self, name: str | None) -> ControllerConfig:
        """The configuration ``name`` (a server file, ``uploaded:...``, or the default)."""
        if not name:
            if self.default_config is None:
                raise ActionError("no configuration chosen (start with -c or upload one)")
            return load_config(self.default_config)
        if name in self._uploads:
            return self._load_text(name.removeprefix("uploaded:"), self._uploads[name])
        if self.config_dir is None or Path(name).name != name:
            raise ActionError(f"unknown configuration {name!r}")
        path = self.config_dir / name
        if path.suffix.lower() not in CONFIG_SUFFIXES or not path.is_file():
            raise ActionError(f"unknown configuration {name!r}")
        return load_config(path)

    def sections(self, name: str | None) -> dict[str, Any]:
        """Each satellite's merged section of configuration ``name`` (present and configured)."""
        config = self.load(name)
        names = dict.fromkeys([*self.backend.ctl.satellites, *config.satellites()])
        return {n: config.for_satellite(n) for n in names}

    # --- commands (blocking: call through run) ----------------------------------------------------
    def _record(self, replies: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, reply in replies.items():
            self.backend.apply(functools.partial(_show_reply, name, str(reply), reply.ok))
            out[name] = {
                "ok": reply.ok,
                "type": reply.msg_type.name,
                "verb": reply.verb,
                "payload": _jsonable(reply.payload),
            }
        return out

    def _targets(self, targets: Iterable[str] | None) -> list[str] | None:
        if targets is None:
            return None
        names = list(targets)
        present = {n.lower() for n in self.backend.ctl.satellites}
        unknown = [n for n in names if n.lower() not in present]
        if unknown:
            raise ActionError(f"not present in the group: {', '.join(unknown)}")
        return names

    def initialize(self, config_name: str | None, targets: list[str] | None) -> dict[str, Any]:
        config = self.load(config_name)
        return self._record(self.backend.ctl.initialize(config, self._targets(targets)))

    def reconfigure(self, config_name: str | None, targets: list[str] | None) -> dict[str, Any]:
        config = self.load(config_name)
        names = self._targets(targets) or list(self.backend.ctl.satellites)
        payloads = {n: config.for_satellite(n) for n in names}
        return self._record(
            self.backend.ctl.command("reconfigure", targets=names, payloads=payloads)
        )

    def start(self, run_id: str | None, targets: list[str] | None) -> dict[str, Any]:
        with self.backend.lock:
            chosen = run_id or self.backend.model.next_run_id()
        replies = self.backend.ctl.start(chosen, self._targets(targets))
        if any(r.ok for r in replies.values()):
            self.backend.apply(lambda m, now: m.started(chosen, now))
        return self._record(replies)

    def command(self, verb: str, args: Any, targets: list[str] | None) -> dict[str, Any]:
        """Any other command (transition without payload, or custom with a list of arguments)."""
        if verb in _TRANSITIONS or args is None:
            replies = self.backend.ctl.command(verb, targets=self._targets(targets))
        else:
            replies = self.backend.ctl.command(verb, args, targets=self._targets(targets))
        return self._record(replies)

    def commands_of(self, name: str) -> list[dict[str, Any]]:
        """``get_commands`` of one satellite, with typed parameters for the page's forms."""
        self._targets([name])
        reply = self.backend.ctl.command("get_commands", targets=[name])
        answer = next(iter(reply.values()))
        if not answer.ok or not isinstance(answer.payload, dict):
            raise ActionError(f"{name}: get_commands answered {answer}")
        return [
            {"name": cmd, "help": str(text), "params": parse_arguments(str(text))}
            for cmd, text in answer.payload.items()
        ]

    def close(self) -> None:
        self._tmp.cleanup()


def _show_reply(name: str, text: str, ok: bool, model: GroupModel, now: float) -> list[Any]:
    return model.reply(name, text, ok, now)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


#: Errors that are the request's fault (shown on the page, HTTP 400).
REQUEST_ERRORS = (ActionError, ConfigError, KeyError, ValueError, ConstellationError)
