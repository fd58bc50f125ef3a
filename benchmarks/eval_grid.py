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
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    args = ap.parse_args()

    import torch

    from nanomamba import load_checkpoint
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
    for name, (ckpt, data) in runs.items():
        if args.only and name not in args.only:
            continue
        if not ckpt.exists():
            console.print(f"[yellow]skip {name}: {ckpt} is absent[/yellow]")
            continue
        if data == "real":
            if real is None:
                real = SpeechCommands(SHARED / "speech_commands_test").load(
                    limit_per_class=args.limit_per_class)
            audio, labels, desc = real.audio, real.labels, "1,200 real Speech Commands test clips"
        else:
            n = args.limit_per_class or 100
            ds = generate_split(n, seed=1, split="test", cache_dir=CACHE)
            audio, labels, desc = ds.audio, ds.labels, f"generated test split ({n}/label, held-out voices)"
        model = load_checkpoint(ckpt)
        routes = {"float": E.float_route(model, threads=args.threads)}
        try:
            from export.evaluate import int8_route, quantize_for_route
            routes["int8"] = int8_route(quantize_for_route(model))
        except (ImportError, E.EvaluateError) as err:
            console.print(f"[yellow]{name}: int8 route unavailable ({err})[/yellow]")
        t0 = time.time()
        res = E.evaluate_grid(routes, audio, labels, babble=babble,
                              source=f"{ckpt.name} on {desc}")
        console.print(E.grid_table(res))
        for r in res.routes[1:]:
            gap, where = res.max_gap(r)
            console.print(f"{r} vs float: largest gap {gap:.2f} pp at {where}")
        (args.out / f"grid-{name}.json").write_text(res.to_json())
        (args.out / f"grid-{name}.md").write_text(E.markdown_table(res))
        (args.out / f"grid-{name}.png").write_bytes(E.plot_grid(res))
        console.print(f"{name}: {time.time() - t0:.0f} s; wrote {args.out}/grid-{name}.*")


if __name__ == "__main__":
    main()
