"""Host stand-ins for the CMSIS-Core intrinsics and CMSIS-NN/DSP-style helpers the
generated C calls, with Arm's edge behaviour (package data; C headers only).
"""

from pathlib import Path


def stub_root() -> Path:
    """Folder holding the host CMSIS stand-in headers."""
    return Path(__file__).resolve().parent
