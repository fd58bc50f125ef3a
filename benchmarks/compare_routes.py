"""Every inference route of a bundle on the Speech Commands test clips, in one table per model,
plus what the .tflite carries (scales vs the bundle, ops, TFLM arena).

    python benchmarks/compare_routes.py BUNDLE [BUNDLE...] [--eval DIR] [--limit N] [--out DIR]

For each bundle: `export.compare.compare` (torch float, onnxruntime float, onnxruntime QDQ,
TFLM, simulator, C) on EVAL (default ../shared/fixtures/speech_commands_test), the .tflite
converted once (`export.tflite_export.convert_bundle`, representative data: the quantizer's
generated set) and written to OUT/<name>.tflite, and the per-tensor scale check. Writes
OUT/compare-<name>.json (metrics, notes, TFLM arena, scale rows) and prints the tables.
Long (minutes per model): run it once, in the background.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export import compare as cmp  # noqa: E402
from export import onnx_export as ox  # noqa: E402
from export import tflite_export as tx  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--eval", type=Path, default=ROOT.parent / "shared" / "fixtures" / "speech_commands_test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.bundles:
        src = ox.load_source(path)
        flat, info = tx.convert_bundle(src)
        flat = tx.stamp(flat, f"benchmarks/compare_routes.py; source {path}; "
                              f"model {src.model_hash[:16]}")     # compare checks the model hash
        tfl = args.out / f"{path.stem}.tflite"
        tfl.write_bytes(flat)
        res = cmp.compare(path, args.eval, tflite=tfl, limit=args.limit, progress=False)
        cmp.print_compare(res, console)
        m = tx.tflm_load(flat)
        rows = info["scales"]
        hows: dict[str, int] = {}
        for r in rows:
            hows[r["how"]] = hows.get(r["how"], 0) + 1
        console.print(f"{path.name}: .tflite {len(flat):,} B, TFLM arena {m.arena_size:,} B; "
                      f"bundle tensors: {hows}")
        out = {"bundle": str(path), "clips": res["clips"], "quantization": res["quantization"],
               "tflite_bytes": len(flat), "tflm_arena_bytes": m.arena_size,
               "tflite_ops": tx.op_summary(flat), "representative": info["representative"],
               "scales": rows,
               "routes": {k: {"metrics": v.metrics, "note": v.note, "seconds": v.seconds}
                          for k, v in res["routes"].items()}}
        (args.out / f"compare-{path.stem}.json").write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
