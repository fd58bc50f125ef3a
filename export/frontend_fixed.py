"""The fixed-point NanoMamba audio front end (int16 PCM -> int16 features, int8 snr_mel), the
bit-exact Python twin of ``firmware_templates/kernels/kws_frontend.c``.

Each ``fe_*`` function here has a C function of the same name in ``kws_frontend.c``; the
Python works on whole batches (B clips x 101 frames at once), the C on one frame per call,
and both give the same integers. :func:`run_frontend` chains them and returns every
intermediate; :func:`make_frontend_params` turns the checkpoint's ``mel_fb`` and
``snr_estimator.noise_scale`` into the integer constants the C needs. The Q-formats, the
overflow proof, the design choices with their measurements and the streaming design are in
``docs/FRONTEND.md``.

Design (v2, built for Cortex-M4 speed): per-frame block floating point chosen from the
samples before the window (shift the frame's peak to full scale), window in Q25, a
256-point complex radix-4 FFT on int32 data (Q31 twiddles, SMMULR-style multiplies, one
halving per radix-4 stage), the real-FFT split, a one-division table magnitude, sparse mel
projections with 64-bit accumulators, and the SNR projection through per-window weights
(mel weight / noise, per-band exponent), so that the per-frame SNR work is one
multiply-accumulate per mel weight.

Float semantics reproduced (``nanomamba.frontend``, ``../shared/fixtures/README.md``):
|STFT| (n_fft 512, hop 160, periodic Hann, centred, reflect padding) -> noise = mean of the
first 5 frames per bin, snr_mel = tanh(mel_fb @ (|X| / (|noise_scale| * noise + 1e-8)) / 10)
-> features = instance_norm_time(log(mel_fb @ |X| + 1e-8)) (biased variance, eps 1e-5).

No torch here (the simulator imports this module).
"""

from __future__ import annotations

import math

import numpy as np

from nanomamba.errors import KwsError

from . import intmath as im
from . import sim_jit

# --- fixed architecture of the front end (not per model) --------------------------------
N_FFT = 512                  #: FFT size, samples
HALF = N_FFT // 2            #: complex FFT length (real FFT packed as 256 complex points)
HOP = 160                    #: hop, samples (10 ms at 16 kHz)
PAD = N_FFT // 2             #: reflect padding on each side (torch.stft center=True)
CLIP = 16_000                #: samples per window
N_FRAMES = CLIP // HOP + 1   #: 101 frames
N_BINS = HALF + 1            #: 257 one-sided bins
N_HOPS = CLIP // HOP         #: 100 hops of 160 samples per window
NOISE_FRAMES = 5             #: frames averaged for the per-bin noise

# --- number formats (docs/FRONTEND.md has the table) ---------------------------------------
WINDOW_FRAC = 25       #: Hann window Q25 (int32): v = (w * (x << k)) >> 16 = x 2^k hann 2^9, |v| <= 2^24
SAMPLE_BITS = 15       #: block shift k = 15 - bitlen(peak): x << k stays an int16
TWIDDLE_FRAC = 31      #: FFT and split twiddles Q31 (+1.0 clamped to 2^31 - 1; never used: W^0 is exact)
MAG_FLOAT_SHIFT = 21   #: |X| (float units, input / 32768) = mag * 2^-(21 + k)
MEL_W_FRAC = 15        #: mel weights Q15 (uint16, weight 1.0 = 32768)
MEL_FLOAT_SHIFT = MAG_FLOAT_SHIFT + MEL_W_FRAC  #: mel (float) = mel_int * 2^-(36 + k)
NOISE_SHIFT = 15       #: noise = sum_{t<5} mag_t 2^(15 - k_t) = 5 * noise_float * 2^36
NOISE_FLOAT_SHIFT = MAG_FLOAT_SHIFT + NOISE_SHIFT  #: 36
NOISE_MULT_BITS = 15   #: noise_mult = round(|ns| / 5 * 2^G) in [2^14, 2^15]
LOG_FRAC = 16          #: log2 values Q16
LOG_REF_SHIFT = 8      #: log_ref = log_mel of frame 0 >> 8 (int16, Q8)
MAX_BLOCK_SHIFT = 15   #: block shift 0..15 (log_eps has one entry per shift)
SNR_W_BITS = 8         #: per-window SNR weights: uint8 mantissas, per-band exponent
SNR_W_SHIFT = 31 - SNR_W_BITS   #: C = round_shift_right(w_q15 * recip, recip_exp - F + 23)
LOG_BITS = 10          #: log-mel code width in a cell (signed)
SNR_BITS = 6           #: snr_mel code width in a cell (unsigned)
TANH_X_MAX = 8         #: z = S / 10 is clamped to 8 (tanh(8) = 1 - 2.3e-7)
TANH_IN_FRAC = 16      #: tanh input z in Q16
TANH_IN_MAX = TANH_X_MAX << TANH_IN_FRAC          #: 8.0 in Q16
SNR_CODE_STEP = 10     #: snr code table: one entry per 2^10 of z (Q16)
DIV10_MULT = 429_496_730                           #: round(2^32 / 10)
FEATURE_FRAC = 11      #: features int16 Q11 (scale 2^-11); |feature| <= sqrt(100) = 10 < 16
LOG_EPS = 1e-8
SNR_EPS = 1e-8
NORM_EPS = 1e-5

