"""The integer-math primitives of the pipeline, in numpy; the C twin is
``firmware_templates/kernels/kws_intmath.h`` with the same function names and rounding.

Every function here takes Python ints or numpy integer arrays (any shape, broadcast) and
returns int64 arrays (or ints for int inputs) holding exactly what the C function returns.
Rounding rules are stated per function; none of them is numpy's round-half-to-even.

Sources: TFLite / gemmlowp fixed-point (SaturatingRoundingDoublingHighMul,
RoundingDivideByPOT, MultiplyByQuantizedMultiplier, QuantizeMultiplier); CMSIS-Core
__SSAT / __QADD / __CLZ semantics.

Rule for C: never left-shift a negative value (undefined in C99); multiply by a power of
two instead. Right shifts of negative values are arithmetic (gcc and arm-none-eabi-gcc).

Export-time helpers that have no C twin (they run once, when the bundle is made) are at
the end of this module, under "Python only".
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def _out(res, *args):
    """Return a Python int when every argument was a Python int, else the array."""
    if all(isinstance(a, (int, np.integer)) for a in args):
        return int(res)
    return res


def saturate_int8(x):
    """Clamp to [-128, 127] (CMSIS __SSAT(x, 8)). x: int32. Returns int8-range values."""
    return _out(np.clip(_i64(x), INT8_MIN, INT8_MAX), x)


def saturate_int16(x):
    """Clamp to [-32768, 32767] (CMSIS __SSAT(x, 16)). x: int32. Returns int16-range values."""
    return _out(np.clip(_i64(x), INT16_MIN, INT16_MAX), x)


def saturate_int32(x):
    """Clamp an int64 to [INT32_MIN, INT32_MAX]. x: int64."""
    return _out(np.clip(_i64(x), INT32_MIN, INT32_MAX), x)


def sat_add_int32(a, b):
    """Saturating int32 add (CMSIS __QADD): clamp(a + b) to int32. a, b: int32."""
    return _out(np.clip(_i64(a) + _i64(b), INT32_MIN, INT32_MAX), a, b)


def round_shift_right(x, n):
    """Arithmetic right shift by n with round half up: (x + 2^(n-1)) >> n; x for n = 0.

    Args:
        x: int64 values with |x| < 2^62.
        n: shift, 0..62 (scalar or array).
    Returns:
        int64 floor((x + 2^(n-1)) / 2^n), i.e. x / 2^n rounded to nearest, ties toward +inf.
    """
    x, n = _i64(x), _i64(n)
    half = np.where(n > 0, np.left_shift(np.int64(1), np.maximum(n - 1, 0)), 0)
    res = x + half
    res >>= n
    return _out(res, x if np.ndim(x) else int(x), n if np.ndim(n) else int(n))


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp/TFLite SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded
    to nearest (ties toward +inf on both signs: the sign-dependent nudge below equals
    floor((ab + 2^30) / 2^31), the form the C twin computes); the single overflow case
    a = b = INT32_MIN gives INT32_MAX.

    Args: a, b: int32. Returns: int32.
    Exact definition: ab = a*b; nudge = 2^30 if ab >= 0 else 1 - 2^30;
    result = trunc((ab + nudge) / 2^31) (C division, toward zero).
    """
    a, b = _i64(a), _i64(b)
    # trunc((ab + nudge) / 2^31) = floor((ab + 2^30) / 2^31) for both signs (see above): an
    # add and an arithmetic shift. Only a = b = INT32_MIN reaches 2^31 (int32 inputs).
    res = a * b
    res += 1 << 30
    res >>= 31
    if np.ndim(res) == 0:
        res = np.int64(res)
    if res.size and res.max() > INT32_MAX:
        res = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, res)
    return _out(res, a if np.ndim(a) else int(a), b if np.ndim(b) else int(b))


