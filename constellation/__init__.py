"""Constellation-py: a Python data-acquisition framework speaking the Constellation protocols.

This top-level module stays import-light (no zmq, no h5py) so that the pure protocol layer can be
imported on its own.
"""

__version__ = "0.1.0"
#: Code name of this release line, reported next to the version.
CODENAME = "Pleiades"

__all__ = ["CODENAME", "__version__"]
