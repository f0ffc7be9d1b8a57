"""The single error hierarchy of the framework.

Every exception the framework raises on purpose derives from :class:`ConstellationError`.
Decoding problems of received bytes (remote errors) are kept apart from misuse of the local API.
Where callers traditionally catch a builtin, the project error has it as second base
(:class:`DataTimeoutError` is a ``TimeoutError``, :class:`UsageError` a ``RuntimeError``...), so
``except TimeoutError`` keeps working. A stop request (:class:`SendingStoppedError`) is not a
failure and derives from no failure class. The table mapping exception types to CSCP reply types
lives in ``constellation.core.commands``.
"""

from __future__ import annotations

__all__ = [
    "BindError",
    "CommandDefinitionError",
    "CommandError",
    "ConfigError",
    "ConstellationError",
    "DataProtocolError",
    "DataTimeoutError",
    "DecodeError",
    "DiscoveryError",
    "EncodeError",
    "HookError",
    "IncompleteCommandError",
    "InputFileError",
    "InvalidNameError",
    "InvalidProtocolError",
    "InvalidStateError",
    "LoopTimeoutError",
    "MetricDefinitionError",
    "OutputFileError",
    "OutputFileExistsError",
    "SendingStoppedError",
    "TransitionError",
    "UnexpectedProtocolError",
    "UnknownCommandError",
    "UnknownSenderError",
    "UsageError",
]


class ConstellationError(Exception):
    """Root of every error raised on purpose by this framework."""


class UsageError(ConstellationError, RuntimeError):
    """The local API was used out of order (e.g. a timer scheduled before ``start()``)."""


class InvalidNameError(ConstellationError, ValueError):
    """A satellite type or name is not made of letters, digits and underscores."""


# --- protocol layer: bytes that came from somewhere else ---------------------------------------
class DecodeError(ConstellationError):
    """Received bytes are not a valid message of the expected protocol."""


class InvalidProtocolError(DecodeError):
    """The protocol identifier is none of the known ones."""


class UnexpectedProtocolError(DecodeError):
    """The protocol identifier is known but not the one expected on this socket."""


class EncodeError(ConstellationError):
    """A local object cannot be represented on the wire (e.g. bytes inside a tag map)."""


# --- configuration ---------------------------------------------------------------------------
class ConfigError(ConstellationError):
    """A configuration value is missing, of the wrong type or out of range.

    ``key`` is the full dotted key path, e.g. ``_data.bor_timeout``.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.reason = message
        super().__init__(f"key '{key}': {message}" if key else message)


class UnknownSenderError(ConstellationError, ValueError):
    """A live subscription names a sender the group does not have (the message lists them)."""


# --- commands and state machine -----------------------------------------------------------------
class CommandError(ConstellationError):
    """A command request cannot be executed."""


class UnknownCommandError(CommandError):
    """No command of that name exists."""


class IncompleteCommandError(CommandError):
    """The payload of a command is missing or has the wrong type or count."""


class InvalidStateError(CommandError):
    """The command is not allowed in the current state."""


class CommandDefinitionError(ConstellationError, TypeError):
    """A satellite class declares a command it does not implement (or implements wrongly)."""


class TransitionError(ConstellationError):
    """A state transition failed or timed out."""


class HookError(ConstellationError):
    """An exception raised inside a user hook; ``hook`` names it, ``error`` is the original."""

    def __init__(self, hook: str, error: BaseException) -> None:
        self.hook = hook
        self.error = error
        super().__init__(f"{type(error).__name__} in {hook}: {error}")


class MetricDefinitionError(ConstellationError, ValueError):
    """A metric registration is invalid (name, unit, poll function or interval)."""


# --- I/O ------------------------------------------------------------------------------------------
class DiscoveryError(ConstellationError):
    """A service could not be announced or found."""


class DuplicateNameError(DiscoveryError):
    """Another satellite of the group already runs under this canonical name."""


class BindError(ConstellationError, OSError):
    """A service socket cannot be bound to the port asked for (in use, not permitted...).

    ``service`` is ``cmd``, ``hb``, ``mon`` or ``data``; ``port`` the port asked for (None if
    not known where the error was seen); ``reason`` the system's words, e.g. "address already
    in use".
    """

    def __init__(self, service: str, port: int | None, reason: str) -> None:
        self.service = service
        self.port = port
        self.reason = reason
        where = f"{service} port {port}" if port else f"{service} port"
        super().__init__(f"{where}: {reason}")


class LoopTimeoutError(ConstellationError, TimeoutError):
    """The event loop did not run a handed-over call in time (it is blocked or stopped)."""


class DataTimeoutError(ConstellationError, TimeoutError):
    """Sending data blocked longer than the configured timeout (receiver did not keep up)."""


class SendingStoppedError(ConstellationError):
    """A record was offered after an interrupt stopped the run's data sending.

    Not a failure: ``do_run`` ends on it and the interrupt proceeds to SAFE.
    """


# --- data runs --------------------------------------------------------------------------------
class DataProtocolError(DecodeError):
    """A data sender broke the BOR → DATA → EOR order of a run (e.g. DATA before BOR).

    ``sender`` is the sender's canonical name as received.
    """

    def __init__(self, sender: str, message: str) -> None:
        self.sender = sender
        self.reason = message
        super().__init__(f"{sender}: {message}")


# --- files (H5DataWriter output, offline reader input) ----------------------------------------
class OutputFileError(ConstellationError):
    """An output file cannot be created, written or closed.

    ``path`` names the file, ``reason`` the cause (e.g. the OS or HDF5 error text).
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"output file '{self.path}': {reason}")

    def __str__(self) -> str:
        return f"output file '{self.path}': {self.reason}"


class OutputFileExistsError(OutputFileError, FileExistsError):
    """The output file already exists; an existing file is never overwritten."""

    def __init__(self, path: object) -> None:
        super().__init__(path, "already exists and is never overwritten")
        self.filename = str(path)


class InputFileError(ConstellationError):
    """A data file cannot be read: not an H5DataWriter file, locked by a writer, or corrupt."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"input file '{self.path}': {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # picklable (worker processes)
        return (type(self), (self.path, self.reason))
