"""Network layer: the only I/O of the framework (zmq sockets, the poll loop, discovery).

The event loop (``loop``), sockets and their limits (``sockets``, ``interfaces``), the command
server, heartbeat sender and receiver, monitoring publisher and subscriptions, data sender and
receiver, and discovery (``chirp``, ``mdns``, ``discovery``). It uses the pure codecs of
:mod:`constellation.protocol` and the trackers of :mod:`constellation.core`.
"""
