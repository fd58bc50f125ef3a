"""Fidelity of the fixed-point front end against the float one (nanomamba.frontend).

For the 3 fixture clips and the 1,200 Speech Commands test clips: SQNR (dB) per clip of the
dequantized fixed-point features and snr_mel against the float front end in float32
arithmetic (``compute_dtype="float32"``) and against a float64 one (the model's own default
arithmetic); and the label agreement of the float network fed with the dequantized
fixed-point features vs the float model (its default float64 front end), for NanoMamba-Tiny
and -Small.
Targets (35 dB on speech, labels kept on the fixture clips) are checked here and in
tests/test_frontend_fixed.py, never timed.

    python benchmarks/frontend_fidelity.py [--limit N] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nanomamba  # noqa: E402
from nanomamba.audio import list_clips, load_audio  # noqa: E402
from nanomamba.config import LABELS  # noqa: E402
from nanomamba.frontend import stft_magnitude  # noqa: E402
from export import frontend_fixed as ff  # noqa: E402

FIX = ROOT.parent / "shared" / "fixtures"


def sqnr_db(ref: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per clip 10 log10(sum ref^2 / sum (ref - q)^2); inf when identical."""
    ref = ref.astype(np.float64)
    err = ((ref - q) ** 2).sum(axis=(1, 2))
    sig = (ref ** 2).sum(axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(sig / err)


def float64_frontend(audio_i16: np.ndarray, mel_fb: np.ndarray, noise_scale: float):
    """The README semantics in float64 (same as nanomamba.frontend, higher precision)."""
    x = torch.from_numpy(audio_i16.astype(np.float64) / 32768.0)
    fb = torch.from_numpy(mel_fb.astype(np.float64))
    mag = stft_magnitude(x)
    noise = mag[:, :5].mean(dim=1, keepdim=True)
    snr = torch.tanh((mag / (abs(noise_scale) * noise + 1e-8)) @ fb.t() / 10)
    lm = torch.log(mag @ fb.t() + 1e-8)
    mu = lm.mean(dim=1, keepdim=True)
    var = lm.var(dim=1, unbiased=False, keepdim=True)
    return ((lm - mu) / torch.sqrt(var + 1e-5)).numpy(), snr.numpy()


def evaluate(model, audio: np.ndarray, batch: int = 64) -> dict:
    fb = model.frontend.mel_fb.numpy()
    ns = float(model.frontend.snr_estimator.noise_scale.detach())
    params = ff.make_frontend_params(fb, ns)
    out = {k: [] for k in ("f32_feat", "f32_snr", "f64_feat", "f64_snr", "fx_label", "fl_label")}
    for lo in tqdm(range(0, len(audio), batch), desc="clips", leave=False, unit_scale=batch):
        a = audio[lo:lo + batch]
        res = ff.run_frontend(params, a, intermediates=False)
        feat, snr = ff.dequantize_outputs(params, res)
        x = torch.from_numpy(a.astype(np.float32) / 32768.0)
        with torch.no_grad():
            model.frontend.compute_dtype = "float32"
            try:
                f32, s32 = model.frontend(x)
            finally:
                model.frontend.compute_dtype = "float64"
            f64, s64 = float64_frontend(a, fb, ns)
            fx_logits = model.network(torch.from_numpy(feat), torch.from_numpy(snr))
            fl_logits = model(x)
        out["f32_feat"].append(sqnr_db(f32.numpy(), feat))
        out["f32_snr"].append(sqnr_db(s32.numpy(), snr))
        out["f64_feat"].append(sqnr_db(f64, feat))
        out["f64_snr"].append(sqnr_db(s64, snr))
        out["fx_label"].append(fx_logits.argmax(-1).numpy())
        out["fl_label"].append(fl_logits.argmax(-1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N Speech Commands clips")
    ap.add_argument("--json", type=Path, help="write the per-set numbers here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    fixture = np.stack([load_audio(FIX / "audio" / f"{w}.f32", dtype="int16") for w in ("yes", "no", "down")])
    root = FIX / "speech_commands_test"
    paths = list_clips(root)
    if args.limit:
        paths = paths[:: max(1, len(paths) // args.limit)][: args.limit]
    sc = np.stack([load_audio(p, dtype="int16") for p in paths])
    cls = np.array([p.relative_to(root).parts[0] for p in paths])
    speech = cls != "silence"
    ref = json.loads((root / "float_reference.json").read_text())["predictions"]
    console = Console(width=160)
    summary = {}
    for name in ("tiny", "small"):
        model = nanomamba.load_checkpoint(FIX / "upstream" / f"nanomamba_{name}.pt").eval()
        r_fix = evaluate(model, fixture)
        r_sc = evaluate(model, sc)
        want = np.array([LABELS.index(ref[name][str(p.relative_to(root))]) for p in paths])
        t = Table("set", "feat dB (f32) mean", "min", "feat dB (f64) mean", "min",
                  "snr_mel dB (f32) mean", "min", "label agreement",
                  title=f"NanoMamba-{name}: fixed-point front end vs float")
        for w, i in zip(("yes", "no", "down"), range(3)):
            t.add_row(f"fixture {w}", f"{r_fix['f32_feat'][i]:.1f}", "", f"{r_fix['f64_feat'][i]:.1f}", "",
                      f"{r_fix['f32_snr'][i]:.1f}", "",
                      "kept" if r_fix["fx_label"][i] == r_fix["fl_label"][i] else "CHANGED")
        rows = {"speech (11 classes)": speech, "silence": ~speech, "all": np.ones_like(speech)}
        for label, m in rows.items():
            if not m.any():
                continue
            agree = (r_sc["fx_label"][m] == r_sc["fl_label"][m]).mean() * 100
            t.add_row(f"speech_commands {label} ({m.sum()})",
                      f"{r_sc['f32_feat'][m].mean():.1f}", f"{r_sc['f32_feat'][m].min():.1f}",
                      f"{r_sc['f64_feat'][m].mean():.1f}", f"{r_sc['f64_feat'][m].min():.1f}",
                      f"{r_sc['f32_snr'][m].mean():.1f}", f"{r_sc['f32_snr'][m].min():.1f}",
                      f"{agree:.2f} %")
        console.print(t)
        acc_fx = (r_sc["fx_label"] == np.array([LABELS.index(c) if c in LABELS else -1 for c in cls])).mean() * 100
        acc_fl = (r_sc["fl_label"] == np.array([LABELS.index(c) if c in LABELS else -1 for c in cls])).mean() * 100
        flips = [str(paths[i].relative_to(root)) for i in np.nonzero(r_sc["fx_label"] != r_sc["fl_label"])[0]]
        console.print(f"float model == float_reference.json on {(r_sc['fl_label'] == want).mean() * 100:.2f} % "
                      f"of the clips; accuracy float {acc_fl:.2f} %, with fixed-point front end {acc_fx:.2f} %; "
                      f"changed labels: {flips}")
        summary[name] = {
            "fixture_feat_db_f32": r_fix["f32_feat"].round(2).tolist(),
            "fixture_snr_db_f32": r_fix["f32_snr"].round(2).tolist(),
            "fixture_labels_kept": bool((r_fix["fx_label"] == r_fix["fl_label"]).all()),
            "sc_speech_feat_db_f32": [float(r_sc["f32_feat"][speech].mean()), float(r_sc["f32_feat"][speech].min())],
            "sc_speech_feat_db_f64": [float(r_sc["f64_feat"][speech].mean()), float(r_sc["f64_feat"][speech].min())],
            "sc_silence_feat_db_f32": ([float(r_sc["f32_feat"][~speech].mean()), float(r_sc["f32_feat"][~speech].min())]
                                       if (~speech).any() else None),
            "sc_snr_db_f32": [float(r_sc["f32_snr"].mean()), float(r_sc["f32_snr"].min())],
            "sc_agreement_pct": float((r_sc["fx_label"] == r_sc["fl_label"]).mean() * 100),
            "sc_accuracy_float_pct": float(acc_fl), "sc_accuracy_fixed_pct": float(acc_fx),
            "changed": flips,
        }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
