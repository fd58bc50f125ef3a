"""export/sim_jit.py: the numba kernels give exactly the integers of the numpy reference
they replace (front-end window/FFT/split/magnitude chain; SA-SSM dA, recurrence and readout
sum), on edge values (hypothesis) and on real clips through the whole simulator."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export import frontend_fixed as ff
from export import intmath as im
from export import sim_jit
from export import simulator as S

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frontend_c_util as fc  # noqa: E402
from qhelpers import SHARED, fixture_clips, small_bundle  # noqa: E402
from test_frontend_fixed import _stress  # noqa: E402

pytestmark = pytest.mark.skipif(not sim_jit.AVAILABLE, reason="numba not installed")


@pytest.fixture(scope="module")
def params():
    return ff.make_frontend_params(fc.synthetic_mel_fb(), -4.2)


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


# --- front end ---------------------------------------------------------------------------

_EDGE16 = st.sampled_from([-32768, 32767, -32767, 0, 1, -1, 16384, -16385, 255, -256])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(_EDGE16, st.integers(-32768, 32767)), min_size=1, max_size=64),
       st.integers(0, 15), st.integers(0, 2 ** 31))
def test_fft_chain_equals_numpy_on_edge_frames(params, vals, k, seed):
    """One frame (edge samples tiled to 512, then the same frame shuffled), every block
    shift the frame allows (x << k stays int16, as fe_block_shift guarantees): window, FFT, split and
    magnitude equal the numpy chain of _run_chunk."""
    a = params["arrays"]
    x = np.resize(np.array(vals, np.int64), 512)
    frames = np.stack([x, np.random.default_rng(seed).permutation(x)])
    peak = int(np.where(frames >= 0, frames, ~frames).max())
    k = min(k, 15 - peak.bit_length())
    s = np.array([k, k], np.int64)
    w = ff.window_natural(a["window_stage1_q25"])
    v = ((frames << s[:, None]) * w) >> 16
    zr, zi = ff._fft256_cols(np.ascontiguousarray(v[:, 0::2].T), np.ascontiguousarray(v[:, 1::2].T),
                             a["fft_twiddles_q31"])
    xr, xi = ff._rfft_split_cols(zr, zi, a["split_twiddles_q31"])
    mag = ff.fe_magnitude(xr, xi, a["sqrt_table"]).T
    got = sim_jit.fft_chain(frames.astype(np.int16), s, w,
                            a["fft_twiddles_q31"].astype(np.int64).reshape(63, 3, 2),
                            a["split_twiddles_q31"].astype(np.int64).reshape(127, 2),
                            a["sqrt_table"].astype(np.int64), True)
    for g, r in zip(got, (mag, v, zr.T, zi.T, xr.T, xi.T)):
        assert np.array_equal(g, r)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["signcos", "dc", "square", "uniform", "impulses"]), st.integers(0, 256),
       st.sampled_from([32767, -32768, 1, -1]), st.integers(0, 2 ** 31))
def test_frontend_engines_agree_on_stress_clips(params, kind, k, amp, seed):
    """Whole front end, every intermediate, on the worst-case clips of
    test_frontend_fixed (full-scale square waves, DC, impulses, uniform noise)."""
    a = np.stack([_stress(kind, k, amp, seed), np.zeros(16000, np.int16)])
    _same(ff.run_frontend(params, a, engine="numpy"), ff.run_frontend(params, a, engine="numba"))


# --- SA-SSM ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32), st.sampled_from([(15, 16), (0, 31), (1, 16), (30, 32), (20, 32)]),
       st.sampled_from([1, 4, 12, 16]), st.integers(1, 20), st.booleans(), st.booleans(),
       st.booleans())
def test_ssm_scan_equals_numpy(seed, f_hbits, fb, p_shift, use_xs, use_hrs, extremes):
    """dA, h and the readout sum against _ssm_discretize_dA + _ssm_recurrence + the einsum of
    ssm_readout, for int16/int32 states, several Q(F) of dA, x_shift and h_read_shift on or
    off, and operands at their type limits (int16 delta, int32 K, int16 du, int8/16 B~, C)."""
    rng = np.random.default_rng(seed)
    B, T, E, N = 2, 7, 3, 4
    F, hbits = f_hbits
    lim = lambda bits: (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)  # noqa: E731

    def arr(shape, bits, lo=None):
        lo_, hi = lim(bits)
        lo_ = lo_ if lo is None else lo
        x = rng.integers(lo_, hi + 1, shape, dtype=np.int64)
        if extremes:
            pick = rng.random(shape) < 0.5
            x[pick] = rng.choice([lo_, hi, 0], pick.sum())
        return x

    delta = arr((B, T, E), 16, lo=0)
    du, bg, C = arr((B, T, E), 16), arr((B, T, N), 16), arr((B, T, N), 16)
    k_a = arr((E, N), 32, lo=0)
    table = rng.integers(0, 1 << min(F + 1, 31), 1 << fb, dtype=np.int64)
    h_min, h_max = lim(hbits)
    p = dict(k_a=k_a, p_shift=p_shift, exp_frac_bits=fb, exp_table=table, dA_frac_bits=F,
             x_shift=rng.integers(0, 12, E) if use_xs else np.zeros(E, np.int64),
             h_min=h_min, h_max=h_max,
             h_read_shift=rng.integers(0, 17, E) if use_hrs else np.zeros(E, np.int64))
    assert S._ssm_jit_ok(p, delta, bg, C)
    dA = S._ssm_discretize_dA(delta, k_a, p_shift, fb, table)
    hs = S._ssm_recurrence(dA, du, bg, p)
    hrs = p["h_read_shift"]
    hr = im.round_shift_right(hs, hrs[:, None]) if hrs.any() else hs
    acc = np.einsum("...en,...n->...e", hr, C)
    got = S._ssm_scan_jit(delta, du, bg, C, p)
    for g, r in zip(got, (dA, hs, acc)):
        assert g.shape == r.shape and np.array_equal(g, r)
    # stored in narrower dtypes: the same as numpy's astype (int16 dA wraps for Q(F) > 15)
    h_dt = np.int16 if hbits == 16 else np.int32
    got = S._ssm_scan_jit(delta, du, bg, C, p, np.int16, h_dt)
    assert got[0].dtype == np.int16 and got[1].dtype == h_dt
    assert np.array_equal(got[0], dA.astype(np.int16)) and np.array_equal(got[1], hs.astype(h_dt))


_I32 = st.sampled_from([-(1 << 31), (1 << 31) - 1, 0, 1, -1, 1 << 30, -(1 << 30), 12345, -99999])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_I32, st.integers(-(1 << 40), 1 << 40)), min_size=1, max_size=24),
       st.lists(st.one_of(_I32, st.integers(1 << 30, (1 << 31) - 1)), min_size=1, max_size=6),
       st.lists(st.sampled_from([-31, -30, -1, 0, 1, 30, -7, 5]), min_size=1, max_size=6),
       st.integers(-128, 127), st.sampled_from([(-128, 127), (-32768, 32767), (0, 255)]))
def test_requantize_mbqm_equals_numpy(accs, mults, shifts, out_zp, qrange):
    """The fused requantize of fully_connected against multiply_by_quantized_multiplier +
    zero point + clamp, on accumulators beyond int32 (saturated first), INT32_MIN operands
    (the SRDHM overflow case), multipliers 0 / 2^30 / 2^31 - 1 and shifts -31..30."""
    o = min(len(mults), len(shifts))
    m, sh = np.array(mults[:o], np.int64), np.array(shifts[:o], np.int64)
    acc = np.resize(np.array(accs, np.int64), (max(1, len(accs) // o + 1), o))
    ref = np.clip(im.multiply_by_quantized_multiplier(acc, m, sh) + out_zp, *qrange)
    got = sim_jit.requantize_mbqm(acc, m, sh, out_zp, *qrange)
    assert np.array_equal(got, ref)


# --- whole simulator on real clips ---------------------------------------------------------

@pytest.mark.skipif(not (SHARED / "upstream").exists(),
                    reason="shared fixtures absent (published checkpoints)")
def test_simulator_engines_agree_on_real_clips():
    """Every tensor Simulator.run returns (front-end intermediates included), numba vs
    numpy, on 24 real clips (2 per class) with the Tiny test bundle, one and two threads."""
    bundle, _, _ = small_bundle("tiny")
    audio, _ = fixture_clips(2)
    ref = S.Simulator(bundle, engine="numpy").run(audio)
    sim = S.Simulator(bundle, engine="numba")
    _same(ref, sim.run(audio))
    _same({k: ref[k] for k in ("logits",)}, sim.run(audio, keep={"logits"}, threads=2,
                                                   frontend_intermediates=False))


def test_engine_names():
    assert sim_jit.resolve_engine("numpy") == "numpy"
    assert sim_jit.resolve_engine("auto") == ("numba" if sim_jit.AVAILABLE else "numpy")
    with pytest.raises(ValueError, match="engine"):
        sim_jit.resolve_engine("cuda")
