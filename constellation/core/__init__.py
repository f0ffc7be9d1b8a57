"""Core layer: pure logic of a satellite, no sockets, no threads of its own, no clock reads.

The state machine (``states``, ``fsm``), the configuration (``config`` with ``config_values``,
``config_env`` and ``framework_config``), the command registry (``commands``), roles and the
heartbeat and run trackers. Time is passed in; nothing here imports zmq or does I/O
(``tests/unit/runtime/test_structure.py`` checks the imports).
"""
