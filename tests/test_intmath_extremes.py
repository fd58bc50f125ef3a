"""Completeness and extremes of the integer primitives (export/intmath.py).

- Every public function of export/intmath.py is exercised by a test in tests/test_intmath*.py.
- Deterministic sweeps over the extremes (INT32_MIN/INT32_MAX, saturation edges, shifts 0
  and 31, multiplier 0 / 2^30 / INT32_MAX, zero inputs) against the exact big-int
  definitions of tests/test_intmath.py and tests/test_intmath_network.py, so the extremes
  are checked on every run, not only when hypothesis happens to draw them.
- Exact (fractions.Fraction) definitions of the Python-only export helpers
  ``quantize_multiplier`` and ``round_half_away``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import test_intmath as T1
import test_intmath_network as T2
from export import intmath as im

EDGES32 = T1.EDGES32 + [-(2 ** 30), 2 ** 30, -(2 ** 30) - 1, 2 ** 30 - 1, -32767, -127, 32766, 126]
SHIFTS = (0, 1, 15, 16, 30, 31)


def test_every_public_primitive_is_tested():
    src = Path(im.__file__).read_text()
    public = set(re.findall(r"^def ([a-z]\w*)\(", src, re.M))
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_intmath*.py"))
    used = set(re.findall(r"\bim\.([a-z]\w*)\(", tests))
    assert public - used == set(), f"untested intmath functions: {sorted(public - used)}"


# ---- C-twinned primitives at their extremes -------------------------------------------------

def test_saturation_edges():
    for lo, hi, fn in ((-128, 127, im.saturate_int8), (-32768, 32767, im.saturate_int16),
                       (im.INT32_MIN, im.INT32_MAX, im.saturate_int32)):
        for x in (lo - 1, lo, lo + 1, -1, 0, 1, hi - 1, hi, hi + 1, im.INT32_MIN, im.INT32_MAX,
                  -(2 ** 40), 2 ** 40):
            assert fn(x) == min(max(x, lo), hi), (fn.__name__, x)
    for a in EDGES32:
        for b in EDGES32:
            assert im.sat_add_int32(a, b) == min(max(a + b, im.INT32_MIN), im.INT32_MAX)


def test_srdhm_and_shifts_at_extremes():
    assert im.saturating_rounding_doubling_high_mul(im.INT32_MIN, im.INT32_MIN) == im.INT32_MAX
    for a in EDGES32:
        for b in EDGES32:
            assert im.saturating_rounding_doubling_high_mul(a, b) == T1.ref_srdhm(a, b), (a, b)
        for n in SHIFTS:
            assert im.rounding_divide_by_pot(a, n) == T1.ref_rdbpot(a, n), (a, n)
            assert im.round_shift_right32(a, n) == T2.ref_rsr(a, n), (a, n)
            assert im.round_shift_right(a, n) == T2.ref_rsr(a, n), (a, n)
    # the documented 64-bit range of round_shift_right: |x| < 2^62, n up to 62
    for x in (-(2 ** 62) + 1, -(2 ** 61), -1, 0, 1, 2 ** 61, 2 ** 62 - 1):
        for n in (0, 1, 31, 32, 61, 62):
            assert im.round_shift_right(x, n) == T2.ref_rsr(x, n), (x, n)


def test_requantize_at_extremes():
    mults = (0, 1, 1 << 30, (1 << 30) + 1, im.INT32_MAX - 1, im.INT32_MAX)
    for x in EDGES32:
        for m in mults:
            for s in (-31, -30, -16, -1, 0, 1, 16, 30):
                assert im.multiply_by_quantized_multiplier(x, m, s) == T1.ref_mbqm(x, m, s), (x, m, s)
                n = 31 - s
                exact = (x * m + (1 << (n - 1))) >> n
                assert im.requantize_single_round(x, m, s) == \
                    min(max(exact, im.INT32_MIN), im.INT32_MAX), (x, m, s)


def test_bit_counts_at_extremes():
    for x in (0, 1, 2, 3, 2 ** 15, 2 ** 16 - 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1):
        assert im.clz32(x) == 32 - x.bit_length()
    for v in (0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 62, 2 ** 63 - 1):
        assert im.bitlen64(v) == v.bit_length()
        assert im.clz64(v) == 64 - v.bit_length()


def test_mul_q16_and_lookups_at_extremes():
    for a in EDGES32:
        for b in (-32768, -32767, -1, 0, 1, 32766, 32767):
            assert im.mul_q16(a, b) == (a * b) // 65536, (a, b)
    # exp2_neg_lookup: p = 0, exactly one period, integer parts 30, 31, 32 (shift clamps at 31)
    fb = 8
    table = [2 ** 31 - 1] + [2 ** 31 - 1 - 1000 * i for i in range(1, 256)]
    for p in (0, 1, 255, 256, 30 * 256, 31 * 256 - 1, 31 * 256, 32 * 256, im.INT32_MAX):
        assert im.exp2_neg_lookup(p, fb, table) == T2.ref_exp2(p, fb, table), p
    # lut_interp_s16: both ends of the input range with extreme table slopes
    table = [(-1) ** i * (2 ** 20) for i in range(513)]
    for x in (-32768, -32767, -32641, -1, 0, 1, 32639, 32640, 32767):
        assert im.lut_interp_s16(x, table) == T2.ref_lut(x, table), x


def test_inv_sqrt_at_extremes():
    for v in (1, 2, 3, 4, 2 ** 30 - 1, 2 ** 30, 2 ** 32 - 1, 2 ** 32, 2 ** 62 - 1):
        f, s = T2.ref_inv_sqrt(v)
        assert (im.inv_sqrt_q30(v), im.inv_sqrt_shift(v)) == (f, s), v


def test_front_end_primitives_at_extremes():
    vals = T1.EDGES63 + [2 ** 63 - 2, 6, 7, 8]
    for v in vals:
        assert im.isqrt64(v) == math.isqrt(v)
        if v < 2 ** 32:
            assert im.isqrt32(v) == math.isqrt(v)
        if v < 2 ** 62:
            assert im.sqrt_u64_norm(v) == T1.ref_sqrt_u64_norm(v)
            for sh in (-64, -33, -32, -31, -1, 0, 1, 31, 32, 63, 64):
                assert im.shift_round_sat_u32(v, sh) == T1.ref_shift_round_sat_u32(v, sh), (v, sh)
        if v >= 1:
            assert im.log2_u64_q16(v, T1.LOG2_T) == T1.ref_log2_u64_q16(v)
            assert tuple(im.reciprocal_u64(v)) == T1.ref_reciprocal_u64(v)
            assert tuple(im.rsqrt_u64(v)) == T1.ref_rsqrt_u64(v)
    for x in (im.INT32_MIN, -1, 0, (256 << 11) - 1, 256 << 11, im.INT32_MAX):
        assert im.lut_lerp_i16(T1.TANH_T, 257, x, 11) == T1.ref_lut_lerp(T1.TANH_T, 257, x, 11)
        assert im.lut_lerp_i16(T1.TANH_T, 9, x, 0) == T1.ref_lut_lerp(T1.TANH_T, 9, x, 0)


# ---- Python-only export helpers: exact rational definitions ---------------------------------

def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier in exact rationals: real = f 2^e, f in [1/2, 1);
    q = floor(f 2^31 + 1/2) (ties away from zero: f > 0); q = 2^31 -> (2^30, e + 1);
    e < -31 -> (0, 0)."""
    if real == 0:
        return 0, 0
    r = Fraction(real)
    e = math.floor(math.log2(real)) + 1
    while r / Fraction(2) ** e >= 1:
        e += 1
    while r / Fraction(2) ** e < Fraction(1, 2):
        e -= 1
    q = math.floor(r / Fraction(2) ** e * 2 ** 31 + Fraction(1, 2))
    if q == 2 ** 31:
        q, e = 2 ** 30, e + 1
    if e < -31:
        return 0, 0
    return q, e


