"""Firmware on QEMU vs the integer simulator (vs host C) on a folder of real clips (issue 8).

For each published checkpoint (Tiny, Small) it quantizes with the default calibration (as
``kws-export quantize``; bundles cached in --cache), builds the int8 firmware for each of
--boards (as ``kws-export build BUNDLE``), runs the whole folder in ONE QEMU boot per board
(``export.firmware_check.check_firmware``), runs the bundle's simulator once on the same
int16 clips and, unless --no-host, the generated C on the host (strict flags + UBSan; first
board only), and prints per model and board: clips, logits equal (firmware vs simulator, host C vs firmware), predictions
equal, accuracy of firmware / simulator / the float reference
(``float_reference.json``), float agreement, instructions per inference and wall times.

    python benchmarks/firmware_vs_simulator.py [--models tiny small] [--boards mps2-an386 ...]
        [--folder ../shared/fixtures/speech_commands_test] [--cache DIR] [--json OUT]

Exit status 1 when any clip's firmware logits differ from the simulator's (or host C's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.firmware import build_firmware  # noqa: E402
from export.firmware_check import check_firmware  # noqa: E402

from _published import SHARED, published_bundle  # noqa: E402


def float_reference(folder: Path, name: str) -> dict[str, str] | None:
    """clip path relative to ``folder`` -> float reference label, when the folder has one."""
    ref = folder / "float_reference.json"
    if not ref.is_file():
        return None
    return json.loads(ref.read_text())["predictions"].get(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--boards", nargs="+", default=["mps2-an386"],
                    help="QEMU boards (the simulator runs once per model)")
    ap.add_argument("--folder", type=Path, default=SHARED / "speech_commands_test")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kws-bench-bundles")
    ap.add_argument("--no-host", action="store_true", help="skip the host C route")
    ap.add_argument("--json", type=Path, help="write the per-model summary here")
    args = ap.parse_args()
    con = Console(width=max(120, 56 + 18 * len(args.models) * len(args.boards)))
    summary, ok = {}, True
    with tempfile.TemporaryDirectory() as tmp:
        for name, board in [(m, b) for m in args.models for b in args.boards]:
            bundle = published_bundle(name, args.cache)
            t0 = time.monotonic()
            out = build_firmware(bundle, board, Path(tmp) / f"{name}-{board}").out
            build_s = time.monotonic() - t0
            first = board == args.boards[0]
            chk = check_firmware(out, [args.folder], host=first and not args.no_host,
                                 progress=True,
                                 simulator_logits=None if first else sim_logits,
                                 simulator_labels=None if first else sim_labels)
            sim_logits, sim_labels = chk.simulator_logits, chk.simulator_labels
            key = f"{name} {board}"
            if chk.first_mismatch():
                con.print(f"[red]{key}: first mismatch: {chk.first_mismatch()}[/red]")
            ok &= chk.logits_equal and chk.host_equal is not False
            ref = float_reference(args.folder, name)
            fl_acc = agree = None
            if ref is not None:
                rel = [Path(os.path.relpath(p, args.folder)).as_posix() for p in chk.names]
                flab = [ref.get(r) for r in rel]
                have = [i for i, f in enumerate(flab) if f is not None]
                agree = sum(chk.labels[int(chk.firmware_labels[i])] == flab[i]
                            for i in have) / len(have)
                truth = [(flab[i], chk.truth[i]) for i in have if chk.truth[i] is not None]
                fl_acc = sum(f == tr for f, tr in truth) / len(truth) if truth else None
            ins = chk.instructions
            hm = chk.host_mismatches
            summary[key] = {
                "board": chk.board, "clips": chk.n, "logit_mismatches": chk.logit_mismatches,
                "prediction_mismatches": chk.prediction_mismatches, "host_mismatches": hm,
                "accuracy_firmware": chk.accuracy("firmware"),
                "accuracy_simulator": chk.accuracy("simulator"), "accuracy_float": fl_acc,
                "agreement_float": agree, "instructions_min": int(ins.min()),
                "instructions_mean": float(ins.mean()), "instructions_max": int(ins.max()),
                "seconds": chk.seconds, "build_seconds": build_s}
    pct = (lambda v: "n/a" if v is None else f"{100 * v:.2f} %")
    t = Table("", *summary, title=f"firmware (one QEMU boot per model and board) vs "
              f"simulator vs host C on {args.folder.name}")

    def row(label, f):
        t.add_row(label, *(f(s) for s in summary.values()))
    row("clips", lambda s: f"{s['clips']:,}")
    row("firmware logits = simulator logits",
        lambda s: f"{s['clips'] - s['logit_mismatches']:,} / {s['clips']:,}")
    row("firmware label = simulator label",
        lambda s: f"{s['clips'] - s['prediction_mismatches']:,} / {s['clips']:,}")
    row("host C logits = firmware logits", lambda s: "n/a" if s["host_mismatches"] is None
        else f"{s['clips'] - s['host_mismatches']:,} / {s['clips']:,}")
    row("accuracy: firmware", lambda s: pct(s["accuracy_firmware"]))
    row("accuracy: simulator", lambda s: pct(s["accuracy_simulator"]))
    row("accuracy: float reference (float_reference.json)", lambda s: pct(s["accuracy_float"]))
    row("firmware label = float reference label", lambda s: pct(s["agreement_float"]))
    row("instructions per inference: min", lambda s: f"{s['instructions_min']:,}")
    row("instructions per inference: mean", lambda s: f"{s['instructions_mean']:,.0f}")
    row("instructions per inference: max", lambda s: f"{s['instructions_max']:,}")
    row("wall s: build", lambda s: f"{s['build_seconds']:.1f}")
    row("wall s: QEMU (all clips, one boot)", lambda s: f"{s['seconds']['qemu']:.1f}")
    row("wall s: simulator (once per model)",
        lambda s: f"{s['seconds']['simulator']:.1f}" if "simulator" in s["seconds"] else "-")
    row("wall s: host C (compile with UBSan + run)",
        lambda s: f"{s['seconds']['host']:.1f}" if "host" in s["seconds"] else "-")
    con.print(t)
    con.print("all logits bit-exact" if ok else "[red]MISMATCH (see above)[/red]")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
