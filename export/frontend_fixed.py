"""The fixed-point NanoMamba audio front end (int16 PCM -> int16 features, int8 snr_mel), the
bit-exact Python twin of ``firmware_templates/kernels/kws_frontend.c``.

Each ``fe_*`` function here has a C function of the same name in ``kws_frontend.c``; the
Python works on whole batches (B clips x 101 frames at once), the C on one frame per call,
and both give the same integers. :func:`run_frontend` chains them and returns every
intermediate; :func:`make_frontend_params` turns the checkpoint's ``mel_fb`` and
``snr_estimator.noise_scale`` into the integer constants the C needs. The Q-formats, the
FFT overflow proof and the streaming design are in ``docs/FRONTEND.md``.

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
FFT_L1_BITS = 29       #: block shift keeps sum |fft_in| < 2^29 -> no FFT value reaches 2^30
TWIDDLE_FRAC = 30      #: twiddles Q30
WINDOW_FRAC = 16       #: Hann window Q16 (uint16; 1.0 saturates to 65535): x * w fits int32
MEL_W_FRAC = 15        #: mel weights Q15 (uint16, weight 1.0 = 32768)
MAG_FLOAT_SHIFT = 15 + WINDOW_FRAC  #: |X| (float units, input / 32768) = mag * 2^(block_shift - 31)
MEL_FLOAT_SHIFT = MAG_FLOAT_SHIFT + MEL_W_FRAC  #: mel (float) = mel_int * 2^(shift - 46)
LOG_FRAC = 16          #: log2 values Q16
MAX_BLOCK_SHIFT = 15   #: log_eps has one entry per block shift 0..15 (10 is the proven max)
SNR_FRAC = 12          #: per-bin SNR Q12, saturated at 2^32 - 1 (SNR ~1e6)
LOG_BITS = 10          #: log-mel code width in a cell (signed)
SNR_BITS = 6           #: snr_mel code width in a cell (unsigned)
TANH_X_MAX = 8         #: tanh table covers z in [0, 8); tanh(8) = 1 - 2.3e-7
TANH_INTERVALS = 256   #: tanh table intervals (257 entries)
TANH_IN_FRAC = 16      #: tanh input z in Q16
TANH_LUT_FRAC = TANH_IN_FRAC - int(math.log2(TANH_INTERVALS // TANH_X_MAX))  #: 11
SNR_SUM_FRAC = MEL_W_FRAC + SNR_FRAC   #: sum_k w_q * snr_q is Q27
SNR_SUM_MAX = (10 * TANH_X_MAX) << SNR_SUM_FRAC   #: z = sum / 10 >= 8 saturates tanh
DIV10_MULT = 429_496_730                          #: round(2^32 / 10)
DIV10_SHIFT = 32 + SNR_SUM_FRAC - TANH_IN_FRAC    #: 43: z_q16 = sum * DIV10_MULT >> 43
FEATURE_FRAC = 11      #: features int16 Q11 (scale 2^-11); |feature| <= sqrt(100) = 10 < 16
LOG_EPS = 1e-8
SNR_EPS = 1e-8
NORM_EPS = 1e-5

#: Intermediates returned by :func:`run_frontend` (name -> (numpy dtype, per-clip shape)).
#: The C twin (compiled with KWS_FRONTEND_TAPS) emits the same names, bytes and order.
INTERMEDIATES: dict[str, tuple[str, tuple[int, ...]]] = {
    "frames": ("int16", (N_FRAMES, N_FFT)),
    "windowed": ("int32", (N_FRAMES, N_FFT)),
    "block_shift": ("uint8", (N_FRAMES,)),
    "fft_in": ("int32", (N_FRAMES, N_FFT)),
    "spectrum": ("int32", (N_FRAMES, N_FFT)),
    "power": ("int64", (N_FRAMES, N_BINS)),
    "mag": ("uint32", (N_FRAMES, N_BINS)),
    "mel": ("int64", (N_FRAMES, None)),
    "log_mel": ("int32", (N_FRAMES, None)),
    "noise": ("int64", (N_BINS,)),
    "noise_denom": ("int64", (N_BINS,)),
    "recip": ("uint16", (N_BINS,)),
    "recip_exp": ("int8", (N_BINS,)),
    "snr": ("uint32", (N_FRAMES, N_BINS)),
    "snr_sum": ("int64", (N_FRAMES, None)),
    "tanh_in": ("int32", (N_FRAMES, None)),
    "tanh": ("int16", (N_FRAMES, None)),
    "snr_code": ("uint8", (N_FRAMES, None)),
    "log_ref": ("int32", (None,)),
    "band_shift": ("uint8", (None,)),
    "log_code": ("int16", (N_FRAMES, None)),
    "cells": ("int16", (N_FRAMES, None)),
    "norm_sum": ("int32", (None,)),
    "norm_sumsq": ("int64", (None,)),
    "norm_var": ("int64", (None,)),
    "norm_rsqrt": ("uint32", (None,)),
    "norm_rsqrt_exp": ("int8", (None,)),
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
        ``norm_eps``) and ``outputs`` = {"features": {dtype, scale, zero_point},
        "snr_mel": {...}} (static scales: features int16 scale 2^-11, snr_mel int8 scale
        2^-6, zero points 0). ``arrays`` holds integer numpy arrays: ``window_q16`` (512,)
        uint16 (periodic Hann, Q16), ``twiddle_cos_q30``/``twiddle_sin_q30`` (257,) int32 (cos/sin(2 pi k / 512)),
        ``bitrev`` (256,) uint8, ``mel_start``/``mel_count`` (n_mels,) int16,
        ``mel_weights_q15`` (nnz,) uint16, ``log2_table_q24`` (129,) int32,
        ``tanh_table_q15`` (257,) int16, ``log_eps`` (16,) int32 (1e-8 in mel units per
        block shift).
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
    window = np.minimum(im.round_half_away(hann * 2 ** WINDOW_FRAC), 2 ** 16 - 1).astype(np.uint16)
    s_max = 32768 * int(window.astype(np.int64).sum())
    assert s_max.bit_length() - FFT_L1_BITS <= 10  # proven max block shift (docs/FRONTEND.md)

    k = np.arange(N_BINS)
    cos_t = im.round_half_away(np.cos(2 * np.pi * k / N_FFT) * 2 ** TWIDDLE_FRAC).astype(np.int32)
    sin_t = im.round_half_away(np.sin(2 * np.pi * k / N_FFT) * 2 ** TWIDDLE_FRAC).astype(np.int32)
    bitrev = np.array([int(f"{i:08b}"[::-1], 2) for i in range(HALF)], dtype=np.uint8)

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

    log_eps = np.array([_rha(LOG_EPS * 2.0 ** (MEL_FLOAT_SHIFT - s))
                        for s in range(MAX_BLOCK_SHIFT + 1)], dtype=np.int32)

    # Noise denominator D = noise_mult * sum_{t<5} mag_t 2^s_t + snr_eps, units 2^-(31 + G);
    # noise_mult in [2^18, 2^19] keeps D < 2^61 (docs/FRONTEND.md).
    if ns > 0:
        g = 18 - math.floor(math.log2(ns / NOISE_FRAMES))
        g = min(max(g, -3), 32)
    else:
        g = 20
    noise_mult = _rha(ns / NOISE_FRAMES * 2.0 ** g)
    snr_eps = max(1, _rha(SNR_EPS * 2.0 ** (MAG_FLOAT_SHIFT + g)))
    norm_eps = _rha(N_FRAMES ** 2 * NORM_EPS / math.log(2) ** 2 * 2.0 ** 32)

    meta = {
        "version": 1,
        "clip_samples": CLIP, "n_fft": N_FFT, "hop": HOP, "n_frames": N_FRAMES,
        "n_bins": N_BINS, "n_mels": n_mels, "noise_frames": NOISE_FRAMES,
        "mel_nnz": int(len(w_q)),
        "fft_l1_bits": FFT_L1_BITS, "window_frac": WINDOW_FRAC, "twiddle_frac": TWIDDLE_FRAC, "mel_weight_frac": MEL_W_FRAC,
        "mel_float_shift": MEL_FLOAT_SHIFT, "log_frac": LOG_FRAC, "snr_frac": SNR_FRAC, "log_bits": LOG_BITS, "snr_bits": SNR_BITS,
        "tanh_in_frac": TANH_IN_FRAC, "tanh_lut_frac": TANH_LUT_FRAC,
        "feature_frac": FEATURE_FRAC,
        "noise_scale_abs": ns, "noise_mult": noise_mult, "noise_shift": g,
        "snr_eps": snr_eps, "norm_eps": norm_eps,
        "outputs": {
            "features": {"dtype": "int16", "scale": 2.0 ** -FEATURE_FRAC, "zero_point": 0},
            "snr_mel": {"dtype": "int8", "scale": 2.0 ** -SNR_BITS, "zero_point": 0},
        },
    }
    arrays = {
        "window_q16": window,
        "twiddle_cos_q30": cos_t,
        "twiddle_sin_q30": sin_t,
        "bitrev": bitrev,
        "mel_start": np.array(starts, dtype=np.int16),
        "mel_count": np.array(counts, dtype=np.int16),
        "mel_weights_q15": w_q.astype(np.uint16),
        "log2_table_q24": im.log2_table(),
        "tanh_table_q15": im.tanh_table(TANH_INTERVALS, TANH_X_MAX),
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
    """The sparse mel weights in gather/reduce form: ``apply(x)`` = x @ dense for the last
    axis of 257 bins, exact in int64 (no BLAS: each band sums its own bins only)."""

    def __init__(self, params: dict):
        a = params["arrays"]
        starts, counts = a["mel_start"].astype(np.int64), a["mel_count"].astype(np.int64)
        self.cols = np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)]
                                   + [np.zeros(0, np.int64)]).astype(np.intp)
        self.weights = a["mel_weights_q15"].astype(np.int64)
        self.offsets = (np.cumsum(counts) - counts).astype(np.intp)
        self.empty = counts == 0
        self.n_mels = len(counts)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x (..., 257) non-negative int64 -> (..., n_mels) int64 sums of w_q15 * x per band."""
        if len(self.cols) == 0:
            return np.zeros(x.shape[:-1] + (self.n_mels,), np.int64)
        prod = x[..., self.cols] * self.weights
        out = np.add.reduceat(prod, np.minimum(self.offsets, len(self.cols) - 1), axis=-1)
        out[..., self.empty] = 0
        return out


