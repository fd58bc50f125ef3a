"""``kws-export``: the command line, a thin layer over functions callable from Python.

Each command parses options, calls one library function and prints its result. Errors
derived from :class:`nanomamba.errors.KwsError` print as one ``error:`` line (exit 1);
warnings about altered input print as one ``warning:`` line.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import click

from export import __version__
from nanomamba.errors import KwsError


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"warning: {message}", err=True)


def handle_errors(fn):
    """Decorator: turn KwsError into a one-line ``error: ...`` and exit status 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            return fn(*args, **kwargs)
        except KwsError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kws-export")
def main() -> None:
    """Deploy NanoMamba keyword spotters to Arm Cortex-M: quantize, simulate, export,
    generate C, build, run and flash firmware."""


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--audio", "audio", type=click.Path(path_type=Path), multiple=True,
              help="Clip(s) to classify with the float model (WAV, FLAC or raw .f32).")
@handle_errors
def info(checkpoint: Path, audio: tuple[Path, ...]) -> None:
    """Describe a checkpoint: config, parameters, MACs; classify clips with --audio."""
    from export.report import print_info
    print_info(checkpoint, list(audio))


# --- evaluate (issue 7) ---------------------------------------------------------------------
@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Speech Commands V2 folder (testing split) or one folder per label.")
@click.option("--generated", type=int, default=None,
              help="Instead of --data: N clips per label of the generated test split (espeak-ng).")
@click.option("--data-seed", type=int, default=1, show_default=True, help="Seed of --generated.")
@click.option("--route", "routes", multiple=True, default=("float",), show_default=True,
              help="Inference route(s): float, int8 (repeat the option).")
@click.option("--noise", "noises", default=",".join(("white", "pink", "babble", "factory", "street")),
              show_default=True, help="Comma-separated noise types (also 'recorded', 'file:NAME' "
              "with --noise-dir); '' for clean only.")
@click.option("--snr", "snrs", default="-15,-10,-5,0,5,10,15", show_default=True,
              help="Comma-separated SNRs in dB.")
@click.option("--noise-dir", type=click.Path(path_type=Path), default=None,
              help="Recorded noise (e.g. Speech Commands' _background_noise_).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--limit-per-class", type=int, default=None, help="At most N clips per label.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for grid.json, grid.md, grid.png.")
@click.option("--cache", type=click.Path(path_type=Path),
              default=Path.home() / ".cache" / "nanomamba-kws", show_default=True,
              help="Cache of generated clips and babble.")
@click.option("--espeak", default=None, help="espeak-ng executable.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@handle_errors
def evaluate(checkpoint, data, generated, data_seed, routes, noises, snrs, noise_dir, seed,
             limit_per_class, out, cache, espeak, force) -> None:
    """Accuracy over noise types x SNR (plus clean) for each route: a table, and with --out
    a JSON, a Markdown table and a PNG plot."""
    from export.evaluate import EvaluateError, run_evaluate
    try:
        snr_list = [float(s) for s in snrs.split(",") if s.strip()]
    except ValueError:
        raise EvaluateError(f"--snr: not a comma-separated list of numbers: '{snrs}'") from None
    noise_list = [n.strip() for n in noises.split(",") if n.strip()]
    run_evaluate(checkpoint, data=data, generated=generated, data_seed=data_seed, routes=routes,
                 noises=noise_list, snrs=snr_list, seed=seed, noise_dir=noise_dir,
                 limit_per_class=limit_per_class, out=out, force=force,
                 cache_dir=str(cache), espeak=espeak)
