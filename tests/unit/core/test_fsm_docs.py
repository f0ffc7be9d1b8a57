"""The state diagram in docs/state-machine.md is generated from the code and must not drift."""

from pathlib import Path

from constellation.core.fsm import mermaid_diagram

DOC = Path(__file__).resolve().parents[3] / "docs" / "state-machine.md"


def test_state_machine_doc_matches_the_transition_table() -> None:
    assert f"```mermaid\n{mermaid_diagram()}\n```" in DOC.read_text()
