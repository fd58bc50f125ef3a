"""Noise for augmentation and noise-robustness evaluation: recorded files and generated types,
mixed into clips at a given SNR with RMS scaling.

SNR definition (as in the Speech Commands noise experiments): for a clip ``s`` and a noise
segment ``n`` of the same length, the mixture is ``s + g n`` with
``g = rms(s) / (rms(n) * 10^(snr_db / 20))``, RMS over the whole 1-s window. If the
mixture's peak exceeds 1.0 the whole mixture is scaled down to peak 0.99 (the model's front
end is scale-invariant: log-mel is instance-normalised and the SNR estimate is a ratio).

Generated types (each returned at unit RMS; :data:`GENERATED_KINDS`):

- ``white``: Gaussian white noise.
- ``pink``: Gaussian noise shaped to a 1/f power spectrum (FFT shaping).
- ``brown``: 1/f^2 power spectrum (silence clips only).
- ``hum``: mains hum (50 or 60 Hz and harmonics) over faint pink noise (silence clips only).
- ``babble``: 5-9 overlapping talkers, each a random espeak-ng voice reading random words
  (segments of talker streams cached by :class:`BabbleBank`).
- ``factory``: machinery: mains hum and a motor tone with harmonics, band-limited
  (500-4,000 Hz) broadband noise, and impulses (hammer-like decaying bursts, 1-6 per
  second, 8-20 dB above the background).
- ``street``: traffic: low-frequency rumble (brown noise below ~300 Hz) with a slow level
  swell, one or two passing vehicles (band-limited noise under a Gaussian envelope) and,
  sometimes, a horn (two harmonic tones).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE
from ..errors import KwsError

GENERATED_KINDS: tuple[str, ...] = ("white", "pink", "babble", "factory", "street")
SILENCE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "hum")
#: Peak the mixture is scaled back to when it would exceed full scale.
PEAK_LIMIT = 0.99
_FLOOR_RMS = 1e-4   # RMS used for an all-zero clip when scaling noise to an SNR


class NoiseError(KwsError):
    """A noise folder or noise type is unusable."""


def rms(x: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Root mean square along ``axis`` (float64 accumulation). Args: x float (..., n)."""
    r = np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)), axis=axis))
    return float(r) if np.ndim(r) == 0 else r


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    r = np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True))
    return (x / np.maximum(r, 1e-12)).astype(np.float32)


def _shaped(n: int, rng: np.random.Generator, exponent: float, count: int | None = None,
            band: tuple[float, float] | None = None) -> np.ndarray:
    """Gaussian noise with power spectrum ~ f^-exponent (optionally band-limited), unit RMS."""
    shape = (n,) if count is None else (count, n)
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    gain = np.ones_like(f)
    gain[1:] = (f[1:] / f[1]) ** (-exponent / 2)
    gain[0] = 0.0
    if band is not None:
        lo, hi = band
        gain *= 1.0 / np.sqrt(1 + (lo / np.maximum(f, 1e-3)) ** 4) / np.sqrt(1 + (f / hi) ** 4)
    return _unit(np.fft.irfft(spec * gain, n=n, axis=-1))


