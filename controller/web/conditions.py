"""MissionControl web, pure: the header's run condition from what the data and the states say.

The receivers publish ``RUN_CONDITION`` when a run ends and the live tap shows each EOR with its
condition; during the run, before either arrived, the satellites' states are all there is
(``TAINTED`` once one failed, ``INTERRUPTED`` if one went to SAFE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["combine_conditions", "summarize"]


def combine_conditions(conditions: Iterable[str]) -> str:
    """The flags of several condition texts (``"TAINTED|INCOMPLETE"``), ``GOOD`` if none.

    ``NO_DATA`` (a receiver that got nothing) only counts when no text says more.
    """
    texts = [str(t).strip() for t in conditions if str(t).strip()]
    if any(t != "NO_DATA" for t in texts):
        texts = [t for t in texts if t != "NO_DATA"]
    flags: list[str] = []
    for text in texts:
        for flag in text.split("|"):
            flag = flag.strip()
            if flag and flag != "GOOD" and flag not in flags:
                flags.append(flag)
    return "|".join(flags) or "GOOD"


def summarize(
    received: Mapping[str, str], eors: Mapping[str, str], inferred: str
) -> dict[str, Any]:
    """``condition``, ``condition_source`` (receivers, EOR, states or empty) and
    ``condition_detail`` (each receiver's and EOR's condition) for the header.

    ``received``: receiver -> RUN_CONDITION; ``eors``: sender -> EOR condition; ``inferred``:
    the condition from the states (empty before a run). Inferred flags are added to the data's.
    """
    parts = [f"{n}: {c}" for n, c in sorted(received.items())]
    parts += [f"EOR {n}: {c}" for n, c in sorted(eors.items())]
    if not received and not eors:
        source = "states" if inferred else ""
        return {"condition": inferred, "condition_source": source, "condition_detail": ""}
    texts = [*received.values(), *eors.values()]
    if inferred and inferred != "GOOD":
        texts.append(inferred)
        parts.append(f"states: {inferred}")
    return {
        "condition": combine_conditions(texts),
        "condition_source": "receivers" if received else "EOR",
        "condition_detail": "; ".join(parts),
    }