#: Intermediates returned by :func:`run_frontend` (name -> (numpy dtype, per-clip shape);
#: None in a shape is n_mels, "nnz" the number of stored mel weights). The C twin
#: (compiled with KWS_FRONTEND_TAPS) emits the same names, bytes and order.
INTERMEDIATES: dict[str, tuple[str, tuple]] = {
    "frames": ("int16", (N_FRAMES, N_FFT)),
    "hop_bits": ("uint8", (N_HOPS,)),
    "block_shift": ("uint8", (N_FRAMES,)),
    "windowed": ("int32", (N_FRAMES, N_FFT)),
    "fft": ("int32", (N_FRAMES, N_FFT)),
    "spectrum": ("int32", (N_FRAMES, N_FFT)),
    "mag": ("uint32", (N_FRAMES, N_BINS)),
    "mel": ("int64", (N_FRAMES, None)),
    "log_mel": ("int32", (N_FRAMES, None)),
    "noise": ("int64", (N_BINS,)),
    "noise_denom": ("int64", (N_BINS,)),
    "recip": ("uint16", (N_BINS,)),
    "recip_exp": ("int8", (N_BINS,)),
    "snr_weight_exp": ("uint8", (None,)),
    "snr_weights": ("uint8", ("nnz",)),
    "snr_sum": ("int64", (N_FRAMES, None)),
    "tanh_in": ("int32", (N_FRAMES, None)),
    "snr_code": ("uint8", (N_FRAMES, None)),
    "log_ref": ("int16", (None,)),
    "band_shift": ("uint8", (None,)),
    "log_code": ("int16", (N_FRAMES, None)),
    "cells": ("int16", (N_FRAMES, None)),
    "norm_sum": ("int32", (None,)),
    "norm_sumsq": ("int32", (None,)),
    "norm_var": ("int64", (None,)),
    "norm_rsqrt": ("uint32", (None,)),
    "norm_rsqrt_exp": ("int8", (None,)),
    "norm_mult": ("int32", (None,)),
    "norm_shift": ("uint8", (None,)),
    "features": ("int16", (N_FRAMES, None)),
    "snr_mel": ("int8", (N_FRAMES, None)),
}


class FrontendError(KwsError):
    """Bad front-end input: mel filterbank, noise_scale or audio batch."""


# ---------------------------------------------------------------------------------------
# Export time: the integer constants
# ---------------------------------------------------------------------------------------

def _rha(x) -> int:
    return int(im.round_half_away(x))


def _q31(x: np.ndarray) -> np.ndarray:
    return np.minimum(im.round_half_away(np.asarray(x) * 2.0 ** TWIDDLE_FRAC), 2 ** 31 - 1).astype(np.int32)


def _rev3(q: int) -> int:
    """Base-4 digit reversal of a 3-digit index (0..63)."""
    return ((q & 3) << 4) | (q & 12) | (q >> 4)


def snr_code_table() -> np.ndarray:
    """The snr_mel code as a function of z = S / 10 (Q16), exactly rounded:
    code(z) = min(63, round_half_up(64 tanh(z / 2^16))) = #{c in 1..63 : z >= Z_c} with
    Z_c = ceil(atanh((c - 1/2) / 64) 2^16). Thresholds are >= 2^10 apart, so each 2^10-wide
    interval i of z holds at most one: entry i = base_i | ((off_i - 1) << 6) with base_i =
    #{c : Z_c <= 2^10 i} and off_i = Z_c - 2^10 i in 1..1023 for the threshold inside the
    interval (1024: none); code = base_i + ((z & 1023) > off_i - 1), and 63 for z >= 142 2^10.

    Returns: (142,) uint16.
    """
    zc = [math.ceil(math.atanh((c - 0.5) / 64) * 2 ** TANH_IN_FRAC) for c in range(1, 64)]
    step = 1 << SNR_CODE_STEP
    n = zc[-1] // step + 1
    out = []
    for i in range(n):
        base = sum(z <= step * i for z in zc)
        inside = [z - step * i for z in zc if step * i < z < step * (i + 1)]
        assert len(inside) <= 1
        off = inside[0] if inside else step
        out.append(base | ((off - 1) << 6))
    return np.array(out, dtype=np.uint16)


