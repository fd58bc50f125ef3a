"""Post-training static quantization of NanoMamba into an integer bundle.

Pipeline: the float model (read via :func:`nanomamba.load_checkpoint`) runs on calibration
clips with its ``taps`` dict recording every named intermediate; per-tensor activation
ranges (min/max, or percentiles) give per-tensor scales and zero points; weights are
quantized per output channel (symmetric int8), biases to int32; nonlinearities become
tables; the SA-SSM's discretisation is folded into per-(d, n) integer constants. The result
is a :class:`export.bundle.Bundle` that :mod:`export.simulator` executes bit-exactly.

Bit widths are a dict (:data:`DEFAULT_WIDTHS`, keys = short tensor names, values 8/16/32)
that callers may override (``widths={"h": 32}``), which makes the bit-width ablation a
script (benchmarks/ablation_state_width.py). docs/QUANTIZATION.md explains every choice and
formula.

Calibration data: a folder of clips (``--calib DIR``), each also mixed with noise when a
noise bank is given, or the generated default set (:func:`generated_calibration_set`).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from export import __version__
from export import intmath as im
from export.bundle import (FORMAT_NAME, FORMAT_VERSION, Bundle, BundleError, check_bundle_meta,
                           model_hash, save_bundle)
from nanomamba.audio import AUDIO_SUFFIXES, list_clips, load_audio
from nanomamba.config import CLIP_SAMPLES, LABELS, N_FRAMES, NORM_EPS, SAMPLE_RATE
from nanomamba.errors import AudioError, AudioWarning, KwsError

#: Bit width of every activation tensor kind (key = last component of the tensor name;
#: ``residual`` = patch, blocks.{i}.proj and blocks.{i}.out) and of the weights of each layer
#: kind (``w.*``). Chosen by measurement (docs/QUANTIZATION.md,
#: benchmarks/ablation_state_width.py): the residual stream int32 (one shared scale, exact
#: adds), activations int16, the state h int16 with per-channel scales, dA Q15, int8 logits;
#: int16 weights for the layers whose int8 rounding costs agreement at 0 dB SNR (the
#: depthwise conv1d: 20 dB below every other op in int8, benchmarks/op_local_sqnr.py) or
#: would need a requantize multiplier above 1 (snr_proj with headroom_wide 1.5), int8 for
#: dt_proj and the classifier. ``dA`` 8/16/32 selects Q7/Q15/Q30; ``gate`` is fixed Q15.
DEFAULT_WIDTHS: dict[str, int] = {
    "residual": 32, "norm": 16, "u": 16, "z": 16, "conv": 16, "u_act": 16,
    "dt_raw": 16, "dt_shift": 16, "dt_in": 16, "dt_pre": 16, "delta": 16,
    "B": 16, "C": 16, "g": 16, "B_gated": 16, "dA": 16, "h": 16, "y_ssm": 16,
    "z_act": 16, "y_gated": 16, "final_norm": 16, "pooled": 16, "logits": 8,
    # weights per layer kind: 8 = int8 in [-127, 127]; 16 = int16 with the largest level
    # that keeps the int32 accumulator exact (up to 32767)
    "w.patch_proj": 16, "w.in_proj": 16, "w.conv1d": 16, "w.x_proj": 16, "w.snr_proj": 16,
    "w.dt_proj": 8, "w.out_proj": 16, "w.classifier": 8,
}
#: Quantizer options: exp table bits (2^bits entries of 2^-f), range estimator
#: ("minmax" or "percentile"), the percentile, a headroom factor on every range (and extra
#: ones: ``headroom_wide`` on int16/int32 activations, heavy-tailed tensors whose
#: calibration maximum is exceeded on new data; ``headroom_state`` on the SSM state h and
#: du, whose saturation the recurrence would carry), the
#: weight rounding ("gptq": error-compensating, needs calibration Gram matrices; "nearest"),
#: and the int8 logits range: "top2" = [lowest runner-up logit seen - 5 % of the span,
#: highest logit] (values below every runner-up never decide the top-1; a finer step
#: leaves fewer ties), "runnerup" = the runner-up logits' range +-5 % (finer still; a
#: winner above it saturates at 127 and stays the top-1), or "full" (min..max).
DEFAULT_OPTIONS: dict = {"exp_table_bits": 8, "range": "minmax", "percentile": 99.999,
                         "headroom": 1.0, "headroom_wide": 1.5, "weight_rounding": "gptq",
                         "logits_range": "full", "headroom_state": 2.0}
#: int8 tensors quantized asymmetrically (one-sided ranges: SiLU outputs, pooled, logits).
ASYMMETRIC = ("u_act", "z_act", "pooled", "logits")
#: The label's int32 grid ``logits_fine`` is 2^LABEL_FINE_BITS times finer than the int8
#: logits (|logits_fine| < 2^31 up to 2^(31 - 16 - 7) = 256 times the int8 range).
LABEL_FINE_BITS = 16
_QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (im.INT32_MIN, im.INT32_MAX)}
_DT = {8: "int8", 16: "int16", 32: "int32"}
_DA_FRAC = {8: 7, 16: 15, 32: 30}
LOG2E = 1.0 / math.log(2.0)


class QuantizationError(KwsError):
    """The model cannot be quantized with the requested options (a bound would overflow)."""


class CalibrationError(KwsError):
    """The calibration data is missing, empty, unreadable or at the wrong sample rate."""


# =======================================================================================
# calibration and evaluation data
# =======================================================================================

def load_clip_folder(folder, *, what: str = "calibration") -> tuple[np.ndarray, list[str]]:
    """Every clip under ``folder`` as int16 PCM.

    Args:
        folder: a folder of .wav/.flac/.f32 clips (searched recursively).
        what: used in error messages ("calibration", "evaluation").
    Returns:
        (audio int16 (n, 16000), names relative to ``folder``, sorted).
    Raises:
        CalibrationError: no such folder, unreadable folder, no clips, a clip whose sample
            rate is not 16 kHz.
        AudioError: an unreadable clip (names the file).
    """
    folder = Path(folder)
    if not folder.exists():
        raise CalibrationError(f"{folder}: no such {what} folder")
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder ({what} data must be a folder of clips)")
    try:
        paths = list_clips(folder)
    except (OSError, AudioError) as err:
        raise CalibrationError(f"{folder}: cannot read the {what} folder ({err})") from None
    if not paths:
        raise CalibrationError(f"{folder}: no audio clips ({', '.join(AUDIO_SUFFIXES)}) in the "
                               f"{what} folder")
    import soundfile as sf
    clips = []
    for p in paths:
        if p.suffix.lower() in (".wav", ".flac"):
            try:
                rate = sf.info(str(p)).samplerate
            except (RuntimeError, sf.LibsndfileError, ValueError, TypeError):
                rate = SAMPLE_RATE          # load_audio reports the unreadable file
            if rate != SAMPLE_RATE:
                raise CalibrationError(f"{p}: sample rate {rate} Hz; {what} clips must be "
                                       f"{SAMPLE_RATE} Hz (resample them first)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioWarning)      # 1-s padding/trimming is expected
            clips.append(load_audio(p, dtype="int16"))
    return np.stack(clips), [str(p.relative_to(folder)) for p in paths]


def labels_from_names(names: list[str]) -> np.ndarray | None:
    """Class indices from ``<label>/<file>`` names (Speech Commands layout), or None when a
    name's folder is not one of :data:`LABELS`."""
    idx = []
    for n in names:
        parts = Path(n).parts
        if len(parts) < 2 or parts[-2] not in LABELS:
            return None
        idx.append(LABELS.index(parts[-2]))
    return np.array(idx)


def split_names(names: list[str], fraction: float = 0.2, salt: str = "calib") -> np.ndarray:
    """Deterministic boolean mask selecting about ``fraction`` of the names (by CRC-32 of
    salt + name), independent of order: the calibration part of a calibrate/evaluate split."""
    h = np.array([zlib.crc32((salt + "/" + n).encode()) for n in names], dtype=np.uint64)
    return (h % 1000) < int(round(fraction * 1000))


