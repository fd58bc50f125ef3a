"""Noise-robustness grid: published checkpoints and the default model on real and generated clips.

Runs ``export.evaluate.evaluate_grid`` (routes: float, and int8 when export/simulator.py is
part of the build) for:

- the published NanoMamba Tiny and Small (../shared/fixtures/upstream/) on the 1,200 real
  test clips (../shared/fixtures/speech_commands_test/);
- the project's default model (examples/default_model/nanomamba_tiny_kws.pt) on the same
  real clips and on the held-out generated test split (100 clips per label, seed 1).

Noise types white, pink, babble, factory, street; SNR -15...15 dB in 5-dB steps, plus
clean. Writes ``benchmarks/results/grid-<name>.{json,md,png}`` and prints the tables.

    python benchmarks/eval_grid.py [--only NAME ...] [--limit-per-class N] [--threads 1]
                                   [--no-int8] [--tag TAG]

The int8 route quantizes each model with the default generated calibration set (disjoint
from every evaluation clip). ``--limit-per-class N`` takes the first N clips per label (of
the real clips, or of the 100-per-label generated test split); ``--tag`` is appended to the
output names (``grid-<name>-<tag>.*``), so a subset run does not replace a full one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402

from export import evaluate as E  # noqa: E402

SHARED = ROOT.parent / "shared" / "fixtures"
DEFAULT_MODEL = ROOT / "examples" / "default_model" / "nanomamba_tiny_kws.pt"
CACHE = Path.home() / ".cache" / "nanomamba-kws"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None,
                    help="subset of: tiny-real small-real default-real default-generated")
    ap.add_argument("--limit-per-class", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--no-int8", action="store_true", help="float route only")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    args = ap.parse_args()

    import torch

    from nanomamba import load_checkpoint
    from nanomamba.config import LABELS
    from nanomamba.data.noise import BabbleBank
    from nanomamba.data.speech_commands import SpeechCommands
    from nanomamba.data.synth import generate_split

    torch.set_num_threads(args.threads)
    console = Console()
    runs = {
        "tiny-real": (SHARED / "upstream" / "nanomamba_tiny.pt", "real"),
        "small-real": (SHARED / "upstream" / "nanomamba_small.pt", "real"),
        "default-real": (DEFAULT_MODEL, "real"),
        "default-generated": (DEFAULT_MODEL, "generated"),
    }
    babble = BabbleBank(cache_dir=CACHE)
    real = None
    args.out.mkdir(parents=True, exist_ok=True)
    order = args.only if args.only else list(runs)
    for name in order:
        ckpt, data = runs[name]
        if not ckpt.exists():
            console.print(f"[yellow]skip {name}: {ckpt} is absent[/yellow]")
            continue
        if data == "real":
            if real is None:
                real = SpeechCommands(SHARED / "speech_commands_test").load(
                    limit_per_class=args.limit_per_class)
            audio, labels, desc = real.audio, real.labels, "1,200 real Speech Commands test clips"
        else:
            ds = generate_split(100, seed=1, split="test", cache_dir=CACHE)
            audio, labels = ds.audio, ds.labels
            n = 100
            if args.limit_per_class:
                n = min(args.limit_per_class, 100)
                idx = np.concatenate([np.nonzero(labels == k)[0][:n] for k in range(len(LABELS))])
                audio, labels = audio[idx], labels[idx]
            desc = f"generated test split ({n}/label, held-out voices)"
        model = load_checkpoint(ckpt)
        routes = {"float": E.float_route(model, threads=args.threads)}
        if not args.no_int8:
            routes["int8"] = E.int8_route(E.quantize_for_route(model))
        t0 = time.time()
        res = E.evaluate_grid(routes, audio, labels, babble=babble,
                              source=f"{ckpt.name} on {desc}")
        console.print(E.grid_table(res))
        for r in res.routes[1:]:
            gap, where = res.max_gap(r)
            console.print(f"{r} vs float: largest gap {gap:.2f} pp at {where}")
        stem = f"grid-{name}" + (f"-{args.tag}" if args.tag else "")
        (args.out / f"{stem}.json").write_text(res.to_json())
        (args.out / f"{stem}.md").write_text(E.markdown_table(res))
        (args.out / f"{stem}.png").write_bytes(E.plot_grid(res))
        console.print(f"{name}: {time.time() - t0:.0f} s; wrote {args.out}/{stem}.*")


if __name__ == "__main__":
    main()
