"""Error types shared by every stage of the toolchain.

Every error the tools raise on bad user input derives from :class:`KwsError` and carries
a one-line message that names the offending file (or option) and the problem, so the
CLI can print it as ``error: <message>`` without a traceback.
"""

from __future__ import annotations

import numbers


class KwsError(Exception):
    """Base class of all user-facing errors; ``str(err)`` is a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class CheckpointError(KwsError):
    """A checkpoint file is missing, unreadable, unsafe, malformed or inconsistent."""


class AudioError(KwsError):
    """An audio clip is missing, empty, corrupt or in a format the loader refuses."""


class AudioWarning(UserWarning):
    """An audio clip was altered to fit the model (resampled, downmixed, padded, trimmed)."""


def positive_int(value, name: str, *, error: type[Exception] = ValueError,
                 unit: str = "") -> int:
    """An argument that must be an int >= 1 (a count: threads, clips per chunk, samples).

    Args:
        value: the argument (any integral type; bool is refused).
        name: its name, first in the message.
        error: the class raised for a value < 1 (a ValueError subclass, e.g. a stage's own).
        unit: text after ">= 1" in that message, e.g. " (samples per clip)".
    Returns:
        ``int(value)``.
    Raises:
        TypeError: not an integer (``"{name}: expected an int >= 1, got ..."``).
        ``error``: an integer < 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= 1, got {value!r} "
                        f"({type(value).__name__})")
    if value < 1:
        raise error(f"{name}: expected an int >= 1{unit}, got {value}")
    return int(value)
