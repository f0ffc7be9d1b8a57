"""H5DataWriter: the receiver satellite that persists every run to one HDF5 file (SPEC §7).

``runfile`` is the file-format layer (no networking); the satellite module wraps it.
"""
