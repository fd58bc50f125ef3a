"""Shared by the benchmark scripts: the published checkpoints' default-calibration bundles.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import it as ``from _published import SHARED, published_bundle``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: the read-only test data beside the project (../shared/fixtures)
SHARED = ROOT.parent / "shared" / "fixtures"


#: the sources whose change makes a cached bundle stale (float model, front end, quantizer)
_BUNDLE_SOURCES = sorted([*(ROOT / "nanomamba").glob("*.py"), *(ROOT / "nanomamba" / "data").glob("*.py"),
                          *(ROOT / "export" / n for n in ("quantize.py", "bundle.py", "frontend_fixed.py",
                                                          "intmath.py"))])


def _sources_digest() -> str:
    """12 hex digits of SHA-256 over the sources that decide a bundle's contents."""
    h = hashlib.sha256()
    for p in _BUNDLE_SOURCES:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def published_bundle(name: str, cache: Path) -> Path:
    """Path of the bundle of ``../shared/fixtures/upstream/nanomamba_{name}.pt`` quantized
    with the default generated calibration set, made once and cached as
    ``cache/{name}-{digest}.npz`` (digest of the float model, front-end and quantizer sources,
    so a code change never reuses a stale bundle).

    Raises:
        nanomamba.errors.KwsError subclasses from the checkpoint loader or the quantizer.
    """
    from export import quantize as Q
    path = Path(cache) / f"{name}-{_sources_digest()}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        Q.quantize_checkpoint(SHARED / "upstream" / f"nanomamba_{name}.pt", path, progress=False)
    return path


def load_real_test_set():
    """The 1,200 real clips of ``speech_commands_test`` and the recorded background noise,
    for the quantization benchmarks (audio warnings about padding/trimming silenced).

    Returns:
        ``(audio, names, labels, noise)``: int16 (N, 16000) clips, their relative names,
        int label indices (N,), and ``export.quantize.load_noise_bank``'s noise bank; or None
        (after printing ``fixtures absent: ...``) when ../shared/fixtures is missing.
    """
    import warnings

    from export import quantize as Q
    from nanomamba.errors import AudioWarning
    if not SHARED.exists():
        print(f"fixtures absent: {SHARED}")
        return None
    warnings.simplefilter("ignore", AudioWarning)
    audio, names = Q.load_clip_folder(SHARED / "speech_commands_test")
    return audio, names, Q.labels_from_names(names), Q.load_noise_bank(SHARED / "background_noise")


def protocol_a(audio, names, noise):
    """Protocol A of the quantization benchmarks (docs/QUANTIZATION.md, "Required figures"):
    the fixed 20 % calibration split of the real clips (``export.quantize.split_names``) and
    its calibration set, the split's clips clean plus the same clips mixed with the background
    noise at 0 dB SNR (seed 1); the other 80 % is the evaluation split.

    Args:
        audio, names, noise: as returned by :func:`load_real_test_set`.
    Returns:
        ``(mask, cal, ev, ev_names)``: boolean mask of the calibration split (N,), the int16
        calibration clips (2 x split size, 16000), the int16 evaluation clips and their names.
    """
    from export import quantize as Q
    mask = Q.split_names(names, 0.2)
    cal_names = [n for n, m in zip(names, mask) if m]
    ev_names = [n for n, m in zip(names, mask) if not m]
    cal = np.concatenate([audio[mask], Q.mix_at_snr(audio[mask], cal_names, noise, 0.0, seed=1)])
    return mask, cal, audio[~mask], ev_names