# ---------------------------------------------------------------------------------------
# Kernels (each has a C twin of the same name in kws_frontend.c)
# ---------------------------------------------------------------------------------------

def _bitlen(x):
    return 64 - im.clz64(x)


def fe_frame_window(frames: np.ndarray, window: np.ndarray):
    """Window one frame and choose its block shift (block floating point by the L1 norm).

    Args:
        frames: (..., 512) int16 samples of a reflect-padded frame.
        window: (512,) uint16 Q16 periodic Hann.
    Returns:
        windowed (..., 512) int64 = x * w (exact, |.| < 2^31, Q16 of the input LSB);
        block_shift (...,) int64 s = max(0, bitlen(sum |windowed|) - 29) in 0..10;
        fft_in (..., 512) int64 = round_shift_right(windowed, s), sum |fft_in| < 2^29 + 256.
    """
    v = frames.astype(np.int64) * window.astype(np.int64)
    s = np.maximum(0, _bitlen(np.abs(v).sum(axis=-1)) - FFT_L1_BITS)
    u = im.round_shift_right(v, s[..., None])
    return v, s, u


def fe_fft256_q30(fft_in: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray, bitrev: np.ndarray):
    """256-point complex radix-2 DIT FFT of z_m = fft_in[2m] + i fft_in[2m+1], in place in C.

    Butterfly: t = b * W rounded (W = cos - i sin of 2 pi k / 512, Q30;
    t_re = round_shift_right(b_re c + b_im s, 30), t_im = round_shift_right(b_im c - b_re s, 30)),
    a' = a + t, b' = a - t. No scaling inside: the block shift bounds every value (docs).

    Args: fft_in (F, 512) int64; twiddle tables (257,) Q30; bitrev (256,) uint8.
    Returns: (re, im) (F, 256) int64, natural order.
    """
    f = fft_in.shape[0]
    idx = bitrev.astype(np.intp)
    # Work transposed, (256, F): a butterfly's a and b rows are then contiguous blocks.
    re = np.ascontiguousarray(fft_in[:, 0::2].T)[idx]
    imag = np.ascontiguousarray(fft_in[:, 1::2].T)[idx]
    c64, s64 = cos_t.astype(np.int64), sin_t.astype(np.int64)
    half = np.int64(1 << (TWIDDLE_FRAC - 1))
    nre, nim = np.empty_like(re), np.empty_like(imag)
    tmp, tr, ti = (np.empty((HALF // 2, f), np.int64) for _ in range(3))
    length = 2
    while length <= HALF:
        h, g = length // 2, HALF // length
        k = np.arange(h) * (N_FFT // length)
        c, s = c64[k][None, :, None], s64[k][None, :, None]
        r4, i4 = re.reshape(g, 2, h, f), imag.reshape(g, 2, h, f)
        ar, br, ai, bi = r4[:, 0], r4[:, 1], i4[:, 0], i4[:, 1]
        t1, t_r, t_i = tmp.reshape(g, h, f), tr.reshape(g, h, f), ti.reshape(g, h, f)
        np.multiply(br, c, out=t_r)
        np.multiply(bi, s, out=t1)
        t_r += t1
        t_r += half
        t_r >>= TWIDDLE_FRAC
        np.multiply(bi, c, out=t_i)
        np.multiply(br, s, out=t1)
        t_i -= t1
        t_i += half
        t_i >>= TWIDDLE_FRAC
        o4, p4 = nre.reshape(g, 2, h, f), nim.reshape(g, 2, h, f)
        np.add(ar, t_r, out=o4[:, 0])
        np.subtract(ar, t_r, out=o4[:, 1])
        np.add(ai, t_i, out=p4[:, 0])
        np.subtract(ai, t_i, out=p4[:, 1])
        re, nre = nre, re
        imag, nim = nim, imag
        length *= 2
    return re.T, imag.T


def fe_rfft_split(zr: np.ndarray, zi: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray):
    """Real-FFT split: X_k = (E - i W^k O) / 2, E = Z_k + conj(Z_{256-k}),
    O = Z_k - conj(Z_{256-k}), k = 0..256 (Z_256 = Z_0), W = e^{-2 pi i / 512}:
    X_re = round_shift_right(E_re 2^30 + c O_im - s O_re, 31),
    X_im = round_shift_right(E_im 2^30 - c O_re - s O_im, 31).

    Args: zr, zi (F, 256) int64; twiddles (257,) Q30.
    Returns: (xr, xi) (F, 257) int64 (xi[:, 0] = xi[:, 256] = 0); :func:`pack_spectrum`
        gives the packed form the C keeps.
    """
    zr_t, zi_t = zr.T, zi.T                     # (256, F)
    f = zr_t.shape[1]
    zk_r = np.concatenate([zr_t, zr_t[:1]])     # Z_k, k = 0..256
    zk_i = np.concatenate([zi_t, zi_t[:1]])
    zn_r = np.concatenate([zr_t[:1], zr_t[:0:-1], zr_t[:1]])   # Z_{(256 - k) mod 256}
    zn_i = np.concatenate([zi_t[:1], zi_t[:0:-1], zi_t[:1]])
    c = cos_t.astype(np.int64)[:, None]
    s = sin_t.astype(np.int64)[:, None]
    half = np.int64(1 << TWIDDLE_FRAC)           # rounding half of the shift by 31
    er = zk_r + zn_r
    er <<= TWIDDLE_FRAC                          # * 2^30 (numpy shifts are multiplies)
    oi = zk_i + zn_i
    orr = zk_r - zn_r
    ei = zk_i - zn_i
    ei <<= TWIDDLE_FRAC
    tmp = np.empty((N_BINS, f), np.int64)
    xr = er
    xr += np.multiply(c, oi, out=tmp)
    xr -= np.multiply(s, orr, out=tmp)
    xr += half
    xr >>= TWIDDLE_FRAC + 1
    xi = ei
    xi -= np.multiply(c, orr, out=tmp)
    xi -= np.multiply(s, oi, out=tmp)
    xi += half
    xi >>= TWIDDLE_FRAC + 1
    return xr.T, xi.T


def pack_spectrum(xr: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """(F, 257) re/im -> the CMSIS-style packed (F, 512) [X0.re, X256.re, X1.re, X1.im, ...,
    X255.re, X255.im] that kws_frontend.c keeps in its scratch."""
    packed = np.empty((xr.shape[0], N_FFT), dtype=np.int64)
    packed[:, 0] = xr[:, 0]
    packed[:, 1] = xr[:, HALF]
    packed[:, 2::2] = xr[:, 1:HALF]
    packed[:, 3::2] = xi[:, 1:HALF]
    return packed


def fe_magnitude(xr: np.ndarray, xi: np.ndarray):
    """power = X_re^2 + X_im^2 (< 2^61) and mag = sqrt_u64_norm(power) (uint32, same units
    as X: 2^(block_shift - 16) input LSB). Returns (power, mag) int64 arrays."""
    p = xr * xr + xi * xi
    return p, im.sqrt_u64_norm(p)


def fe_mel_log(mag: np.ndarray, block_shift: np.ndarray, mel: MelSparse,
               log2_table: np.ndarray, log_eps: np.ndarray):
    """Mel projection and log: mel = sum_k w_q15 * mag (uint64 < 2^51), then
    log_mel = log2_u64_q16(mel + log_eps[s]) + (s - 46) * 2^16, i.e. Q16 log2 of
    (mel_fb @ |X| + 1e-8) in float units (input / 32768).

    Args: mag (..., 257); block_shift (...,); mel: the sparse Q15 weights; tables.
    Returns: (mel (..., M) int64, log_mel (..., M) int64 Q16).
    """
    mel_int = mel.apply(mag)
    s = block_shift[..., None]
    lg = im.log2_u64_q16(mel_int + log_eps.astype(np.int64)[s], log2_table)
    return mel_int, lg + (s - MEL_FLOAT_SHIFT) * (1 << LOG_FRAC)


def fe_noise_reciprocal(mag5: np.ndarray, shift5: np.ndarray, noise_mult: int, noise_shift: int,
                        snr_eps: int):
    """Per-bin noise reciprocal from the first 5 frames, computed once per window:
    noise = sum_{t<5} mag_t * 2^s_t (units 2^-31 float), D = noise_mult * noise + snr_eps
    (units 2^-(31+G): noise_mult = round(|noise_scale| / 5 * 2^G), snr_eps = round(1e-8 *
    2^(31+G))), (recip, recip_exp) = reciprocal_u64(D).

    Args: mag5 (B, 5, 257); shift5 (B, 5); scalars from params meta.
    Returns: noise, denom (B, 257) int64, recip (B, 257) int64 (uint16 values),
        recip_exp (B, 257) int64.
    """
    noise = (mag5 * np.left_shift(np.int64(1), shift5)[..., None]).sum(axis=1)
    denom = noise * np.int64(noise_mult) + np.int64(snr_eps)
    r, e = im.reciprocal_u64(denom)
    return noise, denom, r, e


def fe_snr_mel(mag: np.ndarray, block_shift: np.ndarray, recip: np.ndarray, recip_exp: np.ndarray,
               noise_shift: int, mel: MelSparse, tanh_table: np.ndarray):
    """snr_mel of one frame: snr_k = shift_round_sat_u32(mag_k * recip_k,
    recip_exp_k - s - G - 12) (Q12, = |X| / (|ns| noise + 1e-8)); snr_sum = sum_k w_q15 *
    snr_k (Q27); tanh_in = min(round_shift_right(min(snr_sum, 80 * 2^27) * round(2^32/10),
    43), 8 * 2^16) (z = snr_sum / 10 in Q16); tanh = lut_lerp_i16(tanh table, 257, tanh_in,
    11) (Q15); snr_code = min(63, round_shift_right(tanh, 9)) (scale 2^-6).

    Args: mag (B, T, 257); block_shift (B, T); recip, recip_exp (B, 257); tables.
    Returns: snr (B, T, 257), snr_sum, tanh_in, tanh, snr_code (B, T, M), all int64.
    """
    prod = mag * recip[:, None, :]
    sh = recip_exp[:, None, :] - block_shift[..., None] - (noise_shift + SNR_FRAC)
    snr = im.shift_round_sat_u32(prod, sh)
    ssum = mel.apply(snr)
    z = im.round_shift_right(np.minimum(ssum, SNR_SUM_MAX) * DIV10_MULT, DIV10_SHIFT)
    z = np.minimum(z, TANH_X_MAX << TANH_IN_FRAC)
    t = im.lut_lerp_i16(tanh_table, len(tanh_table), z, TANH_LUT_FRAC)
    code = np.minimum(im.round_shift_right(t, 15 - SNR_BITS), (1 << SNR_BITS) - 1)
    return snr, ssum, z, t, code


def fe_log_code(log_mel: np.ndarray):
    """Adaptive per-band log-mel code (block floating point over time, per band):
    d_t = log_mel_t - log_mel_0 (Q16); band_shift = max_t kmin(d_t) with
    kmin(d) = max(0, bitlen(d >= 0 ? d : -d - 1) - (LOG_BITS - 1)); code_t = d_t >> band_shift
    (floor), a signed LOG_BITS-bit value. In C the shift grows as frames arrive and earlier
    codes are shifted right again; floor shifts compose, so the result is the same.

    Args: log_mel (B, 101, M) Q16.
    Returns: log_ref (B, M), band_shift (B, M), log_code (B, 101, M), int64.
    """
    ref = log_mel[:, 0, :]
    d = log_mel - ref[:, None, :]
    m = np.where(d >= 0, d, -d - 1)
    kmin = np.maximum(0, _bitlen(m) - (LOG_BITS - 1))
    kb = kmin.max(axis=1)
    return ref, kb, d >> kb[:, None, :]


def fe_instance_norm(cells: np.ndarray, band_shift: np.ndarray, norm_eps: int):
    """Instance-norm statistics per band over the 101 frames, from the stored cells:
    c = cells >> SNR_BITS; S1 = sum c; S2 = sum c^2; V = (N S2 - S1^2) 2^(2 band_shift) +
    norm_eps (= N^2 (var + 1e-5/ln2^2) in Q32 log2^2 units, N = 101);
    (rsqrt, rsqrt_exp) = rsqrt_u64(V).

    Returns: S1, S2, V, rsqrt, rsqrt_exp (B, M) int64.
    """
    c = cells >> SNR_BITS
    s1 = c.sum(axis=1)
    s2 = (c * c).sum(axis=1)
    v = np.left_shift(N_FRAMES * s2 - s1 * s1, 2 * band_shift) + np.int64(norm_eps)
    r, e = im.rsqrt_u64(v)
    return s1, s2, v, r, e


def fe_output_row(cells: np.ndarray, band_shift, s1, rsqrt, rsqrt_exp):
    """Network inputs of frames: features = saturate_int16(round_shift_right((N c - S1) *
    rsqrt, rsqrt_exp - band_shift - 11)) (Q11 = (log - mean) / sqrt(var + 1e-5)),
    snr_mel = cells & 63 (the 6-bit code, scale 2^-6).

    Args: cells (B, T, M); per-band stats (B, M).
    Returns: features (B, T, M) int64, snr_mel (B, T, M) int64.
    """
    c = cells >> SNR_BITS
    a = N_FRAMES * c - s1[:, None, :]
    sh = (rsqrt_exp - band_shift - FEATURE_FRAC)[:, None, :]
    feat = im.saturate_int16(im.round_shift_right(a * rsqrt[:, None, :], sh))
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


def _run_chunk(params: dict, audio: np.ndarray, keep: bool) -> dict[str, np.ndarray]:
    meta, arr = params["meta"], params["arrays"]
    b = audio.shape[0]
    out: dict[str, np.ndarray] = {}
    padded = np.pad(audio, ((0, 0), (PAD, PAD)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=1)[:, ::HOP]
    v, s, u = fe_frame_window(frames, arr["window_q16"])
    f = b * N_FRAMES
    zr, zi = fe_fft256_q30(u.reshape(f, N_FFT), arr["twiddle_cos_q30"], arr["twiddle_sin_q30"],
                           arr["bitrev"])
    xr, xi = fe_rfft_split(zr, zi, arr["twiddle_cos_q30"], arr["twiddle_sin_q30"])
    power, mag = fe_magnitude(xr, xi)
    mag = mag.reshape(b, N_FRAMES, N_BINS)
    sparse = MelSparse(params)
    mel, log_mel = fe_mel_log(mag, s, sparse, arr["log2_table_q24"], arr["log_eps"])
    noise, denom, recip, rexp = fe_noise_reciprocal(
        mag[:, :NOISE_FRAMES], s[:, :NOISE_FRAMES], meta["noise_mult"], meta["noise_shift"],
        meta["snr_eps"])
    snr, ssum, z, th, scode = fe_snr_mel(mag, s, recip, rexp, meta["noise_shift"], sparse,
                                         arr["tanh_table_q15"])
    ref, kb, code = fe_log_code(log_mel)
    cells = code * (1 << SNR_BITS) + scode
    s1, s2, var, rs, rse = fe_instance_norm(cells, kb, meta["norm_eps"])
    feat, snr_mel = fe_output_row(cells, kb, s1, rs, rse)
    if keep:
        local = {
            "frames": frames, "windowed": v, "block_shift": s, "fft_in": u,
            "spectrum": pack_spectrum(xr, xi).reshape(b, N_FRAMES, N_FFT),
            "power": power.reshape(b, N_FRAMES, N_BINS), "mag": mag, "mel": mel,
            "log_mel": log_mel, "noise": noise, "noise_denom": denom, "recip": recip,
            "recip_exp": rexp, "snr": snr, "snr_sum": ssum, "tanh_in": z, "tanh": th,
            "snr_code": scode, "log_ref": ref, "band_shift": kb, "log_code": code,
            "cells": cells, "norm_sum": s1, "norm_sumsq": s2, "norm_var": var,
            "norm_rsqrt": rs, "norm_rsqrt_exp": rse,
        }
    else:
        local = {}
    local["features"] = feat
    local["snr_mel"] = snr_mel
    for name, val in local.items():
        out[name] = np.ascontiguousarray(val).astype(INTERMEDIATES[name][0], copy=False)
    return out


def run_frontend(params: dict, audio: np.ndarray, *, intermediates: bool = True,
                 chunk: int = 8) -> dict[str, np.ndarray]:
    """Run the fixed-point front end on a batch of 1-s clips (vectorised over clips and frames).

    Args:
        params: from :func:`make_frontend_params` (or the bundle's copy of it).
        audio: int16 PCM, (B, 16000) or (16000,) (treated as B = 1).
        intermediates: return every intermediate (see :data:`INTERMEDIATES`; large:
            ~1 MB per clip); False returns only "features" and "snr_mel".
        chunk: clips processed at a time (bounds the working memory).
    Returns:
        name -> array with the batch first, in the dtype the C uses; always
        "features" (B, 101, M) int16 (scale 2^-11) and "snr_mel" (B, 101, M) int8
        (scale 2^-6), as given in ``params["meta"]["outputs"]``.
    Raises:
        FrontendError: audio not int16 or not (B, 16000).
    """
    a = _check_audio(audio)
    parts = [_run_chunk(params, a[i:i + chunk], intermediates) for i in range(0, a.shape[0], chunk)]
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
