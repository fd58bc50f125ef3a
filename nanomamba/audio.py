"""The one audio loader of the toolchain (no torch import: the simulator uses it too).

Every stage reads clips through :func:`load_audio`, so the float model, the simulator, the
generated C and the firmware all see the same samples.
"""

from __future__ import annotations

import os
import warnings
from math import gcd
from pathlib import Path

import numpy as np

from .config import CLIP_SAMPLES, SAMPLE_RATE
from .errors import AudioError, AudioWarning, positive_int

#: Sample rates the loader resamples from (Hz); anything else is refused.
MIN_RATE, MAX_RATE = 8_000, 192_000
#: File suffixes :func:`load_audio` reads.
AUDIO_SUFFIXES = (".wav", ".f32", ".flac")


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 PCM: x * 32768 rounded half away from zero,
    saturated to [-32768, 32767] (the inverse of ``int16 / 32768``; exact on such values).

    Args:
        x: float array, any shape.
    Returns:
        int16 array, same shape.
    """
    y = np.asarray(x, dtype=np.float64) * 32768.0
    y = np.sign(y) * np.floor(np.abs(y) + 0.5)
    return np.clip(y, -32768, 32767).astype(np.int16)


def _fit_length(x: np.ndarray, path: Path, n: int) -> np.ndarray:
    if len(x) < n:
        warnings.warn(f"{path}: {len(x)} samples, zero-padded to {n} ({n / SAMPLE_RATE:g} s)",
                      AudioWarning, stacklevel=3)
        x = np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])
    elif len(x) > n:
        warnings.warn(f"{path}: {len(x)} samples, trimmed to the first {n} "
                      f"({n / SAMPLE_RATE:g} s)", AudioWarning, stacklevel=3)
        x = x[:n]
    return x


def _warn_clipping(x: np.ndarray, path: Path) -> None:
    """One :class:`AudioWarning` when float samples lie outside [-1, 1], so that
    :func:`float_to_int16` saturates them (1.0 itself, one LSB over int16 full scale, is
    in range: no warning)."""
    over = np.abs(x) > 1.0
    if over.any():
        n = int(over.sum())
        peak = float(np.max(np.abs(x)))
        warnings.warn(f"{path}: float samples outside [-1, 1] (peak {round(peak, 4)}, "
                      f"{n} of {x.size} samples = {100.0 * n / x.size:.2g}%) clipped",
                      AudioWarning, stacklevel=3)


def _read_wav(path: Path, want_int16: bool) -> tuple[np.ndarray, int, str]:
    import soundfile as sf
    try:
        info = sf.info(str(path))
        exact_int16 = want_int16 and info.subtype == "PCM_16"
        data, rate = sf.read(str(path), dtype="int16" if exact_int16 else "float32",
                             always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError, TypeError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AudioError(f"{path}: not a readable audio file ({msg[:120]})") from None
    return data, rate, info.subtype


def load_audio(path: str | os.PathLike, *, dtype: str = "float32",
               n_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Read one clip as the model's input: 16 kHz mono, exactly ``n_samples`` samples.

    Accepts WAV (16-bit PCM, 32-bit float, 8-bit unsigned and other libsndfile subtypes),
    FLAC, and raw little-endian float32 ``.f32`` (assumed 16 kHz mono). Other rates in
    [8, 192] kHz are resampled (scipy.signal.resample_poly) with an :class:`AudioWarning`;
    stereo is downmixed (mean of channels) with a warning; short clips are zero-padded at
    the end and long ones trimmed to the first ``n_samples``, with a warning. Float
    samples outside [-1, 1] (a float WAV/FLAC/.f32 out of range, or resampling overshoot)
    are clipped, with one warning giving the peak and the fraction clipped: to [-1, 1]
    with ``dtype="float32"``, to int16 full scale with ``dtype="int16"``, so that every
    route sees the same clip.

    Args:
        path: the clip.
        dtype: "float32" -> samples in [-1, 1] (int16 PCM divided by 32768);
            "int16" -> int16 PCM (exact for 16-bit WAV, else :func:`float_to_int16`).
        n_samples: window length in samples, an int >= 1 (16,000 = 1 s at 16 kHz).
    Returns:
        1-D array of ``n_samples`` float32 or int16 samples.
    Raises:
        AudioError: missing file, unknown format, empty or corrupt file, non-finite
            samples, a sample rate outside [8, 192] kHz.
        TypeError: ``path`` not a str/PathLike, ``n_samples`` not an int.
        ValueError: ``dtype`` not "float32"/"int16", ``n_samples`` < 1 (argument checks
            come before the file is opened).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path (str or PathLike), got "
                        f"{type(path).__name__}")
    n_samples = positive_int(n_samples, "n_samples", unit=" (samples per clip)")
    path = Path(path)
    if dtype not in ("float32", "int16"):
        raise ValueError(f"dtype must be 'float32' or 'int16', not {dtype!r}")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio clip")
    suffix = path.suffix.lower()
    if suffix == ".f32":
        raw = path.read_bytes()
        if len(raw) == 0:
            raise AudioError(f"{path}: empty file")
        if len(raw) % 4:
            raise AudioError(f"{path}: size {len(raw)} bytes is not a whole number of float32 samples")
        data = np.frombuffer(raw, dtype="<f4").astype(np.float32)[:, None]
        rate = SAMPLE_RATE
    elif suffix in (".wav", ".flac"):
        data, rate, _ = _read_wav(path, dtype == "int16")
    else:
        raise AudioError(f"{path}: unsupported audio format '{suffix or '(none)'}' "
                         f"(expected one of {', '.join(AUDIO_SUFFIXES)})")
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty file (no samples)")
    if data.dtype != np.int16 and not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if data.shape[1] > 1:
        warnings.warn(f"{path}: {data.shape[1]} channels, downmixed to mono", AudioWarning,
                      stacklevel=2)
        if data.dtype == np.int16:        # exact PCM_16 read: to [-1, 1) before the mean
            data = data.astype(np.float32) / np.float32(32768.0)
        data = data.astype(np.float32).mean(axis=1, keepdims=True)
    x = data[:, 0]
    if rate != SAMPLE_RATE:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"{path}: sample rate {rate} Hz is not supported "
                             f"(need {MIN_RATE}-{MAX_RATE} Hz; the model runs at {SAMPLE_RATE} Hz)")
        from scipy.signal import resample_poly
        g = gcd(rate, SAMPLE_RATE)
        warnings.warn(f"{path}: resampled from {rate} Hz to {SAMPLE_RATE} Hz", AudioWarning,
                      stacklevel=2)
        xf = x.astype(np.float64) / (32768.0 if x.dtype == np.int16 else 1.0)
        x = resample_poly(xf, SAMPLE_RATE // g, rate // g).astype(np.float32)
    x = _fit_length(x, path, n_samples)
    if dtype == "int16":
        if x.dtype == np.int16:
            return x
        _warn_clipping(x, path)
        return float_to_int16(x)
    if x.dtype == np.int16:
        return x.astype(np.float32) / np.float32(32768.0)
    _warn_clipping(x, path)               # the same clip every route sees (int16 saturates)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def list_clips(folder: str | os.PathLike) -> list[Path]:
    """Audio files (by :data:`AUDIO_SUFFIXES`) under ``folder``, recursively, sorted.

    Raises:
        AudioError: the folder does not exist or is not a folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AudioError(f"{folder}: is a file, expected a folder of clips")
    if not folder.is_dir():
        raise AudioError(f"{folder}: no such folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
