"""H5DataWriter: the receiver that persists every run to one HDF5 file (docs/file-format.md).

``runfile`` is the file-format layer (no networking); the satellite module wraps it.
"""
