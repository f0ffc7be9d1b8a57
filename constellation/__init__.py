"""Constellation-py: a Python data-acquisition framework speaking the Constellation protocols.

Layers, from the bottom: ``protocol`` (pure codecs), ``core`` (pure logic), ``net`` (sockets
and discovery, the only I/O), ``runtime`` (the parts a satellite is assembled from), then
``satellite``, ``transmitter``, ``receiver`` and ``cli`` (the user API); ``reader`` reads run
files offline. This top-level module stays import-light (no zmq, no h5py) so that the pure
protocol layer can be imported on its own.
"""

__version__ = "0.1.0"
#: Code name of this release line, reported next to the version.
CODENAME = "Pleiades"

__all__ = ["CODENAME", "__version__"]