def load_noise_bank(folder) -> dict[str, np.ndarray]:
    """Long noise recordings (e.g. Speech Commands' _background_noise_) as float32 arrays.

    Raises: CalibrationError (no such folder / no clips), AudioError (unreadable file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: no such noise folder")
    import soundfile as sf
    bank = {}
    for p in list_clips(folder):
        n = sf.info(str(p)).frames if p.suffix.lower() != ".f32" else p.stat().st_size // 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioWarning)
            bank[p.stem] = load_audio(p, dtype="float32", n_samples=max(int(n), CLIP_SAMPLES))
    if not bank:
        raise CalibrationError(f"{folder}: no noise clips")
    return bank


def mix_at_snr(audio, names: list[str], noise, snr_db: float, seed: int = 0) -> np.ndarray:
    """Mix clips with noise at a given SNR (RMS scaling), deterministically.

    Args:
        audio: int16 (n, 16000) clean clips.
        names: one name per clip; with ``seed`` it picks the noise file and offset
            (rng seeded by CRC-32 of the name), so a clip always gets the same noise.
        noise: dict name -> float32 recording (>= 16000 samples), or a list of such.
        snr_db: 20 log10(rms(clip) / rms(noise segment)).
        seed: extra seed.
    Returns:
        int16 (n, 16000): clip + g * noise_segment in float, scaled down to a peak of 0.999
        when it would clip (the model is invariant to a global gain), then
        ``float_to_int16``. Clips with zero RMS get noise at RMS 1e-3.
    """
    from nanomamba.audio import float_to_int16
    bank = list(noise.values()) if isinstance(noise, dict) else list(noise)
    out = np.empty_like(audio)
    for i, (clip, name) in enumerate(zip(audio, names)):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        src = bank[int(rng.integers(len(bank)))]
        off = int(rng.integers(0, len(src) - CLIP_SAMPLES + 1))
        seg = src[off:off + CLIP_SAMPLES].astype(np.float64)
        x = clip.astype(np.float64) / 32768.0
        rms_x = math.sqrt(float(np.mean(x * x)))
        rms_n = math.sqrt(float(np.mean(seg * seg))) or 1.0
        target = (rms_x if rms_x > 0 else 1e-3) / (10.0 ** (snr_db / 20.0))
        y = x + seg * (target / rms_n)
        peak = float(np.abs(y).max())
        if peak > 0.999:
            y *= 0.999 / peak
        out[i] = float_to_int16(y)
    return out


_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
_OTHER_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
                "zero", "five")
_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-029+m3", "en-us+f2")


def _coloured_noise(rng, n: int, colour: str) -> np.ndarray:
    w = rng.standard_normal(n)
    if colour == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f) if colour == "pink" else f
    x = np.fft.irfft(spec, n)
    return x / (x.std() + 1e-12)


def generated_calibration_set(seed: int = 0, espeak: str | None = "espeak-ng", *,
                              words: tuple[str, ...] | None = None,
                              voices: tuple[str, ...] | None = None,
                              n_nonspeech: int = 60) -> tuple[np.ndarray, list[str]]:
    """The default calibration set when no folder is given: deterministic generated clips.

    - 22 words (the 10 keywords and 12 others) x 6 espeak-ng voices, at pitch 35-65 and
      speed 130-190 wpm (chosen by a seeded rng), placed at a random offset of a 1-s
      window with a random level (-32..-6 dBFS RMS), each mixed with white/pink/brown noise
      at an SNR cycling through clean, 20, 10, 5, 0 dB;
    - 60 non-speech clips: coloured noise at various levels, tone and chirp mixtures,
      near-silence.
    Without espeak-ng (not installed) only the non-speech part plus synthetic harmonic
    "vowels" are made, with a warning. ``words``, ``voices`` and ``n_nonspeech`` shrink the
    set (tests).

    Returns: (int16 (n, 16000), names). Deterministic for a given espeak-ng version.
    """
    rng = np.random.default_rng(seed)
    clips: list[np.ndarray] = []
    names: list[str] = []
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE

    def place(word: np.ndarray, level_db: float, snr_db: float | None, colour: str) -> np.ndarray:
        word = word[: CLIP_SAMPLES]
        x = np.zeros(CLIP_SAMPLES)
        off = int(rng.integers(0, CLIP_SAMPLES - len(word) + 1))
        x[off:off + len(word)] = word
        rms = math.sqrt(float(np.mean(x * x))) or 1.0
        x *= 10 ** (level_db / 20) / rms
        if snr_db is not None:
            n = _coloured_noise(rng, CLIP_SAMPLES, colour)
            x += n * math.sqrt(float(np.mean(x * x))) / 10 ** (snr_db / 20)
        return x

    snrs = (None, 20.0, 10.0, 5.0, 0.0)
    colours = ("white", "pink", "brown")
    exe = shutil.which(espeak) if espeak else None
    if exe:
        with tempfile.TemporaryDirectory() as tmp:
            k = 0
            for word in (words or _KEYWORDS + _OTHER_WORDS):
                for voice in (voices or _VOICES):
                    pitch = int(rng.integers(35, 66))
                    speed = int(rng.integers(130, 191))
                    wav = Path(tmp) / f"w{k}.wav"
                    proc = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", str(speed),
                                           "-w", str(wav), word], capture_output=True)
                    if proc.returncode != 0 or not wav.exists():
                        proc = subprocess.run([exe, "-v", voice.split("+")[0], "-p", str(pitch),
                                               "-s", str(speed), "-w", str(wav), word],
                                              capture_output=True)
                    if proc.returncode != 0 or not wav.exists():
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", AudioWarning)
                        w = load_audio(wav, dtype="float32").astype(np.float64)
                    nz = np.nonzero(np.abs(w) > 1e-4)[0]
                    w = w[nz[0]:nz[-1] + 1] if len(nz) else w
                    snr = snrs[k % len(snrs)]
                    colour = colours[k % len(colours)]
                    clips.append(place(w, float(rng.uniform(-32, -6)), snr, colour))
                    names.append(f"speech/{word}_{voice}_{snr}")
                    k += 1
    else:
        warnings.warn("espeak-ng not found: the generated calibration set has no speech; "
                      "pass --calib DIR for better scales", AudioWarning, stacklevel=2)
        for k in range(120):
            f0 = float(rng.uniform(90, 260))
            env = np.exp(-0.5 * ((t - rng.uniform(0.3, 0.7)) / rng.uniform(0.05, 0.15)) ** 2)
            v = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12)) * env
            clips.append(place(v, float(rng.uniform(-32, -6)), snrs[k % 5], colours[k % 3]))
            names.append(f"vowel/{k}")
    for k in range(n_nonspeech):
        kind = k % 4
        if kind == 0:
            x = _coloured_noise(rng, CLIP_SAMPLES, colours[k % 3]) * 10 ** (rng.uniform(-60, -15) / 20)
        elif kind == 1:
            x = sum(np.sin(2 * np.pi * rng.uniform(50, 4000) * t) for _ in range(3)) * 0.05
            x += _coloured_noise(rng, CLIP_SAMPLES, "pink") * 0.01
        elif kind == 2:
            f0, f1 = rng.uniform(100, 1000), rng.uniform(1000, 7000)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / 2)) * 0.1
            x += _coloured_noise(rng, CLIP_SAMPLES, "white") * 0.003
        else:
            x = _coloured_noise(rng, CLIP_SAMPLES, "white") * 1e-4
        clips.append(x)
        names.append(f"nonspeech/{k}")
    from nanomamba.audio import float_to_int16
    audio = np.stack([float_to_int16(np.clip(c, -0.999, 0.999)) for c in clips])
    return audio, names


# =======================================================================================
# float reference: taps (and derived tensors) of the float model
# =======================================================================================

def float_taps(model, audio_int16, names: set[str] | None = None) -> tuple[np.ndarray, dict]:
    """Run the float model on int16 clips (as x / 32768) and return (logits, taps).

    The taps are the model's own (``nanomamba.model.TAP_NAMES``/``BLOCK_TAP_NAMES``) plus the
    derived float values of tensors that exist only in the integer pipeline:
    ``blocks.{i}.dt_pre`` (dt_proj output, softplus input), ``blocks.{i}.du`` (delta u),
    ``blocks.{i}.proj`` (out_proj output, before the residual add).
    """
    import torch
    x = torch.from_numpy(np.asarray(audio_int16, dtype=np.float32) / 32768.0)
    taps: dict = {}
    with torch.no_grad():
        logits = model(x, taps)
    out = {k: v.numpy() for k, v in taps.items()}
    sd = model.network.state_dict()
    for i in range(model.cfg.n_layers):
        p = f"blocks.{i}."
        w = sd[f"blocks.{i}.sa_ssm.dt_proj.weight"].numpy()[:, 0]
        b = sd[f"blocks.{i}.sa_ssm.dt_proj.bias"].numpy()
        out[p + "dt_pre"] = out[p + "dt_in"] * w + b
        out[p + "du"] = out[p + "delta"] * out[p + "u_act"]
        x_in = out["patch"] if i == 0 else out[f"blocks.{i - 1}.out"]
        out[p + "proj"] = out[p + "out"] - x_in
    if names is not None:
        out = {k: v for k, v in out.items() if k in names}
    return logits.numpy(), out


class RangeStats:
    """Running min/max and a bounded random sample (for percentiles) per tensor, and the
    input Gram matrices X^T X of the weight layers (for GPTQ rounding)."""

    def __init__(self, sample: int = 200_000, seed: int = 0) -> None:
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.samples: dict[str, list] = {}
        self.gram: dict[str, np.ndarray] = {}
        self.count: dict[str, int] = {}
        self.chan: dict[str, np.ndarray] = {}
        self.sample = sample
        self.rng = np.random.default_rng(seed)

    def update_channel(self, name: str, x: np.ndarray, axis: int) -> None:
        """Running per-channel max |x| along ``axis`` (for per-channel state scales)."""
        x = np.abs(np.asarray(x, dtype=np.float64))
        ax = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        m = x.max(axis=ax)
        self.chan[name] = np.maximum(self.chan.get(name, 0.0), m)

    def update_gram(self, name: str, x: np.ndarray, conv_kernel: int = 0) -> None:
        """Accumulate X^T X of a layer input (..., K); with ``conv_kernel`` = K > 0, x is a
        (B, T, E) sequence and a (E, K, K) Gram of each channel's causal K-window is kept."""
        x = np.asarray(x, dtype=np.float64)
        if conv_kernel:
            K = conv_kernel
            pad = np.zeros(x.shape[:-2] + (K - 1, x.shape[-1]))
            xp = np.concatenate([pad, x], axis=-2)
            T = x.shape[-2]
            win = np.stack([xp[..., j:j + T, :] for j in range(K)], axis=-1)   # (B,T,E,K)
            win = win.reshape(-1, x.shape[-1], K)
            g = np.einsum("nei,nej->eij", win, win)
            n = win.shape[0]
        else:
            flat = x.reshape(-1, x.shape[-1])
            g = flat.T @ flat
            n = flat.shape[0]
        self.gram[name] = self.gram.get(name, 0) + g
        self.count[name] = self.count.get(name, 0) + n

    def update(self, name: str, x: np.ndarray) -> None:
        """Add a batch of float values of tensor ``name``."""
        x = np.asarray(x, dtype=np.float64).ravel()
        self.lo[name] = min(self.lo.get(name, math.inf), float(x.min()))
        self.hi[name] = max(self.hi.get(name, -math.inf), float(x.max()))
        take = x if x.size <= self.sample else self.rng.choice(x, self.sample, replace=False)
        self.samples.setdefault(name, []).append(take)

    def ranges(self, method: str = "minmax", percentile: float = 99.999) -> dict[str, tuple[float, float]]:
        """name -> (lo, hi) by min/max or by the given two-sided percentile of the sample."""
        out = {}
        for name in self.lo:
            if method == "minmax":
                out[name] = (self.lo[name], self.hi[name])
            elif method == "percentile":
                s = np.concatenate(self.samples[name])
                out[name] = (float(np.percentile(s, 100 - percentile)), float(np.percentile(s, percentile)))
            else:
                raise ValueError(f"unknown range method {method!r} (expected 'minmax' or 'percentile')")
        return out


