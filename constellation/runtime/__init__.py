"""Runtime parts a satellite is assembled from (see docs/internals.md).

``workers`` (threads for user code), ``services`` (loop, sockets, discovery),
``standard_commands`` and ``custom_commands`` (the command table), ``requests`` (which thread
answers a command), ``transitions`` and ``jobs`` (running transitions), ``failures`` (going to
ERROR), ``tasks`` (periodic user tasks) and ``lifecycle`` (the hook interface). None of them
imports ``constellation.satellite``.
"""
