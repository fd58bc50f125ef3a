"""The numpy-only exactness tricks of export/intmath.py against exact integer arithmetic:
matmul_exact (float64 BLAS only when its bound proves every partial sum exact, int64
otherwise; checked at both sides of the 2^53 edge) and the float64-exponent bit length
behind clz64 / bitlen64 (exact also where the int -> float64 conversion rounds up to the
next power of two)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from export import intmath as im


def _exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Python big-int matrix product (object arrays), as int64."""
    return np.matmul(a.astype(object), b.astype(object)).astype(np.int64)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(0, 62),
       st.integers(0, 2 ** 32), st.data())
def test_matmul_exact_equals_big_int_product(m, k, o, abits, seed, data):
    rng = np.random.default_rng(seed)
    amax = 1 << abits
    # b large enough that some draws land on either side of the 2^53 bound
    bbits = data.draw(st.integers(0, max(0, 62 - abits - 3)))
    a = rng.integers(-amax, amax + 1, (m, k), dtype=np.int64)
    b = rng.integers(-(1 << bbits), (1 << bbits) + 1, (k, o), dtype=np.int64)
    a.flat[0] = data.draw(st.sampled_from([-amax, amax, 0]))
    # matmul_exact's precondition: no partial sum leaves int64 (else the test's own int64
    # conversion overflows, e.g. abits = 62 with k >= 2)
    assume(int(np.abs(a).max()) * int(np.abs(b).sum(axis=0).max()) < 2 ** 63)
    assert np.array_equal(im.matmul_exact(a, b), _exact(a, b))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(2, 8), st.integers(0, 2 ** 32))
def test_matmul_exact_batched(bsz, k, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2 ** 31, (bsz, 5, k), dtype=np.int64)
    b = rng.integers(0, 256, (bsz, k, 3), dtype=np.int64)
    want = np.stack([_exact(a[i], b[i]) for i in range(bsz)])
    assert np.array_equal(im.matmul_exact(a, b), want)


def test_matmul_exact_at_the_2_53_edge():
    # bound exactly 2^53: the float64 path, every partial sum representable
    a = np.array([[2 ** 27, 2 ** 27], [-(2 ** 27), 2 ** 27 - 1]], dtype=np.int64)
    b = np.array([[2 ** 25], [2 ** 25]], dtype=np.int64)
    assert np.array_equal(im.matmul_exact(a, b), _exact(a, b))
    # just above the bound: float64 would round 2^53 + 1, the int64 path does not
    a = np.array([[2 ** 53, 1]], dtype=np.int64)
    b = np.array([[1], [1]], dtype=np.int64)
    assert float(a[0, 0]) + float(a[0, 1]) == 2.0 ** 53          # the float64 sum is wrong
    assert im.matmul_exact(a, b)[0, 0] == 2 ** 53 + 1
    a = np.array([[2 ** 26 + 1, 2 ** 26 + 1]], dtype=np.int64)
    b = np.array([[2 ** 27 + 1], [2 ** 27 - 1]], dtype=np.int64)
    assert im.matmul_exact(a, b)[0, 0] == (2 ** 26 + 1) * 2 ** 28
    assert im.matmul_exact(np.zeros((0, 3), np.int64), np.ones((3, 2), np.int64)).shape == (0, 2)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 63), st.integers(-(2 ** 12), 2 ** 12))
def test_bitlen_near_powers_of_two(k, off):
    # values near 2^k, where the float64 conversion of x rounds up across a power of two
    x = (1 << k) + off
    if not 0 <= x < 2 ** 63:
        return
    arr = np.array([x, max(x - 1, 0), 0, 1], dtype=np.int64)
    want = [v.bit_length() for v in arr.tolist()]
    assert im.bitlen64(arr).tolist() == want
    assert im.clz64(arr).tolist() == [64 - w for w in want]
    assert im.bitlen64(x) == x.bit_length() and im.clz64(x) == 64 - x.bit_length()
