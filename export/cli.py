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