def _tones(n: int, f0: float, amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if f0 * k < SAMPLE_RATE / 2:
            out += a * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    return out


def _factory(n: int, rng: np.random.Generator) -> np.ndarray:
    mains = float(rng.choice((50.0, 60.0)))
    hum = _tones(n, mains, rng.uniform(0.2, 1.0, 6) / np.arange(1, 7), rng)
    motor = _tones(n, rng.uniform(90, 400), rng.uniform(0.1, 0.6, 8) / np.sqrt(np.arange(1, 9)), rng)
    broad = _shaped(n, rng, 0.5, band=(500.0, 4000.0))
    bg = _unit(hum) * rng.uniform(0.3, 0.8) + _unit(motor) * rng.uniform(0.3, 0.8) + broad
    bg = bg / rms(bg)
    hits = np.zeros(n)
    n_hits = rng.poisson(rng.uniform(1, 6) * n / SAMPLE_RATE)
    for _ in range(n_hits):
        start = int(rng.integers(0, n))
        length = min(n - start, int(SAMPLE_RATE * 0.15))
        decay = rng.uniform(0.005, 0.03) * SAMPLE_RATE
        burst = _shaped(max(length, 8), rng, 0.0, band=(300.0, 6000.0))[:length]
        hits[start:start + length] += burst * np.exp(-np.arange(length) / decay) \
            * 10 ** (rng.uniform(8, 20) / 20)
    return _unit(bg + hits)


def _street(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    rumble = _shaped(n, rng, 2.0, band=(20.0, 300.0))
    traffic = _shaped(n, rng, 1.0, band=(80.0, 3000.0))
    swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    x = rumble * rng.uniform(0.6, 1.2) + traffic * swell * rng.uniform(0.4, 0.9)
    for _ in range(int(rng.integers(1, 3))):
        centre, width = rng.uniform(0, n / SAMPLE_RATE), rng.uniform(0.3, 1.2)
        env = np.exp(-0.5 * ((t - centre) / width) ** 2)
        x += _shaped(n, rng, 1.0, band=(150.0, 2500.0)) * env * rng.uniform(0.8, 2.0)
    if rng.random() < 0.3:
        start, dur = rng.uniform(0, 0.8), rng.uniform(0.15, 0.5)
        env = ((t >= start) & (t < start + dur)).astype(float)
        f1 = rng.uniform(350, 500)
        horn = _tones(n, f1, np.array([1, .6, .4, .3]), rng) + _tones(n, f1 * 1.26, np.array([1, .5, .3]), rng)
        x += horn * env * rng.uniform(0.5, 1.5)
    return _unit(x)


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    mains = float(rng.choice((50.0, 60.0)))
    hum = _unit(_tones(n, mains, rng.uniform(0.2, 1.0, 5) / np.arange(1, 6), rng))
    return _unit(hum + _shaped(n, rng, 1.0) * rng.uniform(0.05, 0.5))


def generate_noise(kind: str, n: int, rng: np.random.Generator, *,
                   babble: "BabbleBank | None" = None) -> np.ndarray:
    """One generated noise segment at unit RMS.

    Args:
        kind: "white", "pink", "brown", "hum", "factory", "street" or "babble".
        n: length in samples (16 kHz).
        rng: random generator (the segment is a pure function of its state).
        babble: talker streams for "babble" (a default :class:`BabbleBank` when None).
    Returns:
        float32 (n,), RMS 1.
    Raises:
        NoiseError: unknown kind.
        EspeakError: "babble" without espeak-ng and without a cached bank.
    """
    if kind == "white":
        return _unit(rng.standard_normal(n))
    if kind == "pink":
        return _shaped(n, rng, 1.0)
    if kind == "brown":
        return _shaped(n, rng, 2.0)
    if kind == "hum":
        return _hum(n, rng)
    if kind == "factory":
        return _factory(n, rng)
    if kind == "street":
        return _street(n, rng)
    if kind == "babble":
        return (babble or BabbleBank()).segment(n, rng)
    raise NoiseError(f"unknown noise type '{kind}' (expected one of "
                     f"{', '.join(GENERATED_KINDS + ('brown', 'hum'))}, or a recorded file)")


class BabbleBank:
    """Talker streams for babble noise: ``n_talkers`` espeak-ng voices reading random words,
    ``seconds`` each, generated once per (seed, n_talkers, seconds) and cached as
    ``babble-<key>.npy`` in ``cache_dir``.

    A babble segment sums 5-9 distinct talkers at random offsets, each at unit RMS
    +-3 dB, then normalises to unit RMS.
    """

    def __init__(self, *, seed: int = 1234, n_talkers: int = 16, seconds: float = 20.0,
                 cache_dir: str | os.PathLike | None = None, executable: str | None = None):
        self.seed, self.n_talkers, self.seconds = seed, n_talkers, seconds
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.executable = executable
        self._streams: np.ndarray | None = None

    @property
    def streams(self) -> np.ndarray:
        """float32 (n_talkers, seconds * 16000) talker streams (generated on first use)."""
        if self._streams is None:
            from .synth import GENERATOR_VERSION, speech_stream
            n = int(self.seconds * SAMPLE_RATE)
            path = None
            if self.cache_dir is not None:
                path = self.cache_dir / f"babble-v{GENERATOR_VERSION}-{self.seed}-{self.n_talkers}-{n}.npy"
                if path.exists():
                    self._streams = np.load(path)
                    return self._streams
            rngs = [np.random.default_rng([self.seed, k]) for k in range(self.n_talkers)]
            self._streams = np.stack([_unit(speech_stream(n, r, executable=self.executable))
                                      for r in rngs])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
                np.save(tmp, self._streams)
                os.replace(tmp, path)
        return self._streams

    def segment(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Babble of 5-9 talkers, float32 (n,), unit RMS."""
        streams = self.streams
        k = int(rng.integers(5, 10))
        who = rng.choice(len(streams), size=min(k, len(streams)), replace=False)
        out = np.zeros(n)
        for w in who:
            out += random_segment(streams[w], n, rng) * 10 ** (rng.uniform(-3, 3) / 20)
        return _unit(out)


def random_segment(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n``-sample slice of ``src`` (tiled when ``src`` is shorter). float32 (n,)."""
    if len(src) < n:
        src = np.tile(src, int(np.ceil(n / max(len(src), 1))) + 1)
    start = int(rng.integers(0, len(src) - n + 1))
    return np.asarray(src[start:start + n], dtype=np.float32)


def load_noise_files(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every WAV/FLAC in ``folder`` (e.g. Speech Commands' ``_background_noise_``) whole.

    Args:
        folder: folder of noise recordings (any length; other rates are resampled).
    Returns:
        file stem -> float32 (n,) samples at 16 kHz, sorted by name.
    Raises:
        NoiseError: folder missing or without audio files.
        AudioError: an unreadable file (names it).
    """
    import soundfile as sf

    from ..audio import load_audio

    folder = Path(folder)
    if not folder.is_dir():
        raise NoiseError(f"{folder}: no such noise folder (give a folder of WAV noise "
                         f"recordings, e.g. Speech Commands' _background_noise_)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise NoiseError(f"{folder}: no .wav/.flac noise recordings in this folder")
    out = {}
    for p in files:
        try:
            info = sf.info(str(p))
            n = int(np.ceil(info.frames * SAMPLE_RATE / info.samplerate))
        except Exception:  # unreadable: let load_audio produce the one-line error
            n = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[p.stem] = load_audio(p, n_samples=max(n, 1))
    return out


def noise_batch(kind: str, n_clips: int, n: int, seed: int, *,
                files: dict[str, np.ndarray] | None = None,
                babble: BabbleBank | None = None) -> np.ndarray:
    """``n_clips`` independent noise segments of one type, deterministic for ``seed``.

    Args:
        kind: a generated type (see :func:`generate_noise`), ``"recorded"`` (a random file
            of ``files`` per clip) or ``"file:<stem>"`` (segments of one file).
        n_clips: number of segments. n: samples per segment.
        seed: seed; segment ``i`` depends only on (seed, kind, i).
        files: recorded noise from :func:`load_noise_files` (needed for recorded kinds).
        babble: talker streams for "babble".
    Returns:
        float32 (n_clips, n), each row unit RMS.
    Raises:
        NoiseError: unknown kind, or a recorded kind without files / unknown file.
    """
    salt = int.from_bytes(kind.encode()[:8].ljust(8, b"\0"), "little")
    out = np.empty((n_clips, n), dtype=np.float32)
    if kind in ("white", "pink", "brown"):
        rng = np.random.default_rng([seed, salt])
        exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        for s in range(0, n_clips, 256):
            c = min(256, n_clips - s)
            out[s:s + c] = _shaped(n, rng, exponent, count=c)
        return out
    if kind == "recorded" or kind.startswith("file:"):
        if not files:
            raise NoiseError(f"noise type '{kind}' needs recorded noise files "
                             f"(pass a noise folder, e.g. _background_noise_)")
        if kind.startswith("file:"):
            name = kind[5:]
            if name not in files:
                raise NoiseError(f"noise type '{kind}': no recording named '{name}' "
                                 f"(have: {', '.join(files)})")
            pool = [files[name]]
        else:
            pool = list(files.values())
        for i in range(n_clips):
            rng = np.random.default_rng([seed, salt, i])
            out[i] = _unit(random_segment(pool[int(rng.integers(len(pool)))], n, rng))
        return out
    if kind == "babble":
        babble = babble or BabbleBank()
    for i in range(n_clips):
        out[i] = generate_noise(kind, n, np.random.default_rng([seed, salt, i]), babble=babble)
    return out


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db) -> np.ndarray:
    """Mix noise into clips at a given SNR with RMS scaling (see the module docstring).

    Args:
        clean: float (B, n) or (n,) clips in [-1, 1].
        noise: float, same shape (any level: it is rescaled).
        snr_db: scalar or (B,) target SNR in dB (RMS over the whole window).
    Returns:
        float32 mixture, same shape; a row whose peak would exceed 1.0 is scaled down to
        peak 0.99. An all-zero clip is treated as RMS 1e-4 (-80 dBFS).
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    one = clean.ndim == 1
    c2, n2 = np.atleast_2d(clean), np.atleast_2d(noise)
    snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float64), (c2.shape[0],))
    rc = np.maximum(rms(c2, axis=1), _FLOOR_RMS)
    rn = np.maximum(rms(n2, axis=1), 1e-12)
    g = rc / (rn * 10 ** (snr / 20))
    mix = c2 + g[:, None] * n2
    peak = np.max(np.abs(mix), axis=1)
    scale = np.where(peak > 1.0, PEAK_LIMIT / np.maximum(peak, 1e-12), 1.0)
    mix = (mix * scale[:, None]).astype(np.float32)
    return mix[0] if one else mix
