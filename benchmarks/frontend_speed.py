"""Throughput of the Python twin of the fixed-point front end vs the float PyTorch model.

The simulator's goal is at least half of float PyTorch's throughput on a batch of clips;
this prints ms per clip for the twin (outputs only, and with every intermediate), the
float front end, and the whole float model, on a batch of real clips, and the ratios.

    python benchmarks/frontend_speed.py [--batch 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nanomamba  # noqa: E402
from nanomamba.audio import list_clips, load_audio  # noqa: E402
from export import frontend_fixed as ff  # noqa: E402

FIX = ROOT.parent / "shared" / "fixtures"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    paths = list_clips(FIX / "speech_commands_test")[:: 1200 // args.batch][: args.batch]
    audio = np.stack([load_audio(p, dtype="int16") for p in paths])
    model = nanomamba.load_checkpoint(FIX / "upstream" / "nanomamba_tiny.pt").eval()
    params = ff.make_frontend_params(model.frontend.mel_fb.numpy(),
                                     float(model.frontend.snr_estimator.noise_scale.detach()))
    x = torch.from_numpy(audio.astype(np.float32) / 32768)
    b = len(audio)
    with torch.no_grad():
        model(x[:2])
        t_ffe = best_of(lambda: model.frontend(x), args.repeat)
        t_fmodel = best_of(lambda: model(x), args.repeat)
    t_twin = best_of(lambda: ff.run_frontend(params, audio, intermediates=False), args.repeat)
    t_twin_all = best_of(lambda: ff.run_frontend(params, audio, intermediates=True), args.repeat)
    t = Table("what", "ms / clip", "clips / s", title=f"front end throughput, batch {b} (2 threads)")
    for name, sec in (("twin, outputs only", t_twin), ("twin, every intermediate", t_twin_all),
                      ("float front end (torch)", t_ffe), ("float model, whole (torch)", t_fmodel)):
        t.add_row(name, f"{sec / b * 1e3:.2f}", f"{b / sec:.0f}")
    Console(width=120).print(t)
    print(f"twin front end / float whole model time: {t_twin / t_fmodel:.2f} "
          f"(the simulator's budget is 2.0 for front end + network)")


if __name__ == "__main__":
    main()
