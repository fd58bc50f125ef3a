"""Bit-exact integer reference simulator of a quantized NanoMamba bundle (numpy, no torch).

``Simulator(bundle).run(audio)`` takes int16 PCM clips (B, 16000) and returns every named
tensor of the integer pipeline: the front end's intermediates (``frontend.*``), its outputs
``features`` and ``snr_mel``, then every op output of the bundle's op list (``patch``,
``blocks.{i}.u`` ... ``logits``) and the SA-SSM's internal tensors (``blocks.{i}.dA``,
``blocks.{i}.du``, ``blocks.{i}.h``). Per-frame tensors have shape (B, T, ...) with T = 101
frames, ``h`` and ``dA`` (B, T, d_inner, d_state); ``pooled`` and ``logits`` (B, ...). Values
are the integers the firmware computes, stored in the tensor's dtype (int8/int16/int32).
The predicted class is ``label`` (B, 1) int32: the argmax of ``logits_fine`` (B, n_classes)
int32, the classifier's accumulators on a grid 2^16 times finer than the int8 ``logits``
(docs/QUANTIZATION.md, "The label"); it is not always the argmax of the int8 logits (ties).

Kernels
-------
Each kernel below is a numpy function over any leading (batch, time) shape, built only from
:mod:`export.intmath` primitives; each has a C twin of the same name in
``firmware_templates/kernels/kws_nn.c`` that processes one frame (tests/test_nn_kernels.py
compares them byte for byte). docs/QUANTIZATION.md states every formula. The simulator runs
the per-frame kernels on all frames at once where the op is pointwise in time (the same
integers as frame by frame); the only loop over the 101 frames is the SA-SSM state update
(:func:`ssm_update`). The causal conv and the SA-SSM step are also given in their one-frame
form (:func:`conv1d_depthwise_step`, :func:`sa_ssm_step`), which a test checks against the
sequence form.

Integer matrix products are exact: :func:`intmath.matmul_exact` runs them through float64
BLAS when a bound computed from the operands proves that every partial sum is an integer
below 2^53 (so every float64 addition and multiplication is exact, in any order), and in
int64 otherwise; every accumulator is bounded below 2^31 by the quantizer's checks.
:meth:`Simulator.run` works in chunks of :attr:`Simulator.chunk` clips (same integers).

Engines: the numpy functions here are the reference. ``Simulator(bundle, engine="auto")``
(the default) runs the hottest loops through the numba kernels of :mod:`export.sim_jit`
instead (front-end window/FFT/split/magnitude, the SA-SSM dA + recurrence + readout sum,
the fully-connected requantize), which compute the same integers (tests/test_sim_jit.py,
benchmarks/simulator_digest.py); ``engine="numpy"`` forces the reference path, and "auto"
falls back to it when numba is not installed.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from export import frontend_fixed, sim_jit
from export import intmath as im
from nanomamba.errors import KwsError, positive_int

_QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (im.INT32_MIN, im.INT32_MAX)}
_NP = {"int8": np.int8, "int16": np.int16, "int32": np.int32}


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def _clamp(x, qmin: int, qmax: int) -> np.ndarray:
    """Clamp to [qmin, qmax] (the kernels' output saturation, __SSAT for int8/int16 ranges)."""
    return np.clip(x, qmin, qmax)


# =======================================================================================
# kernels (C twins in firmware_templates/kernels/kws_nn.c, same names)
# =======================================================================================

def fully_connected(x, x_zp: int, weight, bias, multiplier, shift, out_zp: int, qmin: int,
                    qmax: int, single_round: bool = False) -> np.ndarray:
    """Int8-weight fully connected layer with per-channel requantize (TFLite
    FULLY_CONNECTED int8 / 16x8 semantics).

    Args:
        x: (..., K) int8- or int16-range activations with zero point ``x_zp``.
        weight: (O, K) int8, per-output-channel symmetric.
        bias: (O,) int32 (zero-point correction not folded: the kernel subtracts x_zp).
        multiplier, shift: (O,) Q31 multiplier and shift of channel o, real value
            s_x * s_w[o] / s_out.
        out_zp, qmin, qmax: output zero point and range.
        single_round: requantize with :func:`intmath.requantize_single_round` (64-bit
            product, one rounding; used for int32 outputs, whose multipliers exceed 1)
            instead of TFLite's MultiplyByQuantizedMultiplier.
    Returns:
        (..., O) int64: clamp(out_zp + RQ(bias[o] + sum_k W[o,k] (x[k] - x_zp), m[o], s[o])).
    """
    acc = im.matmul_exact(_i64(x) - x_zp, _i64(weight).T)
    acc += _i64(bias)
    rq = im.requantize_single_round if single_round else im.multiply_by_quantized_multiplier
    return _clamp(rq(acc, multiplier, shift) + out_zp, qmin, qmax)


def _mbqm_jit_ok(shift) -> bool:
    """True when :func:`export.sim_jit.requantize_mbqm` applies (its shifts in 0..62)."""
    sh = _i64(shift)
    return sh.size == 0 or (sh.min() >= -62 and sh.max() <= 62)


def _fc_weight_cache(weight) -> tuple:
    """(W^T int64, W^T float64, max_o sum_k |W[o,k]|) of an (O, K) weight: the constant
    parts of :func:`intmath.matmul_exact`'s product and exactness bound, computed once."""
    wt = np.ascontiguousarray(_i64(weight).T)
    return wt, wt.astype(np.float64), int(np.abs(wt).sum(axis=0).max()) if wt.size else 0


def _fully_connected_jit(x, x_zp, weight, bias, multiplier, shift, out_zp, qmin, qmax,
                         wcache: tuple | None = None):
    """:func:`fully_connected` (MultiplyByQuantizedMultiplier form) with the requantize,
    zero point and clamp fused in :func:`export.sim_jit.requantize_mbqm` (same integers).
    The product is :func:`intmath.matmul_exact`'s, with its weight-side constants taken
    from ``wcache`` (:func:`_fc_weight_cache`): float64 BLAS when max|x - x_zp| * max_o
    sum_k |W[o,k]| <= 2^53 (then exact, see matmul_exact), else int64."""
    wt, wf, bsum = wcache if wcache is not None else _fc_weight_cache(weight)
    xa = _i64(x) - x_zp
    if xa.size and wt.size and max(abs(int(xa.max())), abs(int(xa.min()))) * bsum <= im.F64_EXACT:
        acc = np.matmul(xa.astype(np.float64), wf).astype(np.int64)
    else:
        acc = im.matmul_exact(xa, wt)
    acc += _i64(bias)
    o = acc.shape[-1]
    m = np.ascontiguousarray(np.broadcast_to(_i64(multiplier), (o,)))
    sh = np.ascontiguousarray(np.broadcast_to(_i64(shift), (o,)))
    y = sim_jit.requantize_mbqm(np.ascontiguousarray(acc.reshape(-1, o)), m, sh, int(out_zp),
                                int(qmin), int(qmax))
    return y.reshape(acc.shape)


def fully_connected_w16(x, x_zp, weight, bias, multiplier, shift, out_zp, qmin, qmax,
                        single_round=False):
    """:func:`fully_connected` with int16 weights (the C twin takes int16_t weights; the
    integers are the same function). Returns (..., O) int64."""
    return fully_connected(x, x_zp, weight, bias, multiplier, shift, out_zp, qmin, qmax,
                           single_round)


def conv1d_depthwise_step(state, x_t, x_zp: int, weight, bias, multiplier, shift, out_zp: int,
                          qmin: int, qmax: int):
    """One frame of the causal depthwise conv1d (kernel K, left padding K-1).

    Args:
        state: (..., K-1, E) the previous K-1 inputs, oldest first (zero_point-filled at the
            start of a clip).
        x_t: (..., E) this frame's input (zero point ``x_zp``).
        weight: (E, K) int8 per-channel; bias (E,) int32; multiplier, shift (E,).
    Returns:
        (y_t (..., E) int64, new_state (..., K-1, E)) with
        y[e] = clamp(out_zp + MBQM(bias[e] + sum_j W[e,j] (w_j[e] - x_zp), m[e], s[e])) over
        the window w = (state, x_t) (TFLite DEPTHWISE_CONV_2D int8 semantics).
    """
    win = np.concatenate([_i64(state), _i64(x_t)[..., None, :]], axis=-2)      # (..., K, E)
    acc = np.einsum("...ke,ek->...e", win - x_zp, _i64(weight)) + _i64(bias)
    y = _clamp(im.multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp, qmin, qmax)
    return y, win[..., 1:, :]


def conv1d_depthwise_step_w16(state, x_t, x_zp, weight, bias, multiplier, shift, out_zp,
                              qmin, qmax):
    """:func:`conv1d_depthwise_step` with int16 weights (C twin with int16_t weights)."""
    return conv1d_depthwise_step(state, x_t, x_zp, weight, bias, multiplier, shift, out_zp,
                                 qmin, qmax)


def _conv1d_depthwise_sequence(x, x_zp, weight, bias, multiplier, shift, out_zp, qmin, qmax):
    """:func:`conv1d_depthwise_step` applied to every frame of x (B, T, E) at once."""
    x = _i64(x) - x_zp
    K = weight.shape[1]
    pad = np.zeros(x.shape[:-2] + (K - 1, x.shape[-1]), dtype=np.int64)
    xp = np.concatenate([pad, x], axis=-2)
    T = x.shape[-2]
    acc = _i64(bias) + sum(xp[..., j:j + T, :] * _i64(weight[:, j]) for j in range(K))
    return _clamp(im.multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp, qmin, qmax)


def layer_norm(x, x_zp: int, eps_q: int, z_frac_bits: int, gamma, beta, multiplier: int,
               shift: int, out_zp: int, qmin: int, qmax: int) -> np.ndarray:
    """Integer LayerNorm over the last axis (D channels), no division.

    Args:
        x: (..., D) int16- or int8-range input with zero point ``x_zp``.
        eps_q: int64 round(D^2 eps / s_x^2), at least 1.
        z_frac_bits: Q-format of the normalised value z (Q``z_frac_bits``).
        gamma: (D,) int16 (per-tensor scale s_g); beta: (D,) int32 in units s_g 2^-zf.
        multiplier, shift: per-tensor requantize of s_g 2^-zf / s_out.
    Returns:
        (..., D) int64. Per frame the input is first brought to 16 bits (LayerNorm is scale
        invariant): k = max(0, bitlen(max |x - x_zp|) - 15), x' = round_shift_right32(x - x_zp,
        k) (k = 0 for int16 data). Then S = sum x', Q = sum x'^2 (int64),
        V = D Q - S^2 + max(1, round_shift_right(eps_q, 2k)), f = inv_sqrt_q30(V),
        s = inv_sqrt_shift(V), z = round_shift_right((D x' - S) f, s - zf)
        (= (x - mean)/sqrt(var + eps) in Q(zf)),
        out = clamp(out_zp + MBQM(gamma z + beta, multiplier, shift)).
    Source: LayerNorm (Ba et al. 2016) with (x - mean)/sqrt(var) = (D x - S)/sqrt(D Q - S^2).
    """
    x0 = _i64(x) - x_zp
    k = np.maximum(im.bitlen64(np.abs(x0).max(axis=-1, keepdims=True)) - 15, 0)
    xs = im.round_shift_right32(x0, k)
    D = xs.shape[-1]
    S = xs.sum(axis=-1, keepdims=True)
    Q = (xs * xs).sum(axis=-1, keepdims=True)
    V = D * Q - S * S + np.maximum(im.round_shift_right(int(eps_q), 2 * k), 1)
    f = im.inv_sqrt_q30(V)
    s = im.inv_sqrt_shift(V)
    z = im.round_shift_right((D * xs - S) * f, s - z_frac_bits)
    acc = _i64(gamma) * z + _i64(beta)
    return _clamp(im.multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp, qmin, qmax)


def lut_s8(x, table) -> np.ndarray:
    """Table activation of an int8 input: table[x + 128] (256 entries, the output tensor's
    quantized values, e.g. SiLU or the SNR gate). Args: x (...) int8 range; table (256,).
    Returns: (...) int64."""
    return _i64(table)[_i64(x) + 128]


def lut_s16(x, table) -> np.ndarray:
    """Table activation of an int16 input with linear interpolation (513 entries,
    :func:`intmath.lut_interp_s16`, saturated to int16; e.g. softplus for delta).
    Returns (...) int64."""
    return im.saturate_int16(im.lut_interp_s16(x, table))


def elementwise_add(a, b, a_zp: int, b_zp: int, left_shift: int, a_multiplier: int, a_shift: int,
        b_multiplier: int, b_shift: int, out_multiplier: int, out_shift: int, out_zp: int,
        qmin: int, qmax: int) -> np.ndarray:
    """Elementwise quantized add (TFLite ADD int8/int16 reference semantics).

    Returns clamp(out_zp + MBQM(MBQM((a - a_zp) 2^ls, ma, sa) + MBQM((b - b_zp) 2^ls, mb, sb),
    mo, so)), ls = ``left_shift`` (20 for int8 inputs, 15 for int16 inputs); real multipliers
    s_a / (2 max(s_a, s_b)), s_b / (2 max(s_a, s_b)), 2 max(s_a, s_b) / (2^ls s_out).
    """
    sa = im.multiply_by_quantized_multiplier((_i64(a) - a_zp) * (1 << left_shift), a_multiplier, a_shift)
    sb = im.multiply_by_quantized_multiplier((_i64(b) - b_zp) * (1 << left_shift), b_multiplier, b_shift)
    return _clamp(im.multiply_by_quantized_multiplier(sa + sb, out_multiplier, out_shift) + out_zp,
                  qmin, qmax)


def residual_add(a, b) -> np.ndarray:
    """Add of two int32 tensors in one shared scale (the residual stream): sat_add_int32(a, b).
    Returns int64."""
    return im.sat_add_int32(_i64(a), _i64(b))


def elementwise_mul(a, b, a_zp: int, b_zp: int, multiplier: int, shift: int, out_zp: int, qmin: int,
        qmax: int) -> np.ndarray:
    """Elementwise quantized multiply (TFLite MUL semantics), broadcasting.

    Returns clamp(out_zp + MBQM((a - a_zp)(b - b_zp), multiplier, shift)); real multiplier
    s_a s_b / s_out. The product must fit int32 (int16 x int16 range at most).
    """
    prod = (_i64(a) - a_zp) * (_i64(b) - b_zp)
    return _clamp(im.multiply_by_quantized_multiplier(prod, multiplier, shift) + out_zp, qmin, qmax)


def ssm_discretize(delta, u, u_zp: int, k_a, p_shift: int, exp_frac_bits: int, exp_table,
                   du_multiplier: int, du_shift: int, du_min: int, du_max: int):
    """SA-SSM discretisation of one frame (any leading shape): dA = exp(A delta) and the
    scaled input du = delta u.

    Args:
        delta: (..., E) int16 step sizes (scale s_delta, >= 0).
        u: (..., E) SSM input (zero point ``u_zp``).
        k_a: (E, N) int32 K[e,n] = round(|A[e,n]| log2(e) s_delta 2^(16 + p_shift + fb)).
        p_shift: >= 1. exp_frac_bits: fb. exp_table: 2^fb entries, 2^(-i/2^fb) in Q(F).
        du_multiplier, du_shift: (E,) requantize of s_delta s_u / s_du[e] (per channel);
            du_min/du_max its range (int16).
    Returns:
        dA (..., E, N) int64 in Q(F): exp2_neg_lookup(p, fb, table) with
        p = round_shift_right32(mul_q16(K, delta), p_shift) (= round(K delta / 2^(16+ps)),
        the exponent -A delta log2 e in Q(fb));
        du (..., E) int64: clamp(MBQM(delta (u - u_zp), m, s)).
    """
    return (_ssm_discretize_dA(delta, k_a, p_shift, exp_frac_bits, exp_table),
            _ssm_discretize_du(delta, u, u_zp, du_multiplier, du_shift, du_min, du_max))


def _ssm_discretize_dA(delta, k_a, p_shift: int, exp_frac_bits: int, exp_table) -> np.ndarray:
    """The dA half of :func:`ssm_discretize` (same args). Returns (..., E, N) int64."""
    p = im.round_shift_right32(im.mul_q16(_i64(k_a), _i64(delta)[..., :, None]), p_shift)
    return im.exp2_neg_lookup(p, exp_frac_bits, exp_table)


def _ssm_discretize_du(delta, u, u_zp: int, du_multiplier, du_shift, du_min: int, du_max: int):
    """The du half of :func:`ssm_discretize` (same args). Returns (..., E) int64."""
    return _clamp(im.multiply_by_quantized_multiplier(_i64(delta) * (_i64(u) - u_zp),
                                                      du_multiplier, du_shift), du_min, du_max)


def ssm_update(h, dA, du, B_gated, x_shift, dA_frac_bits: int, h_min: int, h_max: int) -> np.ndarray:
    """The SA-SSM state update of one frame: h = dA h + delta B~ u.

    Args:
        h: (..., E, N) previous state (per-channel scale s_h[e]); dA: (..., E, N) Q(F);
        du: (..., E) (scale s_du[e]); B_gated: (..., N) (scale s_B~);
        x_shift: (E,) with s_du[e] s_B~ 2^x_shift[e] = s_h[e] 2^-F (0 for int16 h, Q15 dA).
    Returns:
        (..., E, N) int64 clamp(round_shift_right(dA h + du B~ 2^x_shift, F)) (ties toward
        +inf; with x_shift = 0, int16 h and Q15 dA every term fits int32 and this equals
        round_shift_right32, the C form).
    """
    x = _i64(du)[..., :, None] * _i64(B_gated)[..., None, :]
    xs = _i64(x_shift)
    if xs.any():
        x = x * np.left_shift(np.int64(1), xs)[:, None]
    t = _i64(dA) * _i64(h) + x
    return _clamp(im.round_shift_right(t, dA_frac_bits), h_min, h_max)


def _ssm_recurrence(dA, du, B_gated, p: dict) -> np.ndarray:
    """:func:`ssm_update` over all T frames of a clip batch: h_0 = 0,
    h_t = ssm_update(h_{t-1}, dA[:, t], du[:, t], B_gated[:, t], ...) (the same integers).

    The frame-independent part of ssm_update (x = du B~ 2^x_shift plus the rounding
    constant 2^(F-1) of round_shift_right) is computed for all frames at once in
    frame-major layout; the loop over frames (the recurrence) is then a multiply, an add,
    a shift and a clamp per frame, in place. Args as :func:`ssm_update` with a frame axis:
    dA (B, T, E, N), du (B, T, E), B_gated (B, T, N); p from :meth:`Simulator.ssm_params`.
    Returns: (B, T, E, N) int64 states.
    """
    F = int(p["dA_frac_bits"])
    if F < 0:
        raise SimulatorError(f"dA_frac_bits: expected >= 0, got {F}")
    dA_t = np.ascontiguousarray(np.moveaxis(_i64(dA), 1, 0))                  # (T, B, E, N)
    x = np.moveaxis(_i64(du), 1, 0)[..., :, None] * np.moveaxis(_i64(B_gated), 1, 0)[..., None, :]
    xs = _i64(p["x_shift"])
    if xs.any():
        x *= np.left_shift(np.int64(1), xs)[:, None]
    if F > 0:
        x += np.int64(1) << (F - 1)             # round_shift_right(t, F) = (t + 2^(F-1)) >> F
    hs = np.empty_like(x)
    h = np.zeros(x.shape[1:], dtype=np.int64)
    hmin, hmax = np.int64(p["h_min"]), np.int64(p["h_max"])
    for t in range(x.shape[0]):                 # the recurrence: the only loop over frames
        np.multiply(dA_t[t], h, out=h)
        h += x[t]
        h >>= F
        np.maximum(h, hmin, out=h)              # clamp (np.clip's Python wrapper costs more
        np.minimum(h, hmax, out=h)              # than the ufuncs on these small arrays)
        hs[t] = h
    return np.moveaxis(hs, 0, 1)


def _ssm_jit_ok(p: dict, delta, bg, C) -> bool:
    """True when :func:`export.sim_jit.ssm_scan` applies: its shift amounts are in 0..63,
    K and delta within int32 / int16 (so mul_q16 cannot leave 2^47 and round_shift_right32
    takes its plain branch, as in numpy), the exp table holds 2^fb entries; else the
    numpy path runs (same integers, slower)."""
    k_a = _i64(p["k_a"])
    fb = int(p["exp_frac_bits"])
    hrs = _i64(p["h_read_shift"])
    d = np.asarray(delta)
    return (0 <= int(p["p_shift"]) <= 62 and 0 <= int(p["dA_frac_bits"]) <= 62
            and 1 <= fb <= 16 and len(p["exp_table"]) >= (1 << fb)
            and (hrs.size == 0 or (hrs.min() >= 0 and hrs.max() <= 62))
            and (k_a.size == 0 or (k_a.min() >= -(1 << 31) and k_a.max() < (1 << 31)))
            and (d.size == 0 or (d.min() >= -(1 << 15) and d.max() < (1 << 15)))
            and np.ndim(bg) == 3 and np.ndim(C) == 3)


def _ssm_scan_jit(delta, du, bg, C, p: dict, dA_dtype=np.int64, h_dtype=np.int64):
    """(dA, hs, readout sums) through :func:`export.sim_jit.ssm_scan` (see there); dA and
    hs in the given dtypes (as numpy's astype of the int64 values would give them)."""
    xs = _i64(p["x_shift"])
    x_mult = np.left_shift(np.int64(1), xs) if xs.any() else np.ones(len(xs), np.int64)
    c = np.ascontiguousarray
    shape = np.shape(delta) + (np.shape(bg)[-1],)
    dA, hs = np.empty(shape, dA_dtype), np.empty(shape, h_dtype)
    acc = sim_jit.ssm_scan(c(_i64(delta)), c(_i64(du)), c(_i64(bg)), c(_i64(C)), c(_i64(p["k_a"])),
                            int(p["p_shift"]), int(p["exp_frac_bits"]), c(_i64(p["exp_table"])),
                            c(x_mult), int(p["dA_frac_bits"]), int(p["h_min"]), int(p["h_max"]),
                            c(_i64(p["h_read_shift"])), dA, hs, True)
    return dA, hs, acc


def ssm_readout(h, C, u, u_zp: int, h_read_shift, d_q, d_shift: int, multiplier, shift,
                qmin: int, qmax: int) -> np.ndarray:
    """SA-SSM output of one frame: y = sum_n C_n h_n + D u.

    Args:
        h: (..., E, N) state; C: (..., N) symmetric; u: (..., E) (zero point u_zp).
        h_read_shift: (E,) h is read as h' = round_shift_right(h, h_read_shift[e]) (the top
            16 bits of int32 h; more for channels whose D u term needs coarser units).
        d_q: (E,) int32 D[e] s_u / (s_C s_h'[e]) 2^d_shift; d_shift: 0..30.
        multiplier, shift: (E,) requantize of s_C s_h'[e] / s_y.
    Returns:
        (..., E) int64 clamp(MBQM(sat_add_int32(saturate_int32(sum_n C_n h'_n) (an int64
        sum), round_shift_right(d_q (u - u_zp), d_shift)), multiplier[e], shift[e])).
    """
    hrs = _i64(h_read_shift)
    hr = im.round_shift_right(_i64(h), hrs[:, None]) if hrs.any() else _i64(h)
    acc = np.einsum("...en,...n->...e", hr, _i64(C))
    return _ssm_readout_tail(acc, u, u_zp, d_q, d_shift, multiplier, shift, qmin, qmax)


def _ssm_readout_tail(acc, u, u_zp, d_q, d_shift, multiplier, shift, qmin, qmax):
    """:func:`ssm_readout` after its int64 sum acc = sum_n C_n h'_n (..., E)."""
    dterm = im.round_shift_right(_i64(d_q) * (_i64(u) - u_zp), d_shift)
    acc = im.sat_add_int32(im.saturate_int32(acc), dterm)
    return _clamp(im.multiply_by_quantized_multiplier(acc, multiplier, shift), qmin, qmax)


def sa_ssm_step(h, u_t, delta_t, B_gated_t, C_t, p: dict):
    """One frame of the SA-SSM (:func:`ssm_discretize`, :func:`ssm_update`,
    :func:`ssm_readout`), the form the firmware runs (its C twin supports x_shift = 0, i.e.
    int16 h with Q15 dA, the quantizer's default).

    Args:
        h: (..., E, N) state; u_t, delta_t: (..., E); B_gated_t, C_t: (..., N);
        p: the op's integer parameters (see :meth:`Simulator._ssm_params`).
    Returns:
        (h_new, y_t, dA, du).
    """
    dA, du = ssm_discretize(delta_t, u_t, p["u_zp"], p["k_a"], p["p_shift"], p["exp_frac_bits"],
                            p["exp_table"], p["du_multiplier"], p["du_shift"], p["du_min"], p["du_max"])
    h = ssm_update(h, dA, du, B_gated_t, p["x_shift"], p["dA_frac_bits"], p["h_min"], p["h_max"])
    y = ssm_readout(h, C_t, u_t, p["u_zp"], p["h_read_shift"], p["d_q"], p["d_shift"],
                    p["y_multiplier"], p["y_shift"], p["y_min"], p["y_max"])
    return h, y, dA, du


def mean_pool_accumulate(acc, x, x_zp: int, axis: int | None = None) -> np.ndarray:
    """Running sum for the mean over frames: acc + (x - x_zp) (int32; summed over ``axis``
    when given, i.e. many frames at once). Returns int64."""
    xs = _i64(x) - x_zp
    return _i64(acc) + (xs.sum(axis=axis) if axis is not None else xs)


def mean_pool_finalize(acc, multiplier: int, shift: int, out_zp: int, qmin: int,
                       qmax: int) -> np.ndarray:
    """Mean over T frames from the running sum (TFLite MEAN int8 semantics):
    clamp(out_zp + MBQM(acc, m, s)), real multiplier s_x / (T s_out). Returns int64."""
    return _clamp(im.multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp, qmin, qmax)


def argmax_s32(x) -> np.ndarray:
    """The predicted label: index of the first maximum of int32 values (C twin ``argmax_s32``
    in kws_nn.c: a strict ``>`` scan from index 0, so ties go to the lowest index).

    Args: x: (..., n) int32-range integers (the label path's ``logits_fine``).
    Returns: int64 (..., 1) class indices in [0, n).
    """
    return np.argmax(_i64(x), axis=-1)[..., None]


# =======================================================================================
# the simulator
# =======================================================================================

class SimulatorError(KwsError):
    """Input the simulator cannot run (wrong audio dtype or shape)."""


class SimulatorArgumentError(SimulatorError, ValueError):
    """A bad argument value (``threads`` < 1, an unknown ``keep`` name): both a
    :class:`SimulatorError` and a ValueError."""


def _as_bundle(bundle):
    """``bundle`` itself when it is a loaded bundle, else the bundle file it names.

    Raises:
        TypeError: neither a bundle (``meta`` and ``arrays``) nor a str/PathLike path.
        BundleError: a path that is not a readable bundle (:func:`export.bundle.load_bundle`).
    """
    if isinstance(bundle, (str, os.PathLike)):
        from export.bundle import load_bundle
        return load_bundle(bundle)
    if not (hasattr(bundle, "meta") and hasattr(bundle, "arrays")):
        raise TypeError(f"bundle: expected an export.bundle.Bundle or a bundle file path "
                        f"(str or PathLike), got {type(bundle).__name__}")
    return bundle


class Simulator:
    """Integer execution of a :class:`export.bundle.Bundle`.

    Args:
        bundle: a loaded bundle (:func:`export.bundle.load_bundle`) or the path (str or
            PathLike) of a bundle file, loaded with :func:`export.bundle.load_bundle`.
        engine: "auto" (default: numba kernels when numba imports, else numpy), "numpy"
            (the reference implementation) or "numba" (:mod:`export.sim_jit`: the front
            end's window/FFT/split/magnitude chain and the SA-SSM dA/recurrence/readout
            sum compiled; the same integers, checked by tests/test_sim_jit.py).
    Raises:
        TypeError: ``bundle`` is neither a bundle nor a path.
        BundleError: ``bundle`` is a path that is not a readable bundle file.
        ValueError: unknown engine, or "numba" without numba installed.
    """

    #: clips per internal chunk of :meth:`run` (working arrays stay cache-sized; the
    #: integers do not depend on it: clips are independent)
    chunk = 16

    def __init__(self, bundle, engine: str = "auto") -> None:
        bundle = _as_bundle(bundle)
        self.engine = sim_jit.resolve_engine(engine)
        self.bundle = bundle
        self.meta = bundle.meta
        self.tensors = bundle.meta["tensors"]
        self.ops = bundle.meta["ops"]
        fe_meta = bundle.meta["frontend"]
        self._fe = frontend_fixed
        self.fe_params = {"meta": fe_meta["meta"],
                          "arrays": {k: bundle.arrays[f"frontend/{k}"] for k in fe_meta["arrays"]}}
        self._arr = {}
        self._fc_cache: dict[str, tuple] = {}   # numba engine: fully-connected weight constants
        for op in self.ops:
            self._arr[op["name"]] = {k: _i64(bundle.arrays[v]) for k, v in op.get("arrays", {}).items()}

    # ---- helpers -------------------------------------------------------------------
    def qrange(self, name: str) -> tuple[int, int]:
        """(qmin, qmax) of a tensor's dtype."""
        return _QRANGE[self.tensors[name]["dtype"]]

    def scale(self, name: str) -> np.ndarray:
        """Scale of tensor ``name`` as float64, broadcastable against its values: a scalar,
        or per-channel scales (a list in the bundle) shaped to apply along the per-frame axis
        ``channel_axis``."""
        t = self.tensors[name]
        scale = np.asarray(t["scale"], dtype=np.float64)
        if scale.ndim:
            shape = [1] * len(t["shape"])
            shape[t.get("channel_axis", 0)] = -1
            scale = scale.reshape(shape)
        return scale

    def dequantize(self, name: str, q) -> np.ndarray:
        """Real values (float64) of tensor ``name``: (q - zero_point) * :meth:`scale`."""
        return (np.asarray(q, dtype=np.float64) - self.tensors[name]["zero_point"]) * self.scale(name)

    def names(self, frontend_intermediates: bool = True) -> list[str]:
        """Every tensor name :meth:`run` returns (what ``keep`` may ask for), sorted.

        Args:
            frontend_intermediates: include the front end's intermediates ``frontend.*``
                (:data:`export.frontend_fixed.INTERMEDIATES`); False: only
                ``frontend.features`` and ``frontend.snr_mel`` of them.
        Returns:
            the bundle's tensors (``features``, ``snr_mel``, every op output and SA-SSM
            internal) and the ``frontend.*`` names.
        """
        fe = frontend_fixed.INTERMEDIATES if frontend_intermediates else ("features", "snr_mel")
        return sorted(set(self.tensors) | {f"frontend.{k}" for k in fe})

    def _check_keep(self, keep, frontend_intermediates: bool) -> set[str] | None:
        """``keep`` as a set of known names (a str is one name); None stays None."""
        if keep is None:
            return None
        if isinstance(keep, (str, bytes)):
            keep = [keep]
        try:
            keep = list(keep)
        except TypeError:
            raise TypeError(f"keep: expected a tensor name or an iterable of names, got "
                            f"{type(keep).__name__}") from None
        bad = [k for k in keep if not isinstance(k, str)]
        if bad:
            raise TypeError(f"keep: tensor names must be str, got {bad[0]!r}")
        known = set(self.names(True))
        unknown = [k for k in keep if k not in known]
        if unknown:
            raise SimulatorArgumentError(
                f"keep: unknown tensor name{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} (Simulator.names() lists all {len(known)}; "
                f"e.g. 'logits', 'label', 'features', 'blocks.0.h')")
        if not frontend_intermediates:
            off = [k for k in keep if k not in set(self.names(False))]
            if off:
                raise SimulatorArgumentError(
                    f"keep: {off[0]!r} is a front-end intermediate; run with "
                    f"frontend_intermediates=True to get it")
        return set(keep)

    def _store(self, env: dict, name: str, value) -> None:
        env[name] = np.asarray(value).astype(_NP[self.tensors[name]["dtype"]])

    # ---- running -------------------------------------------------------------------
    def run(self, audio, keep: Iterable[str] | None = None, *,
            frontend_intermediates: bool = True, threads: int = 1) -> dict[str, np.ndarray]:
        """Run the whole integer pipeline.

        Args:
            audio: int16 (B, 16000) or (16000,) PCM.
            keep: names to return: one name (a str) or an iterable of names (None: every
                tensor). :meth:`names` lists the valid ones.
            frontend_intermediates: also return the front end's intermediates
                (``frontend.*``, about 1 MB per clip); False is faster.
            threads: an int >= 1: split the batch into this many parts run in parallel
                threads (numpy releases the GIL in its loops); clips are independent, so
                the integers are the same for any value.
        Returns:
            dict name -> integer array (see the module docstring).
        Raises:
            SimulatorError: audio not int16 or not (B, 16000).
            SimulatorArgumentError (a SimulatorError and a ValueError): threads < 1; a
                ``keep`` name the simulator does not produce (the message points to
                :meth:`names`), or a front-end intermediate with
                ``frontend_intermediates=False``.
            TypeError: threads not an int; keep not a str or an iterable of str.
        """
        threads = positive_int(threads, "threads", error=SimulatorArgumentError)
        keep = self._check_keep(keep, frontend_intermediates)
        audio = np.asarray(audio)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.dtype != np.int16:
            raise SimulatorError(f"audio: expected int16 PCM, got {audio.dtype}")
        if audio.ndim != 2 or audio.shape[1] != self.fe_params["meta"]["clip_samples"]:
            raise SimulatorError(f"audio: expected shape (B, {self.fe_params['meta']['clip_samples']}), "
                                 f"got {audio.shape}")
        if threads > 1 and len(audio) > 1:
            from concurrent.futures import ThreadPoolExecutor
            parts = np.array_split(audio, min(threads, len(audio)))
            with ThreadPoolExecutor(len(parts)) as ex:
                outs = list(ex.map(lambda a: self.run(a, keep, frontend_intermediates=frontend_intermediates),
                                   parts))
            return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        if len(audio) > self.chunk:
            # clips are independent: run them in chunks (smaller working arrays: faster)
            outs = [self._run_one(audio[s:s + self.chunk], keep, frontend_intermediates)
                    for s in range(0, len(audio), self.chunk)]
            return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        return self._run_one(audio, keep, frontend_intermediates)

    @property
    def frontend_chunk(self) -> int:
        """Clips per call of the front end's kernels in :meth:`run_frontend`: the numpy
        engine keeps :data:`export.frontend_fixed.DEFAULT_CHUNK` (cache-sized working
        arrays); the numba engine takes :attr:`chunk` clips at once (fewer, larger compiled
        calls). Speed only: the integers do not depend on it (clips are independent)."""
        return frontend_fixed.DEFAULT_CHUNK if self.engine == "numpy" else self.chunk

    def run_frontend(self, audio, *, intermediates: bool = True) -> dict[str, np.ndarray]:
        """The integer front end alone (:func:`export.frontend_fixed.run_frontend` with this
        simulator's parameters, engine and :attr:`frontend_chunk`).

        Args:
            audio: int16 (B, 16000) PCM (not checked here; :meth:`run` checks it).
            intermediates: also return the front end's intermediates (about 1 MB per clip).
        Returns:
            dict name -> integer array: ``features``, ``snr_mel`` and (with intermediates)
            the rest, as :func:`export.frontend_fixed.run_frontend`.
        """
        return self._fe.run_frontend(self.fe_params, audio, intermediates=intermediates,
                                     chunk=self.frontend_chunk, engine=self.engine)

    def _run_one(self, audio, keep, frontend_intermediates):
        fe_out = self.run_frontend(audio, intermediates=frontend_intermediates)
        env = {f"frontend.{k}": v for k, v in fe_out.items()}
        env["features"] = fe_out["features"]
        env["snr_mel"] = fe_out["snr_mel"]
        out = self.run_network(env["features"], env["snr_mel"], _env=env)
        if keep is not None:
            out = {k: v for k, v in out.items() if k in keep}
        return out

    def run_network(self, features, snr_mel, _env: dict | None = None) -> dict[str, np.ndarray]:
        """Run the network ops on quantized front-end outputs.

        Args:
            features: (B, T, n_mels) in the bundle's ``features`` dtype (int16) and scale,
                T = the front end's frame count (101).
            snr_mel: (B, T, n_mels) in the bundle's ``snr_mel`` dtype (int8) and scale.
        Returns:
            dict of every op output and SA-SSM internal tensor.
        Raises:
            SimulatorError: either input not of shape (B, T, n_mels) with B >= 1 (the
                message gives the expected shape), or not in its tensor's dtype.
        """
        if _env is None:
            features, snr_mel = np.asarray(features), np.asarray(snr_mel)
            self._check_network_input("features", features)
            self._check_network_input("snr_mel", snr_mel)
        env = _env if _env is not None else {"features": features, "snr_mel": snr_mel}
        for op in self.ops:
            getattr(self, "_op_" + op["type"])(op, env)
        return env

    def _check_network_input(self, name: str, x: np.ndarray) -> None:
        t = self.tensors[name]
        want = (int(self.fe_params["meta"]["n_frames"]), *map(int, t["shape"]))
        shape_txt = "(B, " + ", ".join(map(str, want)) + ")"
        if x.ndim != 1 + len(want) or tuple(x.shape[1:]) != want or x.shape[0] < 1:
            raise SimulatorError(f"{name}: expected shape {shape_txt} with B >= 1, "
                                 f"got {x.shape}")
        if x.dtype != _NP[t["dtype"]]:
            raise SimulatorError(f"{name}: expected {t['dtype']} (the bundle's {name} dtype), "
                                 f"got {x.dtype}")

    # ---- op implementations ------------------------------------------------------------
    def _io(self, op):
        p = op["params"]
        out = op["outputs"][0]
        qmin, qmax = self.qrange(out)
        return p, out, qmin, qmax, self._arr[op["name"]]

    def _zp(self, name: str) -> int:
        return int(self.tensors[name]["zero_point"])

    def _op_fully_connected(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        x = op["inputs"][0]
        single = p.get("requantize") == "requantize_single_round"
        if self.engine == "numba" and not single and _mbqm_jit_ok(a["shift"]):
            wc = self._fc_cache.get(op["name"])
            if wc is None:                      # benign race between threads: same value
                wc = self._fc_cache[op["name"]] = _fc_weight_cache(a["weight"])
            y = _fully_connected_jit(env[x], self._zp(x), a["weight"], a["bias"], a["multiplier"],
                                     a["shift"], self._zp(out), qmin, qmax, wc)
        else:
            y = fully_connected(env[x], self._zp(x), a["weight"], a["bias"], a["multiplier"],
                                a["shift"], self._zp(out), qmin, qmax, single)
        self._store(env, out, y)

    def _op_conv1d_depthwise(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        x = op["inputs"][0]
        y = _conv1d_depthwise_sequence(env[x], self._zp(x), a["weight"], a["bias"],
                                       a["multiplier"], a["shift"], self._zp(out), qmin, qmax)
        self._store(env, out, y)

    def _op_layer_norm(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        x = op["inputs"][0]
        y = layer_norm(env[x], self._zp(x), p["eps_q"], p["z_frac_bits"], a["gamma"], a["beta"],
                       p["multiplier"], p["shift"], self._zp(out), qmin, qmax)
        self._store(env, out, y)

    def _op_lut(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        x = env[op["inputs"][0]]
        y = lut_s8(x, a["table"]) if p["kind"] == "s8" else lut_s16(x, a["table"])
        self._store(env, out, y)

    def _op_add(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        xa, xb = op["inputs"]
        if p.get("same_scale"):
            self._store(env, out, residual_add(env[xa], env[xb]))
            return
        y = elementwise_add(env[xa], env[xb], self._zp(xa), self._zp(xb), p["left_shift"], p["a_multiplier"],
                p["a_shift"], p["b_multiplier"], p["b_shift"], p["out_multiplier"],
                p["out_shift"], self._zp(out), qmin, qmax)
        self._store(env, out, y)

    def _op_mul(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        xa, xb = op["inputs"]
        y = elementwise_mul(env[xa], env[xb], self._zp(xa), self._zp(xb), p["multiplier"], p["shift"],
                self._zp(out), qmin, qmax)
        self._store(env, out, y)

    def _op_mean(self, op, env):
        p, out, qmin, qmax, a = self._io(op)
        x = op["inputs"][0]
        xv = env[x]
        acc = mean_pool_accumulate(np.zeros(xv.shape[:1] + xv.shape[2:], np.int64), xv,
                                   self._zp(x), axis=1)
        y = mean_pool_finalize(acc, p["multiplier"], p["shift"], self._zp(out), qmin, qmax)
        self._store(env, out, y)

    def _op_argmax(self, op, env):
        self._store(env, op["outputs"][0], argmax_s32(env[op["inputs"][0]]))

    def ssm_params(self, op) -> dict:
        """The integer parameters of an ``sa_ssm`` op as :func:`sa_ssm_step` takes them."""
        p, out, qmin, qmax, a = self._io(op)
        t = self.tensors
        pre = op["name"].rsplit(".", 1)[0]
        du_min, du_max = _QRANGE[t[pre + ".du"]["dtype"]]
        h_min, h_max = _QRANGE[t[pre + ".h"]["dtype"]]
        return dict(u_zp=self._zp(op["inputs"][0]), k_a=a["k_a"], p_shift=p["p_shift"],
                    exp_frac_bits=p["exp_frac_bits"], exp_table=a["exp_table"],
                    du_multiplier=a["du_multiplier"], du_shift=a["du_shift"], du_min=du_min,
                    du_max=du_max, x_shift=a["x_shift"], dA_frac_bits=p["dA_frac_bits"],
                    h_min=h_min, h_max=h_max, h_read_shift=a["h_read_shift"], d_q=a["d_q"],
                    d_shift=p["d_shift"], y_multiplier=a["y_multiplier"], y_shift=a["y_shift"],
                    y_min=qmin, y_max=qmax)

    def _op_sa_ssm(self, op, env):
        u_name, delta_name, bg_name, c_name = op["inputs"]
        y_name = op["outputs"][0]
        pre = op["name"].rsplit(".", 1)[0]
        p = self.ssm_params(op)
        u, delta, bg, C = env[u_name], env[delta_name], env[bg_name], env[c_name]
        # discretisation and readout are pointwise in time: all frames at once
        du = _ssm_discretize_du(delta, u, p["u_zp"], p["du_multiplier"], p["du_shift"],
                               p["du_min"], p["du_max"])
        h_dtype = _NP[self.tensors[pre + ".h"]["dtype"]]
        if self.engine == "numba" and _ssm_jit_ok(p, delta, bg, C):
            dA, hs, acc = _ssm_scan_jit(delta, du, bg, C, p,
                                        _NP[self.tensors[pre + ".dA"]["dtype"]], h_dtype)
            y = _ssm_readout_tail(acc, u, p["u_zp"], p["d_q"], p["d_shift"], p["y_multiplier"],
                                  p["y_shift"], p["y_min"], p["y_max"])
        else:
            dA = _ssm_discretize_dA(delta, p["k_a"], p["p_shift"], p["exp_frac_bits"],
                                   p["exp_table"])
            hs = _ssm_recurrence(dA, du, bg, p).astype(h_dtype)
            y = ssm_readout(hs, C, u, p["u_zp"], p["h_read_shift"], p["d_q"], p["d_shift"],
                            p["y_multiplier"], p["y_shift"], p["y_min"], p["y_max"])
        if dA.dtype == _NP[self.tensors[pre + ".dA"]["dtype"]]:
            env[pre + ".dA"] = dA               # numba path: already stored in its dtype
        else:
            self._store(env, pre + ".dA", dA)
        self._store(env, pre + ".du", du)
        env[pre + ".h"] = hs
        self._store(env, y_name, y)


def run_bundle(bundle, audio, keep: Iterable[str] | str | None = None) -> dict[str, np.ndarray]:
    """Convenience: ``Simulator(bundle).run(audio, keep)``.

    Args:
        bundle: a :class:`export.bundle.Bundle` or a bundle file path (str or PathLike).
        audio: int16 (B, 16000) or (16000,) PCM.
        keep: one name, names, or None (every tensor); see :meth:`Simulator.run`.
    Returns:
        dict name -> integer array.
    Raises:
        TypeError, BundleError: see :class:`Simulator`; SimulatorError,
        SimulatorArgumentError: see :meth:`Simulator.run`.
    """
    return Simulator(bundle).run(audio, keep)
