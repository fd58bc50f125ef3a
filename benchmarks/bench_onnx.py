"""ONNX variants: node count and onnxruntime latency of the SSM scan as ONNX Scan vs unrolled,
and of the full model's STFT as DFT-MatMul vs the ONNX STFT op, each with the front end in
float64 (the default) and float32.

    python benchmarks/bench_onnx.py [--checkpoint ../shared/fixtures/upstream/nanomamba_tiny.pt]

Prints a table (rich); latency = median over repeated runs for ~1 s each, one intra-op thread,
random inputs of the right shapes (the graphs' cost does not depend on the values).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # this checkout's export/, not an installed one

from export import onnx_export as ox  # noqa: E402


def _time(sess, feeds, seconds: float = 1.0) -> float:
    for _ in range(3):
        sess.run(None, feeds)
    runs = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(runs) < 5:
        t = time.perf_counter()
        sess.run(None, feeds)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", type=Path)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    ckpts = args.checkpoint or [ROOT.parent / "shared/fixtures/upstream" / f"nanomamba_{n}.pt"
                                for n in ("tiny", "small")]
    rng = np.random.default_rng(0)
    table = Table("model", "graph", "variant", "nodes (in subgraphs)", "bytes",
                  "ms @ B=1", "ms @ B=64", title="onnxruntime, 1 thread")
    for ck in ckpts:
        src = ox.load_source(ck)
        name = ck.stem.replace("nanomamba_", "")
        for scan in ox.SCAN_MODES:
            m = ox.build_network(src.cfg, src.params, scan=scan)
            st = ox.graph_stats(m)
            sess = ox.session(m, threads=1)
            ms = []
            for b in (1, 64):
                feeds = {"features": rng.standard_normal((b, 101, 40)).astype(np.float32),
                         "snr_mel": rng.uniform(0, 1, (b, 101, 40)).astype(np.float32)}
                ms.append(_time(sess, feeds, args.seconds))
            table.add_row(name, "network", f"scan={scan}",
                          f"{st['nodes']} ({st['nodes_total'] - st['nodes']})",
                          f"{st['bytes']:,}", f"{ms[0]:.2f}", f"{ms[1]:.1f}")
        for scan in ox.SCAN_MODES:
            for stft in ox.STFT_MODES:
                for fdt in ox.FRONTEND_DTYPES:
                    m = ox.build_full(src.cfg, src.params, scan=scan, stft=stft,
                                      frontend_dtype=fdt)
                    st = ox.graph_stats(m)
                    sess = ox.session(m, threads=1)
                    ms = []
                    for b in (1, 64):
                        feeds = {"audio": (0.1 * rng.standard_normal((b, 16000))).astype(np.float32)}
                        ms.append(_time(sess, feeds, args.seconds))
                    table.add_row(name, "full", f"scan={scan}, stft={stft}, front end {fdt}",
                                  f"{st['nodes']} ({st['nodes_total'] - st['nodes']})",
                                  f"{st['bytes']:,}", f"{ms[0]:.2f}", f"{ms[1]:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
