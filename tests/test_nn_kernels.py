"""C network kernels (firmware_templates/kernels/kws_nn.c) against the Python kernels of
export/simulator.py, byte for byte: random inputs, and every op of a real bundle on real
frames (host gcc, strict flags, UBSan). Also: kws_nn.c compiles warning-free for Cortex-M4
and Cortex-M0+ with arm-none-eabi-gcc."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cmsis_stub import stub_root
from export import intmath as im
from export import simulator as S
from export.hostc import STRICT_CFLAGS, compile_host
from firmware_templates import template_root

from qhelpers import SHARED

KERNELS = template_root() / "kernels"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("nn") / "nn_driver"
    return compile_host([Path(__file__).parent / "c" / "nn_driver.c", KERNELS / "kws_nn.c"], out,
                        include_dirs=[KERNELS, stub_root()])


def run_cases(exe, cases):
    """cases: list of (tokens, expected flat int list). Runs them all in one process."""
    stdin = "\n".join(" ".join(str(int(t)) if not isinstance(t, str) else t for t in toks)
                      for toks, _ in cases) + "\n"
    proc = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases)
    for (toks, want), line in zip(cases, lines):
        got = [int(v) for v in line.split()]
        assert got == [int(v) for v in want], f"{toks[0]}: C {got[:12]} != Python {list(want)[:12]}"


def flat(*arrs):
    out = []
    for a in arrs:
        out += [int(v) for v in np.asarray(a).ravel()]
    return out


# ---- case builders (one frame each) -----------------------------------------------------

def fc_case(x, x_zp, W, b, m, s, ozp, lo, hi, single=False):
    w16 = np.asarray(W).dtype == np.int16
    fn = S.fully_connected_w16 if w16 else S.fully_connected
    y = fn(x, x_zp, W, b, m, s, ozp, lo, hi, single)
    rows, cols = W.shape
    return ([fn.__name__, rows, cols, x_zp, ozp, lo, hi, int(single)] + flat(x, W, b, m, s), flat(y))


def conv_case(hist, x, x_zp, W, b, m, s, ozp, lo, hi):
    w16 = np.asarray(W).dtype == np.int16
    fn = S.conv1d_depthwise_step_w16 if w16 else S.conv1d_depthwise_step
    y, new = fn(hist, x, x_zp, W, b, m, s, ozp, lo, hi)
    E, K = W.shape
    return ([fn.__name__, E, K, x_zp, ozp, lo, hi] + flat(hist, x, W, b, m, s),
            flat(y, new))


def ln_case(x, x_zp, eps, zf, g, b, m, s, ozp, lo, hi):
    y = S.layer_norm(x, x_zp, eps, zf, g, b, m, s, ozp, lo, hi)
    return (["layer_norm", len(x), x_zp, eps, zf, m, s, ozp, lo, hi] + flat(x, g, b), flat(y))


def ssm_case(h, u, d, bg, c, p):
    h2, y, _, _ = S.sa_ssm_step(h, u, d, bg, c, p)
    E, N = p["k_a"].shape
    assert not np.any(p["x_shift"])
    toks = ["sa_ssm_step", E, N, p["u_zp"], p["p_shift"], p["exp_frac_bits"], p["dA_frac_bits"],
            p["d_shift"], p["y_min"], p["y_max"]] + flat(
                h, u, d, bg, c, p["k_a"], p["exp_table"], p["du_multiplier"], p["du_shift"],
                p["h_read_shift"], p["d_q"], p["y_multiplier"], p["y_shift"])
    return toks, flat(y, h2)


# ---- random inputs -------------------------------------------------------------------------

def _mults(rng, n, lo_shift=-20, hi_shift=0):
    return (rng.integers(1 << 30, (1 << 31) - 1, n, endpoint=True),
            rng.integers(lo_shift, hi_shift, n, endpoint=True))


def test_random_fully_connected_conv_lut_add_mul_mean(driver):
    rng = np.random.default_rng(11)
    cases = []
    for trial in range(60):
        wide = trial % 2 == 0
        lo, hi = (-32768, 32767) if wide else (-128, 127)
        x_zp = 0 if wide else int(rng.integers(-128, 128))
        rows, cols = int(rng.integers(1, 50)), int(rng.integers(1, 41))
        x = rng.integers(lo, hi, cols, endpoint=True)
        if trial % 7 == 0:
            x[:] = lo if trial % 2 else hi                     # saturation edges
        W = rng.integers(-127, 128, (rows, cols)).astype(np.int8)
        b = rng.integers(-2 ** 20, 2 ** 20, rows)
        m, s = _mults(rng, rows)
        olo, ohi = ((-32768, 32767) if trial % 3 else (-128, 127))
        ozp = 0 if olo == -32768 else int(rng.integers(-128, 128))
        cases.append(fc_case(x, x_zp, W, b, m, s, ozp, olo, ohi))
        # int16 weights bounded like the quantizer's, int32 output with single rounding
        qm = max(127, (2 ** 30 - 1) // (max(abs(lo - x_zp), abs(hi - x_zp)) * cols))
        W16 = rng.integers(-qm, qm + 1, (rows, cols)).astype(np.int16)
        m3, s3 = _mults(rng, rows, -5, 12)
        cases.append(fc_case(x, x_zp, W16, b, m3, s3, 0, im.INT32_MIN, im.INT32_MAX, single=True))
        E, K = int(rng.integers(1, 40)), int(rng.integers(2, 5))
        hist = rng.integers(lo, hi, (K - 1, E), endpoint=True)
        xt = rng.integers(lo, hi, E, endpoint=True)
        Wc = rng.integers(-127, 128, (E, K)).astype(np.int8)
        m2, s2 = _mults(rng, E)
        cases.append(conv_case(hist, xt, x_zp, Wc, rng.integers(-2 ** 20, 2 ** 20, E), m2, s2,
                               ozp, olo, ohi))
        Wc16 = rng.integers(-3000, 3001, (E, K)).astype(np.int16)
        cases.append(conv_case(hist, xt, x_zp, Wc16, rng.integers(-2 ** 20, 2 ** 20, E), m2, s2,
                               ozp, olo, ohi))
        r32a = rng.integers(im.INT32_MIN, im.INT32_MAX, E, endpoint=True)
        r32b = rng.integers(im.INT32_MIN, im.INT32_MAX, E, endpoint=True)
        cases.append((["residual_add", E] + flat(r32a, r32b), flat(S.residual_add(r32a, r32b))))
        n = int(rng.integers(1, 64))
        xs = rng.integers(-128, 128, n)
        tab = rng.integers(-32768, 32768, 256)
        cases.append((["lut_s8", n] + flat(xs, tab), flat(S.lut_s8(xs, tab))))
        x16 = rng.integers(-32768, 32768, n)
        x16[0], x16[-1] = -32768, 32767
        t16 = np.cumsum(rng.integers(0, 200, 513)) - 30000
        cases.append((["lut_s16", n] + flat(x16, t16), flat(S.lut_s16(x16, t16))))
        a = rng.integers(lo, hi, n, endpoint=True)
        bb = rng.integers(lo, hi, n, endpoint=True)
        zpa = 0 if wide else int(rng.integers(-128, 128))
        zpb = 0 if wide else int(rng.integers(-128, 128))
        ls = 15 if wide else 20
        (ma, mb, mo), (sa, sb, so) = _mults(rng, 3, -10, 0)
        so = int(rng.integers(-25, -10))
        cases.append((["elementwise_add", n, zpa, zpb, ls, ma, sa, mb, sb, mo, so, ozp, olo, ohi]
                      + flat(a, bb),
                      flat(S.elementwise_add(a, bb, zpa, zpb, ls, ma, sa, mb, sb, mo, so, ozp, olo, ohi))))
        mm, sm = _mults(rng, 1, -31, 0)
        cases.append((["elementwise_mul", n, zpa, zpb, int(mm[0]), int(sm[0]), ozp, olo, ohi] + flat(a, bb),
                      flat(S.elementwise_mul(a, bb, zpa, zpb, int(mm[0]), int(sm[0]), ozp, olo, ohi))))
        T = int(rng.integers(1, 102))
        xm = rng.integers(lo, hi, (T, n), endpoint=True)
        mp, sp = _mults(rng, 1, -20, -5)
        acc = S.mean_pool_accumulate(np.zeros(n, np.int64), xm, x_zp, axis=0)
        want = S.mean_pool_finalize(acc, int(mp[0]), int(sp[0]), ozp, olo, ohi)
        cases.append((["mean_pool", n, x_zp, T, int(mp[0]), int(sp[0]), ozp, olo, ohi] + flat(xm), flat(want)))
    run_cases(driver, cases)


def test_argmax_s32_label(driver):
    """The label kernel: first maximum, ties to the lowest index, int32 extremes included."""
    rng = np.random.default_rng(5)
    cases = []
    rows = [np.array([7]), np.full(12, im.INT32_MIN), np.full(12, im.INT32_MAX),
            np.array([3, 9, 9, -1, 9]), np.array([im.INT32_MIN, im.INT32_MAX, im.INT32_MAX, 0])]
    rows += [rng.integers(-4, 4, 12) for _ in range(40)]
    rows += [rng.integers(im.INT32_MIN, im.INT32_MAX, int(rng.integers(1, 30)), endpoint=True)
             for _ in range(40)]
    for x in rows:
        want = S.argmax_s32(x)
        assert int(want[0]) == int(np.flatnonzero(x == x.max())[0])
        cases.append((["argmax_s32", len(x)] + flat(x), flat(want)))
    run_cases(driver, cases)


def test_random_layer_norm(driver):
    rng = np.random.default_rng(12)
    cases = []
    for trial in range(80):
        D = int(rng.choice([2, 16, 24, 40, 64]))
        spread = int(rng.choice([0, 1, 30, 3000, 32767, 2 ** 20, 2 ** 30]))
        x = np.clip(rng.integers(-spread, spread + 1, D) + int(rng.integers(-1000, 1000)),
                    im.INT32_MIN, im.INT32_MAX)
        if trial == 0:
            x[:] = -32768
        if trial == 1:
            x[::2], x[1::2] = -32768, 32767                 # largest int16 variance
        if trial == 2:
            x[::2], x[1::2] = im.INT32_MIN, im.INT32_MAX     # largest int32 variance
        zf = int(math.floor(math.log2(32767 / math.sqrt(max(D - 1, 1)))))
        g = rng.integers(-32767, 32768, D)
        b = rng.integers(-2 ** 30 + 2 ** 15 * 32767, 2 ** 30 - 2 ** 15 * 32767, D) // 2
        m, s = _mults(rng, 1, -30, 0)
        eps = int(rng.choice([1, 17, 10 ** 6, 10 ** 12]))
        ozp = int(rng.integers(-128, 128))
        cases.append(ln_case(x, 0, eps, zf, g.astype(np.int16), b, int(m[0]), int(s[0]), ozp,
                             -128, 127))
    run_cases(driver, cases)


def _exp_table(fb=8, F=15):
    i = np.arange(1 << fb)
    return np.minimum(im.round_half_away(2.0 ** F * 2.0 ** (-i / (1 << fb))), 2 ** F - 1)


def test_random_sa_ssm_step(driver):
    rng = np.random.default_rng(13)
    cases = []
    for trial in range(60):
        E, N = int(rng.integers(1, 40)), int(rng.integers(1, 9))
        u_zp = int(rng.integers(-128, 128))
        p = dict(u_zp=u_zp, k_a=rng.integers(0, 2 ** 31, (E, N)), p_shift=int(rng.integers(1, 16)),
                 exp_frac_bits=8, exp_table=_exp_table(),
                 du_multiplier=rng.integers(1 << 30, 1 << 31, E), du_shift=rng.integers(-12, 3, E),
                 du_min=-32768, du_max=32767, x_shift=np.zeros(E, np.int64), dA_frac_bits=15,
                 h_min=-32768, h_max=32767, h_read_shift=rng.integers(0, 3, E),
                 d_q=rng.integers(-(2 ** 22), 2 ** 22, E), d_shift=int(rng.integers(0, 20)),
                 y_multiplier=rng.integers(1 << 30, 1 << 31, E), y_shift=rng.integers(-20, 0, E),
                 y_min=-32768, y_max=32767)
        h = rng.integers(-32768, 32768, (E, N))
        u = rng.integers(-128, 128, E)
        d = rng.integers(0, 32768, E)
        bg = rng.integers(-32768, 32768, N)
        c = rng.integers(-32768, 32768, N)
        if trial < 4:                                       # saturation edges
            h[:], bg[:], d[:] = (-32768, -32768, 32767) if trial % 2 else (32767, 32767, 32767)
            u[:] = 127 if trial < 2 else -128
        cases.append(ssm_case(h, u, d, bg, c, p))
    run_cases(driver, cases)


# ---- every op of a real bundle on real frames ----------------------------------------------

def test_real_bundle_ops_frame_by_frame(driver):
    if not (SHARED / "upstream" / "nanomamba_tiny.pt").exists():
        pytest.skip("shared fixtures absent: no published checkpoint to quantize")
    from qhelpers import small_bundle
    bundle, _, audio = small_bundle("tiny")
    sim = S.Simulator(bundle)
    env = sim.run(audio[:2])
    tens = bundle.meta["tensors"]
    zp = lambda n: int(tens[n]["zero_point"])
    cases = []
    frames = (0, 1, 2, 3, 40, 100)
    for op in bundle.meta["ops"]:
        a = {k: bundle.arrays[v] for k, v in op["arrays"].items()}
        p = op["params"]
        out = op["outputs"][0]
        lo, hi = sim.qrange(out)
        for b in range(2):
            if op["type"] == "mean":
                x = env[op["inputs"][0]][b]
                cases.append((["mean_pool", x.shape[1], zp(op["inputs"][0]), x.shape[0], p["multiplier"],
                               p["shift"], zp(out), lo, hi] + flat(x), flat(env[out][b])))
                continue
            single = p.get("requantize") == "requantize_single_round"
            if op["type"] == "argmax":
                cases.append((["argmax_s32", int(p["n"])] + flat(env[op["inputs"][0]][b]),
                              flat(env[out][b])))
                continue
            if op["stage"] == "clip":
                cases.append(fc_case(env[op["inputs"][0]][b], zp(op["inputs"][0]), a["weight"], a["bias"],
                                     a["multiplier"], a["shift"], zp(out), lo, hi, single))
                assert cases[-1][1] == flat(env[out][b])
                continue
            for t in frames:
                ins = [env[n][b, t] for n in op["inputs"]]
                want = flat(env[out][b, t])
                extra = []                    # state outputs the C driver also prints
                if op["type"] == "fully_connected":
                    toks, got = fc_case(ins[0], zp(op["inputs"][0]), a["weight"], a["bias"],
                                        a["multiplier"], a["shift"], zp(out), lo, hi, single)
                elif op["type"] == "conv1d_depthwise":
                    K = a["weight"].shape[1]
                    seq = env[op["inputs"][0]][b]
                    hist = np.stack([seq[t - K + 1 + j] if t - K + 1 + j >= 0 else
                                     np.full(seq.shape[1], zp(op["inputs"][0])) for j in range(K - 1)])
                    toks, got = conv_case(hist, ins[0], zp(op["inputs"][0]), a["weight"], a["bias"],
                                          a["multiplier"], a["shift"], zp(out), lo, hi)
                    extra = flat(np.concatenate([hist[1:], ins[0][None]]))
                elif op["type"] == "layer_norm":
                    toks, got = ln_case(ins[0], zp(op["inputs"][0]), p["eps_q"], p["z_frac_bits"],
                                        a["gamma"], a["beta"], p["multiplier"], p["shift"], zp(out), lo, hi)
                elif op["type"] == "lut":
                    kern = S.lut_s8 if p["kind"] == "s8" else S.lut_s16
                    got = flat(kern(ins[0], a["table"]))
                    toks = [f"lut_{p['kind']}", len(ins[0])] + flat(ins[0], a["table"])
                elif op["type"] == "add" and p.get("same_scale"):
                    got = flat(S.residual_add(ins[0], ins[1]))
                    toks = ["residual_add", len(ins[0])] + flat(ins[0], ins[1])
                elif op["type"] == "add":
                    args = [zp(op["inputs"][0]), zp(op["inputs"][1]), p["left_shift"], p["a_multiplier"],
                            p["a_shift"], p["b_multiplier"], p["b_shift"], p["out_multiplier"],
                            p["out_shift"], zp(out), lo, hi]
                    got = flat(S.elementwise_add(ins[0], ins[1], *args))
                    toks = ["elementwise_add", len(ins[0])] + args + flat(ins[0], ins[1])
                elif op["type"] == "mul":
                    args = [zp(op["inputs"][0]), zp(op["inputs"][1]), p["multiplier"], p["shift"],
                            zp(out), lo, hi]
                    got = flat(S.elementwise_mul(ins[0], ins[1], *args))
                    toks = ["elementwise_mul", len(ins[0])] + args + flat(ins[0], ins[1])
                elif op["type"] == "sa_ssm":
                    pre = op["name"].rsplit(".", 1)[0]
                    sp = sim.ssm_params(op)
                    hprev = env[pre + ".h"][b, t - 1] if t > 0 else np.zeros(sp["k_a"].shape, np.int64)
                    toks, got = ssm_case(hprev, *ins, sp)
                    extra = flat(env[pre + ".h"][b, t])
                else:
                    raise AssertionError(f"untested op type {op['type']}")
                # the one-frame Python kernel reproduces the simulator's whole-sequence run
                assert got == want + extra, (op["name"], b, t)
                cases.append((toks, got))
    run_cases(driver, cases)


# ---- cross-compilation -------------------------------------------------------------------------

@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus"])
def test_kws_nn_compiles_for_cortex_m(tmp_path, cpu):
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    extra = ["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] if cpu == "cortex-m4" else []
    cmd = [cc, *STRICT_CFLAGS, "-O2", f"-mcpu={cpu}", "-mthumb", *extra, f"-I{KERNELS}",
           f"-I{stub_root()}", "-c", str(KERNELS / "kws_nn.c"), "-o", str(tmp_path / "kws_nn.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_python_kernels_have_c_twins():
    c_src = (KERNELS / "kws_nn.c").read_text()
    c_names = set(re.findall(r"^(?:void|int32_t) (\w+)\(", c_src, re.M))
    py_kernels = {"fully_connected", "fully_connected_w16", "conv1d_depthwise_step",
                  "conv1d_depthwise_step_w16", "layer_norm", "lut_s8", "lut_s16",
                  "elementwise_add", "residual_add", "elementwise_mul", "sa_ssm_step",
                  "mean_pool_accumulate", "mean_pool_finalize", "argmax_s32"}
    assert py_kernels <= set(dir(S))
    assert c_names == py_kernels
    for n in c_names:
        assert f"simulator.{n}" in c_src, f"C kernel {n} does not cite its Python twin"


def test_fast_kernels_cite_their_python_twins():
    """Every kernel of kws_nn_fast.{h,c} (typed-storage variants used by generated models)
    names the simulator kernel whose integers it computes."""
    fast = (KERNELS / "kws_nn_fast.c").read_text() + (KERNELS / "kws_nn_fast.h").read_text()
    names = set(re.findall(r"^(?:KWS_INLINE |static inline __attribute__\(\(always_inline\)\) )?"
                           r"void (\w+)\(", fast, re.M))
    names |= set(re.findall(r"^\s*void (sa_ssm_step_s16)\(", fast, re.M))
    assert {"fc_s16_w16_out16", "fc_s16_w16_out32", "conv1d_dw_s16_w8", "layer_norm_s32",
            "lut_s16_s16", "elementwise_mul_s16", "sa_ssm_step_s16"} <= names
    comments = re.findall(r"/\*.*?\*/", fast, re.S)
    for n in names:
        assert any(n in c and "simulator." in c for c in comments), \
            f"fast kernel {n} does not cite its Python twin"