def collect_ranges(model, audio_int16, *, batch: int = 64, progress: bool = True,
                   desc: str = "calibrating") -> RangeStats:
    """Activation statistics of the float model over calibration clips (batched, with a
    progress bar). Returns a :class:`RangeStats`."""
    from tqdm import tqdm
    stats = RangeStats()
    n = len(audio_int16)
    for s in tqdm(range(0, n, batch), desc=desc, unit="batch", disable=None if progress else True, leave=False):
        _, taps = float_taps(model, audio_int16[s:s + batch])
        for k, v in taps.items():
            stats.update(k, v)
        stats.update("logits#top2", np.sort(taps["logits"], axis=-1)[..., -2])
        for k in ("features", "snr_mel", "pooled"):
            stats.update_gram(k, taps[k])
        for i in range(model.cfg.n_layers):
            p = f"blocks.{i}."
            for k in ("norm", "u_act", "y_gated", "dt_in"):
                stats.update_gram(p + k, taps[p + k])
            stats.update_gram(p + "u#conv", taps[p + "u"], conv_kernel=model.cfg.d_conv)
            stats.update_channel(p + "h", taps[p + "h"], axis=2)          # (B, T, E, N)
            stats.update_channel(p + "du", taps[p + "du"], axis=2)        # (B, T, E)
    return stats


# =======================================================================================
# building the integer model
# =======================================================================================

def _qparams(lo: float, hi: float, dtype: str, asym: bool, headroom: float) -> tuple[float, int]:
    qmin, qmax = _QRANGE[dtype]
    lo, hi = min(lo, 0.0) * headroom, max(hi, 0.0) * headroom
    if asym and dtype == "int8":
        span = (hi - lo) or 1.0
        scale = span / (qmax - qmin)
        zp = int(np.clip(qmin - im.round_half_away(lo / scale), qmin, qmax))
        return scale, zp
    amax = max(-lo, hi) or 1.0
    return amax / qmax, 0


