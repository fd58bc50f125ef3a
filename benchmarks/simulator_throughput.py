"""Throughput of the integer simulator (fixed-point front end + integer network, int16 audio
in, int8 logits out) beside the float PyTorch model on the same clips, in the same run.

Goal (issue 4): the simulator reaches at least half of float PyTorch's clips/s on this
machine. Both run batched (batch 128 by default) and are measured at equal thread counts:
the simulator with 1 thread and with ``Simulator.run(threads=2)`` (the batch split in two
threads; identical integers), PyTorch with ``torch.set_num_threads(1)`` and 2, each with the
model's "chunked" and the step-by-step "loop" scan (the faster one is the reference). The
simulator runs with ``frontend_intermediates=False`` and ``keep={"logits"}`` (what an
accuracy evaluation needs); its per-stage split (front end / network, 1 thread) is printed
too. Best of ``--repeat`` passes (the machine is shared: the best pass is the least
disturbed).

The simulator's exact integer matrix products go through float64 BLAS
(``intmath.matmul_exact``); the script pins numpy's BLAS to one thread
(``OPENBLAS_NUM_THREADS=1`` unless already set) so that "1 thread" means one core for the
simulator too (``threads=2`` runs two single-threaded workers). The load average is printed
before and after (the machine may be shared; ratios come from the same run).

The float model's front end computes in float64 (``nanomamba.config.FRONTEND_DTYPE``, see
docs/FRONTEND.md); the column "float f32 FE" is the same model with
``frontend.compute_dtype = "float32"`` (faster scan), measured in the same run, so the cost
of the float64 front end can be read beside the ratio. The ratio is against the fastest float
configuration measured (float64 default or float32 front end, either scan).

The simulator engine is ``--engine`` (default auto = the numba kernels of
``export/sim_jit.py`` when numba imports; ``numpy`` = the reference implementation, the
same integers); the time of its first ``run()`` call (numba: compile, or load the on-disk
cache) is printed per model.

Run: ``python benchmarks/simulator_throughput.py [--clips 512] [--batch 128] [--engine numpy]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy is imported

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIX = ROOT.parent / "shared" / "fixtures"

from export import quantize as Q  # noqa: E402
from export.simulator import Simulator  # noqa: E402
from nanomamba import load_checkpoint  # noqa: E402
from nanomamba.errors import AudioWarning  # noqa: E402


def clips_per_s(fn, audio, batch: int, repeat: int = 2) -> float:
    """Clips per second of ``fn`` over ``audio`` in batches (best of ``repeat`` passes)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for s in range(0, len(audio), batch):
            fn(audio[s:s + batch])
        best = min(best, time.perf_counter() - t)
    return len(audio) / best


def main(argv=None) -> int:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--engine", default="auto", choices=["auto", "numba", "numpy"],
                    help="simulator engine (export/sim_jit.py; numpy = the reference)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", AudioWarning)
    audio, names = Q.load_clip_folder(FIX / "speech_commands_test")
    audio = audio[np.linspace(0, len(audio) - 1, args.clips).astype(int)]
    print(f"{len(audio)} real clips, batch {args.batch}, torch {torch.__version__}, best of {args.repeat}, "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, "
          f"load average {os.getloadavg()[0]:.1f}, simulator engine {args.engine}")
    print(f"{'model':6s} {'thr':>3s} {'simulator':>10s} {'(front end':>11s} {'network)':>9s} "
          f"{'float chunked':>14s} {'float loop':>11s} {'float f32 FE':>13s} {'sim / float':>12s}")
    for name in args.models:
        model = load_checkpoint(FIX / "upstream" / f"nanomamba_{name}.pt")
        bundle = Q.quantize_model(model, audio[:64], progress=False)
        sim = Simulator(bundle, engine=args.engine)
        t0 = time.perf_counter()
        sim.run(audio[:1], keep={"logits"})           # first call: numba compiles or loads its cache
        first = time.perf_counter() - t0
        fe = sim._fe.run_frontend(sim.fe_params, audio, intermediates=False, engine=sim.engine)
        x = torch.from_numpy(audio.astype(np.float32) / 32768.0)
        for threads in (1, 2):
            r_sim = clips_per_s(lambda a: sim.run(a, keep={"logits"}, frontend_intermediates=False,
                                                  threads=threads), audio, args.batch, args.repeat)
            r_fe = r_net = float("nan")
            if threads == 1:
                r_fe = clips_per_s(lambda a: sim.run_frontend(a, intermediates=False),
                                   audio, args.batch, args.repeat)
                step = getattr(sim, "chunk", args.batch)      # run() works in chunks of this
                r_net = clips_per_s(lambda idx: [sim.run_network(fe["features"][i], fe["snr_mel"][i])
                                                 for i in np.array_split(idx, -(-len(idx) // step))],
                                    np.arange(len(audio)), args.batch, args.repeat)
            torch.set_num_threads(threads)
            rates = {}
            for mode in ("chunked", "loop"):
                model.network.set_scan_mode(mode)
                with torch.no_grad():
                    rates[mode] = clips_per_s(lambda a: model(a), x, args.batch, args.repeat)
            fastest = max(rates, key=rates.get)
            model.network.set_scan_mode(fastest)
            model.frontend.compute_dtype = "float32"
            with torch.no_grad():
                r32 = clips_per_s(lambda a: model(a), x, args.batch, args.repeat)
            model.frontend.compute_dtype = "float64"
            model.network.set_scan_mode("chunked")
            best = max(max(rates.values()), r32)
            print(f"{name:6s} {threads:3d} {r_sim:10.1f} {r_fe:11.1f} {r_net:9.1f} {rates['chunked']:14.1f} "
                  f"{rates['loop']:11.1f} {r32:13.1f} {r_sim / best:11.2f}x", flush=True)
        print(f"{name}: engine {sim.engine}, first run() call {first:.2f} s (numba: compile or cache load)")
    print("clips/s; 'sim / float' is against the fastest float configuration (either scan, "
          "float64 or float32 front end) at the same thread count (goal >= 0.5x); "
          "'float f32 FE': that scan with the float32 front end; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
