"""Helpers shared by the quantization / simulator / kernel tests: a small real bundle made
from a published checkpoint (cached per process)."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_clips(n_per_class: int = 2) -> tuple[np.ndarray, list[str]]:
    """A few real clips of ../shared/fixtures/speech_commands_test (int16), n per class."""
    from nanomamba import LABELS, load_audio
    from nanomamba.errors import AudioWarning
    root = SHARED / "speech_commands_test"
    clips, names = [], []
    for lab in LABELS:
        for p in sorted((root / lab).glob("*.wav"))[:n_per_class]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AudioWarning)
                clips.append(load_audio(p, dtype="int16"))
            names.append(f"{lab}/{p.name}")
    return np.stack(clips), names


@functools.lru_cache(maxsize=4)
def small_bundle(name: str = "tiny", widths: tuple = ()):
    """(bundle, model, audio) for a published checkpoint calibrated on 24 real clips."""
    from export.quantize import quantize_model
    from nanomamba import load_checkpoint
    model = load_checkpoint(SHARED / "upstream" / f"nanomamba_{name}.pt")
    audio, _ = fixture_clips(2)
    bundle = quantize_model(model, audio, widths=dict(widths), progress=False,
                            calibration={"source": "tests: 24 clips"})
    return bundle, model, audio