def gptq_round(W: np.ndarray, s_w: np.ndarray, gram: np.ndarray | None, damp: float = 0.01,
               qmax=127) -> np.ndarray:
    """Round a weight matrix to integer levels of per-row scales, minimising the layer's
    output error on calibration inputs (GPTQ, Frantar et al. 2022, with activation order).

    Args:
        W: (O, K) float weights; s_w: (O,) per-row scales; gram: (K, K) X^T X of the
            layer's calibration inputs (None: round to nearest, half away from zero).
        damp: diagonal damping, fraction of the mean diagonal.
        qmax: largest level, scalar or (O,) per row (127 for int8).
    Returns:
        (O, K) int64 levels in [-qmax, qmax]: columns are rounded one at a time (largest
        input energy first) and the remaining columns absorb the rounding error through
        the inverse Hessian (Cholesky form).
    """
    W = np.asarray(W, dtype=np.float64)
    qm = np.broadcast_to(np.asarray(qmax, dtype=np.float64), (W.shape[0],))
    if gram is None or W.shape[1] == 1:
        return np.clip(im.round_half_away(W / s_w[:, None]), -qm[:, None], qm[:, None]).astype(np.int64)
    H = np.asarray(gram, dtype=np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H += damp * float(np.mean(np.diag(H))) * np.eye(len(H))
    perm = np.argsort(-np.diag(H), kind="stable")
    Wp = W[:, perm].copy()
    Hp = H[perm][:, perm]
    U = np.linalg.cholesky(np.linalg.inv(Hp)).T
    Q = np.zeros_like(Wp)
    for j in range(Wp.shape[1]):
        q = np.clip(im.round_half_away(Wp[:, j] / s_w), -qm, qm)
        err = (Wp[:, j] - q * s_w) / U[j, j]
        Wp[:, j + 1:] -= np.outer(err, U[j, j + 1:])
        Q[:, j] = q
    out = np.zeros_like(Q)
    out[:, perm] = Q
    return out.astype(np.int64)


def _mult(real: float, what: str) -> tuple[int, int]:
    try:
        return im.quantize_multiplier(float(real))
    except ValueError as err:
        raise QuantizationError(f"{what}: requantize multiplier {real:g} out of range ({err})") from None


class _Builder:
    def __init__(self, ranges: dict, widths: dict, options: dict, grams: dict | None = None) -> None:
        self.ranges = ranges
        self.grams = grams or {}
        self.widths = widths
        self.options = options
        self.tensors: dict[str, dict] = {}
        self.ops: list[dict] = []
        self.arrays: dict[str, np.ndarray] = {}

    # ---- tensors ----------------------------------------------------------------------
    def tensor(self, name, dtype, scale, zp, shape, *, per_frame=True, q_format=None,
               float_tap=None):
        self.tensors[name] = {"dtype": dtype,
                              "scale": [float(v) for v in scale] if isinstance(scale, list) else float(scale),
                              "zero_point": int(zp),
                              "shape": list(shape), "per_frame": per_frame,
                              "q_format": q_format, "float_tap": float_tap}
        return self.tensors[name]

    def act(self, name, shape, *, per_frame=True, key=None):
        key = key or name.rsplit(".", 1)[-1]
        if key in ("patch", "proj", "out"):
            key = "residual"
            if self.widths["residual"] == 32:       # one shared scale: the adds are exact
                return self.tensor(name, "int32", self.res_scale, 0, shape, per_frame=per_frame,
                                   float_tap=name)
        dtype = _DT[self.widths[key]]
        if name not in self.ranges:
            raise QuantizationError(f"no calibration range for tensor '{name}'")
        lo, hi = self.ranges[name]
        hr = self.options["headroom"] * (self.options["headroom_wide"] if dtype != "int8" else 1.0)
        scale, zp = _qparams(lo, hi, dtype, key in ASYMMETRIC, hr)
        return self.tensor(name, dtype, scale, zp, shape, per_frame=per_frame, float_tap=name)

    def q(self, name):
        t = self.tensors[name]
        return t["scale"], t["zero_point"], _QRANGE[t["dtype"]]

    def op(self, name, type_, inputs, outputs, params=None, arrays=None, *, kernel=None,
           stage="frame", state=None, shared=None):
        keys = dict(shared or {})     # param -> an array key of an earlier op (not copied)
        for k, v in (arrays or {}).items():
            key = f"op/{name}/{k}"
            self.arrays[key] = v
            keys[k] = key
        self.ops.append({"name": name, "type": type_, "kernel": kernel or type_, "stage": stage,
                         "inputs": list(inputs), "outputs": list(outputs),
                         "params": params or {}, "arrays": keys, "state": state or {}})

    # ---- op builders --------------------------------------------------------------------
    def _gram(self, key):
        return self.grams.get(key) if self.options.get("weight_rounding") == "gptq" else None

    def weight_levels(self, W, x, kind, b=None):
        """Per-row scales and largest levels of a weight matrix W (O, K) read against input
        tensor x: int8 -> 127; int16 -> the largest level <= 32767 for which the int32
        accumulator provably cannot overflow: qmax[o] * sum_k |W[o,k]| / max_k |W[o,k]| *
        max|x - zp| < 2^30 and the int32 bias |b[o]| / (s_x s_w[o]) < 2^30."""
        bits = self.widths["w." + kind]
        s_x, zp_x, (xmin, xmax) = self.q(x)
        xr = max(xmax - zp_x, zp_x - xmin)
        amax = np.abs(W).max(axis=1)
        ratio = np.where(amax > 0, np.abs(W).sum(axis=1) / np.where(amax > 0, amax, 1.0), 1.0)
        if bits == 8:
            qm = np.full(W.shape[0], 127.0)
        else:
            qm = np.minimum(32767.0, np.floor((2 ** 30 - 1) / (xr * ratio)))
            if b is not None:
                bmax = np.abs(np.asarray(b, dtype=np.float64))
                qm = np.minimum(qm, np.floor(np.where(bmax > 0, (2 ** 30 - 1) * s_x * amax
                                                      / np.where(bmax > 0, bmax, 1.0), 32767.0)))
            if qm.min() < 127:
                raise QuantizationError(f"{kind}: int16 weights would have fewer levels than int8 "
                                        f"with this input width")
        s_w = np.where(amax > 0, amax / qm, 1.0)
        return s_w, qm, (np.int8 if bits == 8 else np.int16)

    def fully_connected(self, name, x, out, W, b=None, *, stage="frame", gram_key=None, kind=None):
        W = np.asarray(W, dtype=np.float64)
        s_x, zp_x, (xmin, xmax) = self.q(x)
        s_o, zp_o, _ = self.q(out)
        s_w, qm, wdt = self.weight_levels(W, x, kind or name.rsplit(".", 1)[-1], b)
        Wq = gptq_round(W, s_w, self._gram(gram_key or x), qmax=qm)
        bq = im.round_half_away(np.asarray(b, dtype=np.float64) / (s_x * s_w)) if b is not None \
            else np.zeros(W.shape[0], dtype=np.int64)
        xr = max(xmax - zp_x, zp_x - xmin)
        bound = np.abs(bq) + np.abs(Wq).sum(axis=1) * xr
        if bound.max() >= 2 ** 31:
            raise QuantizationError(f"{name}: int32 accumulator could overflow "
                                    f"(bound {int(bound.max())}); use a narrower input")
        mults = [_mult(s_x * sw / s_o, name) for sw in s_w]
        single = self.tensors[out]["dtype"] == "int32"
        self.op(name, "fully_connected", [x], [out],
                {"rows": int(W.shape[0]), "cols": int(W.shape[1]),
                 "weight_dtype": np.dtype(wdt).name,
                 "requantize": "requantize_single_round" if single else
                 "multiply_by_quantized_multiplier"},
                {"weight": Wq.astype(wdt), "bias": bq.astype(np.int32),
                 "multiplier": np.array([m for m, _ in mults], dtype=np.int32),
                 "shift": np.array([s for _, s in mults], dtype=np.int32),
                 "weight_scale": s_w.astype(np.float32)}, stage=stage,
                kernel="fully_connected" if wdt == np.int8 else "fully_connected_w16")

    def label_path(self, fc: str, n_classes: int) -> None:
        """The label ops after the classifier op ``fc`` (docs/QUANTIZATION.md, "The label").

        ``{fc}_fine``: the classifier's int32 accumulators (same weights and bias arrays, per
        output channel scale s_x s_w[o]) requantized with single rounding to one int32 grid
        ``logits_fine`` of scale s_logits 2^-LABEL_FINE_BITS, zero point 0, so the classes
        are comparable at 2^16 times the int8 logits' resolution; ``label``: argmax over it
        (the first maximum), int32 (1,). The int8 ``logits`` stay the model's output; the
        label no longer depends on ties of the int8 grid.
        """
        op = next(o for o in self.ops if o["name"] == fc)
        x = op["inputs"][0]
        s_x = self.tensors[x]["scale"]
        s_l = self.tensors[op["outputs"][0]]["scale"]
        s_f = s_l * 2.0 ** -LABEL_FINE_BITS
        self.tensor("logits_fine", "int32", s_f, 0, [n_classes], per_frame=False,
                    q_format=f"int32, scale logits scale x 2^-{LABEL_FINE_BITS}")
        s_w = self.arrays[op["arrays"]["weight_scale"]].astype(np.float64)
        mults = [_mult(s_x * sw / s_f, fc + "_fine") for sw in s_w]
        p = dict(op["params"], requantize="requantize_single_round")
        self.op(fc + "_fine", "fully_connected", [x], ["logits_fine"], p,
                {"multiplier": np.array([m for m, _ in mults], dtype=np.int32),
                 "shift": np.array([s for _, s in mults], dtype=np.int32)},
                stage="clip", kernel=op["kernel"],
                shared={k: op["arrays"][k] for k in ("weight", "bias", "weight_scale")})
        self.tensor("label", "int32", 1.0, 0, [1], per_frame=False, q_format="class index")
        self.op("label", "argmax", ["logits_fine"], ["label"], {"n": int(n_classes)},
                kernel="argmax_s32", stage="clip")

    def conv1d(self, name, x, out, W, b):
        W = np.asarray(W, dtype=np.float64)          # (E, K)
        s_x, zp_x, (xmin, xmax) = self.q(x)
        s_o, _, _ = self.q(out)
        s_w, qm, wdt = self.weight_levels(W, x, "conv1d", b)
        grams = self._gram(x + "#conv")
        Wq = np.stack([gptq_round(W[e:e + 1], s_w[e:e + 1], None if grams is None else grams[e],
                                  qmax=qm[e])[0] for e in range(W.shape[0])])
        bq = im.round_half_away(np.asarray(b, dtype=np.float64) / (s_x * s_w))
        mults = [_mult(s_x * sw / s_o, name) for sw in s_w]
        E, K = W.shape
        xr = max(xmax - zp_x, zp_x - xmin)
        if (np.abs(bq) + np.abs(Wq).sum(axis=1) * xr).max() >= 2 ** 31:
            raise QuantizationError(f"{name}: int32 accumulator could overflow")
        self.op(name, "conv1d_depthwise", [x], [out],
                {"channels": E, "kernel_size": K, "weight_dtype": np.dtype(wdt).name},
                {"weight": Wq.astype(wdt), "bias": bq.astype(np.int32),
                 "multiplier": np.array([m for m, _ in mults], dtype=np.int32),
                 "shift": np.array([s for _, s in mults], dtype=np.int32),
                 "weight_scale": s_w.astype(np.float32)},
                kernel="conv1d_depthwise_step" if wdt == np.int8 else "conv1d_depthwise_step_w16",
                state={"history": {"shape": [K - 1, E], "dtype": self.tensors[x]["dtype"],
                                   "init": "input zero_point"}})

    def layer_norm(self, name, x, out, gamma, beta, *, stage="frame"):
        s_x, zp_x, _ = self.q(x)
        s_o, _, _ = self.q(out)
        D = len(gamma)
        gamma = np.asarray(gamma, dtype=np.float64)
        beta = np.asarray(beta, dtype=np.float64)
        zf = int(math.floor(math.log2(32767.0 / math.sqrt(max(D - 1, 1)))))
        eps_q = max(1, int(im.round_half_away(D * D * NORM_EPS / (s_x * s_x))))
        for gbits in range(15, 6, -1):
            s_g = (np.abs(gamma).max() or 1.0) / (2 ** gbits - 1)
            gq = im.round_half_away(gamma / s_g)
            bq = im.round_half_away(beta / (s_g * 2.0 ** -zf))
            if (np.abs(gq) * 2 ** 15 + np.abs(bq)).max() < 2 ** 31:
                break
        else:
            raise QuantizationError(f"{name}: LayerNorm bias too large for int32")
        m, s = _mult(s_g * 2.0 ** -zf / s_o, name)
        self.op(name, "layer_norm", [x], [out],
                {"channels": D, "eps_q": eps_q, "z_frac_bits": zf, "multiplier": m, "shift": s},
                {"gamma": gq.astype(np.int16), "beta": bq.astype(np.int32)}, stage=stage)

    def act_from_fn(self, name, x, fn, shape, key=None):
        """Output tensor of a table activation, its range taken from fn over every value the
        input can represent (so the table never clips what its input can hold)."""
        key = key or name.rsplit(".", 1)[-1]
        dtype = _DT[self.widths[key]]
        s_x, zp_x, (xmin, xmax) = self.q(x)
        grid = (np.arange(xmin, xmax + 1, max(1, (xmax - xmin) // 4096)) - zp_x) * s_x
        vals = fn(np.append(grid, (xmax - zp_x) * s_x))
        scale, zp = _qparams(float(vals.min()), float(vals.max()), dtype, key in ASYMMETRIC, 1.0)
        return self.tensor(name, dtype, scale, zp, shape, float_tap=name)

    def lut(self, name, x, out, fn, *, desc):
        s_x, zp_x, _ = self.q(x)
        s_o, zp_o, (omin, omax) = self.q(out)
        if self.tensors[x]["dtype"] == "int8":
            q = np.arange(-128, 128)
            kind, tdtype = "s8", np.int16
        elif self.tensors[x]["dtype"] == "int16" and zp_x == 0:
            q = -32768 + 128 * np.arange(513)
            kind, tdtype = "s16", np.int32
        else:
            raise QuantizationError(f"{name}: table activations need an int8 or symmetric int16 input")
        real = fn((q - zp_x).astype(np.float64) * s_x)
        table = np.clip(zp_o + im.round_half_away(real / s_o), omin, omax).astype(tdtype)
        self.op(name, "lut", [x], [out], {"kind": kind, "function": desc}, {"table": table},
                kernel="lut_s8" if kind == "s8" else "lut_s16")

    def add(self, name, a, b, out):
        s_a, zp_a, _ = self.q(a)
        s_b, zp_b, _ = self.q(b)
        s_o, _, _ = self.q(out)
        if all(self.tensors[t]["dtype"] == "int32" for t in (a, b, out)):
            if not (s_a == s_b == s_o and zp_a == zp_b == 0):
                raise QuantizationError(f"{name}: int32 adds need one shared symmetric scale")
            self.op(name, "add", [a, b], [out], {"same_scale": True}, kernel="residual_add")
            return
        wide = any(self.tensors[t]["dtype"] != "int8" for t in (a, b))
        if wide and (zp_a or zp_b):
            raise QuantizationError(f"{name}: int16 add inputs must be symmetric")
        ls = 15 if wide else 20
        twice = 2 * max(s_a, s_b)
        ma, sa = _mult(s_a / twice, name)
        mb, sb = _mult(s_b / twice, name)
        mo, so = _mult(twice / ((1 << ls) * s_o), name)
        self.op(name, "add", [a, b], [out], kernel="elementwise_add", params=
                {"left_shift": ls, "a_multiplier": ma, "a_shift": sa, "b_multiplier": mb,
                 "b_shift": sb, "out_multiplier": mo, "out_shift": so})

    def mul(self, name, a, b, out):
        s_a, zp_a, (amin, amax) = self.q(a)
        s_b, zp_b, (bmin, bmax) = self.q(b)
        s_o, _, _ = self.q(out)
        if max(amax - zp_a, zp_a - amin) * max(bmax - zp_b, zp_b - bmin) >= 2 ** 31:
            raise QuantizationError(f"{name}: product could overflow int32")
        m, s = _mult(s_a * s_b / s_o, name)
        self.op(name, "mul", [a, b], [out], {"multiplier": m, "shift": s}, kernel="elementwise_mul")


def _gate_fn(alpha: float):
    return lambda g: 1.0 - alpha + alpha / (1.0 + np.exp(-g))


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def check_widths(widths: dict | None) -> dict:
    """:data:`DEFAULT_WIDTHS` with ``widths`` applied, checked (cheap: callers run it before
    calibrating, so a typo costs no calibration pass).

    Args:
        widths: overrides, short tensor name -> bits (weights "w.*": 8 or 16; activations
            8, 16 or 32).
    Returns:
        the full width dict.
    Raises:
        QuantizationError: an unknown key (lists the known ones) or a width not allowed.
    """
    W = dict(DEFAULT_WIDTHS)
    for k, v in (widths or {}).items():
        if k not in DEFAULT_WIDTHS:
            raise QuantizationError(f"unknown bit-width key '{k}' (known: {', '.join(DEFAULT_WIDTHS)})")
        allowed = "8, 16" + ("" if k.startswith("w.") else " or 32")
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise QuantizationError(f"bit width of '{k}' must be an int ({allowed}), not "
                                    f"{v!r} (a {type(v).__name__})")
        if v not in ((8, 16) if k.startswith("w.") else (8, 16, 32)):
            raise QuantizationError(f"bit width of '{k}' must be {allowed}, not {v!r}")
        W[k] = int(v)
    return W


#: allowed values of each :data:`DEFAULT_OPTIONS` key: a tuple of choices, or a
#: (type, low, high, low_open) numeric range (checked by :func:`check_options`)
OPTION_RULES: dict = {
    "exp_table_bits": (int, 1, 16, False),
    "range": ("minmax", "percentile"),
    "percentile": (float, 50.0, 100.0, True),
    "headroom": (float, 0.0, math.inf, True),
    "headroom_wide": (float, 0.0, math.inf, True),
    "headroom_state": (float, 0.0, math.inf, True),
    "weight_rounding": ("gptq", "nearest"),
    "logits_range": ("full", "top2", "runnerup"),
}


def check_options(options: dict | None) -> dict:
    """:data:`DEFAULT_OPTIONS` with ``options`` applied, checked (cheap: callers run it
    before calibrating, like :func:`check_widths`).

    Allowed values (:data:`OPTION_RULES`): ``exp_table_bits`` an int in [1, 16] (the exp2
    table has 2^bits entries); ``range`` "minmax" or "percentile"; ``percentile`` in
    (50, 100] (the range is [100 - p, p] percentiles); ``headroom``, ``headroom_wide``,
    ``headroom_state`` finite numbers > 0; ``weight_rounding`` "gptq" or "nearest";
    ``logits_range`` "full", "top2" or "runnerup".

    Args:
        options: overrides, key -> value (None: the defaults).
    Returns:
        the full option dict.
    Raises:
        QuantizationError: an unknown key (lists the known ones), or a value outside the
            key's allowed set or range (names the key and what it allows).
    """
    if options is not None and not isinstance(options, dict):
        raise QuantizationError(f"options: expected a dict of quantizer options, got "
                                f"{type(options).__name__}")
    opt = dict(DEFAULT_OPTIONS)
    for k, v in (options or {}).items():
        rule = OPTION_RULES.get(k)
        if rule is None:
            raise QuantizationError(f"unknown quantizer option '{k}' "
                                    f"(known: {', '.join(DEFAULT_OPTIONS)})")
        if isinstance(rule[0], str):
            if not isinstance(v, str) or v not in rule:
                raise QuantizationError(f"option '{k}' must be one of "
                                        f"{', '.join(map(repr, rule))}, not {v!r}")
        else:
            kind, lo, hi, lo_open = rule
            want = numbers.Integral if kind is int else numbers.Real
            ok = not isinstance(v, bool) and isinstance(v, want) and math.isfinite(v)
            ok = ok and (v > lo if lo_open else v >= lo) and v <= hi
            if not ok:
                what = "an int" if kind is int else "a number"
                rng = (f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]" if math.isfinite(hi)
                       else f"> {lo:g}" if lo_open else f">= {lo:g}")
                fin = "" if math.isfinite(hi) else " (finite)"
                raise QuantizationError(f"option '{k}' must be {what} {rng}{fin}, not {v!r}")
        opt[k] = v
    return opt


def check_label_count(cfg) -> None:
    """Refuse a model whose classifier output count is not the Speech Commands label count:
    a bundle names its outputs ``model.labels`` = :data:`nanomamba.config.LABELS` (12), and
    the bundle check refuses any other count (never write a bundle the tool refuses).

    Raises:
        QuantizationError: ``cfg.n_classes != len(LABELS)``.
    """
    if cfg.n_classes != len(LABELS):
        raise QuantizationError(f"model classifier has {cfg.n_classes} outputs; the Speech "
                                f"Commands label set has {len(LABELS)} ({', '.join(LABELS)})")


def build_bundle(state: dict, cfg, ranges: dict, frontend: dict, *, widths: dict | None = None,
                 options: dict | None = None, info: dict | None = None,
                 grams: dict | None = None, channel_ranges: dict | None = None) -> Bundle:
    """Quantize a float model given its activation ranges.

    Args:
        state: published-format state dict (key -> float array).
        cfg: :class:`nanomamba.NanoMambaConfig`.
        ranges: tensor name -> (lo, hi) float range (from :class:`RangeStats`).
        frontend: {"impl", "meta", "arrays"} of the front end (its outputs' formats are
            taken from meta["outputs"]).
        widths: overrides of :data:`DEFAULT_WIDTHS`.
        options: overrides of :data:`DEFAULT_OPTIONS` (checked by :func:`check_options`).
        info: extra metadata: ``source``, ``name``, ``calibration``.
        grams: layer-input Gram matrices (``RangeStats.gram``) for GPTQ weight rounding.
        channel_ranges: per-channel max |x| (``RangeStats.chan``) of ``blocks.{i}.h`` and
            ``blocks.{i}.du`` (per-channel SSM state scales); per-tensor ranges otherwise.
    Returns:
        the :class:`Bundle` (not yet written).
    Raises:
        QuantizationError: an unknown width or option key or a value it does not allow, a
            bound that would overflow, or a classifier output count other than the 12
            labels (:func:`check_label_count`).
        BundleError: the bundle it built fails :func:`export.bundle.check_bundle_meta`
            (a quantizer bug: the message names the op or tensor).
    """
    W = check_widths(widths)
    check_label_count(cfg)
    opt = check_options(options)
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    E, N, D, M = cfg.d_inner, cfg.d_state, cfg.d_model, cfg.n_mels
    bld = _Builder(ranges, W, opt, grams)
    bld.chan = channel_ranges or {}

    for nm in ("features", "snr_mel"):
        spec = frontend["meta"]["outputs"][nm]
        bld.tensor(nm, spec["dtype"], spec["scale"], spec["zero_point"], [M], float_tap=nm)

    # int32 residual stream: one scale for patch, every proj and out, the largest calibrated
    # magnitude mapped to 2^29 (x headroom_wide): the residual adds are then exact
    res_amax = max(max(abs(v) for v in ranges[n]) for n in ranges
                   if n == "patch" or n.endswith(".proj") or n.endswith(".out"))
    bld.res_scale = res_amax * opt["headroom"] * opt["headroom_wide"] / 2 ** 29
    bld.act("patch", [D])
    bld.fully_connected("patch_proj", "features", "patch", sd["patch_proj.weight"], sd["patch_proj.bias"],
                        kind="patch_proj")
    x_in = "patch"
    tb = int(opt["exp_table_bits"])
    for i in range(cfg.n_layers):
        p, k = f"blocks.{i}.", f"blocks.{i}."
        bld.act(p + "norm", [D])
        bld.layer_norm(p + "norm", x_in, p + "norm", sd[k + "norm.weight"], sd[k + "norm.bias"])
        w_in = sd[k + "in_proj.weight"]
        bld.act(p + "u", [E])
        bld.fully_connected(p + "in_proj_u", p + "norm", p + "u", w_in[:E], kind="in_proj")
        bld.act(p + "z", [E])
        bld.fully_connected(p + "in_proj_z", p + "norm", p + "z", w_in[E:], kind="in_proj")
        bld.act(p + "conv", [E])
        bld.conv1d(p + "conv1d", p + "u", p + "conv", sd[k + "conv1d.weight"][:, 0, :],
                   sd[k + "conv1d.bias"])
        bld.act_from_fn(p + "u_act", p + "conv", _silu, [E])
        bld.lut(p + "silu_u", p + "conv", p + "u_act", _silu, desc="silu")
        xp = sd[k + "sa_ssm.x_proj.weight"]
        bld.act(p + "dt_raw", [1])
        bld.fully_connected(p + "x_proj_dt", p + "u_act", p + "dt_raw", xp[:1], kind="x_proj")
        bld.act(p + "B", [N])
        bld.fully_connected(p + "x_proj_B", p + "u_act", p + "B", xp[1:1 + N], kind="x_proj")
        bld.act(p + "C", [N])
        bld.fully_connected(p + "x_proj_C", p + "u_act", p + "C", xp[1 + N:], kind="x_proj")
        sp_w, sp_b = sd[k + "sa_ssm.snr_proj.weight"], sd[k + "sa_ssm.snr_proj.bias"]
        bld.act(p + "dt_shift", [1])
        bld.fully_connected(p + "snr_proj_dt", "snr_mel", p + "dt_shift", sp_w[:1], sp_b[:1], kind="snr_proj")
        bld.act(p + "g", [N])
        bld.fully_connected(p + "snr_proj_g", "snr_mel", p + "g", sp_w[1:], sp_b[1:], kind="snr_proj")
        bld.act(p + "dt_in", [1])
        bld.add(p + "dt_add", p + "dt_raw", p + "dt_shift", p + "dt_in")
        bld.act(p + "dt_pre", [E])
        bld.fully_connected(p + "dt_proj", p + "dt_in", p + "dt_pre", sd[k + "sa_ssm.dt_proj.weight"],
                            sd[k + "sa_ssm.dt_proj.bias"], kind="dt_proj")
        bld.act_from_fn(p + "delta", p + "dt_pre", _softplus, [E])
        bld.lut(p + "softplus", p + "dt_pre", p + "delta", _softplus, desc="softplus")
        alpha = float(sd[k + "sa_ssm.alpha"])
        bld.tensor(p + "gate", "int16", 2.0 ** -15, 0, [N], q_format="Q15", float_tap=p + "gate")
        bld.lut(p + "snr_gate", p + "g", p + "gate", _gate_fn(alpha),
                desc=f"1 - alpha + alpha * sigmoid(g), alpha = {alpha:.9g}")
        bld.act(p + "B_gated", [N])
        bld.mul(p + "B_gate", p + "B", p + "gate", p + "B_gated")
        bld.act(p + "y_ssm", [E])
        _build_ssm(bld, p, sd, k, E, N, tb)
        bld.act_from_fn(p + "z_act", p + "z", _silu, [E])
        bld.lut(p + "silu_z", p + "z", p + "z_act", _silu, desc="silu")
        bld.act(p + "y_gated", [E])
        bld.mul(p + "gate_mul", p + "y_ssm", p + "z_act", p + "y_gated")
        bld.act(p + "proj", [D])
        bld.fully_connected(p + "out_proj", p + "y_gated", p + "proj", sd[k + "out_proj.weight"], kind="out_proj")
        bld.act(p + "out", [D])
        bld.add(p + "residual", p + "proj", x_in, p + "out")
        x_in = p + "out"
    bld.act("final_norm", [D])
    bld.layer_norm("final_norm", x_in, "final_norm", sd["final_norm.weight"], sd["final_norm.bias"])
    bld.act("pooled", [D], per_frame=False)
    s_x, _, _ = bld.q("final_norm")
    s_o, _, _ = bld.q("pooled")
    m, s = _mult(s_x / (N_FRAMES * s_o), "mean")
    bld.op("mean", "mean", ["final_norm"], ["pooled"], {"frames": N_FRAMES, "multiplier": m, "shift": s},
           kernel="mean_pool_accumulate", stage="frame",
           state={"sum": {"shape": [D], "dtype": "int32", "init": 0}})
    bld.ops[-1]["finalize_kernel"] = "mean_pool_finalize"
    if opt["logits_range"] in ("top2", "runnerup") and "logits#top2" in ranges:
        lo2, hi2 = ranges["logits#top2"]
        hi = ranges["logits"][1] if opt["logits_range"] == "top2" else hi2 + 0.05 * (hi2 - lo2)
        bld.ranges = dict(bld.ranges)
        bld.ranges["logits"] = (lo2 - 0.05 * (hi - lo2), hi)
    bld.act("logits", [cfg.n_classes], per_frame=False)
    bld.fully_connected("classifier", "pooled", "logits", sd["classifier.weight"], sd["classifier.bias"],
                        stage="clip", kind="classifier")
    bld.label_path("classifier", cfg.n_classes)

    info = info or {}
    meta = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "tool": {"name": "nanomamba-kws", "version": __version__},
        "model": {"sha256": model_hash(state), "source": info.get("source"),
                  "name": info.get("name"), "config": cfg.to_dict(), "labels": list(LABELS),
                  "n_frames": N_FRAMES},
        "calibration": info.get("calibration", {}),
        "quantization": {"widths": W, "options": opt, "asymmetric": list(ASYMMETRIC),
                         "weights": "int8 symmetric per output channel, range [-127, 127]",
                         "biases": "int32"},
        "frontend": {"impl": frontend["impl"], "meta": frontend["meta"],
                     "arrays": sorted(frontend["arrays"])},
        "tensors": bld.tensors,
        "ops": bld.ops,
        "float": sorted(state),
    }
    arrays = dict(bld.arrays)
    for k, v in frontend["arrays"].items():
        arrays[f"frontend/{k}"] = np.asarray(v)
    for k, v in state.items():
        arrays[f"float/{k}"] = np.asarray(v, dtype=np.float32)
    # the schema check every loaded bundle gets, on the metadata as it will be stored, so a
    # bundle used in memory (simulator, generate) is held to the same contract as a file
    check_bundle_meta(json.loads(json.dumps(meta, allow_nan=False)), arrays, "<in memory>")
    return Bundle(meta=meta, arrays=arrays)


def _build_ssm(bld: _Builder, p: str, sd: dict, k: str, E: int, N: int, tb: int) -> None:
    """The ``sa_ssm`` op of one block (see docs/QUANTIZATION.md, "SA-SSM").

    Scales: h and du per channel e (h[e, :] and du[e] share one scale), B~ per tensor. The
    increment du[e] B~[n] reaches h's accumulator units (s_h[e] 2^-F) by a left shift of
    x_shift[e] bits: s_du[e] s_B~ 2^x_shift[e] = s_h[e] 2^-F. For int16 h with Q15 dA the
    shift is 0 (s_h[e] >= max(h[e]) / 32767 and >= s_du_ideal[e] s_B~ 2^15, so every
    product fits int32); for int32 h or Q30 dA it is positive and the arithmetic is 64-bit.
    """
    name = p + "sa_ssm"
    W = bld.widths
    F = _DA_FRAC[W["dA"]]
    hb = W["h"]
    h_dt = _DT[hb]
    s_u, zp_u, (umin, umax) = bld.q(p + "u_act")
    s_d, zp_d, _ = bld.q(p + "delta")
    s_bg, zp_bg, _ = bld.q(p + "B_gated")
    s_c, zp_c, _ = bld.q(p + "C")
    if zp_d or zp_bg or zp_c:
        raise QuantizationError(f"{name}: delta, B_gated and C must be symmetric")
    opt = bld.options
    hr_h = opt["headroom"] * opt["headroom_state"]

    def chan(key):
        if p + key in bld.chan:
            v = np.asarray(bld.chan[p + key], dtype=np.float64)
        else:
            v = np.full(E, max(abs(x) for x in bld.ranges[p + key]))
        return np.maximum(v, max(v.max(), 1e-12) * 1e-6)

    h_e = chan("h") * hr_h
    s_du_ideal = chan("du") * hr_h / 32767.0
    qh = _QRANGE[h_dt][1]
    s_h = h_e / qh
    if hb <= 16 and F <= 15:
        x_shift = np.zeros(E, dtype=np.int64)
        s_h = np.maximum(s_h, s_du_ideal * s_bg * 2.0 ** F)
    else:
        K = s_du_ideal * s_bg * 2.0 ** F / s_h
        x_shift = np.maximum(np.ceil(np.log2(K)), 0).astype(np.int64)
    s_du = s_h * 2.0 ** (x_shift - F) / s_bg
    bld.tensor(p + "h", h_dt, s_h.tolist(), 0, [E, N], float_tap=p + "h")
    bld.tensors[p + "h"]["channel_axis"] = 0
    bld.tensor(p + "du", "int16", s_du.tolist(), 0, [E], float_tap=p + "du")
    bld.tensors[p + "du"]["channel_axis"] = 0
    bld.tensor(p + "dA", _DT[W["dA"]], 2.0 ** -F, 0, [E, N], q_format=f"Q{F}", float_tap=p + "dA")
    du_ms = [_mult(s_d * s_u / sd_e, name + " du") for sd_e in s_du]
    # exponent per delta LSB, log2 units: c = |A| log2(e) s_delta; K = c 2^(16 + ps + tb)
    c = np.exp(sd[k + "sa_ssm.A_log"]) * LOG2E * s_d
    ps = int(math.floor(math.log2((2 ** 31 - 1) / (c.max() * 2.0 ** (16 + tb)))))
    ps = min(ps, 31)
    while ps >= 1 and im.round_half_away(c * 2.0 ** (16 + ps + tb)).max() > 2 ** 31 - 1:
        ps -= 1
    if ps < 1:
        raise QuantizationError(f"{name}: |A| s_delta too large for the exp2 constants "
                                f"(max |A| log2e s_delta = {c.max():g})")
    k_a = im.round_half_away(c * 2.0 ** (16 + ps + tb))
    i = np.arange(1 << tb)
    exp_table = np.minimum(im.round_half_away(2.0 ** F * 2.0 ** (-i / (1 << tb))), 2 ** F - 1)
    # readout: y = MBQM(sum_n C h' + rsr(d_q (u - zp), jD), m_y[e], s_y[e]),
    # h' = rsr(h, hrs[e]): int32 h is read through its top 16 bits; a channel whose D u term
    # would not fit the int32 accumulator in units s_C s_h[e] is read coarser
    urange = max(umax - zp_u, zp_u - umin)
    D = sd[k + "sa_ssm.D"]
    hrs = np.full(E, max(hb - 16, 0), dtype=np.int64)
    need = np.abs(D) * s_u / (s_c * s_h * 2.0 ** hrs) * urange
    hrs += np.maximum(np.ceil(np.log2(np.maximum(need, 1e-30) / 2 ** 28)), 0).astype(np.int64)
    s_hr = s_h * 2.0 ** hrs
    ratio = D * s_u / (s_c * s_hr)
    jd = 0
    for j in range(30, -1, -1):
        if (np.abs(im.round_half_away(ratio * 2.0 ** j)) * urange).max() < 2 ** 30:
            jd = j
            break
    d_q = im.round_half_away(ratio * 2.0 ** jd)
    if (np.abs(d_q) * urange).max() >= 2 ** 30:
        raise QuantizationError(f"{name}: D u term too large for int32")
    s_y, _, _ = bld.q(p + "y_ssm")
    y_ms = [_mult(s_c * sh / s_y, name + " y") for sh in s_hr]
    arr = lambda v: np.array(v, dtype=np.int32)
    bld.op(name, "sa_ssm", [p + "u_act", p + "delta", p + "B_gated", p + "C"], [p + "y_ssm"],
           {"d_inner": E, "d_state": N, "p_shift": ps, "exp_frac_bits": tb,
            "dA_frac_bits": F, "d_shift": jd,
            "internal_tensors": [p + "dA", p + "du", p + "h"]},
           {"k_a": k_a.astype(np.int32),
            "exp_table": exp_table.astype(np.int16 if F <= 15 else np.int32),
            "du_multiplier": arr([m for m, _ in du_ms]), "du_shift": arr([s for _, s in du_ms]),
            "x_shift": arr(x_shift), "h_read_shift": arr(hrs),
            "d_q": d_q.astype(np.int32),
            "y_multiplier": arr([m for m, _ in y_ms]), "y_shift": arr([s for _, s in y_ms])},
           kernel="sa_ssm_step",
           state={"h": {"shape": [E, N], "dtype": h_dt, "init": 0}})


# =======================================================================================
# front end, top-level quantization, evaluation, report
# =======================================================================================

def frontend_params(state: dict) -> dict:
    """The fixed-point front end's parameters for a checkpoint:
    {"impl": "frontend_fixed", "meta", "arrays"} from
    :func:`export.frontend_fixed.make_frontend_params` (its outputs' dtype/scale/zero_point
    are ``meta["outputs"]``)."""
    from export import frontend_fixed as fe
    mel_fb = np.asarray(state["mel_fb"], dtype=np.float32)
    noise_scale = float(np.asarray(state["snr_estimator.noise_scale"]))
    params = fe.make_frontend_params(mel_fb, noise_scale)
    return {"impl": "frontend_fixed", "meta": params["meta"], "arrays": params["arrays"]}


def check_calibration_audio(audio) -> np.ndarray:
    """Calibration clips as the quantizer takes them: int16 PCM (n, 16000), n >= 1
    (:data:`nanomamba.config.CLIP_SAMPLES` samples per clip; no conversion: float audio
    would need a scale the caller knows, int32 may hold out-of-range samples).

    Returns:
        ``np.asarray(audio)``.
    Raises:
        CalibrationError: empty, not int16, or not (n, 16000) (names what was given).
    """
    a = np.asarray(audio)
    if a.ndim >= 1 and a.shape[0] == 0:
        raise CalibrationError("no calibration clips")
    if a.dtype != np.int16:
        raise CalibrationError(f"calibration audio: expected int16 PCM (n, {CLIP_SAMPLES}), "
                               f"got {a.dtype} (nanomamba.audio.load_audio(p, dtype='int16') "
                               f"or float_to_int16 make int16)")
    if a.ndim != 2 or a.shape[1] != CLIP_SAMPLES:
        raise CalibrationError(f"calibration audio: expected shape (n, {CLIP_SAMPLES}) "
                               f"(n clips of 1 s at 16 kHz), got {a.shape}")
    return a


def _state_numpy(model) -> dict:
    from nanomamba.checkpoint import published_state_dict
    return {k: v.numpy() for k, v in published_state_dict(model).items()}


def quantize_model(model, calib_audio, *, widths: dict | None = None, options: dict | None = None,
                   calibration: dict | None = None, progress: bool = True,
                   stats: RangeStats | None = None) -> Bundle:
    """Calibrate and quantize a float model.

    Args:
        model: float :class:`nanomamba.model.NanoMamba` (from load_checkpoint).
        calib_audio: int16 (n, 16000) calibration clips (PCM), n >= 1 (a numpy array or
            anything ``np.asarray`` makes one of; no dtype conversion).
        widths, options: overrides of :data:`DEFAULT_WIDTHS`, :data:`DEFAULT_OPTIONS`
            (checked by :func:`check_widths`, :func:`check_options`).
        calibration: description stored in the bundle.
        progress: show a progress bar.
        stats: precomputed :class:`RangeStats` (skips the float calibration pass).
    Returns:
        the :class:`Bundle`.
    Raises:
        CalibrationError: no calibration clips, or clips not int16 (n, 16000).
        QuantizationError: an unknown width/option key or a value it does not allow, or a
            classifier output count other than the 12 labels (all before calibrating);
            see build_bundle.
    """
    calib_audio = check_calibration_audio(calib_audio)
    check_widths(widths)                      # before the calibration pass
    opt = check_options(options)
    check_label_count(model.cfg)
    stats = stats or collect_ranges(model, calib_audio, progress=progress)
    ranges = stats.ranges(opt["range"], opt["percentile"])
    state = _state_numpy(model)
    cal = dict(calibration or {})
    cal.setdefault("clips", int(len(calib_audio)))
    cal["range"] = opt["range"]
    return build_bundle(state, model.cfg, ranges, frontend_params(state), widths=widths,
                        options=opt, grams=stats.gram, channel_ranges=stats.chan, info={"source": Path(getattr(model, "source", "")).name or None,
                                           "name": getattr(model, "meta", {}).get("model_name"),
                                           "calibration": cal})


def sqnr_db(ref, test) -> float:
    """10 log10(sum ref^2 / sum (test - ref)^2) in dB (inf when equal)."""
    ref = np.asarray(ref, dtype=np.float64)
    err = np.asarray(test, dtype=np.float64) - ref
    num, den = float((ref * ref).sum()), float((err * err).sum())
    if den == 0:
        return math.inf
    return 10 * math.log10(num / den) if num > 0 else -math.inf


def evaluate(bundle: Bundle, model, audio, labels=None, *, batch: int = 100, progress: bool = True,
             per_tensor: bool = True, desc: str = "evaluating") -> dict:
    """Integer pipeline vs float model on the same int16 clips.

    Args:
        bundle: the quantized model; model: the float model it came from.
        audio: int16 (n, 16000); labels: optional true class indices (n,).
        per_tensor: also compute the SQNR of every tensor that has a float counterpart.
    Returns:
        dict: ``n``, ``agreement`` (% same top-1), ``accuracy_int``/``accuracy_float``
        (% when labels are given), ``logits_sqnr_db``, ``per_tensor_sqnr_db`` (name -> dB),
        ``pred_int`` (the integer model's ``label``: argmax of its fine int32 grid, the
        label ``kws_run`` returns), ``pred_float`` (lists), ``disagree`` (indices),
        ``agreement_int8_argmax`` (% same top-1 when the label is instead taken as the argmax
        of the int8 logits, ties to the lowest index: the label rule of bundle format 1),
        ``logits_float`` and ``logits_int`` (float64 (n, 12); the int8 logits dequantized).
    """
    from tqdm import tqdm

    from export.simulator import Simulator
    sim = Simulator(bundle)
    tens = bundle.meta["tensors"]
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    lf_all, li_all, lab_all = [], [], []
    n = len(audio)
    for s in tqdm(range(0, n, batch), desc=desc, unit="batch", disable=None if progress else True, leave=False):
        a = audio[s:s + batch]
        lf, taps = float_taps(model, a)
        out = sim.run(a, frontend_intermediates=False)
        li = sim.dequantize("logits", out["logits"])
        lab_all.append(out["label"].reshape(-1))
        lf_all.append(lf)
        li_all.append(li)
        if per_tensor:
            for name, t in tens.items():
                tap = t.get("float_tap")
                if tap and tap in taps and name in out:
                    ref = taps[tap].astype(np.float64)
                    got = sim.dequantize(name, out[name]).reshape(ref.shape)
                    num[name] = num.get(name, 0.0) + float((ref * ref).sum())
                    den[name] = den.get(name, 0.0) + float(((got - ref) ** 2).sum())
    lf = np.concatenate(lf_all)
    li = np.concatenate(li_all)
    pf, pi = lf.argmax(1), np.concatenate(lab_all).astype(np.int64)
    res = {"n": int(n), "agreement": float((pf == pi).mean() * 100),
           "agreement_int8_argmax": float((pf == li.argmax(1)).mean() * 100),
           "logits_sqnr_db": sqnr_db(lf, li), "pred_int": pi.tolist(), "pred_float": pf.tolist(),
           "disagree": np.nonzero(pf != pi)[0].tolist(), "logits_float": lf, "logits_int": li}
    if labels is not None:
        labels = np.asarray(labels)
        res["accuracy_int"] = float((pi == labels).mean() * 100)
        res["accuracy_float"] = float((pf == labels).mean() * 100)
    if per_tensor:
        res["per_tensor_sqnr_db"] = {k: (10 * math.log10(num[k] / den[k]) if den[k] > 0 and num[k] > 0
                                         else (math.inf if den[k] == 0 else -math.inf))
                                     for k in num}
    return res


def write_report(folder, bundle: Bundle, results: dict, *, force: bool = False) -> Path:
    """Write the quantization report into ``folder`` atomically (temp sibling + rename):
    ``report.json`` (everything), ``report.md`` (tables: per-tensor dtype/scale/zero_point,
    per-layer SQNR, agreement/accuracy), ``sqnr.png`` (per-layer SQNR bar chart).

    Raises:
        BundleError: ``folder`` exists and not ``force``.
        OutputExistsError: without ``force``, a path that appeared at ``folder`` while the
            report was written (kept; :func:`export.fileio.atomic_output_dir`).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    if os.path.lexists(folder) and not force:
        raise BundleError(f"{folder}: report folder already exists (use --force to overwrite)")
    from export.fileio import atomic_output_dir
    # built in a temp sibling, swapped in at the end (a symlink at ``folder`` is replaced,
    # its target kept; without force nothing that appeared meanwhile is replaced)
    with atomic_output_dir(folder, force=force) as tmp:
        tens = bundle.meta["tensors"]
        sq = {}
        for res in results.values():
            sq = res.get("per_tensor_sqnr_db", {}) or sq
            if sq:
                break
        lines = [f"# Quantization report: {bundle.meta['model'].get('source')}", "",
                 f"model sha256 `{bundle.meta['model']['sha256']}`, tool "
                 f"{bundle.meta['tool']['version']}, bundle format {bundle.meta['format_version']}",
                 "", f"calibration: {json.dumps(bundle.meta['calibration'])}", "",
                 "## Agreement with the float model", "",
                 "| data | clips | top-1 agreement % | int accuracy % | float accuracy % | logits SQNR dB |",
                 "|---|---|---|---|---|---|"]
        for name, r in results.items():
            acc_i, acc_f = (f"{r[k]:.2f}" if k in r else "- (no labels)"
                            for k in ("accuracy_int", "accuracy_float"))
            lines.append(f"| {name} | {r['n']} | {r['agreement']:.2f} | {acc_i} | {acc_f} | "
                         f"{r['logits_sqnr_db']:.1f} |")
        lines += ["", "## Tensors", "", "| tensor | dtype | scale | zero_point | Q-format | SQNR dB |",
                  "|---|---|---|---|---|---|"]
        for name, t in tens.items():
            s = sq.get(name)
            sc = t["scale"]
            sc = (f"{sc:.6g}" if not isinstance(sc, list)
                  else f"per channel {min(sc):.4g}..{max(sc):.4g}")
            lines.append(f"| {name} | {t['dtype']} | {sc} | {t['zero_point']} | "
                         f"{t['q_format'] or ''} | {'' if s is None else f'{s:.1f}'} |")
        (tmp / "report.md").write_text("\n".join(lines) + "\n")
        payload = {"tensors": tens, "results": {k: {kk: vv for kk, vv in v.items()
                                                     if kk not in ("pred_int", "pred_float",
                                                                   "logits_float", "logits_int")}
                                                 for k, v in results.items()}}
        (tmp / "report.json").write_text(json.dumps(payload, indent=1, default=float))
        names = [k for k in tens if k in sq]
        vals = [min(sq[k], 99.0) for k in names]
        fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(names)), 4.5))
        ax.bar(range(len(names)), vals, color=["tab:red" if v < 20 else "tab:blue" for v in vals])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_ylabel("SQNR vs float (dB)")
        ax.set_title(f"per-tensor SQNR: {bundle.meta['model'].get('source')}")
        ax.axhline(20, color="grey", lw=0.5, ls="--")
        fig.tight_layout()
        fig.savefig(tmp / "sqnr.png", dpi=120, metadata={"Software": None})
        plt.close(fig)
    return folder


def quantize_checkpoint(checkpoint, out, *, calib=None, force: bool = False, report=None,
                        eval_dir=None, widths: dict | None = None, options: dict | None = None,
                        progress: bool = True) -> dict:
    """``kws-export quantize``: checkpoint -> bundle file (+ optional report folder).

    Args:
        checkpoint: float checkpoint (.pt).
        out: bundle path; refused when it exists and not ``force``.
        calib: folder of calibration clips, or None for :func:`generated_calibration_set`.
        report: report folder, or "" for ``<out>.report``, or None for no report.
        eval_dir: folder of clips the report evaluates on (default: the calibration clips,
            said so in the report).
        widths, options: see :func:`build_bundle` (checked before loading anything).
    Returns:
        {"bundle": path, "report": path or None, "results": {...}}.
    Raises:
        CheckpointError, CalibrationError, AudioError, QuantizationError, BundleError.
        Nothing is written unless everything succeeded.
    """
    from nanomamba import load_checkpoint
    out = Path(out)
    if out.exists() and not force:
        raise BundleError(f"{out}: already exists (use --force to overwrite)")
    report_dir = None if report is None else (Path(report) if report else out.with_name(out.name + ".report"))
    if report_dir is not None and os.path.lexists(report_dir) and not force:
        raise BundleError(f"{report_dir}: report folder already exists (use --force to overwrite)")
    from export.fileio import check_output
    inputs = [Path(p) for p in (checkpoint, calib, eval_dir) if p is not None]
    check_output(out, force, expect="file", inputs=inputs)  # not an input; folder can be made
    if report_dir is not None:
        # all before calibrating: a bad report path used to surface only after the bundle
        # had been written (report == bundle; --force with an existing file as report)
        r_real, o_real = Path(os.path.realpath(report_dir)), Path(os.path.realpath(out))
        if r_real == o_real or r_real in o_real.parents:
            what = "is" if r_real == o_real else "contains"
            raise BundleError(f"{report_dir}: the report folder {what} the bundle {out}; "
                              f"choose another --report")
        check_output(report_dir, True, expect="folder", inputs=inputs)
    check_widths(widths)                          # before loading and calibrating
    check_options(options)
    model = load_checkpoint(checkpoint)
    if calib is None:
        audio, names = generated_calibration_set()
        cal = {"source": "generated (espeak-ng words + noise, tones, chirps; seed 0)"}
    else:
        audio, names = load_clip_folder(calib)
        cal = {"source": str(calib)}
    eval_audio = eval_names = None
    if eval_dir is not None:
        eval_audio, eval_names = load_clip_folder(eval_dir, what="evaluation")
    bundle = quantize_model(model, audio, widths=widths, options=options, calibration=cal,
                            progress=progress)
    results = {}
    if report_dir is not None:
        if eval_audio is None:
            eval_audio, eval_names = audio, names
            label = "calibration clips (not held out)"
        else:
            label = f"evaluation clips ({eval_dir})"
        results[label] = evaluate(bundle, model, eval_audio, labels_from_names(eval_names),
                                  progress=progress)
    save_bundle(bundle, out, force=force)
    rep = write_report(report_dir, bundle, results, force=force) if report_dir is not None else None
    return {"bundle": out, "report": rep, "results": results}
