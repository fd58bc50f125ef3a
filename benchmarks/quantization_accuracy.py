"""Integer pipeline (int16 audio -> int8 logits: fixed-point front end + quantized network)
against the float model, for both published checkpoints.

Protocol
--------
- Clips: the 1,200 real clips of ../shared/fixtures/speech_commands_test. A fixed 20 % of
  them (``export.quantize.split_names``: CRC-32 of the name) is the calibration split; the
  other 80 % (980 clips) is the evaluation split. Nothing of the evaluation split is used
  for calibration.
- Calibration: the 20 % split clean + the same clips mixed with the dataset's background
  noise at 0 dB SNR (seed 1).
- Evaluation (80 % split): clean; mixed with the background noise at 0 dB (seed 2, a
  different noise draw than calibration, and a second draw, seed 3); at -10 dB with white noise only; at -10 dB with
  babble (5 summed calibration-split speech clips, so disjoint from the evaluation clips).
  Mixing: RMS scaling, deterministic noise file and offset per clip
  (``export.quantize.mix_at_snr``).
- Metrics: top-1 agreement with the float model on the same int16 clips (the integer
  model's label: the simulator's ``label``, what ``kws_run`` returns; also, for comparison,
  the argmax of the int8 logits), accuracy (float and integer), SQNR of the dequantized int8
  logits over all 12 classes and over the float model's top-2 classes.
- Also: the 3 clips of ../shared/fixtures/audio (same label as float?), and the bundle made
  with the default generated calibration set (no --calib), evaluated on all 1,200 clips.

Run: ``python benchmarks/quantization_accuracy.py [--models tiny small] [--json out.json]``
(about 10 minutes on 2 cores).
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
from nanomamba import LABELS, load_audio, load_checkpoint  # noqa: E402
from _published import load_real_test_set, protocol_a  # noqa: E402


def babble_bank(audio: np.ndarray, n: int = 200, talkers: int = 5, seed: int = 7) -> list:
    """n babble segments, each the sum of ``talkers`` RMS-normalised clips of ``audio``."""
    rng = np.random.default_rng(seed)
    x = audio.astype(np.float64) / 32768.0
    x /= np.sqrt((x * x).mean(axis=1, keepdims=True)) + 1e-9
    return [x[rng.choice(len(x), talkers, replace=False)].sum(axis=0).astype(np.float32)
            for _ in range(n)]


def margins(lf: np.ndarray) -> np.ndarray:
    """Float top-1 minus top-2 logit per clip."""
    s = np.sort(lf, axis=1)
    return s[:, -1] - s[:, -2]


def top2_sqnr(lf: np.ndarray, li: np.ndarray) -> float:
    idx = np.argsort(-lf, axis=1)[:, :2]
    r = np.arange(len(lf))[:, None]
    return Q.sqnr_db(lf[r, idx], li[r, idx])


def run_model(name: str, audio, names, labels, noise, report: dict) -> None:
    model = load_checkpoint(FIX / "upstream" / f"nanomamba_{name}.pt")
    mask, cal, ev, ev_names = protocol_a(audio, names, noise)
    t = time.time()
    bundle = Q.quantize_model(model, cal, calibration={
        "source": f"speech_commands_test 20 % split ({mask.sum()} clips) clean + 0 dB background noise"})
    t_q = time.time() - t
    evl = labels[~mask]
    babble = babble_bank(audio[mask])
    sets = {
        "clean": ev,
        "0 dB background": Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=2),
        "0 dB background, draw 2": Q.mix_at_snr(ev, ev_names, noise, 0.0, seed=3),
        "-10 dB white": Q.mix_at_snr(ev, ev_names, {"white": noise["white_noise"]}, -10.0, seed=3),
        "-10 dB babble": Q.mix_at_snr(ev, ev_names, babble, -10.0, seed=4),
    }
    res = {}
    from export.simulator import Simulator
    sim = Simulator(bundle)
    for sname, a in sets.items():
        t = time.time()
        r = Q.evaluate(bundle, model, a, evl, per_tensor=False, desc=f"{name} {sname}")
        res[sname] = {"n": r["n"], "agreement": r["agreement"],
                      "agreement_int8_argmax": r["agreement_int8_argmax"],
                      "accuracy_float": r["accuracy_float"],
                      "accuracy_int": r["accuracy_int"], "logits_sqnr_db": r["logits_sqnr_db"],
                      "top2_logits_sqnr_db": top2_sqnr(r["logits_float"], r["logits_int"]),
                      "disagree": [ev_names[i] for i in r["disagree"]],
                      "disagree_float_margins": [round(float(m), 4) for m in margins(r["logits_float"])[r["disagree"]]],
                      "clips_with_float_margin_below_0.05_pct": float((margins(r["logits_float"]) < 0.05).mean() * 100),
                      "seconds": round(time.time() - t, 1)}
    # the fixture clips: float label once, then each bundle's simulator label
    fix_audio = {clip.name: load_audio(clip, dtype="int16")[None]
                 for clip in sorted((FIX / "audio").glob("*.f32"))}
    fix_float = {n: LABELS[int(Q.float_taps(model, a, names={"logits"})[0][0].argmax())]
                 for n, a in fix_audio.items()}

    def fixture_labels(s: Simulator) -> dict:
        return {n: {"float": fix_float[n],
                    "int": LABELS[int(s.run(a, keep={"label"}, frontend_intermediates=False)["label"][0, 0])]}
                for n, a in fix_audio.items()}

    fixture = fixture_labels(sim)
    # the default generated calibration set (no --calib), evaluated on all 1,200 clips
    gen_audio, _ = Q.generated_calibration_set()
    gb = Q.quantize_model(model, gen_audio, calibration={"source": "generated default set"})
    gen = {}
    for sname, a in {"clean (all 1,200)": audio,
                     "0 dB background (all 1,200)": Q.mix_at_snr(audio, names, noise, 0.0, seed=2)}.items():
        r = Q.evaluate(gb, model, a, labels, per_tensor=False, desc=f"{name} gen {sname}")
        gen[sname] = {"n": r["n"], "agreement": r["agreement"],
                      "agreement_int8_argmax": r["agreement_int8_argmax"],
                      "accuracy_float": r["accuracy_float"],
                      "accuracy_int": r["accuracy_int"], "logits_sqnr_db": r["logits_sqnr_db"]}
    gen_fixture = fixture_labels(Simulator(gb))
    report[name] = {"quantize_seconds": round(t_q, 1), "calibration_clips": int(len(cal)),
                    "evaluation_clips": int(len(ev)), "sets": res, "fixture_audio": fixture,
                    "generated_calibration": {"clips": int(len(gen_audio)), "sets": gen,
                                              "fixture_audio": gen_fixture}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    data = load_real_test_set()
    if data is None:
        return 1
    audio, names, labels, noise = data
    report: dict = {}
    for name in args.models:
        run_model(name, audio, names, labels, noise, report)
        r = report[name]
        print(f"\n== NanoMamba-{name.capitalize()}: calibrated on {r['calibration_clips']} clips "
              f"(20 % split clean + 0 dB), evaluated on {r['evaluation_clips']} other clips")
        print(f"{'set':24s} {'agree %':>8s} {'(int8 argmax)':>13s} {'acc int':>8s} {'acc float':>9s} "
              f"{'diff':>6s} {'SQNR all':>9s} {'SQNR top2':>9s}")
        for s, v in r["sets"].items():
            print(f"{s:24s} {v['agreement']:8.2f} {v['agreement_int8_argmax']:13.2f} "
                  f"{v['accuracy_int']:8.2f} {v['accuracy_float']:9.2f} "
                  f"{v['accuracy_int'] - v['accuracy_float']:+6.2f} {v['logits_sqnr_db']:9.1f} "
                  f"{v['top2_logits_sqnr_db']:9.1f}")
        for s, v in r["sets"].items():
            print(f"  {s}: disagreeing clips' float margins {v['disagree_float_margins']} "
                  f"({v['clips_with_float_margin_below_0.05_pct']:.1f} % of clips have a float margin < 0.05)")
        print("fixture clips:", ", ".join(f"{k}: float {v['float']} / int {v['int']}"
                                          for k, v in r["fixture_audio"].items()))
        g = r["generated_calibration"]
        print(f"default generated calibration ({g['clips']} clips):")
        for s, v in g["sets"].items():
            print(f"  {s:28s} agree {v['agreement']:.2f} % (int8 argmax "
                  f"{v['agreement_int8_argmax']:.2f} %), acc int {v['accuracy_int']:.2f} / "
                  f"float {v['accuracy_float']:.2f}, logits SQNR {v['logits_sqnr_db']:.1f} dB")
        print("  fixture clips:", ", ".join(f"{k}: float {v['float']} / int {v['int']}"
                                            for k, v in g["fixture_audio"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
