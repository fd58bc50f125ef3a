"""numba-compiled kernels of the simulator's hottest loops (front-end FFT chain, SA-SSM
discretisation and recurrence): the same integer formulas as the numpy reference functions
they replace, computed per frame / per channel instead of per whole-array pass.

Each kernel names the numpy function it mirrors; ``tests/test_sim_jit.py`` checks that both
give identical integers (hypothesis on edge values and real clips). Exactness argument:
every operation is the numpy code's own int64 operation (``+``, ``-``, ``*`` wrap modulo
2^64 in both numpy and numba/LLVM; ``>>`` is an arithmetic shift in both), in the same order,
with shift amounts that are constants or proven to lie in 0..63 (LLVM leaves larger shifts
undefined where numpy clamps; none occurs: see each kernel). The one float operation
(the magnitude's Newton-step division) is the same float64 division and truncation as
:func:`export.intmath.magnitude_i32`.

Kernels are compiled with ``cache=True`` (compiled once per machine, then loaded from
``__pycache__``), ``error_model="numpy"`` (no zero-division checks: the one division,
by 2 s0 >= 2^16, never divides by zero) and ``nogil=True`` (so ``Simulator.run(threads=N)`` runs chunks in
parallel). :data:`AVAILABLE` is False when numba cannot be imported; callers then use the
numpy reference (the engine ``"auto"`` does this silently).
"""

from __future__ import annotations

import numpy as np

try:                                                     # pragma: no cover - import guard
    import numba
    AVAILABLE = True
except Exception:                                        # pragma: no cover
    numba = None
    AVAILABLE = False

#: simulator engines: "numpy" (the reference), "numba" (these kernels), "auto" (numba when
#: importable, else numpy)
ENGINES = ("auto", "numpy", "numba")


