"""A backend without network for the HTTP tests: the real model and hub, a fake controller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from constellation.protocol.common import NO_PAYLOAD
from constellation.protocol.cscp1 import CSCPType
from controller.config import load_config
from controller.controller import Reply
from controller.web.backend import Backend
from controller.web.group_model import GroupModel, allowed_for
from controller.web.stream import Hub


class FakeController:
    """Satellites that answer like real ones: INVALID outside their allowed states."""

    timeout = 1.0

    def __init__(self, states: dict[str, str]) -> None:
        self.states = dict(states)
        self.sent: list[tuple[str, str, Any]] = []
        self.commands_listed = {
            "get_state": "Current state.\nNo arguments.",
            "set_offset": "Add an offset.\nArguments: offset: float.",
        }

    @property
    def satellites(self) -> dict[str, object]:
        return {name: object() for name in self.states}

    def command(
        self,
        verb: str,
        payload: Any = NO_PAYLOAD,
        targets: Any = None,
        payloads: Any = None,
    ) -> dict[str, Reply]:
        replies = {}
        for name in targets or list(self.states):
            arg = payloads[name] if payloads is not None else payload
            self.sent.append((name, verb, arg))
            if verb == "get_commands":
                replies[name] = Reply(CSCPType.SUCCESS, "2 commands", self.commands_listed)
            elif verb == "set_offset":
                replies[name] = Reply(CSCPType.SUCCESS, f"offset {arg[0]}")
            elif allowed_for(verb, self.states[name]):
                replies[name] = Reply(CSCPType.SUCCESS, "transitioning", verb)
            else:
                text = f"Command '{verb}' not allowed in state {self.states[name]}"
                replies[name] = Reply(CSCPType.INVALID, text)
        return replies

    def initialize(self, config: Any, targets: Any = None) -> dict[str, Reply]:
        loaded = load_config(config)
        names = targets or list(self.states)
        return self.command(
            "initialize", targets=names, payloads={n: loaded.for_satellite(n) for n in names}
        )

    def start(self, run_id: str, targets: Any = None) -> dict[str, Reply]:
        return self.command("start", run_id, targets=targets)


class FakeBackend:
    """What app, actions and prometheus use of a :class:`Backend`."""

    apply = Backend.apply
    snapshot = Backend.snapshot

    def __init__(self, states: dict[str, str]) -> None:
        self.clock = lambda: 100.0
        self.lock = threading.Lock()
        self.model = GroupModel("g")
        self.hub = Hub(capacity=50)
        self.pool = ThreadPoolExecutor(2)
        self.ctl = FakeController(states)
        for name, state in states.items():
            self.model.joined(name, 0.0)
            self.model.state(name, state, 0.0)

    def close(self) -> None:
        self.pool.shutdown()
