"""Satellites layer: the satellites shipped with the framework, each with its console script.

``example`` (Example), ``random_transmitter`` (RandomTransmitter), ``devnull_receiver``
(DevNullReceiver) and ``h5datawriter`` (H5DataWriter). They are built like a user's satellite:
on ``Satellite``, ``Transmitter`` or ``Receiver`` and the ``cli`` launcher of :mod:`constellation`.
"""
