"""NanoMamba keyword spotting in PyTorch: float model, checkpoints, audio, data, training.

Torch-free parts (``nanomamba.config``, ``nanomamba.audio``, ``nanomamba.errors``) can be
imported without importing torch; the model names below load lazily.
"""

from __future__ import annotations

from .audio import load_audio
from .config import BASE, CONFIGS, LABELS, SMALL, TINY, NanoMambaConfig
from .errors import AudioError, AudioWarning, CheckpointError, KwsError

__version__ = "0.1.0"

_LAZY = {
    "NanoMamba": "model", "Network": "model", "FrontEnd": "frontend",
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "count_parameters": "model", "macs_per_inference": "model",
}

__all__ = ["BASE", "CONFIGS", "LABELS", "SMALL", "TINY", "NanoMambaConfig", "load_audio",
           "AudioError", "AudioWarning", "CheckpointError", "KwsError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'nanomamba' has no attribute {name!r}")
