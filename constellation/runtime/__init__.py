"""Runtime parts a satellite is assembled from (see docs/internals.md).

``workers`` (threads for user code), ``transitions`` (the transition runner), ``requests``
(which thread answers a command), ``standard_commands`` (the standard command table),
``services`` (loop, sockets, discovery) and ``lifecycle`` (the hook interface). None of them
imports ``constellation.satellite``.
"""
