"""Error budget of the integer pipeline against the float model: which stage flips the label.

Protocol A of benchmarks/quantization_accuracy.py: calibrate on the fixed 20 % split of the
1,200 real clips (clean + 0 dB background noise, seed 1), evaluate on the other 980 clips:
clean and 0 dB background noise with two draws (seeds 2 and 3). Rows (agreement of the top-1
with the float model, flips, accuracy vs float, logits SQNR over all 12 classes):

- float network on the fixed-point front end's outputs (features Q11 / 2^11, snr_mel / 2^6):
  the front end's error alone; then each output alone, and the float front end's outputs
  only rounded to the same formats (the formats' share of it);
- the integer network on the fixed-point front end (the shipped pipeline), label = the
  ``label`` op (fine int32 classifier grid) and, for comparison, the argmax of the int8
  logits (the label rule of bundle format 1);
- the integer network on the float front end's outputs rounded to the front end's formats:
  the network's error alone;
- logits SQNR: over the int8 logits for "int8 argmax" rows, over ``logits_fine`` (the
  classifier's output before int8 rounding) for "label op" rows;
- ``--widen``: the integer pipeline re-quantized from the same statistics with other widths
  or options (:data:`WIDEN`: wider tensors, the previous defaults, headroom variants).

Run: ``python benchmarks/error_budget_0db.py [--models tiny small] [--widen]``
(about 10 minutes per model on 2 cores; more with --widen).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIX = ROOT.parent / "shared" / "fixtures"

import torch  # noqa: E402

from export import quantize as Q  # noqa: E402
from export.simulator import Simulator  # noqa: E402
from nanomamba import load_checkpoint  # noqa: E402
from _published import load_real_test_set, protocol_a  # noqa: E402

#: --widen rows: (label, bit-width overrides, option overrides) over the defaults
WIDEN = [("w.classifier int16", {"w.classifier": 16}, {}),
         ("final_norm + pooled int32", {"final_norm": 32, "pooled": 32}, {}),
         ("all weights int16", {k: 16 for k in Q.DEFAULT_WIDTHS if k.startswith("w.")}, {}),
         ("previous defaults (conv1d, snr_proj int8; headroom_wide 2)",
          {"w.conv1d": 8, "w.snr_proj": 8}, {"headroom_wide": 2.0}),
         ("conv1d int8 only", {"w.conv1d": 8}, {}),
         ("headroom_wide 2 only", {}, {"headroom_wide": 2.0}),
         ("headroom_wide 1.25", {}, {"headroom_wide": 1.25}),
         ("headroom_wide 1.0", {}, {"headroom_wide": 1.0}),
         ("headroom_state 3", {}, {"headroom_state": 3.0})]


def prepare(model, audio, names, labels, noise) -> dict:
    """Calibration statistics and, per evaluation set, the fixed-point and float front-end
    outputs and the float logits."""
    mask, cal, ev, ev_names = protocol_a(audio, names, noise)
    stats = Q.collect_ranges(model, cal, progress=False)
    sets = {"clean": ev, "0 dB (seed 2)": Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=2),
            "0 dB (seed 3)": Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=3)}
    base = Q.quantize_model(model, cal[:2], stats=stats, progress=False)
    sim = Simulator(base)
    data = {}
    for k, a in sets.items():
        fe = sim._fe.run_frontend(sim.fe_params, a, intermediates=False)
        with torch.no_grad():
            ff, fs = model.frontend(torch.from_numpy(a.astype(np.float32) / 32768.0))
        data[k] = {"fi": fe["features"], "si": fe["snr_mel"], "ff": ff.numpy(), "fs": fs.numpy(),
                   "lf": Q.float_taps(model, a, names={"logits"})[0]}
    return {"stats": stats, "cal": cal[:2], "data": data, "labels": labels[~mask]}


def float_net(model, f, s) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model.network(torch.from_numpy(f[i:i + 245].astype(np.float32)),
                                             torch.from_numpy(s[i:i + 245].astype(np.float32))).numpy()
                               for i in range(0, len(f), 245)])


def int_net(bundle, f, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dequantized int8 logits, dequantized logits_fine, label) of the integer network on
    front-end integers."""
    sim = Simulator(bundle)
    outs = [sim.run_network(f[i:i + 245], s[i:i + 245]) for i in range(0, len(f), 245)]
    return (np.concatenate([sim.dequantize("logits", o["logits"]) for o in outs]),
            np.concatenate([sim.dequantize("logits_fine", o["logits_fine"]) for o in outs]),
            np.concatenate([o["label"][:, 0] for o in outs]))