@given(st.one_of(st.floats(2.0 ** -40, 2.0 ** 29, allow_nan=False, allow_infinity=False),
                 st.sampled_from([0.0, 1.0, 0.5, 2.0 ** -31, 2.0 ** -32, 1 - 2.0 ** -53,
                                  1 - 2.0 ** -33, 2.0 ** 29 * (1 - 2.0 ** -53)])))
def test_quantize_multiplier_exact(real):
    want = ref_quantize_multiplier(real)
    assert im.quantize_multiplier(real) == want
    q, e = want
    if q:
        assert 2 ** 30 <= q < 2 ** 31
        assert abs(Fraction(q) * Fraction(2) ** (e - 31) - Fraction(real)) <= Fraction(2) ** (e - 32)


def test_quantize_multiplier_errors():
    # 2^30 (1 - 2^-53) rounds up to the Q31 multiplier 2^31, i.e. shift 31 > 30
    for bad in (-1.0, math.inf, math.nan, 2.0 ** 31, 2.0 ** 30, 2.0 ** 30 * (1 - 2.0 ** -53)):
        with pytest.raises(ValueError):
            im.quantize_multiplier(bad)


def ref_round_half_away(x: float) -> int:
    a = abs(Fraction(x))
    r = math.floor(a + Fraction(1, 2))
    return r if x >= 0 else -r


@given(st.one_of(st.floats(-(2.0 ** 62), 2.0 ** 62, allow_nan=False, allow_infinity=False),
                 st.integers(-(2 ** 20), 2 ** 20).map(lambda k: k / 2)))
@example(0.49999999999999994)
@example(-0.49999999999999994)
@example(2.0 ** 52 + 1)
@example(-(2.0 ** 52) - 1)
@example(2.5)
@example(-2.5)
def test_round_half_away_exact(x):
    assert int(im.round_half_away(x)) == ref_round_half_away(x)
    arr = np.array([x, -x, 0.5, -0.5])
    assert im.round_half_away(arr).tolist() == [ref_round_half_away(float(v)) for v in arr]


def test_tables_exact():
    assert im.log2_table().tolist() == [ref_round_half_away(math.log2(1 + i / 128) * 2 ** 24)
                                        for i in range(129)]
    assert im.tanh_table().tolist() == [min(32767, ref_round_half_away(math.tanh(i / 32) * 32768))
                                        for i in range(257)]
