"""Bit-width ablation of the integer NanoMamba: top-1 agreement with the float model when the
SSM state h, the step delta and exp(A delta) (and a few other choices) are narrower or wider
than the defaults, so each width is a measurement.

Same protocol as benchmarks/quantization_accuracy.py: calibrate on the fixed 20 % split of
the 1,200 real clips (clean + 0 dB background noise, seed 1), evaluate on the other 980
clean and at 0 dB (``--draws`` noise draws a..d, seeds 2..5). The fixed-point front end is run once;
each row re-quantizes the network from the same calibration statistics and runs the integer
network only. Columns: agreement % of the model's label (the ``label`` op: argmax of the
fine int32 classifier grid; the JSON also has the int8-logits argmax) (clean / 0 dB a .. d: up to four noise
draws), their mean over the 0 dB draws, and the SQNR of the int8 logits over the float
model's top-2 classes at 0 dB a.

Run: ``python benchmarks/ablation_state_width.py [--models tiny small] [--rows h dA ...]``
(about 10 minutes per model on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIX = ROOT.parent / "shared" / "fixtures"

from export import quantize as Q  # noqa: E402
from export.simulator import Simulator  # noqa: E402
from nanomamba import load_checkpoint  # noqa: E402
from _published import load_real_test_set, protocol_a  # noqa: E402

D = Q.DEFAULT_WIDTHS
ALL_W8 = {k: 8 for k in D if k.startswith("w.")}
ALL_A8 = {k: 8 for k in D if not k.startswith("w.") and k not in ("residual",)}
#: (group, label, width overrides, option overrides)
ROWS = [
    ("default", "defaults (docs/QUANTIZATION.md)", {}, {}),
    ("h", "h int8", {"h": 8}, {}),
    ("h", "h int16 (default)", {"h": 16}, {}),
    ("h", "h int32", {"h": 32}, {}),
    ("dA", "dA Q7 (int8)", {"dA": 8}, {}),
    ("dA", "dA Q15 (int16, default)", {"dA": 16}, {}),
    ("dA", "dA Q30 (int32)", {"dA": 32}, {}),
    ("delta", "delta int8", {"delta": 8}, {}),
    ("delta", "delta int16 (default)", {"delta": 16}, {}),
    ("exp", "exp table 2^6 entries", {}, {"exp_table_bits": 6}),
    ("exp", "exp table 2^10 entries", {}, {"exp_table_bits": 10}),
    ("residual", "residual stream int16", {"residual": 16}, {}),
    ("weights", "all weights int8 (GPTQ)", ALL_W8, {}),
    ("weights", "all weights int8, round to nearest", ALL_W8, {"weight_rounding": "nearest"}),
    ("weights", "all weights int16", {k: 16 for k in D if k.startswith("w.")}, {}),
    ("activations", "all activations int8 but h, dA, delta, B~, y", dict(
        ALL_A8, h=16, dA=16, delta=16, B_gated=16, y_ssm=16, y_gated=16), {}),
    ("activations", "classic int8: int8 activations (int16 h) and weights",
     dict(ALL_A8, **ALL_W8, h=16, dA=16, residual=16), {}),
    ("logits", "logits range top2", {}, {"logits_range": "top2"}),
    ("logits", "logits range runnerup", {}, {"logits_range": "runnerup"}),
    ("logits", "logits int16 (not the product: int8 logits out)", {"logits": 16}, {}),
]


def top2_sqnr(lf, li):
    idx = np.argsort(-lf, axis=1)[:, :2]
    r = np.arange(len(lf))[:, None]
    return Q.sqnr_db(lf[r, idx], li[r, idx])


def prepare(name: str, audio, names, noise, draws: int = 4) -> dict:
    model = load_checkpoint(FIX / "upstream" / f"nanomamba_{name}.pt")
    _, cal, ev, ev_names = protocol_a(audio, names, noise)
    stats = Q.collect_ranges(model, cal)
    sets = {"clean": ev}
    for tag, seed in list(zip("abcd", (2, 3, 4, 5)))[:draws]:
        sets[f"0 dB {tag}"] = Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=seed)
    base = Q.quantize_model(model, cal[:2], stats=stats, progress=False)
    sim = Simulator(base)
    data = {}
    for k, a in sets.items():
        fe = sim._fe.run_frontend(sim.fe_params, a, intermediates=False)
        data[k] = (fe["features"], fe["snr_mel"], Q.float_taps(model, a, names={"logits"})[0])
    return {"model": model, "cal": cal[:2], "stats": stats, "data": data}


def run_row(ctx, widths, options) -> dict:
    b = Q.quantize_model(ctx["model"], ctx["cal"], stats=ctx["stats"], widths=widths,
                         options=options, progress=False)
    sim = Simulator(b)
    res = {}
    for k, (f, s, lf) in ctx["data"].items():
        outs = [sim.run_network(f[i:i + 245], s[i:i + 245]) for i in range(0, len(f), 245)]
        li = np.concatenate([sim.dequantize("logits", o["logits"]) for o in outs])
        lab = np.concatenate([o["label"][:, 0] for o in outs])
        res[k] = {"agreement": float((lab == lf.argmax(1)).mean() * 100),
                  "agreement_int8_argmax": float((li.argmax(1) == lf.argmax(1)).mean() * 100),
                  "top2_sqnr_db": top2_sqnr(lf, li)}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--rows", nargs="+", default=None,
                    help="groups to run (default: all): " + ", ".join(sorted({r[0] for r in ROWS})))
    ap.add_argument("--draws", type=int, default=4, choices=range(1, 5),
                    help="0 dB noise draws (a..d) to evaluate")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    data = load_real_test_set()
    if data is None:
        return 1
    audio, names, _, noise = data
    out = {}
    for name in args.models:
        t0 = time.time()
        ctx = prepare(name, audio, names, noise, args.draws)
        tags = "abcd"[:args.draws]
        print(f"\n== NanoMamba-{name.capitalize()}: agreement with float % (980 held-out clips)")
        print(f"{'row':52s} {'clean':>7s} " + " ".join(f"{'0 dB ' + t:>7s}" for t in tags)
              + f" {'0dB mean':>8s} {'top2 SQNR':>9s}")
        out[name] = {}
        for group, label, w, o in ROWS:
            if args.rows and group not in args.rows and group != "default":
                continue
            try:
                r = run_row(ctx, w, o)
            except Q.QuantizationError as err:
                print(f"{label:52s} not representable: {err}")
                continue
            out[name][label] = r
            noisy = [r[f"0 dB {t}"]["agreement"] for t in tags]
            r["0 dB mean"] = float(np.mean(noisy))
            print(f"{label:52s} {r['clean']['agreement']:7.2f} " + " ".join(f"{v:7.2f}" for v in noisy)
                  + f" {r['0 dB mean']:8.2f} {r['0 dB a']['top2_sqnr_db']:9.1f}", flush=True)
        print(f"({time.time() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