def row(lf, logits, pred, truth) -> dict:
    pf = lf.argmax(1)
    return {"agreement": float((pred == pf).mean() * 100), "flips": int((pred != pf).sum()),
            "accuracy": float((pred == truth).mean() * 100),
            "accuracy_float": float((pf == truth).mean() * 100),
            "logits_sqnr_db": Q.sqnr_db(lf, logits)}


def run_model(name, audio, names, labels, noise, widen: bool) -> dict:
    model = load_checkpoint(FIX / "upstream" / f"nanomamba_{name}.pt")
    ctx = prepare(model, audio, names, labels, noise)
    bundles = {"defaults": Q.quantize_model(model, ctx["cal"], stats=ctx["stats"], progress=False)}
    if widen:
        for lab, w, o in WIDEN:
            try:
                bundles[lab] = Q.quantize_model(model, ctx["cal"], stats=ctx["stats"], widths=w,
                                                options=o, progress=False)
            except Q.QuantizationError as e:     # e.g. int32 final_norm: accumulator bound
                print(f"  {lab}: not representable ({e})", flush=True)
    out = {}
    for k, d in ctx["data"].items():
        lf, y = d["lf"], ctx["labels"]
        fq = np.clip(np.round(d["ff"] * 2048), -32768, 32767).astype(np.int16)
        sq = np.clip(np.round(d["fs"] * 64), -128, 127).astype(np.int8)
        r = {}
        for lab, (f, s) in {"float net on fixed-point front end": (d["fi"] / 2048.0, d["si"] / 64.0),
                            "  its features only": (d["fi"] / 2048.0, d["fs"]),
                            "  its snr_mel only": (d["ff"], d["si"] / 64.0),
                            "  float features rounded to Q11": (fq / 2048.0, d["fs"]),
                            "  float snr_mel rounded to 2^-6": (d["ff"], sq / 64.0)}.items():
            lg = float_net(model, f, s)
            r[lab] = row(lf, lg, lg.argmax(1), y)
        for lab, b in bundles.items():
            li, lfine, pred = int_net(b, d["fi"], d["si"])
            tag = "integer pipeline" if lab == "defaults" else f"integer pipeline, {lab}"
            r[f"{tag} (label op)"] = row(lf, lfine, pred, y)
            r[f"{tag} (int8 argmax)"] = row(lf, li, li.argmax(1), y)
            if lab == "defaults":
                li, lfine, pred = int_net(b, fq, sq)
                r["integer network on rounded float front end (label op)"] = row(lf, lfine, pred, y)
                r["integer network on rounded float front end (int8 argmax)"] = row(lf, li, li.argmax(1), y)
        out[k] = r
        print(f"\n== NanoMamba-{name.capitalize()} {k} ({len(lf)} held-out clips)")
        for lab, v in r.items():
            print(f"  {lab:60s} agree {v['agreement']:6.2f} % ({v['flips']} flips)  acc "
                  f"{v['accuracy']:6.2f} vs float {v['accuracy_float']:6.2f} "
                  f"({v['accuracy'] - v['accuracy_float']:+.2f})  SQNR {v['logits_sqnr_db']:5.1f} dB",
                  flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--widen", action="store_true", help="also the wider re-quantizations")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    data = load_real_test_set()
    if data is None:
        return 1
    audio, names, labels, noise = data
    res = {name: run_model(name, audio, names, labels, noise, args.widen) for name in args.models}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
