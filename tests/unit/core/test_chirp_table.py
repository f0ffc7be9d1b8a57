"""Unit tests for constellation.core.chirp_table: offers, replies, names, departures."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from constellation.core.chirp_table import Action, ChirpTable, placeholder_name
from constellation.net.discovery import DiscoveredService, ServiceId
from constellation.protocol.chirp import name_id

A, B = name_id("Sat.a"), name_id("Sat.b")
CTRL, HB, DATA = ServiceId.CONTROL, ServiceId.HEARTBEAT, ServiceId.DATA


def svc(name: str, service: ServiceId, port: int, address: str = "127.0.0.1") -> DiscoveredService:
    return DiscoveredService("g", name, service, address, port)


def test_offer_is_held_back_until_the_name_is_learned() -> None:
    table = ChirpTable("g")
    actions, wake = table.on_offer(A, CTRL, "127.0.0.1", 5000, now=1.0)
    assert (actions, wake) == ([], True)
    assert table.unresolved() == {A: (1.0, {CTRL: "tcp://127.0.0.1:5000"})}
    assert table.learn_name(A, "Sat.a") == [(True, svc("Sat.a", CTRL, 5000))]
    assert table.unresolved() == {}
    assert table.learn_name(A, "SAT.A") is None  # same name, other spelling: nothing new


def test_repeated_offer_is_ignored_and_a_new_port_replaces() -> None:
    table = ChirpTable("g", resolving=False)
    name = placeholder_name(A)
    assert table.on_offer(A, CTRL, "127.0.0.1", 1, 0.0) == ([(True, svc(name, CTRL, 1))], False)
    assert table.on_offer(A, CTRL, "127.0.0.1", 1, 0.5) == ([], False)
    assert table.on_offer(A, CTRL, "127.0.0.1", 2, 1.0) == (
        [(False, svc(name, CTRL, 1)), (True, svc(name, CTRL, 2))],
        False,
    )


def test_give_up_reports_placeholder_and_a_late_name_renames() -> None:
    table = ChirpTable("g")
    table.on_offer(B, HB, "127.0.0.1", 7, 0.0)
    placeholder = placeholder_name(B)
    assert table.give_up(B) == [(True, svc(placeholder, HB, 7))]
    assert table.give_up(B) is None  # no longer waiting
    # Another service of a host given up on is reported under the placeholder at once.
    assert table.on_offer(B, DATA, "127.0.0.1", 8, 1.0) == (
        [(True, svc(placeholder, DATA, 8))],
        False,
    )
    renamed = table.learn_name(B, "Sat.b")
    assert renamed == [
        (False, svc(placeholder, HB, 7)),
        (True, svc("Sat.b", HB, 7)),
        (False, svc(placeholder, DATA, 8)),
        (True, svc("Sat.b", DATA, 8)),
    ]


def test_depart_removes_and_forgets_an_empty_host() -> None:
    table = ChirpTable("g")
    table.on_offer(A, CTRL, "127.0.0.1", 1, 0.0)
    assert table.on_depart(A, CTRL) == []  # never reported
    assert table.unresolved() == {}
    assert table.on_depart(A, CTRL) == []
    table.learn_name(A, "Sat.a")
    table.on_offer(A, CTRL, "127.0.0.1", 1, 0.0)
    assert table.on_depart(A, CTRL) == [(False, svc("Sat.a", CTRL, 1))]


def test_requests_queue_one_reply_per_offered_kind() -> None:
    table = ChirpTable("g")
    assert not table.on_request(CTRL, due=1.0)  # not offered
    table.offer(CTRL, 5000)
    assert table.on_request(CTRL, due=1.0)
    assert table.on_request(CTRL, due=0.5)  # already queued: not queued twice
    replies, wait = table.due_replies(0.9)
    assert replies == [] and wait is not None and abs(wait - 0.1) < 1e-9
    replies, wait = table.due_replies(1.0)
    assert (replies, wait) == ([(CTRL, 5000)], None)
    table.on_request(CTRL, due=2.0)
    assert table.withdraw(CTRL) == 5000
    assert table.due_replies(3.0) == ([], None)  # withdrawn meanwhile: no OFFER


HOSTS = st.sampled_from([A, B, name_id("Sat.c")])
KINDS = st.sampled_from([CTRL, HB, ServiceId.MONITORING, DATA])
NAMES = {A: "Sat.a", B: "Sat.b", name_id("Sat.c"): "Sat.c"}


class TableMachine(RuleBasedStateMachine):
    """Random beacons and name events: the events emitted always describe the table."""

    def __init__(self) -> None:
        super().__init__()
        self.table = ChirpTable("g")
        self.now = 0.0
        self.seen: dict[tuple[str, ServiceId], DiscoveredService] = {}

    def apply(self, actions: list[Action] | None) -> None:
        for added, service in actions or []:
            key = (service.name, service.service)
            if added:
                assert key not in self.seen, f"{key} added twice"
                self.seen[key] = service
            else:
                assert self.seen.pop(key) == service, f"{key} removed but not reported"

    @rule(host=HOSTS, kind=KINDS, port=st.integers(1, 3))
    def offer(self, host: bytes, kind: ServiceId, port: int) -> None:
        self.now += 0.1
        actions, _ = self.table.on_offer(host, kind, "127.0.0.1", port, self.now)
        self.apply(actions)

    @rule(host=HOSTS, kind=KINDS)
    def depart(self, host: bytes, kind: ServiceId) -> None:
        self.apply(self.table.on_depart(host, kind))

    @rule(host=HOSTS)
    def learn(self, host: bytes) -> None:
        self.apply(self.table.learn_name(host, NAMES[host]))

    @rule(host=HOSTS)
    def give_up(self, host: bytes) -> None:
        self.apply(self.table.give_up(host))

    @invariant()
    def events_match_table(self) -> None:
        reported = {(s.name, s.service): s for s in self.table.reported()}
        assert reported == self.seen
        for host, (_, services) in self.table.unresolved().items():
            assert self.table.name_of(host) is None
            assert not any(s.name == placeholder_name(host) for s in reported.values())
            assert services


TestTableMachine = TableMachine.TestCase
TestTableMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