def rounding_divide_by_pot(x, exponent):
    """gemmlowp/TFLite RoundingDivideByPOT: x / 2^exponent rounded half away from zero.

    Args: x: int32; exponent: 0..31. Returns: int32.
    Exact definition: mask = 2^e - 1; r = x & mask; threshold = (mask >> 1) + (x < 0);
    result = (x >> e) + (r > threshold).
    """
    x, e = _i64(x), _i64(exponent)
    # Computed as (x - [x < 0 and e > 0] + 2^(e-1)) >> e (2^(e-1) = 0 for e = 0): with
    # q = x >> e and r = x & mask, that is q + (r - [x < 0] >= 2^(e-1)), the same
    # comparison as r > threshold, in fewer passes over the data.
    if e.size and e.min() > 0:
        res = x + (x >> 63)                         # x - [x < 0]
    elif e.size and e.max() == 0:
        res = x + np.int64(0)                       # a copy (scalar or array)
    else:
        res = x - ((x < 0) & (e > 0))
    res += np.right_shift(np.left_shift(np.int64(1), e), 1)
    res >>= e
    return _out(res, x if np.ndim(x) else int(x), e if np.ndim(e) else int(e))


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier (double rounding), the requantize step of int8
    kernels: x * multiplier * 2^shift / 2^31.

    Args:
        x: int32 accumulator.
        multiplier: Q31 multiplier in [2^30, 2^31 - 1] (or 0).
        shift: -31..30; positive = left shift.
    Returns:
        int32: RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^left, m), right)
        with left = max(shift, 0), right = max(-shift, 0). Where TFLite's x * 2^left would
        overflow int32 (undefined in C), it is saturated to int32 first.
    """
    x, m, s = _i64(x), _i64(multiplier), _i64(shift)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    if left.any():
        xs = np.clip(x * np.left_shift(np.int64(1), left), INT32_MIN, INT32_MAX)
    elif x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        xs = np.clip(x, INT32_MIN, INT32_MAX)
    else:
        xs = x          # already int32: the saturation changes nothing (saves a pass)
    res = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, m), right)
    return _out(res, *(v if np.ndim(v) else int(v) for v in (x, m, s)))


def requantize_single_round(x, multiplier, shift):
    """Single-rounding requantize: round_shift_right(x * multiplier, 31 - shift), saturated
    to int32 (CMSIS-NN's single-rounding arm_nn_requantize; ties toward +inf).

    Args: x: int32; multiplier: Q31 in [0, 2^31 - 1]; shift: -31..30.
    Returns: int32.
    """
    x, m, s = _i64(x), _i64(multiplier), _i64(shift)
    res = np.clip(round_shift_right(x * m, 31 - s), INT32_MIN, INT32_MAX)
    return _out(res, *(v if np.ndim(v) else int(v) for v in (x, m, s)))


def clz32(x):
    """Count leading zeros of a uint32 (CMSIS __CLZ); clz32(0) = 32.

    Args: x: values in [0, 2^32). Returns: 0..32.
    """
    x = _i64(x)
    res = 32 - _bitlen_f64(x)
    return _out(res, x if np.ndim(x) else int(x))


def _bitlen_f64(x):
    """bitlen of int64 values 0 <= x < 2^63 (0 for 0) from the float64 exponent: exact for
    x < 2^53 (the conversion is exact); above, the conversion may round up to the next power
    of two, which one comparison with the power of two below the float corrects. Negative
    values are not in the domain (callers route them elsewhere)."""
    x = np.asarray(x)
    e = np.asarray(x.astype(np.float64)).view(np.int64)      # float64 bits, sign bit 0
    if x.size and x.max() >= (1 << 53):
        with np.errstate(invalid="ignore"):                  # 2^63 does not fit: see min below
            low = (e & ~((1 << 52) - 1)).view(np.float64).astype(np.int64)
        corr = x < low                                       # rounded up across 2^k
        corr &= low > 0
    else:
        corr = None
    e = e >> 52                                              # biased exponent; 0 for x = 0
    e -= 1022                                                # bitlen for x >= 1
    if corr is not None:
        e -= corr
        e = np.minimum(e, 63)
    return np.maximum(e, 0)


# ---------------------------------------------------------------------------------------
# front end primitives (issue 3: fixed-point audio front end). Integer sqrt, log2,
# reciprocal, reciprocal square root, LUT interpolation. Unsigned 64-bit arguments are
# limited to [0, 2^63) so that numpy int64 holds them exactly (the front end stays below
# 2^62 everywhere). Each has a C twin of the same name in kws_intmath.h.
# ---------------------------------------------------------------------------------------

UINT32_MAX = 2 ** 32 - 1
#: log2_u64_q16 interpolates a table of 2^LOG2_LUT_BITS + 1 entries (see log2_table).
LOG2_LUT_BITS = 7


def _ret(res, *args):
    return _out(res, *(a if np.ndim(a) else int(a) for a in args))


def clz64(x):
    """Leading zero bits of a uint64 (CLZ on each 32-bit half); clz64(0) = 64.

    Args: x: values in [0, 2^63). Returns: 1..64 (0 is impossible in this domain).
    """
    x = _i64(x)
    if x.size and x.min() < 0:                      # outside the domain: the two-half form
        hi = x >> 32
        lo = x & 0xFFFFFFFF
        res = np.where(hi > 0, clz32(hi), 32 + clz32(lo))
    else:                                           # same result, from the float64 exponent
        res = 64 - _bitlen_f64(x)
    return _ret(res, x)


def _bitlen(x):
    return 64 - clz64(x)


def _isqrt_float(x):
    """floor(sqrt(x)) for int64 arrays 0 <= x < 2^63, exact (float estimate + correction)."""
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    r = np.minimum(r, 3037000499)  # floor(sqrt(2^63 - 1)): keeps r * r inside int64
    for _ in range(2):
        r = np.where(r * r > x, r - 1, r)
        r1 = np.minimum(r + 1, 3037000499)
        r = np.where(r1 * r1 <= x, r1, r)
    return r


def isqrt32(x):
    """floor(sqrt(x)) of a uint32, exact (digit-by-digit in C).

    Args: x: values in [0, 2^32). Returns: 0..65535.
    """
    x = _i64(x)
    return _ret(_isqrt_float(x), x)


def isqrt64(x):
    """floor(sqrt(x)) of a uint64, exact (digit-by-digit in C).

    Args: x: values in [0, 2^63). Returns: 0..3037000499.
    """
    x = _i64(x)
    return _ret(_isqrt_float(x), x)


def sqrt_u64_norm(p):
    """Magnitude square root with 16 significant bits: round(sqrt(p >> 2j)) * 2^j with
    j = max(0, ceil((bitlen(p) - 32) / 2)), so that p >> 2j fits 32 bits; exact
    round-to-nearest of sqrt(p) when p < 2^32 (ties cannot occur: sqrt of an integer is
    never a half-integer); for p >= 2^32 the relative error is <= 2^-15 + 2^-16.

    Args: p: power |X|^2, values in [0, 2^62). Returns: uint32 values in [0, 2^31].
    """
    p = _i64(p)
    j = np.maximum(0, (_bitlen(p) - 31) // 2)
    pn = p >> (2 * j)
    r = _isqrt_float(pn)
    r = r + ((pn - r * r) > r)
    return _ret(np.left_shift(r, j), p)


def log2_u64_q16(x, table):
    """log2(x) in Q16 by a 128-interval table with linear interpolation.

    Definition: b = bitlen(x) - 1; m = x normalised to Q30 (x << (30 - b) or
    x >> (b - 30), truncating), so m in [2^30, 2^31); i = (m >> 23) & 127,
    f = m & (2^23 - 1); y = table[i] + (((table[i+1] - table[i]) * f) >> 23) (Q24);
    result = round_shift_right(b * 2^24 + y, 8). With :func:`log2_table` the error
    is below 2^-16 + 1.2e-5 (interpolation) in log2 units.

    Args:
        x: values in [1, 2^63); x = 0 gives 0 (as x = 1).
        table: the 129 int32 Q24 entries of :func:`log2_table`.
    Returns:
        int32 Q16 log2(x), in [0, 63 * 2^16].
    """
    x = np.maximum(_i64(x), 1)
    t = np.asarray(table, dtype=np.int64)
    b = _bitlen(x) - 1
    m = np.where(b >= 30, x >> np.maximum(b - 30, 0), np.left_shift(x, np.maximum(30 - b, 0)))
    i = (m >> 23) & 127
    f = m & ((1 << 23) - 1)
    y = t[i] + (((t[i + 1] - t[i]) * f) >> 23)
    res = round_shift_right(b * (1 << 24) + y, 8)
    return _ret(res, x)


def reciprocal_u64(d):
    """Reciprocal with a 16-bit mantissa: 1/d ~= r * 2^-e.

    Definition: b = bitlen(d); dn = d normalised to [2^31, 2^32) (d << (32 - b) or
    d >> (b - 32), truncating); r = floor((2^47 - 1) / dn); e = b + 15.
    r is in [2^15, 2^16); relative error of r * 2^-e below 2^-15.

    Args: d: values in [1, 2^63); d = 0 is treated as 1.
    Returns: (r, e): uint16 mantissa and exponent 16..78.
    """
    d = np.maximum(_i64(d), 1)
    b = _bitlen(d)
    dn = np.where(b <= 32, np.left_shift(d, np.maximum(32 - b, 0)), d >> np.maximum(b - 32, 0))
    r = ((1 << 47) - 1) // dn
    return _ret(r, d), _ret(b + 15, d)


def rsqrt_u64(v):
    """Reciprocal square root with a 22-bit mantissa: 1/sqrt(v) ~= r * 2^-e.

    Definition: b = bitlen(v); j = floor((b - 19) / 2); vn = v >> 2j (truncating) or
    v << -2j, so vn in [2^18, 2^20); r = floor(2^31 / sqrt(vn)) = isqrt64(floor(2^62 / vn));
    e = 31 + j. r is in (2^21, 2^22]; relative error below 2^-17.

    Args: v: values in [1, 2^63); v = 0 is treated as 1.
    Returns: (r, e): uint32 mantissa and exponent 22..53.
    """
    v = np.maximum(_i64(v), 1)
    j = (_bitlen(v) - 19) // 2
    vn = np.where(j >= 0, v >> np.maximum(2 * j, 0), np.left_shift(v, np.maximum(-2 * j, 0)))
    r = _isqrt_float((1 << 62) // vn)
    return _ret(r, v), _ret(31 + j, v)


def shift_round_sat_u32(x, sh):
    """x * 2^-sh rounded to nearest (ties toward +inf), saturated to [0, 2^32 - 1].

    Args:
        x: values in [0, 2^62).
        sh: any int32; sh >= 0 is round_shift_right(x, sh) (0 for sh >= 63), sh < 0 an
            exact left shift that saturates.
    Returns: uint32.
    """
    x, sh = _i64(x), _i64(sh)
    right = round_shift_right(x, np.clip(sh, 0, 62))
    k = np.clip(-sh, 0, 63)
    fits = (k < 32) & (x <= (UINT32_MAX >> np.minimum(k, 31)))
    left = np.where(x == 0, 0, np.where(fits, np.left_shift(x, np.minimum(k, 31)), UINT32_MAX))
    res = np.where(sh >= 63, 0, np.where(sh >= 0, np.minimum(right, UINT32_MAX), left))
    return _ret(res, x, sh)


def lut_lerp_i16(table, n, x, frac_bits):
    """Linear interpolation in a table of n int16 values at step 2^frac_bits:
    x <= 0 gives table[0], x >= (n - 1) * 2^frac_bits gives table[n - 1], otherwise
    i = x >> frac_bits, f = x & (2^frac_bits - 1) and
    table[i] + round_shift_right((table[i+1] - table[i]) * f, frac_bits).
    (The CMSIS-NN int16 LUT scheme.)

    Args:
        table: n int16 values; n: 2..65536; x: int32; frac_bits: 0..30.
    Returns: int32.
    """
    t = np.asarray(table, dtype=np.int64)
    x, fb = _i64(x), int(frac_bits)
    top = (int(n) - 1) << fb
    xc = np.clip(x, 0, top - 1)
    i = xc >> fb
    f = xc & ((1 << fb) - 1)
    y = t[i] + round_shift_right((t[i + 1] - t[i]) * f, fb)
    res = np.where(x >= top, t[int(n) - 1], y)
    return _ret(res, x)


# ---------------------------------------------------------------------------------------
# front end v2 primitives (the 32-bit radix-4 FFT front end, docs/FRONTEND.md). The Arm
# DSP multiplies with the instructions' exact semantics (Armv7-M ARM A7.7: SMMULR, SMMLAR,
# SMMLSR, SMULWB; results are bits 63..32 of the 64-bit sum, which wraps modulo 2^64) and
# the table magnitude. Each has a C twin of the same name in kws_intmath.h, one
# instruction each on DSP cores (cmsis_compiler.h: __SMMULR, __SMMLAR, __SMMLSR, __SMULWB).
# ---------------------------------------------------------------------------------------


def _vec(*args):
    """(arrays as 1-d int64 broadcast together, scalar?) for the wrapping multiplies."""
    scalar = all(np.ndim(a) == 0 for a in args)
    arrs = np.broadcast_arrays(*(np.atleast_1d(_i64(a)) for a in args))
    return arrs, scalar


def _done(res, scalar):
    return int(res.reshape(-1)[0]) if scalar else res


def mul_hi_round32(a, b):
    """SMMULR: bits 63..32 of a * b + 2^31, i.e. a * b / 2^32 rounded to nearest with ties
    toward +inf (never overflows).

    Args: a, b: int32. Returns: int32 in [-2^30, 2^30].
    """
    (a, b), sc = _vec(a, b)
    return _done((a * b + (1 << 31)) >> 32, sc)


def mul_hi_round_add32(a, b, acc):
    """SMMLAR: bits 63..32 of acc * 2^32 + a * b + 2^31 (modulo 2^64), as int32: acc plus
    a * b / 2^32 rounded to nearest, ties toward +inf; wraps like the instruction when the
    sum leaves int32.

    Args: a, b, acc: int32. Returns: int32.
    """
    (a, b, acc), sc = _vec(a, b, acc)
    with np.errstate(over="ignore"):
        s = (acc << 32) + a * b + (1 << 31)      # int64 arithmetic wraps modulo 2^64
    return _done(s >> 32, sc)


def mul_hi_round_sub32(a, b, acc):
    """SMMLSR: bits 63..32 of acc * 2^32 - a * b + 2^31 (modulo 2^64), as int32: acc minus
    a * b / 2^32, rounded to nearest (ties toward +inf); wraps like the instruction.

    Args: a, b, acc: int32. Returns: int32.
    """
    (a, b, acc), sc = _vec(a, b, acc)
    with np.errstate(over="ignore"):
        s = (acc << 32) - a * b + (1 << 31)
    return _done(s >> 32, sc)


def mul_q16_i16(a, x):
    """SMULWB: (a * x) >> 16 (floor) for an int32 a and an int16 x: bits 47..16 of the
    48-bit product (never overflows).

    Args: a: int32; x: int16. Returns: int32 in [-2^30, 2^30].
    """
    (a, x), sc = _vec(a, x)
    return _done((a * x) >> 16, sc)


def magnitude_i32(re, im_, table):
    """|re + i im| from the power, relative error below 1.5e-4 (phase-independent): p = re^2 +
    im^2 (uint64), N = clz64(p) rounded down to even, m = the top 32 bits of p << N (in
    [2^30, 2^32)), s0 = table[(m >> 26) - 16] ~= sqrt(m) (1.6 %), one Newton step
    s = s0 + trunc((m - s0^2) / (2 s0)) (SDIV), result = s 2^(16 - N/2) (a left shift, or a
    right shift rounding down for p < 2^32); 0 for p = 0.

    Args:
        re, im_: int32 in (-2^30, 2^30).
        table: the 48 uint16 entries of :func:`magnitude_table`.
    Returns:
        uint32 values (< 2^30.5): the magnitude.
    """
    t = np.asarray(table, dtype=np.int64)
    (re, im_), sc = _vec(re, im_)
    p = re * re
    p += im_ * im_                               # < 2^61 on the domain
    n = clz64(np.maximum(p, 1)) & ~1
    m = ((p.astype(np.uint64) << n.astype(np.uint64)) >> np.uint64(32)).astype(np.int64)
    i = m >> 26
    i -= 16
    s0 = t.take(i)
    d = s0 * s0
    np.subtract(m, d, out=d)
    # C / SDIV: d / (2 s0) truncated toward zero. Computed in float64, exactly: |d| < 2^32
    # and 2 s0 >= 2^17, so a non-integer quotient is at least 1 / (2 s0) from every integer
    # while the float64 division errs by at most |d / (2 s0)| 2^-53 < 2^-38: trunc agrees.
    q = np.trunc(d.astype(np.float64) / (2.0 * s0)).astype(np.int64)
    s1 = s0 + q
    # s1 2^(16 - n/2) for n <= 32, s1 >> (n/2 - 16) otherwise: both are floor(s1 2^16 / 2^(n/2))
    s1 <<= 16
    n >>= 1
    s1 >>= n
    return _done(np.where(p == 0, 0, s1), sc)


# ---------------------------------------------------------------------------------------
# network primitives (issue 4: the SA-SSM network kernels of export/simulator.py and
# firmware_templates/kernels/kws_nn.c). Same names in kws_intmath.h.
# ---------------------------------------------------------------------------------------

def _inv_sqrt_table() -> np.ndarray:
    j = np.arange(193, dtype=np.float64)
    x = 2.0 ** 30 / np.sqrt(1.0 + j / 64.0)
    return (np.floor(x + 0.5)).astype(np.int64)


#: INV_SQRT_TABLE_Q30[j] = round(2^30 / sqrt(1 + j/64)), j = 0..192: 1/sqrt(x) on [1, 4] in
#: Q30 at 192 equal steps (the table of :func:`inv_sqrt_q30`; C: KWS_INV_SQRT_TABLE_Q30).
INV_SQRT_TABLE_Q30 = _inv_sqrt_table()


def round_shift_right32(x, n):
    """x / 2^n rounded to nearest, ties toward +inf, for an int32 x, in 32-bit arithmetic.

    Args:
        x: int32.
        n: shift 0..31.
    Returns:
        int32 floor(x / 2^n + 1/2) (x for n = 0), computed as
        (x >> n) + ((x >> (n - 1)) & 1), which never overflows (unlike x + 2^(n-1)).
        Equals :func:`round_shift_right` for every int32 x.
    """
    x, n = _i64(x), _i64(n)
    if x.size and x.max() < (1 << 62) and n.min() >= 0 and n.max() <= 62:
        # (x >> n) + bit n-1 of x = floor((x + 2^(n-1)) / 2^n): the int64 sum cannot overflow
        res = round_shift_right(x, n)
    else:
        bit = np.right_shift(x, np.maximum(n - 1, 0)) & 1
        res = np.where(n > 0, np.right_shift(x, n) + bit, x)
    return _out(res, x if np.ndim(x) else int(x), n if np.ndim(n) else int(n))


def mul_q16(a, b):
    """floor(a * b / 2^16) for an int32 a and an int16 b (Arm SMULWB: the top 32 bits of the
    48-bit product, truncated toward -inf).

    Args: a: int32; b: int16 (-32768..32767). Returns: int32.
    """
    a, b = _i64(a), _i64(b)
    res = a * b
    res >>= 16
    return _out(res, a if np.ndim(a) else int(a), b if np.ndim(b) else int(b))


def exp2_neg_lookup(p, frac_bits, table):
    """2^(-p / 2^frac_bits) by table look-up: table[p mod 2^frac_bits] >> floor(p / 2^frac_bits).

    The fractional part indexes ``table`` (entry i holds 2^(-i / 2^frac_bits) in the output
    Q-format, e.g. Q15); the integer part is an arithmetic right shift (floor), capped at 31
    (the result is then 0 for any table entry below 2^31).

    Args:
        p: int32 >= 0, the exponent magnitude in Q(frac_bits).
        frac_bits: 1..16, bits of the fractional part (table length 2^frac_bits).
        table: 2^frac_bits non-negative int32 entries.
    Returns:
        int32 table[p & (2^frac_bits - 1)] >> min(p >> frac_bits, 31).
    Source: exp(x) = 2^(x log2 e) split into integer and fractional parts
    (integer-pipeline notes, "exp(A * delta)").
    """
    p = _i64(p)
    tab = _i64(table)
    ip = np.minimum(np.right_shift(p, frac_bits), 31)
    res = tab.take(p & ((1 << int(frac_bits)) - 1))
    res >>= ip
    return int(res) if np.ndim(res) == 0 and not np.ndim(p) else res


def lut_interp_s16(x, table):
    """Piecewise-linear function of an int16 input from a 513-entry table (the scheme of
    CMSIS-NN's int16 sigmoid/tanh tables).

    Args:
        x: int16 input (-32768..32767).
        table: 513 int32 entries; entry j is the output at input -32768 + 128 j (the last,
            j = 512, at +32768, is only used for interpolation).
    Returns:
        int32 y = T[i] + round_shift_right((T[i+1] - T[i]) * f, 7) with u = x + 32768,
        i = u >> 7, f = u & 127 (ties toward +inf). Needs |T[i+1] - T[i]| < 2^24.
    """
    x = _i64(x)
    tab = _i64(table)
    u = x + 32768
    i = np.right_shift(u, 7)
    f = u & 127
    t0 = tab.take(i)
    i += 1
    d = tab.take(i)
    d -= t0
    d *= f
    d += 64                      # round_shift_right(d, 7): (d + 2^6) >> 7
    d >>= 7
    d += t0
    res = d
    return int(res) if np.ndim(res) == 0 and not np.ndim(x) else res


def bitlen64(v):
    """Bit length of a non-negative int64 (0 for 0): 64 - clz of its 64 bits, from clz32 of
    the two halves. Args: v: int64 >= 0. Returns: 0..63."""
    v = _i64(v)
    if v.size and v.min() < 0:                      # outside the domain: the two-half form
        hi = np.right_shift(v, 32)
        lo = v & 0xFFFFFFFF
        res = np.where(hi > 0, 64 - clz32(hi), 32 - clz32(lo))
    else:                                           # same result, from the float64 exponent
        res = _bitlen_f64(v)
    return _out(res, v if np.ndim(v) else int(v))


def inv_sqrt_shift(v):
    """The shift s of :func:`inv_sqrt_q30`: 1/sqrt(v) ~= inv_sqrt_q30(v) / 2^s.

    Args: v: int64 in [1, 2^62). Returns: s = 45 + k, k = ceil((bitlen(v) - 32) / 2), so
    s is in 30..60.
    """
    k = np.floor_divide(bitlen64(v) - 31, 2)
    res = 45 + k
    return _out(res, v if np.ndim(v) else int(v))


def inv_sqrt_q30(v):
    """Reciprocal square root mantissa: 1/sqrt(v) ~= inv_sqrt_q30(v) * 2^-inv_sqrt_shift(v),
    relative error below 3e-5, no division.

    Args:
        v: int64 in [1, 2^62).
    Returns:
        int32 f in (2^29, 2^30]. Algorithm (exact definition): k = ceil((bitlen(v) - 32) / 2);
        w = v >> 2k (k >= 0) or v * 2^-2k (k < 0), so w is in [2^30, 2^32);
        j = (w >> 24) - 64 in 0..191, r = (w >> 8) & 0xFFFF;
        f = T[j] - round_shift_right((T[j] - T[j+1]) * r, 16) with T = INV_SQRT_TABLE_Q30
        (linear interpolation of 2^30 / sqrt(w / 2^30); ties toward +inf).
    """
    v = _i64(v)
    k = np.floor_divide(bitlen64(v) - 31, 2)
    w = np.where(k >= 0, np.right_shift(v, np.maximum(2 * k, 0)),
                 np.left_shift(v, np.maximum(-2 * k, 0)))
    j = np.right_shift(w, 24) - 64
    r = np.right_shift(w, 8) & 0xFFFF
    t0 = INV_SQRT_TABLE_Q30[j]
    res = t0 - round_shift_right((t0 - INV_SQRT_TABLE_Q30[j + 1]) * r, 16)
    return _out(res, v if np.ndim(v) else int(v))


# ---------------------------------------------------------------------------------------
# code generator primitives (issue 5: the fast kernels of kws_nn_fast.c)
# ---------------------------------------------------------------------------------------

def multiply_by_quantized_multiplier_rshift(x, multiplier, right_shift):
    """:func:`multiply_by_quantized_multiplier` (x, multiplier, -right_shift) for the
    requantizes whose real multiplier is below 1 (every one of the network), in the form
    the C twin computes without testing the shift's sign.

    Args: x: int32; multiplier: Q31 in [0, 2^31 - 1]; right_shift: 0..31.
    Returns: int32. Exact definition: a = floor((x m + 2^30) / 2^31) (gemmlowp's
    SaturatingRoundingDoublingHighMul: its sign-dependent nudge rounds ties toward +inf;
    a > INT32_MIN for m < 2^31); result = a for right_shift 0, else
    floor((a - [a < 0]) / 2^right_shift + 1/2) (RoundingDivideByPOT: ties away from zero).
    Source: TFLite MultiplyByQuantizedMultiplier (double rounding).
    """
    x, m, r = _i64(x), _i64(multiplier), _i64(right_shift)
    a = (x * m + (1 << 30)) >> 31
    t = a - (a < 0)
    rr = np.maximum(r, 1)
    res = np.where(r == 0, a, (t + np.left_shift(np.int64(1), rr - 1)) >> rr)
    return _out(res, *(v if np.ndim(v) else int(v) for v in (x, multiplier, right_shift)))


# ---------------------------------------------------------------------------------------
# Python only: export-time helpers (no C twin; they run when the bundle is made).
# ---------------------------------------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^shift / 2^31 with multiplier a Q31
    value in [2^30, 2^31 - 1] (std::round, half away from zero).

    Args: real: a non-negative finite float.
    Returns: (multiplier, shift); (0, 0) for real = 0; shifts below -31 flush to (0, 0).
    Raises: ValueError for negative or non-finite input.
    """
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = int(math.floor(frac * (1 << 31) + 0.5))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"multiplier {real} is too large for a Q31 multiplier and shift <= 30")
    return q, shift


def round_half_away(x) -> np.ndarray:
    """Round floats half away from zero (C99 round()) to int64; use instead of np.round.

    Args: x: float64 scalar or array, |x| < 2^63. Returns: int64 of the same shape.
    Exact for every double: the fraction |x| - floor(|x|) is computed exactly and compared
    with 1/2 (``floor(|x| + 0.5)`` would round 0.49999999999999994 up and odd values above
    2^52 to the next even integer).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    f = np.floor(a)
    r = f + (a - f >= 0.5)
    return (np.sign(x) * r).astype(np.int64)


def log2_table() -> np.ndarray:
    """Q24 table of log2(1 + i/128), i = 0..128 (int32, rounded half away from zero), the
    table of :func:`log2_u64_q16`."""
    n = 1 << LOG2_LUT_BITS
    return np.array([int(math.floor(math.log2(1 + i / n) * (1 << 24) + 0.5)) for i in range(n + 1)],
                    dtype=np.int32)


def tanh_table(n_intervals: int = 256, x_max: float = 8.0) -> np.ndarray:
    """Q15 table of tanh(x) at x = i * x_max / n_intervals, i = 0..n_intervals (int16, rounded
    half away from zero, saturated to 32767), for :func:`lut_lerp_i16`."""
    vals = [min(32767, int(math.floor(math.tanh(i * x_max / n_intervals) * 32768 + 0.5)))
            for i in range(n_intervals + 1)]
    return np.array(vals, dtype=np.int16)


def magnitude_table() -> np.ndarray:
    """Table of round(sqrt((i + 1/2) 2^26)), i = 16..63 (48 uint16, rounded half away from
    zero): the square-root seeds of :func:`magnitude_i32`."""
    return np.array([int(math.floor(math.sqrt((i + 0.5) * 2 ** 26) + 0.5)) for i in range(16, 64)],
                    dtype=np.uint16)


# ---------------------------------------------------------------------------------------
# Python only: exactness helpers of the numpy twins (no C twin: the C computes the same
# integer sums in int32/int64 loops; these only choose how numpy computes them).
# ---------------------------------------------------------------------------------------

#: float64 represents every integer of magnitude <= 2^53 exactly
F64_EXACT = 2 ** 53


def matmul_exact(a, b) -> np.ndarray:
    """Exact integer matrix product ``a @ b`` (numpy matmul broadcasting), through float64
    BLAS when that is provably exact, else in int64.

    Args:
        a: (..., K) integer array; b: (..., K, O) integer array (e.g. a weight transpose).
    Returns:
        (..., O) int64, equal to the int64 product (no wrap may occur in it: |a @ b| < 2^63).
    Exactness: every partial sum BLAS forms for output o (any order, any blocking, with or
    without FMA) is a sum of a subset of the products a_k b_ko, so its magnitude is at most
    max|a| * max_o sum_k |b_ko| =: bound. When bound <= 2^53 every operand, product and
    partial sum is an integer float64 represents exactly, so each floating-point operation
    is exact and the result equals the integer product; otherwise the int64 product is
    computed. (The bound is a Python int: no overflow in it.)
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.matmul(a.astype(np.int64), b.astype(np.int64))
    amax = max(abs(int(a.max())), abs(int(a.min())))
    bsum = int(np.abs(b.astype(np.int64)).sum(axis=-2 if b.ndim > 1 else 0).max())
    if amax * bsum <= F64_EXACT:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))