def resolve_engine(engine: str) -> str:
    """"auto" -> "numba" if numba imports, else "numpy"; "numpy"/"numba" unchanged.

    Raises: ValueError for an unknown engine name, or "numba" when numba is absent.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        return "numba" if AVAILABLE else "numpy"
    if engine == "numba" and not AVAILABLE:
        raise ValueError("engine 'numba': numba is not installed")
    return engine


def _njit(fn):
    if not AVAILABLE:                                    # pragma: no cover
        return fn
    return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)


# ---------------------------------------------------------------------------------------
# Front end: window + fe_fft256 + fe_rfft_split + fe_magnitude per frame
# ---------------------------------------------------------------------------------------

@_njit
def _cmul_half(xr, xi, c, s):
    # frontend_fixed._cmul_half: |x| < 2^31 and |c|, |s| < 2^31, so every product is
    # < 2^62 and no sum wraps (the numpy code relies on the same bound)
    half = np.int64(1) << 31
    pr = ((xr * c + half) >> 32) + ((xi * s + half) >> 32)
    pi = ((xi * c + half) >> 32) + ((half - xr * s) >> 32)
    return pr, pi


@_njit
def _bitlen64(x):
    # bit length of a non-negative int64 (0 for 0): numpy's 64 - clz64(x)
    n = 0
    if x >= np.int64(1) << 32:
        x >>= 32
        n += 32
    if x >= 1 << 16:
        x >>= 16
        n += 16
    if x >= 1 << 8:
        x >>= 8
        n += 8
    if x >= 1 << 4:
        x >>= 4
        n += 4
    if x >= 1 << 2:
        x >>= 2
        n += 2
    if x >= 1 << 1:
        x >>= 1
        n += 1
    return n + x


@_njit
def fft_chain(frames, shift, window, fft_tw, split_tw, sqrt_table, keep):
    """Window, 256-point FFT, real split and magnitude of each frame (frame-major).

    Mirrors, for each frame f, ``v = (int64(frame) << shift[f]) * window >> 16``
    (frontend_fixed._run_chunk / fe_window), :func:`frontend_fixed._fft256_cols`,
    :func:`frontend_fixed._rfft_split_cols` and :func:`intmath.magnitude_i32`.

    Args:
        frames: (F, 512) int16 (any strides); shift: (F,) int64 block shifts 0..15;
        window: (512,) int64 Q25 natural-order window; fft_tw: (63, 3, 2) int64 Q31;
        split_tw: (127, 2) int64 Q31; sqrt_table: (48,) int64; keep: also fill the
        intermediates.
    Returns:
        mag (F, 257) int64; v (F, 512), zr, zi (F, 256), xr, xi (F, 257) int64 when keep
        (else arrays with 0 rows).
    """
    nf = frames.shape[0]
    mag = np.empty((nf, 257), np.int64)
    nk = nf if keep else 0
    v_out = np.empty((nk, 512), np.int64)
    zr_out = np.empty((nk, 256), np.int64)
    zi_out = np.empty((nk, 256), np.int64)
    xr_out = np.empty((nk, 257), np.int64)
    xi_out = np.empty((nk, 257), np.int64)
    v = np.empty(512, np.int64)
    ar = np.empty(256, np.int64)
    ai = np.empty(256, np.int64)
    br = np.empty(256, np.int64)
    bi = np.empty(256, np.int64)
    xr = np.empty(257, np.int64)
    xi = np.empty(257, np.int64)
    rev3 = np.empty(64, np.int64)
    for q in range(64):
        rev3[q] = ((q & 3) << 4) | (q & 12) | (q >> 4)
    for f in range(nf):
        s = shift[f]
        for n in range(512):
            v[n] = ((np.int64(frames[f, n]) << s) * window[n]) >> 16
        # stage 1: position 4p + k <- 4-point DFT of z_{q + 64 m}, q = rev3(p)
        for p in range(64):
            q = rev3[p]
            x0r = v[2 * q]
            x0i = v[2 * q + 1]
            x1r = v[2 * (q + 64)]
            x1i = v[2 * (q + 64) + 1]
            x2r = v[2 * (q + 128)]
            x2i = v[2 * (q + 128) + 1]
            x3r = v[2 * (q + 192)]
            x3i = v[2 * (q + 192) + 1]
            y0r = x0r + x2r
            y1r = x0r - x2r
            y2r = x1r + x3r
            y3r = x1r - x3r
            y0i = x0i + x2i
            y1i = x0i - x2i
            y2i = x1i + x3i
            y3i = x1i - x3i
            o = 4 * p
            ar[o] = y0r + y2r
            ai[o] = y0i + y2i
            ar[o + 1] = y1r + y3i
            ai[o + 1] = y1i - y3r
            ar[o + 2] = y0r - y2r
            ai[o + 2] = y0i - y2i
            ar[o + 3] = y1r - y3i
            ai[o + 3] = y1i + y3r
        # stages 2..4 (qs = 4, 16, 64)
        qs = 4
        for _stage in range(3):
            g = 256 // (4 * qs)
            step = 64 // qs
            for gi in range(g):
                base = gi * 4 * qs
                for j in range(qs):
                    i0 = base + j
                    i1 = i0 + qs
                    i2 = i1 + qs
                    i3 = i2 + qs
                    if j == 0:
                        t1r = ar[i1] >> 1
                        t1i = ai[i1] >> 1
                        t2r = ar[i2] >> 1
                        t2i = ai[i2] >> 1
                        t3r = ar[i3] >> 1
                        t3i = ai[i3] >> 1
                    else:
                        jj = j * step - 1
                        t1r, t1i = _cmul_half(ar[i1], ai[i1], fft_tw[jj, 0, 0], fft_tw[jj, 0, 1])
                        t2r, t2i = _cmul_half(ar[i2], ai[i2], fft_tw[jj, 1, 0], fft_tw[jj, 1, 1])
                        t3r, t3i = _cmul_half(ar[i3], ai[i3], fft_tw[jj, 2, 0], fft_tw[jj, 2, 1])
                    h0r = ar[i0] >> 1
                    h0i = ai[i0] >> 1
                    y0r = h0r + t2r
                    y0i = h0i + t2i
                    y1r = h0r - t2r
                    y1i = h0i - t2i
                    y2r = t1r + t3r
                    y2i = t1i + t3i
                    y3r = t1r - t3r
                    y3i = t1i - t3i
                    br[i0] = y0r + y2r
                    bi[i0] = y0i + y2i
                    br[i1] = y1r + y3i
                    bi[i1] = y1i - y3r
                    br[i2] = y0r - y2r
                    bi[i2] = y0i - y2i
                    br[i3] = y1r - y3i
                    bi[i3] = y1i + y3r
            ar, br = br, ar
            ai, bi = bi, ai
            qs *= 4
        # real-FFT split
        for k in range(1, 128):
            n_ = 256 - k
            er = ar[k] + ar[n_]
            ei = ai[k] - ai[n_]
            orr = ar[k] - ar[n_]
            oi = ai[k] + ai[n_]
            pr, pi = _cmul_half(orr, oi, split_tw[k - 1, 0], split_tw[k - 1, 1])
            er >>= 1
            ei >>= 1
            xr[k] = er + pi
            xi[k] = ei - pr
            xr[n_] = er - pi
            xi[n_] = -(ei + pr)
        xr[0] = ar[0] + ai[0]
        xi[0] = 0
        xr[256] = ar[0] - ai[0]
        xi[256] = 0
        xr[128] = ar[128]
        xi[128] = -ai[128]
        # magnitude_i32: p < 2^61; n = clz64(max(p, 1)) & ~1 (0..62, even); m = top 32 bits
        # of p << n = p >> (32 - n) or p << (n - 32) (p << n fits 64 bits unsigned by the
        # choice of n); the Newton division is numpy's float64 divide + trunc
        for k in range(257):
            re = xr[k]
            im_ = xi[k]
            pw = re * re + im_ * im_
            if pw == 0:
                mag[f, k] = 0
                continue
            nn = (64 - _bitlen64(pw)) & ~1
            if nn >= 32:
                m = pw << (nn - 32)
            else:
                m = pw >> (32 - nn)
            s0 = sqrt_table[(m >> 26) - 16]
            d = m - s0 * s0
            qd = np.int64(np.trunc(np.float64(d) / (2.0 * np.float64(s0))))
            mag[f, k] = ((s0 + qd) << 16) >> (nn >> 1)
        if keep:
            for n in range(512):
                v_out[f, n] = v[n]
            for n in range(256):
                zr_out[f, n] = ar[n]
                zi_out[f, n] = ai[n]
            for n in range(257):
                xr_out[f, n] = xr[n]
                xi_out[f, n] = xi[n]
    return mag, v_out, zr_out, zi_out, xr_out, xi_out


# ---------------------------------------------------------------------------------------
# Network: SA-SSM discretisation (dA) + recurrence + the readout's C.h sum
# ---------------------------------------------------------------------------------------

@_njit
def ssm_scan(delta, du, bg, C, k_a, p_shift, exp_frac_bits, exp_table, x_mult, F, h_min,
             h_max, h_read_shift, dA, hs, need_acc):
    """dA, the states h and the readout sums of an SA-SSM over all frames.

    Mirrors :func:`simulator.ssm_discretize` (dA = exp2_neg_lookup(round_shift_right32(
    mul_q16(K, delta), p_shift), fb, table)), :func:`simulator._ssm_recurrence`
    (h_t = clamp((dA h_{t-1} + (du B~ x_mult + 2^(F-1))) >> F), h_0 = 0) and the first
    step of :func:`simulator.ssm_readout` (acc = sum_n C_n round_shift_right(h_n,
    h_read_shift[e]), an int64 sum: wrapping addition is order-independent, so this equals
    numpy's einsum exactly).

    Shift amounts: p_shift, F and h_read_shift in 0..63 (checked by the caller, which
    otherwise uses numpy); exp2's integer part is min(p >> fb, 31), and a negative one
    (only for a negative p) gives numpy's result for a negative shift count (0 or -1).

    Args:
        delta, du: (B, T, E) int64; bg, C: (B, T, N) int64; k_a: (E, N) int64;
        exp_table: (2^fb,) int64; x_mult: (E,) int64 (2^x_shift, numpy's left shift);
        h_read_shift: (E,) int64; dA, hs: (B, T, E, N) output arrays of any integer dtype
        (the values are stored with numpy's ``astype`` conversion: modulo 2^bits, as C
        casts; h is clamped to [h_min, h_max] first); need_acc: compute acc.
    Returns:
        acc (B, T, E) int64 (0 rows when not need_acc); fills dA and hs.
    """
    nb, nt, ne = delta.shape
    nn = bg.shape[2]
    acc = np.zeros((nb if need_acc else 0, nt, ne), np.int64)
    h = np.zeros((ne, nn), np.int64)
    half_p = (np.int64(1) << (p_shift - 1)) if p_shift > 0 else np.int64(0)
    half_f = (np.int64(1) << (F - 1)) if F > 0 else np.int64(0)
    mask = (np.int64(1) << exp_frac_bits) - 1
    for b in range(nb):
        h[:, :] = 0
        for t in range(nt):
            for e in range(ne):
                d = delta[b, t, e]
                due = du[b, t, e]
                xm = x_mult[e]
                hrs = h_read_shift[e]
                half_r = (np.int64(1) << (hrs - 1)) if hrs > 0 else np.int64(0)
                a = np.int64(0)
                for n in range(nn):
                    p = (((k_a[e, n] * d) >> 16) + half_p) >> p_shift
                    ip = min(p >> exp_frac_bits, 31)
                    tab = exp_table[p & mask]
                    if ip >= 0:
                        da = tab >> ip
                    else:
                        da = np.int64(-1) if tab < 0 else np.int64(0)
                    dA[b, t, e, n] = da
                    x = due * bg[b, t, n]
                    x = x * xm
                    x = x + half_f
                    hv = ((da * h[e, n]) + x) >> F
                    if hv < h_min:
                        hv = h_min
                    if hv > h_max:
                        hv = h_max
                    h[e, n] = hv
                    hs[b, t, e, n] = hv
                    if need_acc:
                        a += C[b, t, n] * ((hv + half_r) >> hrs)
                if need_acc:
                    acc[b, t, e] = a
    return acc


# ---------------------------------------------------------------------------------------
# Small fused element-wise kernels
# ---------------------------------------------------------------------------------------

@_njit
def hop_bits(hops):
    """:func:`frontend_fixed.fe_hop_bits`: bitlen(OR_n (x_n >= 0 ? x_n : ~x_n)) per hop.

    Args: hops (R, 160) int16 (any strides). Returns: (R,) int64 in 0..15.
    """
    r = hops.shape[0]
    out = np.empty(r, np.int64)
    for i in range(r):
        m = np.int64(0)
        for n in range(hops.shape[1]):
            x = np.int64(hops[i, n])
            m |= x if x >= 0 else ~x
        out[i] = _bitlen64(m)
    return out


@_njit
def requantize_mbqm(acc, multiplier, shift, out_zp, qmin, qmax):
    """clamp(out_zp + multiply_by_quantized_multiplier(acc, m[o], s[o]), qmin, qmax) per
    element of (R, O), the tail of :func:`simulator.fully_connected`.

    Mirrors :func:`intmath.multiply_by_quantized_multiplier` element by element: its three
    branches all compute xs = clip(x * 2^left, int32) (x * 1 = x when left = 0);
    saturating_rounding_doubling_high_mul: (xs m + 2^30) >> 31, INT32_MAX when
    xs = m = INT32_MIN (the only way to exceed int32 for int32 operands; numpy's where has
    the same condition); rounding_divide_by_pot: (y - [y < 0 and e > 0] + (2^e >> 1)) >> e
    (numpy's three branches are this formula). Shifts: left, right in 0..62 (caller checks).

    Args: acc (R, O) int64; multiplier, shift (O,) int64; scalars out_zp, qmin, qmax.
    Returns: (R, O) int64.
    """
    r, o = acc.shape
    out = np.empty((r, o), np.int64)
    i32min = -(np.int64(1) << 31)
    i32max = (np.int64(1) << 31) - 1
    for j in range(o):
        m = multiplier[j]
        s = shift[j]
        left = s if s > 0 else 0
        right = -s if s < 0 else 0
        lm = np.int64(1) << left
        rnd = (np.int64(1) << right) >> 1
        for i in range(r):
            xs = acc[i, j] * lm
            if xs < i32min:
                xs = i32min
            elif xs > i32max:
                xs = i32max
            if xs == i32min and m == i32min:
                y = i32max
            else:
                y = (xs * m + (np.int64(1) << 30)) >> 31
            if y < 0 and right > 0:
                y -= 1
            y = ((y + rnd) >> right) + out_zp
            if y < qmin:
                y = qmin
            elif y > qmax:
                y = qmax
            out[i, j] = y
    return out
