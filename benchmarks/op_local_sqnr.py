"""Where the integer network loses precision: each op's own error, op by op.

For every op of the quantized network, its inputs are the float model's values of those
tensors rounded to the bundle's formats (scale, zero_point, dtype: round half away from
zero, saturate), the op runs alone in the simulator, and its output is compared with the
float model's value of the same tensor:

- ``local``: SQNR (dB) of the op's integer output against the float value: the error this
  op adds (weight rounding, LUT interpolation, fixed-point exp, requantize) on top of its
  inputs' rounding;
- ``format``: SQNR of the float value merely rounded to the output's format: the best any
  implementation of the op could do with that output format.

An op whose ``local`` is far below its ``format`` and below the others is where a wider
weight or a finer table pays; one whose ``format`` is low is limited by its output range
(headroom) or width. Also printed, per configuration: the SQNR of each tensor through the
whole integer pipeline (errors accumulated), and the network's logits SQNR.

Protocol A of benchmarks/quantization_accuracy.py: calibrated on the fixed 20 % split of the
1,200 real clips (clean + 0 dB background noise, seed 1); evaluated on ``--clips`` of the
other 980 clips mixed with the background noise at 0 dB (seed 3, the harder draw).

Run: ``python benchmarks/op_local_sqnr.py [--model tiny] [--clips 300]
[--config "w.conv1d=8 headroom_wide=2.0" ...]`` (each --config is one column set: bit widths
``key=8|16|32`` and quantizer options ``key=value``, over the defaults; about 1 minute per
configuration for Tiny).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIX = ROOT.parent / "shared" / "fixtures"

from export import quantize as Q  # noqa: E402
from export.simulator import _NP, _QRANGE, Simulator  # noqa: E402
from nanomamba import load_checkpoint  # noqa: E402
from _published import load_real_test_set, protocol_a  # noqa: E402


def parse_config(text: str) -> tuple[dict, dict]:
    """``"w.conv1d=8 headroom_wide=2.0"`` -> (widths, options) overrides of the defaults.

    Raises:
        SystemExit: a key that is neither a width nor an option.
    """
    widths, options = {}, {}
    for item in text.split():
        k, _, v = item.partition("=")
        if k in Q.DEFAULT_WIDTHS:
            widths[k] = int(v)
        elif k in Q.DEFAULT_OPTIONS:
            d = Q.DEFAULT_OPTIONS[k]
            options[k] = type(d)(v) if not isinstance(d, str) else v
        else:
            raise SystemExit(f"error: --config: unknown key {k!r}")
    return widths, options


def quantize_as(sim: Simulator, name: str, x: np.ndarray) -> np.ndarray:
    """Float values of tensor ``name`` rounded to its format (round half away from zero as
    the integer pipeline rounds, then saturation to its dtype)."""
    t = sim.tensors[name]
    v = np.asarray(x, dtype=np.float64) / sim.scale(name)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + t["zero_point"]
    lo, hi = _QRANGE[t["dtype"]]
    return np.clip(q, lo, hi).astype(_NP[t["dtype"]])


def local_rows(sim: Simulator, taps: dict) -> list[tuple[str, str, float, float]]:
    """(op type, output, local SQNR, format SQNR) for every op whose inputs are float taps."""
    rows = []
    for op in sim.ops:
        if any(i not in taps for i in op["inputs"]):
            continue
        env = {i: quantize_as(sim, i, taps[i]) for i in op["inputs"]}
        getattr(sim, "_op_" + op["type"])(op, env)
        for o in op["outputs"]:
            if o in taps:
                ref = np.asarray(taps[o], dtype=np.float64).reshape(env[o].shape)
                rows.append((op["type"], o, Q.sqnr_db(ref, sim.dequantize(o, env[o])),
                             Q.sqnr_db(ref, sim.dequantize(o, quantize_as(sim, o, ref)))))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", choices=["tiny", "small"])
    ap.add_argument("--clips", type=int, default=300, help="evaluation clips (of 980)")
    ap.add_argument("--config", action="append", default=[],
                    help='overrides, e.g. "w.conv1d=8 headroom_wide=2.0" (repeatable; the '
                         'defaults are always the first column)')
    args = ap.parse_args(argv)
    configs = [("defaults", {}, {})] + [(c, *parse_config(c)) for c in args.config]
    data = load_real_test_set()
    if data is None:
        return 1
    audio, names, _labels, noise = data
    model = load_checkpoint(FIX / "upstream" / f"nanomamba_{args.model}.pt")
    _, cal, ev, ev_names = protocol_a(audio, names, noise)
    stats = Q.collect_ranges(model, cal, progress=False)
    ev = Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=3)[:args.clips]
    _, taps = Q.float_taps(model, ev)
    local, whole = {}, {}
    for label, widths, options in configs:
        sim = Simulator(Q.quantize_model(model, cal[:2], stats=stats, widths=widths,
                                         options=options, progress=False))
        local[label] = {o: (t, lo, fm) for t, o, lo, fm in local_rows(sim, taps)}
        env = sim.run(ev, frontend_intermediates=False)
        whole[label] = {k: Q.sqnr_db(np.asarray(taps[k], np.float64).reshape(env[k].shape),
                                     sim.dequantize(k, env[k]))
                        for k in taps if k in env}
        lf = np.asarray(taps["logits"], np.float64)
        whole[label]["logits_fine"] = Q.sqnr_db(lf, sim.dequantize("logits_fine", env["logits_fine"]))
    labels = [c[0] for c in configs]
    print(f"NanoMamba-{args.model.capitalize()}, {len(ev)} clips at 0 dB (seed 3), protocol A "
          f"calibration; SQNR in dB: local / format per op, then accumulated")
    head = " | ".join(f"{lab[:28]:>28s}" for lab in labels)
    print(f"{'op':18s} {'output':24s} | {head}")
    for o, (t, _, _) in local["defaults"].items():
        cells = " | ".join(f"{local[lab][o][1]:6.1f} / {local[lab][o][2]:6.1f} ({whole[lab].get(o, np.nan):5.1f})"
                           .rjust(28) for lab in labels)
        print(f"{t:18s} {o:24s} | {cells}")
    print(f"{'':18s} {'logits_fine (label)':24s} | "
          + " | ".join(f"{whole[lab]['logits_fine']:28.1f}" for lab in labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
