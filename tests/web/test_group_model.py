"""The page's pure model: states, buttons, run ids, logs with filters and counters, series."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.web.conditions import combine_conditions
from controller.web.group_model import (
    BUTTONS,
    LEVELS,
    GroupModel,
    LogFilter,
    allowed_for,
    next_sequence,
    parse_arguments,
)

STEADY = ["NEW", "INIT", "ORBIT", "RUN", "SAFE", "ERROR"]


def model_with(**states: str) -> GroupModel:
    model = GroupModel("g")
    for i, (name, state) in enumerate(states.items()):
        model.joined(f"Example.{name}", float(i))
        model.state(f"Example.{name}", state, float(i))
    return model


def test_buttons_follow_the_allowed_transitions() -> None:
    assert model_with(a="NEW", b="NEW").allowed() == {
        "initialize": True,
        "launch": False,
        "start": False,
        "stop": False,
        "land": False,
        "reconfigure": False,
        "shutdown": True,
    }
    orbit = model_with(a="ORBIT").allowed()
    assert [v for v in BUTTONS if orbit[v]] == ["start", "land", "reconfigure"]
    # Mixed INIT and ORBIT: no transition is allowed from both.
    mixed = model_with(a="INIT", b="ORBIT").allowed()
    assert not any(mixed.values())
    assert model_with(a="RUN").allowed()["stop"]
    assert not any(GroupModel("g").allowed().values())  # nobody there


def test_dead_satellites_do_not_block_buttons_but_show_in_the_header() -> None:
    model = model_with(a="INIT", b="INIT")
    events = model.left("Example.b", 5.0)
    row = model.sats["Example.b"]
    assert (row.state, row.last_state) == ("DEAD", "INIT")
    header = dict(events)["header"]
    assert header["state"] == "DEAD" and header["mixed"]
    assert header["allowed"]["launch"]


@given(st.sampled_from([*STEADY, "DEAD", "initializing", "?"]), st.sampled_from(BUTTONS))
def test_allowed_for_matches_the_fsm(state: str, verb: str) -> None:
    expected = {
        "NEW": {"initialize", "shutdown"},
        "INIT": {"initialize", "launch", "shutdown"},
        "ORBIT": {"land", "start", "reconfigure"},
        "RUN": {"stop"},
        "SAFE": {"initialize", "shutdown"},
        "ERROR": {"initialize", "shutdown"},
    }.get(state, set())
    assert allowed_for(verb, state) == (verb in expected)


def test_run_ids_continue_the_sequence() -> None:
    assert next_sequence("run", ["run_3", "run_12", "other_99", "run_x"]) == 13
    assert next_sequence("run", []) == 1
    model = GroupModel("g", run_prefix="beam")
    model.run_ids_seen(["beam_4", ""])
    assert model.next_run_id() == "beam_5" and model.run_id == "beam_4"
    model.started("beam_5", 10.0)
    assert model.next_run_id() == "beam_6"
    model.started("special", 20.0)
    assert model.next_run_id() == "beam_6"
    assert model.header(25.0)["duration"] == 5.0


def test_run_condition_and_end() -> None:
    model = model_with(a="RUN", b="RUN")
    model.started("run_1", 1.0)
    assert model.header(2.0)["condition"] == "GOOD"
    model.state("Example.b", "ERROR", 3.0)
    assert model.condition == "TAINTED"
    model.state("Example.a", "ORBIT", 4.0)
    assert model.header(100.0)["duration"] == 3.0  # ended when nobody ran any more


def test_log_counters_and_ring_buffer() -> None:
    model = GroupModel("g", log_capacity=3)
    for i, level in enumerate(["INFO", "WARNING", "CRITICAL", "WARNING", "DEBUG"]):
        model.log("Example.a", level, "T", f"m{i}", float(i))
    assert model.counters == {"WARNING": 2, "CRITICAL": 1}
    assert [e.message for e in model.logs] == ["m2", "m3", "m4"]
    model.reset_counters()
    assert model.counters == {"WARNING": 0, "CRITICAL": 0}


def test_log_filter() -> None:
    model = GroupModel("g")
    model.log("Example.a", "INFO", "FSM", "launched fine", 0.0)
    model.log("Example.b", "WARNING", "DATA", "queue LOW", 1.0)
    model.log("Example.a", "DEBUG", "FSM", "detail", 2.0)

    def texts(flt: LogFilter) -> list[str]:
        return [e.message for e in model.filtered_logs(flt)]

    assert texts(LogFilter()) == ["launched fine", "queue LOW", "detail"]
    assert texts(LogFilter(level="INFO")) == ["launched fine", "queue LOW"]
    assert texts(LogFilter(sender="example.A")) == ["launched fine", "detail"]
    assert texts(LogFilter(topic="data")) == ["queue LOW"]
    assert texts(LogFilter(text="low")) == ["queue LOW"]


@given(
    st.lists(st.tuples(st.sampled_from(LEVELS), st.text(max_size=8)), max_size=30),
    st.sampled_from(LEVELS),
    st.text(max_size=3),
)
def test_filter_is_exactly_level_and_text(entries, level, text) -> None:
    model = GroupModel("g", log_capacity=100)
    for i, (lvl, msg) in enumerate(entries):
        model.log("S.a", lvl, "", msg, float(i))
    shown = model.filtered_logs(LogFilter(level=level, text=text))
    expected = [
        m
        for lvl, m in entries
        if LEVELS.index(lvl) >= LEVELS.index(level) and text.lower() in m.lower()
    ]
    assert [e.message for e in shown] == expected


def test_metric_series_rates_and_stale_marks() -> None:
    model = GroupModel("g", points=3)
    assert model.metric("Tx.a", "NAME", "text", "", 0.0) == []  # not numeric: not charted
    for t in range(5):
        model.metric("Tx.a", "TX_RECORDS", 100 * t, "", float(t))
        model.metric("Tx.a", "TX_BYTES", 2_000_000 * t, "B", float(t))
    assert model.points("Tx.a", "TX_RECORDS") == [(2.0, 200.0), (3.0, 300.0), (4.0, 400.0)]
    assert model.rates() == [
        {
            "sender": "Tx.a",
            "records_per_s": 100.0,
            "mb_per_s": 2.0,
            "records": 400.0,
            "stale": False,
        }
    ]
    events = model.announced("Tx.a", ["TX_RECORDS"])
    stale = {m["metric"]: m["stale"] for m in dict(events)["metrics"]}
    assert stale == {"TX_BYTES": True, "TX_RECORDS": False}
    assert model.announced("Tx.a", ["TX_RECORDS"]) == []  # nothing changed
    model.sender_gone("tx.A")
    assert all(m["stale"] for m in model.metric_list())
    events = model.metric("Tx.a", "TX_RECORDS", 500, "", 5.0)
    assert [k for k, _ in events] == ["point", "metrics"]  # back: unmarked


def test_parse_arguments_from_get_commands_help() -> None:
    assert parse_arguments("Add an offset.\nArguments: offset: float.") == [
        {"name": "offset", "type": "float"}
    ]
    assert parse_arguments("Two.\nArguments: a: int, b: str.") == [
        {"name": "a", "type": "int"},
        {"name": "b", "type": "str"},
    ]
    assert parse_arguments("Start.\nPayload: run_id: str.") == [{"name": "run_id", "type": "str"}]
    assert parse_arguments("Nothing.\nNo arguments.") == []
    assert parse_arguments("free text") == []


def test_snapshot_has_everything_a_page_needs() -> None:
    model = model_with(a="INIT")
    model.log("Example.a", "INFO", "", "hi", 0.0)
    snap = model.snapshot(1.0)
    assert set(snap) == {"header", "satellites", "logs", "metrics"}
    assert snap["satellites"][0]["name"] == "Example.a"
    assert snap["header"]["satellites"] == 1


def test_run_condition_from_receivers_and_eors() -> None:
    m = GroupModel("g")
    for name in ("Tx.a", "Rx.r"):
        m.joined(name, 0.0)
        m.state(name, "ORBIT", 0.0)
    m.started("run_1", 1.0)
    assert m.header(2.0)["condition"] == "GOOD"
    assert m.header(2.0)["condition_source"] == "states"
    assert m.eor("Tx.a", "run_0", "TAINTED", 3.0) == []  # another run's EOR
    m.eor("Tx.a", "run_1", "INCOMPLETE", 3.0)
    head = m.header(3.0)
    assert (head["condition"], head["condition_source"]) == ("INCOMPLETE", "EOR")
    m.run_condition("Rx.r", "GOOD", 4.0)
    head = m.header(4.0)
    assert head["condition"] == "INCOMPLETE" and head["condition_source"] == "receivers"
    assert head["condition_detail"] == "Rx.r: GOOD; EOR Tx.a: INCOMPLETE"
    m.state("Tx.a", "SAFE", 5.0)  # the states still add what they show
    assert m.header(5.0)["condition"] == "INCOMPLETE|INTERRUPTED"
    m.started("run_2", 6.0)  # a new run forgets the old conditions
    assert m.header(6.0)["condition_source"] == "states"


def test_combine_conditions() -> None:
    assert combine_conditions([]) == "GOOD"
    assert combine_conditions(["GOOD", "TAINTED|ABORTED", "ABORTED"]) == "TAINTED|ABORTED"
    assert combine_conditions(["NO_DATA"]) == "NO_DATA"
    assert combine_conditions(["NO_DATA", "GOOD"]) == "GOOD"  # the other receiver got the data
    assert combine_conditions(["NO_DATA", "INCOMPLETE"]) == "INCOMPLETE"
