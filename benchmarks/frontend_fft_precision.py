"""How much of the features' fidelity the FFT's number format costs: v2's 32-bit FFT against
16-bit (Q15) FFTs, the design question behind the front end's instruction budget
(docs/FRONTEND.md, section Cost).

Only |X| differs between the rows; everything after it (mel, log, instance norm, SNR) is
float64, so the SQNR isolates the spectrum's error (the shipped front end then also rounds
the log to its 10-bit cell code, which limits it to ~52 dB mean, ~43 dB min). Rows:

- ``v2 32-bit FFT``: the twin's ``mag`` (block floating point from the hop peaks, Q25
  window, 32-bit radix-4 FFT, magnitude with a Newton step), scaled to float units.
- ``Q15 window, exact FFT``: the frame x << k times a Q15 Hann window rounded to int16, then
  an exact FFT: the window's own cost.
- ``Q15 FFT, >>2 per stage``: the same int16 frame through a 256-point radix-4 FFT with
  int16 data, Q15 twiddles and a fixed floor shift by 2 per stage (the scaling of CMSIS
  arm_cfft_q15), then an exact split and magnitude.
- ``Q15 FFT, per-stage BFP``: as above, but each stage shifts by the smallest 0..2 bits that
  keeps that frame's stage output in int16 (block floating point per stage and frame).

SQNR (dB) per clip against the float64 STFT front end (``nanomamba.frontend`` semantics);
the means leave out clips where the output is identical (infinite SQNR).

    python benchmarks/frontend_fft_precision.py [--clips 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nanomamba  # noqa: E402
from nanomamba.audio import list_clips, load_audio  # noqa: E402
from export import frontend_fixed as ff  # noqa: E402

FIX = ROOT.parent / "shared" / "fixtures"
REV3 = np.array([((q & 3) << 4) | (q & 12) | (q >> 4) for q in range(64)])


def q15(x: np.ndarray) -> np.ndarray:
    """Round half up to Q15, saturated to int16."""
    return np.floor(np.asarray(x) * 32768 + 0.5).clip(-32768, 32767)


def fft256_sim(z: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Radix-4 DIT 256-point FFT of z (F, 256) complex (integer parts), the same data flow as
    frontend_fixed.fe_fft256. mode "exact" (float, no rounding), "fixed" (floor shift by 2
    per stage, int16) or "bfp" (per-frame, per-stage floor shift 0..2 to fit int16; Q15
    twiddles in both). Returns (Z, s) with Z 2^s = DFT256(z) up to rounding, s (F,)."""
    f = z.shape[0]
    total = np.zeros(f)

    def shift_for(v: np.ndarray) -> np.ndarray:
        if mode == "exact":
            return np.zeros(f)
        if mode == "fixed":
            return np.full(f, 2.0)
        peak = np.maximum(np.abs(v.real), np.abs(v.imag)).reshape(f, -1).max(axis=1)
        sh = np.zeros(f)
        while True:
            over = peak / 2.0 ** sh > 32767
            if not over.any():
                return sh
            sh[over] += 1

    def scale(v: np.ndarray, sh: np.ndarray) -> np.ndarray:
        if mode == "exact":
            return v
        d = (2.0 ** sh).reshape((-1,) + (1,) * (v.ndim - 1))
        return np.floor(v.real / d) + 1j * np.floor(v.imag / d)

    x = [z[:, np.arange(64) + 64 * m] for m in range(4)]
    y0, y1, y2, y3 = x[0] + x[2], x[0] - x[2], x[1] + x[3], x[1] - x[3]
    out = np.empty((f, 64, 4), complex)
    out[:, REV3, 0], out[:, REV3, 1] = y0 + y2, y1 - 1j * y3
    out[:, REV3, 2], out[:, REV3, 3] = y0 - y2, y1 + 1j * y3
    sh = shift_for(out)
    a = scale(out, sh).reshape(f, 256)
    total += sh
    for qs in (4, 16, 64):
        j = np.arange(qs) * (64 // qs)
        xb = a.reshape(f, 256 // (4 * qs), 4, qs)
        t = [xb[:, :, 0]]
        for m in (1, 2, 3):
            ang = 2 * np.pi * m * j / 256
            w = np.exp(-1j * ang) if mode == "exact" else (q15(np.cos(ang)) - 1j * q15(np.sin(ang))) / 32768
            t.append(xb[:, :, m] * w)
        y0, y1, y2, y3 = t[0] + t[2], t[0] - t[2], t[1] + t[3], t[1] - t[3]
        nb = np.stack([y0 + y2, y1 - 1j * y3, y0 - y2, y1 + 1j * y3], axis=2)
        sh = shift_for(nb)
        a = scale(nb, sh).reshape(f, 256)
        total += sh
    return a, total


def magnitude_from_z(z: np.ndarray, s: np.ndarray) -> np.ndarray:
    """|X| (F, 257) of the 512-point real DFT from the 256-point complex one (exact split)."""
    zz = z * 2.0 ** s[:, None]
    k = np.arange(257)
    zk, zn = zz[:, k % 256], np.conj(zz[:, (256 - k) % 256])
    return np.abs((zk + zn) / 2 + np.exp(-2j * np.pi * k / 512) * (-0.5j) * (zk - zn))


def float_features(mag: np.ndarray, fb: np.ndarray, ns: float) -> tuple[np.ndarray, np.ndarray]:
    """(features, snr_mel) in float64 from |X| (T, 257) in float units."""
    lm = np.log(mag @ fb.T + 1e-8)
    feat = (lm - lm.mean(0, keepdims=True)) / np.sqrt(lm.var(0, keepdims=True) + 1e-5)
    noise = mag[:5].mean(0, keepdims=True)
    return feat, np.tanh((mag / (abs(ns) * noise + 1e-8)) @ fb.T / 10)


def sqnr_db(ref: np.ndarray, q: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - q)^2); inf when identical."""
    err = float(((ref - q) ** 2).sum())
    return float("inf") if err == 0 else float(10 * np.log10((ref ** 2).sum() / err))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=150, help="random speech clips (of 1,100)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = nanomamba.load_checkpoint(FIX / "upstream" / "nanomamba_tiny.pt")
    fb = model.frontend.mel_fb.numpy().astype(np.float64)
    ns = float(model.frontend.snr_estimator.noise_scale.detach())
    params = ff.make_frontend_params(fb, ns)
    root = FIX / "speech_commands_test"
    paths = [p for p in list_clips(root) if p.relative_to(root).parts[0] != "silence"]
    pick = np.random.default_rng(args.seed).choice(len(paths), min(args.clips, len(paths)), replace=False)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    w15 = q15(hann)
    rows = {"v2 32-bit FFT": [], "Q15 window, exact FFT": [], "Q15 FFT, >>2 per stage": [],
            "Q15 FFT, per-stage BFP": []}
    modes = {"exact": "Q15 window, exact FFT", "fixed": "Q15 FFT, >>2 per stage", "bfp": "Q15 FFT, per-stage BFP"}
    for i in tqdm(sorted(pick), desc="clips"):
        out = ff.run_frontend(params, load_audio(paths[i], dtype="int16")[None])
        frames = out["frames"][0].astype(np.float64)
        k = out["block_shift"][0].astype(np.float64)[:, None]
        ref_f, ref_s = float_features(np.abs(np.fft.rfft(frames / 32768 * hann, axis=-1)), fb, ns)
        f, s = float_features(out["mag"][0].astype(np.float64) * 2.0 ** -(ff.MAG_FLOAT_SHIFT + k), fb, ns)
        rows["v2 32-bit FFT"].append((sqnr_db(ref_f, f), sqnr_db(ref_s, s)))
        v = np.floor(frames * 2.0 ** k * w15 / 32768 + 0.5)          # x << k times Q15 window: int16
        for mode, name in modes.items():
            z, sh = fft256_sim(v[:, 0::2] + 1j * v[:, 1::2], mode)
            f, s = float_features(magnitude_from_z(z, sh) / 2.0 ** k / 32768, fb, ns)
            rows[name].append((sqnr_db(ref_f, f), sqnr_db(ref_s, s)))
    t = Table("spectrum", "features dB mean", "min", "snr_mel dB mean", "min",
              title=f"|X| precision only ({len(pick)} speech clips, NanoMamba-Tiny mel_fb; float64 after |X|)")
    for name, v in rows.items():
        a = np.array(v)
        mean = [a[np.isfinite(a[:, c]), c].mean() for c in (0, 1)]     # identical clips left out
        t.add_row(name, f"{mean[0]:.1f}", f"{a[:, 0].min():.1f}", f"{mean[1]:.1f}", f"{a[:, 1].min():.1f}")
    Console(width=120).print(t)


if __name__ == "__main__":
    main()
