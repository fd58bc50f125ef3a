"""The network primitives of export/intmath.py (block "network primitives") against exact
big-int definitions (hypothesis, extremes included), and their C twin in kws_intmath.h
against them through tests/c/intmath_driver.c (host gcc, UBSan)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmsis_stub import stub_root
from export import intmath as im
from export.hostc import compile_host
from firmware_templates import template_root

EDGES32 = [im.INT32_MIN, im.INT32_MIN + 1, -65536, -32769, -32768, -129, -128, -2, -1, 0, 1, 2,
           127, 128, 32767, 32768, 65535, im.INT32_MAX - 1, im.INT32_MAX]
I32E = st.one_of(st.integers(im.INT32_MIN, im.INT32_MAX), st.sampled_from(EDGES32))
I16E = st.one_of(st.integers(-32768, 32767), st.sampled_from([-32768, -32767, -1, 0, 1, 32767]))
V64 = st.one_of(st.integers(1, 2 ** 62 - 1),
                st.sampled_from([1, 2, 3, 2 ** 30 - 1, 2 ** 30, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
                                 2 ** 47 + 1, 2 ** 62 - 1]))


# ---- exact definitions (Python big ints) ---------------------------------------------

def ref_rsr(x: int, n: int) -> int:
    """floor(x / 2^n + 1/2)."""
    return x if n == 0 else (2 * x + (1 << n)) // (1 << (n + 1))


def ref_exp2(p: int, fb: int, table: list[int]) -> int:
    return table[p % (1 << fb)] >> min(p // (1 << fb), 31)


def ref_lut(x: int, table: list[int]) -> int:
    u = x + 32768
    i, f = u // 128, u % 128
    return table[i] + ref_rsr((table[i + 1] - table[i]) * f, 7)


def ref_inv_sqrt(v: int) -> tuple[int, int]:
    b = v.bit_length()
    k = -((32 - b) // 2)                      # ceil((b - 32) / 2)
    w = v >> (2 * k) if k >= 0 else v << (-2 * k)
    assert 2 ** 30 <= w < 2 ** 32
    t = [int(x) for x in im.INV_SQRT_TABLE_Q30]
    j, r = (w >> 24) - 64, (w >> 8) & 0xFFFF
    return t[j] - ref_rsr((t[j] - t[j + 1]) * r, 16), 45 + k


# ---- properties --------------------------------------------------------------------------

@given(I32E, st.one_of(st.integers(0, 31), st.sampled_from([0, 31])))
def test_round_shift_right32_exact(x, n):
    assert im.round_shift_right32(x, n) == ref_rsr(x, n)
    assert im.round_shift_right32(x, n) == im.round_shift_right(x, n)


@given(I32E, I16E)
def test_mul_q16_exact(a, b):
    assert im.mul_q16(a, b) == (a * b) // 65536


@settings(deadline=None, max_examples=60)
@given(st.integers(0, im.INT32_MAX), st.integers(1, 10), st.data())
def test_exp2_neg_lookup_exact(p, fb, data):
    table = data.draw(st.lists(st.integers(0, 2 ** 31 - 1), min_size=1 << fb, max_size=1 << fb))
    assert im.exp2_neg_lookup(p, fb, table) == ref_exp2(p, fb, table)


def test_exp2_neg_lookup_extremes():
    fb = 8
    table = [min(32767, int(math.floor(32768 * 2 ** (-i / 256) + 0.5))) for i in range(256)]
    for p in (0, 1, 255, 256, 257, 31 * 256, 32 * 256 + 5, im.INT32_MAX):
        assert im.exp2_neg_lookup(p, fb, table) == ref_exp2(p, fb, table)
    assert im.exp2_neg_lookup(0, fb, table) == 32767
    assert im.exp2_neg_lookup(im.INT32_MAX, fb, table) == 0
    # the table approximates 2^-x to within one table step
    for p in range(0, 4096, 37):
        assert abs(im.exp2_neg_lookup(p, fb, table) / 32768 - 2 ** (-p / 256)) < 2 ** -14 + 2 ** -15


@settings(deadline=None, max_examples=60)
@given(I16E, st.data())
def test_lut_interp_s16_exact(x, data):
    table = data.draw(st.lists(st.integers(-2 ** 20, 2 ** 20), min_size=513, max_size=513))
    assert im.lut_interp_s16(x, table) == ref_lut(x, table)


@given(st.integers(0, 2 ** 63 - 1))
def test_bitlen64_exact(v):
    assert im.bitlen64(v) == v.bit_length()


@given(V64)
def test_inv_sqrt_exact_and_accurate(v):
    f, s = ref_inv_sqrt(v)
    assert im.inv_sqrt_q30(v) == f
    assert im.inv_sqrt_shift(v) == s
    assert 2 ** 29 < f <= 2 ** 30
    # |f * 2^-s * sqrt(v) - 1| < 3e-5, checked in exact integer arithmetic on the squares
    lhs = f * f * v
    lo, hi = (1 - 3e-5) ** 2, (1 + 3e-5) ** 2
    assert lo * 2 ** (2 * s) <= lhs <= hi * 2 ** (2 * s)


def test_vectorised_network_primitives_match_scalar():
    rng = np.random.default_rng(3)
    v = rng.integers(1, 2 ** 62, 500)
    assert im.inv_sqrt_q30(v).tolist() == [im.inv_sqrt_q30(int(a)) for a in v]
    assert im.inv_sqrt_shift(v).tolist() == [im.inv_sqrt_shift(int(a)) for a in v]
    x = rng.integers(im.INT32_MIN, im.INT32_MAX, 500, endpoint=True)
    n = rng.integers(0, 32, 500)
    assert im.round_shift_right32(x, n).tolist() == [ref_rsr(int(a), int(b)) for a, b in zip(x, n)]


def test_inv_sqrt_table_in_c_equals_python():
    header = (template_root() / "kernels" / "kws_intmath.h").read_text()
    body = header.split("KWS_INV_SQRT_TABLE_Q30[193] = {")[1].split("};")[0]
    assert [int(t) for t in body.replace("\n", " ").split(",")] == im.INV_SQRT_TABLE_Q30.tolist()


# ---- C twin ----------------------------------------------------------------------------------

def _c_cases():
    rng = np.random.default_rng(7)
    r32 = lambda n: [int(v) for v in rng.integers(im.INT32_MIN, im.INT32_MAX, n, endpoint=True)]
    lines, expect = [], []

    def case(name, a, b, want):
        lines.append(f"{name} {a} {b} 0")
        expect.append(want)

    for x in EDGES32 + r32(200):
        for n in (0, 1, 7, 15, 16, 30, 31):
            case("round_shift_right32", x, n, ref_rsr(x, n))
        for b in (-32768, -1, 0, 1, 12345, 32767):
            case("mul_q16", x, b, (x * b) // 65536)
    # exp2 table (int16 in C): Q15 2^-i/256
    fb = 8
    t16 = [min(32767, int(math.floor(32768 * 2 ** (-i / 256) + 0.5))) for i in range(256)]
    for i, t in enumerate(t16):
        lines.append(f"settable {i} {t} 0")
    for p in [0, 1, 255, 256, 4095, 31 * 256, 40 * 256, im.INT32_MAX] + [abs(v) for v in r32(200)]:
        case("exp2_neg_lookup", p, fb, ref_exp2(p, fb, t16))
    # lut table (int32 in C)
    t32 = [int(v) for v in rng.integers(-2 ** 23, 2 ** 23, 513)]
    for i, t in enumerate(t32):
        lines.append(f"settable {i} {t} 0")
    for x in list(range(-32768, 32768, 97)) + [-32768, 32767]:
        case("lut_interp_s16", x, 0, ref_lut(x, t32))
    for v in [1, 2, 3, 2 ** 30, 2 ** 31 - 1, 2 ** 32, 2 ** 47 + 3, 2 ** 62 - 1] + \
            [int(a) for a in rng.integers(1, 2 ** 62, 300)] + [int(a) for a in rng.integers(1, 2 ** 20, 100)]:
        f, s = ref_inv_sqrt(v)
        case("inv_sqrt_q30", v, 0, f)
        case("inv_sqrt_shift", v, 0, s)
        case("bitlen64", v, 0, v.bit_length())
    case("bitlen64", 0, 0, 0)
    return lines, expect


def test_c_twin_network_primitives_bit_exact(tmp_path):
    exe = compile_host([Path(__file__).parent / "c" / "intmath_driver.c"], tmp_path / "drv",
                       include_dirs=[template_root() / "kernels", stub_root()])
    lines, expect = _c_cases()
    proc = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, check=True)
    got = [int(v) for v in proc.stdout.split()]
    assert got == expect
