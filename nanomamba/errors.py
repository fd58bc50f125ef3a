"""Error types shared by every stage of the toolchain.

Every error the tools raise on bad user input derives from :class:`KwsError` and carries
a one-line message that names the offending file (or option) and the problem, so the
CLI can print it as ``error: <message>`` without a traceback.
"""

from __future__ import annotations


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