def fe_snr_code(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    """snr_mel code 0..63 of z (Q16) by :func:`snr_code_table` (C: one table read, one
    compare). Args: z int64 in [0, 8 2^16]. Returns: int64."""
    t = np.asarray(table, dtype=np.int64)
    i = z >> SNR_CODE_STEP
    e = t[np.minimum(i, len(t) - 1)]
    code = (e & 63) + ((z & ((1 << SNR_CODE_STEP) - 1)) > (e >> 6))
    return np.where(i >= len(t), 63, code)


def make_frontend_params(mel_fb: np.ndarray, noise_scale: float) -> dict:
    """Integer constants of the fixed-point front end, from the checkpoint's float values.

    Args:
        mel_fb: (n_mels, 257) float mel filterbank (checkpoint buffer ``mel_fb``), weights in
            [0, 2) (NanoMamba's are triangles with peak 1). Stored sparse: per band the range
            from its first to its last non-zero bin, weights Q15 (uint16, 1.0 = 32768).
        noise_scale: the raw ``snr_estimator.noise_scale``; |noise_scale| is used.
    Returns:
        ``{"meta": {...}, "arrays": {...}}``. ``meta`` is JSON-serialisable: the format
        constants, the per-model scalars (``noise_mult``, ``noise_shift``, ``snr_eps``,
        ``norm_eps``, ``mel_nnz``) and ``outputs`` = {"features": {dtype, scale,
        zero_point}, "snr_mel": {...}} (static scales: features int16 scale 2^-11, snr_mel
        int8 scale 2^-6, zero points 0). ``arrays`` holds integer numpy arrays:
        ``window_q25`` (257,) int32 (periodic Hann w[n] = w[512 - n], Q25),
        ``fft_twiddles_q31`` (378,) int32 (per j = 1..63: cos, sin of 2 pi m j / 256 for
        m = 1, 2, 3, Q31), ``split_twiddles_q31`` (254,) int32 (per k = 1..127: cos, sin of
        2 pi k / 512, Q31), ``sqrt_table`` (48,) uint16 (:func:`intmath.magnitude_table`),
        ``mel_start``/``mel_count`` (n_mels,) int16 (the band's first bin and bin count; the
        C reads them as ``mel_bands`` (n_mels,) uint32 = start | n << 16 | has_bin_256 << 31,
        n the bins below 256), ``mel_weights_q15`` (nnz,) uint16,
        ``log2_table_q24`` (129,) int32, ``snr_code_table`` (142,) uint16
        (:func:`snr_code_table`), ``log_eps`` (16,) int32 (1e-8 in mel units per block
        shift).
    Raises:
        FrontendError: wrong mel_fb shape, non-finite or negative or >= 2 weights,
            non-finite noise_scale or |noise_scale| >= 2^24.
    """
    fb = np.asarray(mel_fb, dtype=np.float64)
    if fb.ndim != 2 or fb.shape[1] != N_BINS or fb.shape[0] < 1:
        raise FrontendError(f"mel_fb: expected shape (n_mels, {N_BINS}), got {tuple(fb.shape)}")
    if not np.isfinite(fb).all() or (fb < 0).any() or (fb >= 2).any():
        raise FrontendError("mel_fb: weights must be finite and in [0, 2)")
    ns = float(noise_scale)
    if not math.isfinite(ns):
        raise FrontendError(f"snr_estimator.noise_scale: not finite ({ns})")
    ns = abs(ns)
    if ns >= 2.0 ** 24:
        raise FrontendError(f"snr_estimator.noise_scale: |{ns}| is too large (>= 2^24)")
    n_mels = fb.shape[0]

    n = np.arange(N_FFT)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    full = im.round_half_away(hann * 2 ** WINDOW_FRAC)
    q = np.arange(64)
    cols = [full[2 * q + 128 * j + e] for j in range(4) for e in range(2)]
    cols.append(32 * np.array([_rev3(i) for i in q]))
    window = np.stack(cols, axis=1).astype(np.int32).reshape(-1)

    j = np.arange(1, 64)
    ang = 2 * np.pi * j[:, None] * np.arange(1, 4)[None, :] / HALF      # (63, 3)
    fft_tw = np.stack([_q31(np.cos(ang)), _q31(np.sin(ang))], axis=-1).reshape(-1)
    k = np.arange(1, HALF // 2)
    split_tw = np.stack([_q31(np.cos(2 * np.pi * k / N_FFT)), _q31(np.sin(2 * np.pi * k / N_FFT))],
                        axis=-1).reshape(-1)

    starts, counts, weights = [], [], []
    for row in fb:
        nz = np.nonzero(row)[0]
        if len(nz) == 0:
            starts.append(0)
            counts.append(0)
            continue
        a, b = int(nz[0]), int(nz[-1]) + 1
        starts.append(a)
        counts.append(b - a)
        weights.append(im.round_half_away(row[a:b] * 2 ** MEL_W_FRAC))
    w_q = np.concatenate(weights) if weights else np.zeros(0, np.int64)

    code_table = snr_code_table()

    log_eps = np.array([_rha(LOG_EPS * 2.0 ** (MEL_FLOAT_SHIFT + s))
                        for s in range(MAX_BLOCK_SHIFT + 1)], dtype=np.int32)

    # Noise denominator D = noise_mult * noise + snr_eps, units 2^-(36 + G) float:
    # noise_mult in [2^14, 2^15] keeps D < 2^62 (docs/FRONTEND.md).
    if ns > 0:
        g = (NOISE_MULT_BITS - 1) - math.floor(math.log2(ns / NOISE_FRAMES))
        g = min(max(g, -10), 27)
    else:
        g = 20
    noise_mult = _rha(ns / NOISE_FRAMES * 2.0 ** g)
    snr_eps = max(1, _rha(SNR_EPS * 2.0 ** (NOISE_FLOAT_SHIFT + g)))
    norm_eps = _rha(N_FRAMES ** 2 * NORM_EPS / math.log(2) ** 2 * 2.0 ** 32)

    meta = {
        "version": 2,
        "clip_samples": CLIP, "n_fft": N_FFT, "hop": HOP, "n_frames": N_FRAMES,
        "n_bins": N_BINS, "n_mels": n_mels, "noise_frames": NOISE_FRAMES,
        "mel_nnz": int(len(w_q)),
        "window_frac": WINDOW_FRAC, "twiddle_frac": TWIDDLE_FRAC, "mel_weight_frac": MEL_W_FRAC,
        "mag_float_shift": MAG_FLOAT_SHIFT, "mel_float_shift": MEL_FLOAT_SHIFT,
        "log_frac": LOG_FRAC, "log_bits": LOG_BITS, "snr_bits": SNR_BITS,
        "snr_weight_bits": SNR_W_BITS, "tanh_in_frac": TANH_IN_FRAC,
        "snr_code_step": SNR_CODE_STEP, "feature_frac": FEATURE_FRAC,
        "noise_scale_abs": ns, "noise_mult": noise_mult, "noise_shift": g,
        "snr_eps": snr_eps, "norm_eps": norm_eps,
        "outputs": {
            "features": {"dtype": "int16", "scale": 2.0 ** -FEATURE_FRAC, "zero_point": 0},
            "snr_mel": {"dtype": "int8", "scale": 2.0 ** -SNR_BITS, "zero_point": 0},
        },
    }
    arrays = {
        "window_stage1_q25": window,
        "fft_twiddles_q31": fft_tw,
        "split_twiddles_q31": split_tw,
        "sqrt_table": im.magnitude_table(),
        "mel_start": np.array(starts, dtype=np.int16),
        "mel_count": np.array(counts, dtype=np.int16),
        "mel_bands": np.array([a | ((c - (a + c > HALF)) << 16) | (int(a + c > HALF) << 31)
                               for a, c in zip(starts, counts)], dtype=np.uint32),
        "mel_weights_q15": w_q.astype(np.uint16),
        "log2_table_q24": im.log2_table(),
        "snr_code_table": code_table,
        "log_eps": log_eps,
    }
    return {"meta": meta, "arrays": arrays}


def mel_dense_q15(params: dict) -> np.ndarray:
    """The sparse Q15 mel weights as a dense (257, n_mels) int64 matrix (test/simulator aid)."""
    a = params["arrays"]
    n_mels = len(a["mel_start"])
    dense = np.zeros((N_BINS, n_mels), dtype=np.int64)
    off = 0
    for m, (s, c) in enumerate(zip(a["mel_start"].tolist(), a["mel_count"].tolist())):
        dense[s:s + c, m] = a["mel_weights_q15"][off:off + c]
        off += c
    return dense


class MelSparse:
    """The sparse mel layout: ``apply(x, w)`` = per band, the sum over its stored bins of
    w * x, exact (as a dense product through :func:`intmath.matmul_exact`, or in gather /
    reduce form for other weight shapes)."""

    def __init__(self, params: dict):
        a = params["arrays"]
        starts, counts = a["mel_start"].astype(np.int64), a["mel_count"].astype(np.int64)
        self.cols = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)]
                                   + [np.zeros(0, np.int64)]).astype(np.intp)
        self.band = np.repeat(np.arange(len(counts)), counts).astype(np.intp)
        self.weights = a["mel_weights_q15"].astype(np.int64)
        self.offsets = (np.cumsum(counts) - counts).astype(np.intp)
        self.empty = counts == 0
        self.n_mels = len(counts)

    def dense(self, w: np.ndarray) -> np.ndarray:
        """Stored weights w (..., nnz) as dense (..., 257, n_mels) int64 matrices."""
        w = np.asarray(w)
        out = np.zeros(w.shape[:-1] + (N_BINS, self.n_mels), np.int64)
        out[..., self.cols, self.band] = w
        return out

    def apply(self, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """x (..., 257) non-negative int64, w (..., nnz) weights broadcasting against x's
        leading axes (default: the Q15 mel weights) -> (..., n_mels) int64 band sums."""
        if len(self.cols) == 0:
            return np.zeros(x.shape[:-1] + (self.n_mels,), np.int64)
        # The same sums as a dense matrix product (zero weights add exact zeros), through
        # intmath.matmul_exact (float64 BLAS when its bound proves it exact, else int64).
        if w is None:
            return im.matmul_exact(x, self.dense(self.weights))
        w = np.asarray(w)
        if x.ndim == 3 and w.ndim == 3 and w.shape[1] == 1 and w.shape[0] == x.shape[0]:
            return im.matmul_exact(x, self.dense(w[:, 0]))          # one matrix per clip
        prod = x[..., self.cols] * (self.weights if w is None else w)
        out = np.add.reduceat(prod, np.minimum(self.offsets, len(self.cols) - 1), axis=-1)
        out[..., self.empty] = 0
        return out


# ---------------------------------------------------------------------------------------
# Kernels (each has a C twin of the same name in kws_frontend.c)
# ---------------------------------------------------------------------------------------

def _bitlen(x):
    return 64 - im.clz64(x)


def fe_hop_bits(hops: np.ndarray) -> np.ndarray:
    """Bit length of each hop's peak: bitlen(OR_n (x_n >= 0 ? x_n : ~x_n)), 0..15 (so every
    sample of the hop is in [-2^b, 2^b - 1]).

    Args: hops (..., 160) int16. Returns: (...,) int64.
    """
    x = hops.astype(np.int64)
    m = np.bitwise_or.reduce(np.where(x >= 0, x, ~x), axis=-1)
    return _bitlen(m)


def fe_block_shift(hop_bits: np.ndarray) -> np.ndarray:
    """Block shift of each frame: k_t = 15 - max(hop_bits[h]) over the hops h = t-2 .. t+1
    (clamped to 0..99), which hold every sample of frame t including its reflected ones; so
    x << k_t is an int16 for every sample of the frame.

    Args: hop_bits (B, 100). Returns: (B, 101) int64 in 0..15.
    """
    b = hop_bits.shape[0]
    pad = np.concatenate([np.zeros((b, 2), np.int64), hop_bits, np.zeros((b, 2), np.int64)], axis=1)
    win = np.lib.stride_tricks.sliding_window_view(pad, 4, axis=1)[:, :N_FRAMES]
    return SAMPLE_BITS - win.max(axis=-1)


def window_natural(window_stage1: np.ndarray) -> np.ndarray:
    """The (512,) Q25 Hann window in sample order from the stage-1 table."""
    t = np.asarray(window_stage1, dtype=np.int64).reshape(64, 9)[:, :8].reshape(64, 4, 2)
    return np.ascontiguousarray(t.transpose(1, 0, 2)).reshape(N_FFT)


def fe_window(frames: np.ndarray, block_shift: np.ndarray, window_stage1: np.ndarray) -> np.ndarray:
    """Window one frame in block floating point: v = mul_q16_i16(w[n], x << k) =
    (w * x 2^k) >> 16 = x 2^k hann(n) 2^9 (floor), |v| <= 2^24 (SMULWB).

    Args: frames (..., 512) int16; block_shift (...,); window_stage1 (576,) int32 table.
    Returns: (..., 512) int64.
    """
    x = frames.astype(np.int64) << block_shift[..., None]
    return (window_natural(window_stage1) * x) >> 16


def _cmul_half(xr, xi, c, s):
    """x (c - i s) / 2 with SMMULR / SMMLAR / SMMLSR: (re, im) =
    (mul_hi_round_add32(xi, s, mul_hi_round32(xr, c)), mul_hi_round_sub32(xr, s,
    mul_hi_round32(xi, c))). Vectorised twin of the C butterflies (no wrap can occur).

    Computed as re = hr(xr c) + hr(xi s), im = hr(xi c) + floor((2^31 - xr s) / 2^32) with
    hr(p) = (p + 2^31) >> 32: bits 63..32 of a 2^32 + p + 2^31 are a + hr(p) for any
    integer a, so this is the instructions' sum split in two (in place, fewer passes)."""
    half = np.int64(1 << 31)
    pr = xr * c
    pr += half
    pr >>= 32
    t = xi * s
    t += half
    t >>= 32
    pr += t
    pi = xi * c
    pi += half
    pi >>= 32
    np.multiply(xr, s, out=t)
    np.subtract(half, t, out=t)
    t >>= 32
    pi += t
    return pr, pi


_REV3 = np.array([(((q & 3) << 4) | (q & 12) | (q >> 4)) for q in range(64)], dtype=np.intp)


def _fft256_cols(zr: np.ndarray, zi: np.ndarray, fft_twiddles: np.ndarray):
    """:func:`fe_fft256` in frame-minor layout: zr, zi (256, F) int64 (point index first, the
    frames along the contiguous last axis, so every vectorised step runs over F contiguous
    values); returns (re, im) (256, F) int64 in natural order. The same operations as
    fe_fft256, in the same order, on the same integers."""
    f = zr.shape[1]
    # stage 1: output position 4 p + k holds the 4-point DFT of the inputs q + 64 m with
    # q = rev3(p) (rev3 is an involution): gather the inputs in that order
    idx = _REV3[None, :] + 64 * np.arange(4)[:, None]                      # (4, 64)
    xr, xi = zr[idx], zi[idx]                                             # (4, 64, F)
    y0r, y1r = xr[0] + xr[2], xr[0] - xr[2]
    y2r, y3r = xr[1] + xr[3], xr[1] - xr[3]
    y0i, y1i = xi[0] + xi[2], xi[0] - xi[2]
    y2i, y3i = xi[1] + xi[3], xi[1] - xi[3]
    ar = np.empty((64, 4, f), np.int64)
    ai = np.empty((64, 4, f), np.int64)
    np.add(y0r, y2r, out=ar[:, 0]), np.add(y0i, y2i, out=ai[:, 0])
    np.add(y1r, y3i, out=ar[:, 1]), np.subtract(y1i, y3r, out=ai[:, 1])
    np.subtract(y0r, y2r, out=ar[:, 2]), np.subtract(y0i, y2i, out=ai[:, 2])
    np.subtract(y1r, y3i, out=ar[:, 3]), np.add(y1i, y3r, out=ai[:, 3])
    tw = fft_twiddles.astype(np.int64).reshape(63, 3, 2)
    for qs in (4, 16, 64):
        g = HALF // (4 * qs)
        jj = np.arange(1, qs) * (64 // qs)                     # stage-4 twiddle rows, j >= 1
        xr = ar.reshape(g, 4, qs, f)
        xi = ai.reshape(g, 4, qs, f)
        ts = []
        for m in (1, 2, 3):
            tr = np.empty((g, qs, f), np.int64)
            ti = np.empty((g, qs, f), np.int64)
            np.right_shift(xr[:, m, 0], 1, out=tr[:, 0])         # j = 0: x >> 1
            np.right_shift(xi[:, m, 0], 1, out=ti[:, 0])
            c, s_ = tw[jj - 1, m - 1, 0][:, None], tw[jj - 1, m - 1, 1][:, None]
            tr[:, 1:], ti[:, 1:] = _cmul_half(xr[:, m, 1:], xi[:, m, 1:], c, s_)
            ts.append((tr, ti))
        (t1r, t1i), (t2r, t2i), (t3r, t3i) = ts
        h0r, h0i = xr[:, 0] >> 1, xi[:, 0] >> 1
        y0r, y0i, y1r, y1i = h0r + t2r, h0i + t2i, h0r - t2r, h0i - t2i
        y2r, y2i, y3r, y3i = t1r + t3r, t1i + t3i, t1r - t3r, t1i - t3i
        nr = np.empty((g, 4, qs, f), np.int64)
        ni = np.empty((g, 4, qs, f), np.int64)
        np.add(y0r, y2r, out=nr[:, 0]), np.add(y0i, y2i, out=ni[:, 0])
        np.add(y1r, y3i, out=nr[:, 1]), np.subtract(y1i, y3r, out=ni[:, 1])
        np.subtract(y0r, y2r, out=nr[:, 2]), np.subtract(y0i, y2i, out=ni[:, 2])
        np.subtract(y1r, y3i, out=nr[:, 3]), np.add(y1i, y3r, out=ni[:, 3])
        ar, ai = nr, ni
    return ar.reshape(HALF, f), ai.reshape(HALF, f)


def fe_fft256(v: np.ndarray, fft_twiddles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """256-point complex FFT of z_m = v[2m] + i v[2m+1], radix-4 decimation in time.

    Stage 1 (4-point DFTs of z_q, z_{q+64}, z_{q+128}, z_{q+192}, written to positions
    4 rev3(q) + 0..3, no scaling; fused with the window in C). Stages 2..4 (span 16, 64, 256):
    t_m = x_m W^(m j 256/L) / 2 by :func:`_cmul_half` (x_m >> 1 for j = 0),
    y0 = (x0 >> 1) + t2, y1 = (x0 >> 1) - t2, y2 = t1 + t3, y3 = t1 - t3,
    out = (y0 + y2, y1 - i y3, y0 - y2, y1 + i y3): the result is DFT256(z) / 8.

    Args: v (F, 512) int64 windowed frames; fft_twiddles (378,) Q31 (stage 4 layout).
    Returns: (re, im) (F, 256) int64 in natural order.
    """
    vt = np.ascontiguousarray(np.asarray(v, dtype=np.int64).T)
    ar, ai = _fft256_cols(vt[0::2], vt[1::2], fft_twiddles)
    return ar.T, ai.T


def _rfft_split_cols(zr: np.ndarray, zi: np.ndarray, split_twiddles: np.ndarray):
    """:func:`fe_rfft_split` in frame-minor layout: zr, zi (256, F) -> (xr, xi) (257, F)."""
    f = zr.shape[1]
    tw = split_twiddles.astype(np.int64).reshape(127, 2)
    zk_r, zk_i = zr[1:128], zi[1:128]                  # Z_k, k = 1..127
    zn_r, zn_i = zr[255:128:-1], zi[255:128:-1]        # Z_{256-k}
    er, ei = zk_r + zn_r, zk_i - zn_i
    orr, oi = zk_r - zn_r, zk_i + zn_i
    pr, pi = _cmul_half(orr, oi, tw[:, 0:1], tw[:, 1:2])
    er >>= 1
    ei >>= 1
    xr = np.empty((N_BINS, f), np.int64)
    xi = np.empty((N_BINS, f), np.int64)
    np.add(er, pi, out=xr[1:128])
    np.subtract(ei, pr, out=xi[1:128])
    np.subtract(er, pi, out=xr[255:128:-1])
    ei += pr
    np.negative(ei, out=xi[255:128:-1])
    xr[0], xi[0] = zr[0] + zi[0], 0
    xr[HALF], xi[HALF] = zr[0] - zi[0], 0
    xr[128], xi[128] = zr[128], -zi[128]
    return xr, xi


def fe_rfft_split(zr: np.ndarray, zi: np.ndarray, split_twiddles: np.ndarray):
    """Real-FFT split: X_k = E/2 - i p with E = Z_k + conj(Z_{256-k}), O = Z_k - conj(Z_{256-k}),
    p = W^k O / 2 (:func:`_cmul_half`, W^k = e^{-2 pi i k / 512}, Q31), E/2 by an
    arithmetic shift; X_{256-k} = conj(E/2 + i p) (k = 1..127); X_0 = Z0.re + Z0.im,
    X_256 = Z0.re - Z0.im, X_128 = conj(Z_128). X = DFT512(v) / 8.

    Args: zr, zi (F, 256) int64; split_twiddles (254,) Q31.
    Returns: (xr, xi) (F, 257) int64 (xi[:, 0] = xi[:, 256] = 0); :func:`pack_spectrum`
        gives the packed form.
    """
    xr, xi = _rfft_split_cols(np.asarray(zr, np.int64).T, np.asarray(zi, np.int64).T, split_twiddles)
    return xr.T, xi.T


def pack_spectrum(xr: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """(F, 257) re/im -> the CMSIS-style packed (F, 512) [X0.re, X256.re, X1.re, X1.im, ...,
    X255.re, X255.im]."""
    packed = np.empty((xr.shape[0], N_FFT), dtype=np.int64)
    packed[:, 0] = xr[:, 0]
    packed[:, 1] = xr[:, HALF]
    packed[:, 2::2] = xr[:, 1:HALF]
    packed[:, 3::2] = xi[:, 1:HALF]
    return packed


def fe_magnitude(xr: np.ndarray, xi: np.ndarray, sqrt_table: np.ndarray) -> np.ndarray:
    """mag = magnitude_i32(X_re, X_im) ~= |X| (relative error < 1.5e-4, phase-independent),
    uint32 values; in float units |X| = mag * 2^-(21 + block_shift)."""
    return im.magnitude_i32(xr, xi, sqrt_table)


def fe_mel_log(mag: np.ndarray, block_shift: np.ndarray, mel: MelSparse,
               log2_table: np.ndarray, log_eps: np.ndarray):
    """Mel projection and log: mel = sum_k w_q15 * mag (uint64 < 2^49), then
    log_mel = log2_u64_q16(mel + log_eps[k]) - (36 + k) * 2^16, i.e. Q16 log2 of
    (mel_fb @ |X| + 1e-8) in float units (input / 32768).

    Args: mag (..., 257); block_shift (...,); mel: the sparse Q15 weights; tables.
    Returns: (mel (..., M) int64, log_mel (..., M) int64 Q16).
    """
    mel_int = mel.apply(mag)
    s = block_shift[..., None]
    lg = im.log2_u64_q16(mel_int + log_eps.astype(np.int64)[s], log2_table)
    return mel_int, lg - (s + MEL_FLOAT_SHIFT) * (1 << LOG_FRAC)


def fe_noise_weights(mag5: np.ndarray, shift5: np.ndarray, noise_mult: int, snr_eps: int,
                     mel: MelSparse):
    """Per-window SNR weights from the first 5 frames, computed once (at frame 4):
    noise_k = sum_{t<5} mag_t,k 2^(15 - k_t) (units 2^-36 float, = 5 x the mean |X|);
    D_k = noise_mult * noise_k + snr_eps (units 2^-(36+G): noise_mult = round(|ns| / 5 2^G),
    snr_eps = round(1e-8 2^(36+G))); (recip_k, recip_exp_k) = reciprocal_u64(D_k);
    per band m: F_m = min over its stored bins of recip_exp; per stored (m, k):
    C_mk = min(255, round_shift_right(w_q15 * recip_k, min(32, recip_exp_k - F_m + 23))),
    uint8, so that w_mk / D_k (float) ~= C_mk 2^(23 + 21 + G - F_m).

    Args: mag5 (B, 5, 257); shift5 (B, 5); scalars from params meta; mel layout.
    Returns: noise, denom (B, 257) int64, recip, recip_exp (B, 257) int64,
        weight_exp F (B, M) int64, weights C (B, nnz) int64.
    """
    noise = (mag5 << (NOISE_SHIFT - shift5)[..., None]).sum(axis=1)
    denom = noise * np.int64(noise_mult) + np.int64(snr_eps)
    r, e = im.reciprocal_u64(denom)
    b = mag5.shape[0]
    if len(mel.cols) == 0:
        return noise, denom, r, e, np.zeros((b, mel.n_mels), np.int64), np.zeros((b, 0), np.int64)
    e_cols = e[:, mel.cols]
    f = np.minimum.reduceat(e_cols, np.minimum(mel.offsets, len(mel.cols) - 1), axis=-1)
    f[:, mel.empty] = 0
    sh = np.minimum(32, e_cols - f[:, mel.band] + SNR_W_SHIFT)
    c = np.minimum(im.round_shift_right(mel.weights * r[:, mel.cols], sh), (1 << SNR_W_BITS) - 1)
    return noise, denom, r, e, f, c


def fe_snr_z(ssum: np.ndarray, e: np.ndarray) -> np.ndarray:
    """z = min(8, S 2^-e / 10) in Q16 for S = snr_sum (uint64 < 2^62) and the exponent e of
    the SNR sum (S_float = S 2^-e), through a normalised 32-bit mantissa: S = 0 gives 0;
    else b = bitlen(S), m = S 2^(32 - b) (truncated when b > 32; m in [2^31, 2^32)),
    sh = 16 + e + 32 - b; sh <= 40 saturates (m * round(2^32 / 10) / 2^sh > 8 2^16);
    else z = min(8 2^16, round_shift_right(m * round(2^32 / 10), min(sh, 62))).

    Args: ssum, e: int64 arrays (broadcast). Returns: int64 Q16 in [0, 8 2^16].
    """
    ssum, e = np.broadcast_arrays(np.asarray(ssum, np.int64), np.asarray(e, np.int64))
    b = _bitlen(ssum)
    d = 32 - b
    m = np.where(d >= 0, np.left_shift(ssum, np.maximum(d, 0)), ssum >> np.maximum(-d, 0))
    sh = 16 + e + d
    z = np.minimum(im.round_shift_right(m * DIV10_MULT, np.clip(sh, 0, 62)), TANH_IN_MAX)
    return np.where(ssum == 0, 0, np.where(sh <= 40, TANH_IN_MAX, z))


def fe_snr_mel(mag: np.ndarray, block_shift: np.ndarray, weights: np.ndarray,
               weight_exp: np.ndarray, noise_shift: int, mel: MelSparse,
               code_table: np.ndarray):
    """snr_mel of frames: snr_sum = sum_k C_mk mag_k (uint64); its exponent
    e = F_m + k_t - G - 23 (S_float = snr_sum 2^-e = mel_fb @ (|X| / (|ns| noise + 1e-8)));
    tanh_in = :func:`fe_snr_z` (z = S / 10 in Q16, <= 8); snr_code = :func:`fe_snr_code`
    (min(63, round(64 tanh(z))), scale 2^-6).

    Args: mag (B, T, 257); block_shift (B, T); weights (B, nnz); weight_exp (B, M); table.
    Returns: snr_sum, tanh_in, snr_code (B, T, M), all int64.
    """
    ssum = mel.apply(mag, weights[:, None, :])
    e = weight_exp[:, None, :] + block_shift[..., None] - (noise_shift + SNR_W_SHIFT)
    z = fe_snr_z(ssum, e)
    return ssum, z, fe_snr_code(z, code_table)


def fe_log_code(log_mel: np.ndarray):
    """Adaptive per-band log-mel code (block floating point over time, per band):
    log_ref = log_mel_0 >> 8 (int16, Q8), d_t = log_mel_t - log_ref 2^8 (Q16);
    band_shift = max_t kmin(d_t) with kmin(d) = max(0, bitlen(d >= 0 ? d : -d - 1) - 9);
    code_t = d_t >> band_shift (floor), a signed 10-bit value. In C the shift grows as
    frames arrive and earlier codes are shifted right again; floor shifts compose, so the
    result is the same.

    Args: log_mel (B, 101, M) Q16.
    Returns: log_ref (B, M), band_shift (B, M), log_code (B, 101, M), int64.
    """
    ref = log_mel[:, 0, :] >> LOG_REF_SHIFT
    d = log_mel - (ref << LOG_REF_SHIFT)[:, None, :]
    m = np.where(d >= 0, d, -d - 1)
    kmin = np.maximum(0, _bitlen(m) - (LOG_BITS - 1))
    kb = kmin.max(axis=1)
    return ref, kb, d >> kb[:, None, :]


def fe_instance_norm(cells: np.ndarray, band_shift: np.ndarray, norm_eps: int):
    """Instance-norm statistics per band over the 101 frames, from the stored cells:
    c = cells >> SNR_BITS; S1 = sum c; S2 = sum c^2; V = (N S2 - S1^2) 2^(2 band_shift) +
    norm_eps (= N^2 (var + 1e-5/ln2^2) in Q32 log2^2 units, N = 101);
    (rsqrt, rsqrt_exp) = rsqrt_u64(V); then the requantize constants of the features:
    P = 43 + band_shift - rsqrt_exp (feature Q11 = (N c - S1) rsqrt 2^(P - 32)),
    norm_shift = max(0, P - 8), norm_mult = rsqrt 2^(P - norm_shift) (a left shift by at
    most 8, or round_shift_right by -P when P < 0), in [2^13, 2^30].

    Returns: S1, S2, V, rsqrt, rsqrt_exp, norm_mult, norm_shift (B, M) int64.
    """
    c = cells >> SNR_BITS
    s1 = c.sum(axis=1)
    s2 = (c * c).sum(axis=1)
    v = np.left_shift(N_FRAMES * s2 - s1 * s1, 2 * band_shift) + np.int64(norm_eps)
    r, e = im.rsqrt_u64(v)
    p = 43 + band_shift - e
    la = np.maximum(0, p - 8)
    sc = p - la
    mult = np.where(sc >= 0, np.left_shift(r, np.maximum(sc, 0)), im.round_shift_right(r, np.maximum(-sc, 0)))
    return s1, s2, v, r, e, mult, la


def fe_output_row(cells: np.ndarray, s1, norm_mult, norm_shift):
    """Network inputs of frames: features = saturate_int16(mul_hi_round32((N c - S1)
    2^norm_shift, norm_mult)) (Q11 of (log - mean) / sqrt(var + 1e-5); SMMULR + SSAT in
    C), snr_mel = cells & 63 (the 6-bit code, scale 2^-6).

    Args: cells (B, T, M); per-band S1, norm_mult, norm_shift (B, M).
    Returns: features (B, T, M) int64, snr_mel (B, T, M) int64.
    """
    c = cells >> SNR_BITS
    a = (N_FRAMES * c - s1[:, None, :]) << norm_shift[:, None, :]
    feat = im.saturate_int16((a * norm_mult[:, None, :] + (1 << 31)) >> 32)
    return feat, cells - c * (1 << SNR_BITS)


# ---------------------------------------------------------------------------------------
# Whole pipeline
# ---------------------------------------------------------------------------------------

def _check_audio(audio) -> np.ndarray:
    a = np.asarray(audio)
    if a.dtype != np.int16:
        raise FrontendError(f"audio: expected int16 PCM, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != CLIP:
        raise FrontendError(f"audio: expected shape (batch, {CLIP}), got {tuple(np.shape(audio))}")
    return a


def _run_chunk(params: dict, audio: np.ndarray, keep: bool,
               engine: str = "numpy") -> dict[str, np.ndarray]:
    meta, arr = params["meta"], params["arrays"]
    b = audio.shape[0]
    out: dict[str, np.ndarray] = {}
    padded = np.pad(audio, ((0, 0), (PAD, PAD)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]
    if engine == "numba":
        hb = sim_jit.hop_bits(np.ascontiguousarray(audio).reshape(b * N_HOPS, HOP)).reshape(b, N_HOPS)
    else:
        hb = fe_hop_bits(audio.reshape(b, N_HOPS, HOP))
    s = fe_block_shift(hb)
    f = b * N_FRAMES
    if engine == "numba":
        # window + FFT + split + magnitude per frame, compiled (export/sim_jit.py mirrors
        # the numpy code below operation for operation; tests/test_sim_jit.py checks it)
        mag, v, zr, zi, xr, xi = sim_jit.fft_chain(
            np.ascontiguousarray(frames.reshape(f, N_FFT)), np.ascontiguousarray(s.reshape(f)),
            window_natural(arr["window_stage1_q25"]),
            arr["fft_twiddles_q31"].astype(np.int64).reshape(63, 3, 2),
            arr["split_twiddles_q31"].astype(np.int64).reshape(127, 2),
            np.ascontiguousarray(arr["sqrt_table"], np.int64), keep)   # C-contiguous: one compiled variant
        mag = mag.reshape(b, N_FRAMES, N_BINS)
        v, zr, zi, xr, xi = v.T, zr.T, zi.T, xr.T, xi.T       # frame-minor, as below
    else:
        # fe_window, fe_fft256, fe_rfft_split and fe_magnitude in frame-minor layout (sample or
        # bin index first, the F frames contiguous): the same operations on the same integers,
        # with long contiguous inner loops. The window is fe_window's arithmetic
        # ((w * (x << k)) >> 16) written for this layout; fe_fft256 and fe_rfft_split wrap the
        # same _fft256_cols / _rfft_split_cols helpers used here.
        ft = np.ascontiguousarray(frames.transpose(2, 0, 1)).reshape(N_FFT, f)
        v = ft.astype(np.int64)
        v <<= s.reshape(1, f)
        v *= window_natural(arr["window_stage1_q25"])[:, None]
        v >>= 16
        zr, zi = _fft256_cols(v[0::2], v[1::2], arr["fft_twiddles_q31"])
        xr, xi = _rfft_split_cols(zr, zi, arr["split_twiddles_q31"])
        mag = fe_magnitude(xr, xi, arr["sqrt_table"]).T.reshape(b, N_FRAMES, N_BINS)
    sparse = MelSparse(params)
    mel, log_mel = fe_mel_log(mag, s, sparse, arr["log2_table_q24"], arr["log_eps"])
    noise, denom, recip, rexp, wexp, wts = fe_noise_weights(
        mag[:, :NOISE_FRAMES], s[:, :NOISE_FRAMES], meta["noise_mult"], meta["snr_eps"], sparse)
    ssum, z, scode = fe_snr_mel(mag, s, wts, wexp, meta["noise_shift"], sparse,
                                arr["snr_code_table"])
    ref, kb, code = fe_log_code(log_mel)
    cells = code * (1 << SNR_BITS) + scode
    s1, s2, var, rs, rse, nmul, nsh = fe_instance_norm(cells, kb, meta["norm_eps"])
    feat, snr_mel = fe_output_row(cells, s1, nmul, nsh)
    if keep:
        fft = np.empty((f, N_FFT), np.int64)
        fft[:, 0::2], fft[:, 1::2] = zr.T, zi.T
        local = {
            "frames": frames, "hop_bits": hb, "block_shift": s,
            "windowed": v.T.reshape(b, N_FRAMES, N_FFT),
            "fft": fft.reshape(b, N_FRAMES, N_FFT),
            "spectrum": pack_spectrum(xr.T, xi.T).reshape(b, N_FRAMES, N_FFT),
            "mag": mag, "mel": mel, "log_mel": log_mel, "noise": noise, "noise_denom": denom,
            "recip": recip, "recip_exp": rexp, "snr_weight_exp": wexp, "snr_weights": wts,
            "snr_sum": ssum, "tanh_in": z, "snr_code": scode, "log_ref": ref,
            "band_shift": kb, "log_code": code, "cells": cells, "norm_sum": s1,
            "norm_sumsq": s2, "norm_var": var, "norm_rsqrt": rs, "norm_rsqrt_exp": rse,
            "norm_mult": nmul, "norm_shift": nsh,
        }
    else:
        local = {}
    local["features"] = feat
    local["snr_mel"] = snr_mel
    for name, val in local.items():
        out[name] = np.ascontiguousarray(val).astype(INTERMEDIATES[name][0], copy=False)
    return out


#: clips per chunk of :func:`run_frontend` (small working arrays run faster; any value gives
#: the same integers)
DEFAULT_CHUNK = 2


def run_frontend(params: dict, audio: np.ndarray, *, intermediates: bool = True,
                 chunk: int = DEFAULT_CHUNK, engine: str = "auto") -> dict[str, np.ndarray]:
    """Run the fixed-point front end on a batch of 1-s clips (vectorised over clips and frames).

    Args:
        params: from :func:`make_frontend_params` (or the bundle's copy of it).
        audio: int16 PCM, (B, 16000) or (16000,) (treated as B = 1).
        intermediates: return every intermediate (see :data:`INTERMEDIATES`; large:
            ~1 MB per clip); False returns only "features" and "snr_mel".
        chunk: clips processed at a time (bounds the working memory).
        engine: "numpy" (the reference), "numba" (the window/FFT/split/magnitude chain
            compiled by :mod:`export.sim_jit`, the same integers) or "auto" (numba when it
            imports, else numpy).
    Returns:
        name -> array with the batch first, in the dtype the C uses; always
        "features" (B, 101, M) int16 (scale 2^-11) and "snr_mel" (B, 101, M) int8
        (scale 2^-6), as given in ``params["meta"]["outputs"]``.
    Raises:
        FrontendError: audio not int16 or not (B, 16000), or an empty batch.
        ValueError: unknown engine, or "numba" without numba installed.
    """
    a = _check_audio(audio)
    eng = sim_jit.resolve_engine(engine)
    parts = [_run_chunk(params, a[i:i + chunk], intermediates, eng) for i in range(0, a.shape[0], chunk)]
    if not parts:
        raise FrontendError("audio: empty batch")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def dequantize_outputs(params: dict, result: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(features, snr_mel) as float32 = (q - zero_point) * scale, from ``meta["outputs"]``."""
    outs = params["meta"]["outputs"]
    deq = []
    for name in ("features", "snr_mel"):
        o = outs[name]
        deq.append(((result[name].astype(np.float32) - o["zero_point"]) * o["scale"]).astype(np.float32))
    return deq[0], deq[1]


def render_frontend_params_c(params: dict, provenance: dict) -> dict[str, str]:
    """Render ``firmware_templates/model/frontend_params.{h,c}.j2`` for these params.

    Args:
        params: from :func:`make_frontend_params` (or the bundle).
        provenance: {"tool": "nanomamba-kws X.Y", "command": "...", "model_hash": "..."},
            written in the generated files' header (no timestamps: same inputs, same bytes).
    Returns:
        {"frontend_params.h": text, "frontend_params.c": text}.
    """
    import jinja2

    from firmware_templates import template_root

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_root() / "model")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    ctx = {"meta": params["meta"], "provenance": provenance,
           "arrays": {k: [int(v) for v in np.asarray(a).ravel()] for k, a in params["arrays"].items()}}
    return {name: env.get_template(name + ".j2").render(**ctx)
            for name in ("frontend_params.h", "frontend_params.c")}
