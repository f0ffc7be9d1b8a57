"""Controller layer, pure: checks of a configuration before ``initialize`` sends anything.

- :func:`check_conditions`: conditional transitions name present satellites and form no cycle.
- :func:`check_receivers`: no transmitter is taken by two receivers (ZeroMQ PUSH/PULL would hand
  each receiver a share of its records, silently; watch data with the live tap instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from constellation.core.config import CONDITION_TRANSITIONS, normalize_framework_keys
from constellation.errors import ConfigError

__all__ = [
    "RECEIVER_SUFFIXES",
    "check_conditions",
    "check_receivers",
    "flat_keys",
    "receiver_sources",
    "unused_keys_in",
]

#: Satellite types ending in one of these are receivers even without ``_data.receive_from``.
RECEIVER_SUFFIXES = ("Receiver", "Writer")


def check_conditions(configs: Mapping[str, Mapping[str, Any]], present: Iterable[str]) -> None:
    """Check the conditional transitions of the configurations about to be sent.

    ``configs`` maps each target's canonical name to the merged section it will receive;
    ``present`` lists the satellites of the group. Every name in a
    ``_conditions.require_<transition>_after`` list must be a present satellite, and for each
    transition the "waits for" graph must have no cycle (a satellite waiting for itself
    included), since such satellites would wait for each other until the timeout.

    Raises :class:`ConfigError` whose key is ``<Type.Name>._conditions.require_<t>_after`` and
    whose message names the satellites involved. Pure function: no I/O.
    """
    known = {name.lower(): name for name in present}
    known.update({name.lower(): name for name in configs})
    for transition in CONDITION_TRANSITIONS:
        key = f"require_{transition.name}_after"
        graph: dict[str, list[str]] = {}
        for sat, config in configs.items():
            waits_for = _condition_list(sat, normalize_framework_keys(config), key)
            for peer in waits_for:
                if peer.lower() not in known:
                    raise ConfigError(
                        f"{sat}._conditions.{key}",
                        f"{sat} waits for {peer}, which is not a satellite of this group "
                        f"(present: {', '.join(sorted(known.values())) or 'none'})",
                    )
            graph[sat.lower()] = [peer.lower() for peer in waits_for]
        cycle = _find_cycle(graph)
        if cycle:
            names = [known.get(n, n) for n in cycle]
            raise ConfigError(
                f"{names[0]}._conditions.{key}",
                f"circular condition: {' -> '.join(names)} (these satellites would wait for "
                "each other until the transition timeout)",
            )


def _condition_list(sat: str, config: Mapping[str, Any], key: str) -> list[str]:
    section = config.get("_conditions")
    if not isinstance(section, Mapping) or section.get(key) is None:
        return []
    value = section[key]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"{sat}._conditions.{key}", f"expected a list of canonical names, got {value!r}"
        )
    return names


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` (iterative depth-first search)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(graph.get(root, []))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if child in on_path:
                return [*path[path.index(child) :], child]
            if child in done:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(graph.get(child, [])))
    return []


def receiver_sources(
    configs: Mapping[str, Mapping[str, Any]], transmitters: Iterable[str]
) -> dict[str, list[str]]:
    """Receiver name -> the transmitters it will take, from the configurations to be sent.

    A satellite is a receiver when its section sets ``_data.receive_from`` (it takes those) or
    its type ends in ``Receiver``/``Writer`` (without ``receive_from`` it takes every one).
    """
    every = sorted(set(transmitters), key=str.lower)
    sources: dict[str, list[str]] = {}
    for sat, config in configs.items():
        data = normalize_framework_keys(config).get("_data")
        listed = data.get("receive_from") if isinstance(data, Mapping) else None
        if listed is not None:
            names = [listed] if isinstance(listed, str) else list(listed)
            sources[sat] = [str(n) for n in names]
        elif sat.split(".", 1)[0].endswith(RECEIVER_SUFFIXES):
            sources[sat] = [t for t in every if t.lower() != sat.lower()]
    return sources


def check_receivers(configs: Mapping[str, Mapping[str, Any]], transmitters: Iterable[str]) -> None:
    """Refuse a configuration in which two receivers take the same transmitter.

    ``configs``: each target's merged section; ``transmitters``: canonical names of the
    satellites offering a data service. Raises :class:`ConfigError` (key
    ``<Receiver>._data.receive_from``) naming the transmitter and both receivers.
    """
    taken: dict[str, str] = {}
    for receiver, names in sorted(receiver_sources(configs, transmitters).items()):
        for name in names:
            other = taken.get(name.lower())
            if other is not None:
                raise ConfigError(
                    f"{receiver}._data.receive_from",
                    f"{name} would be taken by two receivers, {other} and {receiver}: each "
                    "would get only a share of its records. Give each transmitter one "
                    "receiver with _data.receive_from; to watch data while it is stored, "
                    "read the writer's file (allow_concurrent_reading = true) or the live tap",
                )
            taken[name.lower()] = receiver


_UNUSED = re.compile(r"\((\d+) unused keys?: ([^()]*)\)\s*$")


def unused_keys_in(status: str) -> list[str]:
    """The keys a satellite reported as unused in its status after ``initialize``.

    Our satellites end their INIT status with ``(N unused keys: a, b.c)``; ``[]`` otherwise.
    """
    match = _UNUSED.search(status)
    if match is None:
        return []
    return [key.strip() for key in match.group(2).split(",") if key.strip()]


def flat_keys(section: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the leaves of a nested configuration section."""
    keys: list[str] = []
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            keys.extend(flat_keys(value, f"{name}."))
        else:
            keys.append(name)
    return keys
