"""export/intmath.py against exact big-int definitions (hypothesis), and its C twin
firmware_templates/kernels/kws_intmath.h against it (host gcc, UBSan)."""

from __future__ import annotations

import re
from pathlib import Path
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export import intmath as im
from export.hostc import compile_host
from firmware_templates import template_root
from cmsis_stub import stub_root

I32 = st.integers(im.INT32_MIN, im.INT32_MAX)
EDGES32 = [im.INT32_MIN, im.INT32_MIN + 1, -65536, -32769, -32768, -129, -128, -2, -1, 0, 1, 2,
           127, 128, 32767, 32768, 65535, im.INT32_MAX - 1, im.INT32_MAX]
I32E = st.one_of(I32, st.sampled_from(EDGES32))


def _div_trunc(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    if a == b == im.INT32_MIN:
        return im.INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _div_trunc(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, e: int) -> int:
    # exact rational x / 2^e rounded half away from zero
    if e == 0:
        return x
    q, r = divmod(abs(x), 1 << e)
    if 2 * r >= (1 << e):
        q += 1
    return q if x >= 0 else -q


def ref_mbqm(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    xs = min(max(x * (1 << left), im.INT32_MIN), im.INT32_MAX)
    return ref_rdbpot(ref_srdhm(xs, m), right)


@given(I32E, I32E)
def test_srdhm_exact(a, b):
    assert im.saturating_rounding_doubling_high_mul(a, b) == ref_srdhm(a, b)


@given(I32E, st.integers(0, 31))
def test_rdbpot_exact(x, e):
    assert im.rounding_divide_by_pot(x, e) == ref_rdbpot(x, e)


@given(I32E, st.integers(0, im.INT32_MAX), st.integers(-31, 30))
def test_mbqm_exact(x, m, s):
    assert im.multiply_by_quantized_multiplier(x, m, s) == ref_mbqm(x, m, s)


@given(I32E, st.integers(0, im.INT32_MAX), st.integers(-31, 30))
def test_requantize_single_round_exact(x, m, s):
    n = 31 - s
    v = x * m
    exact = (v + (1 << (n - 1))) >> n  # floor((v + half) / 2^n): ties toward +inf
    assert im.requantize_single_round(x, m, s) == min(max(exact, im.INT32_MIN), im.INT32_MAX)


@given(st.integers(-(2 ** 61), 2 ** 61), st.integers(0, 60))
def test_round_shift_right_exact(x, n):
    exact = x if n == 0 else (2 * x + (1 << n)) // (1 << (n + 1))  # floor(x/2^n + 1/2)
    assert im.round_shift_right(x, n) == exact


@given(st.integers(-(2 ** 40), 2 ** 40))
def test_saturations(x):
    assert im.saturate_int8(x) == min(max(x, -128), 127)
    assert im.saturate_int16(x) == min(max(x, -32768), 32767)
    assert im.saturate_int32(x) == min(max(x, im.INT32_MIN), im.INT32_MAX)


@given(I32E, I32E)
def test_sat_add(a, b):
    assert im.sat_add_int32(a, b) == min(max(a + b, im.INT32_MIN), im.INT32_MAX)


@given(st.integers(0, 2 ** 32 - 1))
def test_clz32(x):
    assert im.clz32(x) == 32 - x.bit_length()


@given(st.floats(1e-9, 1e6, allow_nan=False))
def test_quantize_multiplier_roundtrip(real):
    m, s = im.quantize_multiplier(real)
    if m:
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(0)
    a = rng.integers(im.INT32_MIN, im.INT32_MAX, 1000, endpoint=True)
    b = rng.integers(im.INT32_MIN, im.INT32_MAX, 1000, endpoint=True)
    vec = im.saturating_rounding_doubling_high_mul(a, b)
    assert [ref_srdhm(int(x), int(y)) for x, y in zip(a, b)] == vec.tolist()


def _cases():
    rng = np.random.default_rng(1)
    cases = []
    r32 = lambda n: [int(v) for v in rng.integers(im.INT32_MIN, im.INT32_MAX, n, endpoint=True)]
    vals = EDGES32 + r32(300)
    for x in vals:
        cases += [("saturate_int8", x, 0, 0), ("saturate_int16", x, 0, 0),
                  ("clz32", x & 0xFFFFFFFF, 0, 0)]
        for e in (0, 1, 7, 15, 30, 31):
            cases.append(("rounding_divide_by_pot", x, e, 0))
        for y in EDGES32[::3] + r32(3):
            cases += [("saturating_rounding_doubling_high_mul", x, y, 0), ("sat_add_int32", x, y, 0)]
        for m in (0, 1 << 30, im.INT32_MAX, *r32(2)):
            m = abs(m) if m != im.INT32_MIN else im.INT32_MAX
            for s in (-31, -20, -1, 0, 1, 5, 30):
                cases += [("multiply_by_quantized_multiplier", x, m, s),
                          ("requantize_single_round", x, m, s)]
    for x in [-(2 ** 61), -(2 ** 40) - 3, -5, -1, 0, 1, 5, 2 ** 40 + 3, 2 ** 61]:
        cases.append(("saturate_int32", x, 0, 0))
        for n in (0, 1, 2, 31, 62 if abs(x) < 2 ** 61 else 61):
            cases.append(("round_shift_right", x, n, 0))
    return cases


def test_c_twin_bit_exact(tmp_path):
    exe = compile_host([_driver()], tmp_path / "intmath_driver",
                       include_dirs=[template_root() / "kernels", stub_root()])
    cases = _cases()
    stdin = "\n".join(f"{n} {a} {b} {c}" for n, a, b, c in cases) + "\n"
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = [int(v) for v in proc.stdout.split()]
    assert len(got) == len(cases)
    for (name, a, b, c), g in zip(cases, got):
        fn = getattr(im, name)
        args = {1: (a,), 2: (a, b), 3: (a, b, c)}[fn.__code__.co_argcount]
        assert g == fn(*args), (name, a, b, c)


def _driver():
    return Path(__file__).parent / "c" / "intmath_driver.c"


def test_python_and_c_name_the_same_functions():
    header = (template_root() / "kernels" / "kws_intmath.h").read_text()
    c_names = set(re.findall(r"static inline \w+ (\w+)\(", header))
    py_src = Path(im.__file__).read_text().split("# Python only")[0]
    py_names = set(re.findall(r"^def ([a-z]\w*)\(", py_src, re.M))
    assert c_names == py_names
