"""``kws-export``: the command line, a thin layer over functions callable from Python.

Each command parses options, calls one library function and prints its result. Errors
derived from :class:`nanomamba.errors.KwsError` print as one ``error:`` line (exit 1);
usage errors (unknown option or command, missing argument, invalid option value: click
types, ranges, choices, :class:`WidthOverride`, callbacks raising ``click.BadParameter``,
``click.UsageError``) print as one ``error: ... (see 'kws-export CMD --help')`` line
(exit 2); warnings about altered input print as one ``warning:`` line. When the reader of
stdout goes away (``kws-export boards | head -1``) the command stops silently with exit
status 141 (128 + SIGPIPE, :data:`PIPE_CLOSED_EXIT`), as Unix tools killed by SIGPIPE do.
Ctrl-C and SIGTERM stop a command through the same cleanup (temp folders deleted, QEMU and
compilers killed), print ``Aborted!`` and exit 130 / 143 (128 + SIGINT / SIGTERM,
:data:`INTERRUPT_EXIT`, :data:`TERMINATE_EXIT`).
"""

from __future__ import annotations

import contextlib
import functools
import math
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


USAGE_EXIT = 2
"""Exit status of a command-line usage error (unknown option or command, missing argument,
invalid option value): click's and POSIX's convention, distinct from a bad input (1)."""


class WidthOverride(click.ParamType):
    """``--width NAME=BITS``: a bit-width override, checked by click (unknown name, bits not
    a number or not allowed: a usage error, exit 2) against
    :func:`export.quantize.check_widths` (which Python callers get too)."""

    name = "NAME=BITS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        name, sep, bits = str(value).partition("=")
        if not sep or not name or not bits.strip().isdigit():
            self.fail(f"{value!r}: expected NAME=BITS, e.g. h=32", param, ctx)
        from export.quantize import QuantizationError, check_widths
        try:
            check_widths({name: int(bits)})
        except QuantizationError as err:
            self.fail(f"{value!r}: {err}", param, ctx)
        return name, int(bits)


def _comma_floats(ctx, param, value: str) -> list[float]:
    """click callback: a comma-separated list of finite numbers (``--snr``)."""
    items = [s.strip() for s in value.split(",") if s.strip()]
    try:
        out = [float(s) for s in items]
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of numbers: {value!r}") from None
    bad = [s for s, v in zip(items, out) if not math.isfinite(v)]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: not a finite number (in {value!r})")
    return out


def _finite_seconds(ctx, param, value: float | None) -> float | None:
    """click callback after ``FloatRange(min=0, min_open=True)``, which lets ``nan`` and
    ``inf`` through (``--timeout``): a finite number of seconds > 0."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r}: expected a finite number of seconds > 0")
    return value


def _noise_kinds(ctx, param, value: str) -> list[str]:
    """click callback: comma-separated noise types (``--noise``), each a generated kind,
    ``recorded`` or ``file:NAME``."""
    from export.evaluate import is_recorded_kind
    from nanomamba.data.noise import GENERATED_KINDS
    kinds = [n.strip() for n in value.split(",") if n.strip()]
    for kind in kinds:
        if kind not in GENERATED_KINDS and not is_recorded_kind(kind):
            raise click.BadParameter(f"unknown noise type {kind!r} (expected "
                                     f"{', '.join(GENERATED_KINDS)}, recorded or file:NAME)")
    return kinds


class _OneLineError(click.ClickException):
    """A click error shown as ONE ``error: ...`` line on stderr, keeping its exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _one_line(err: click.ClickException) -> _OneLineError:
    """click's message on one line; a usage error also names its command's ``--help``."""
    msg = " ".join(err.format_message().split())
    if isinstance(err, click.UsageError):
        path = err.ctx.command_path if err.ctx is not None else "kws-export"
        return _OneLineError(f"{msg.rstrip('.')} (see '{path} --help')", USAGE_EXIT)
    return _OneLineError(msg, err.exit_code)


@contextlib.contextmanager
def _click_errors_on_one_line():
    """Re-raise click's errors (but not the bare group's help text) as :class:`_OneLineError`."""
    try:
        yield
    except (_OneLineError, click.exceptions.NoArgsIsHelpError):
        raise
    except click.ClickException as err:
        raise _one_line(err) from err


class OneLineErrorGroup(click.Group):
    """click group whose usage errors (and other click errors) print one ``error: ...`` line
    on stderr instead of click's usage block; exit status :data:`USAGE_EXIT` for usage
    errors, click's own (1) for others.

    The group's own options are parsed in ``make_context``; a subcommand is looked up and
    its arguments parsed inside the group's ``invoke``. ``--help``, ``--version`` and the
    help text of a bare ``kws-export`` are unchanged.
    """

    def make_context(self, info_name, args, parent=None, **extra):
        with _click_errors_on_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        try:
            with _click_errors_on_one_line(), _sigterm_as_interrupt():
                rv = super().invoke(ctx)
            sys.stdout.flush()               # a closed pipe shows here, not at exit
            return rv
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt as err:     # Ctrl-C, or SIGTERM (:class:`Terminated`)
            _interrupted(err)


PIPE_CLOSED_EXIT = 141
"""Exit status when stdout's reader went away (``kws-export boards | head -1``): 128 +
SIGPIPE, what a shell reports for a tool killed by SIGPIPE, so ``set -o pipefail`` scripts
see what they see with other Unix tools. No message is printed (the reader left on purpose)."""


INTERRUPT_EXIT = 130
"""Exit status after Ctrl-C (128 + SIGINT), as a shell reports for a tool killed by it."""

TERMINATE_EXIT = 143
"""Exit status after SIGTERM (``kill PID``, a CI timeout, ``docker stop``): 128 + SIGTERM."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt so the same
    cleanup runs: ``finally`` blocks delete half-built temp folders
    (:func:`export.fileio.atomic_output_dir`) and kill QEMU / compiler process groups."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, turn SIGTERM into :class:`Terminated` (Python's default is to
    die at once, leaving temp folders and emulator processes behind); further SIGTERMs
    are ignored until the command has cleaned up. The previous handler is restored
    afterwards; nothing is installed off the main thread (a test runner's
    worker), where Python allows no signal handlers."""
    import signal
    import threading

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second kill cannot cut cleanup
        raise Terminated()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupted(err: KeyboardInterrupt) -> None:
    """After Ctrl-C or SIGTERM (cleanup already done by the ``finally`` blocks on the way
    out): one ``Aborted!`` line on stderr and exit :data:`INTERRUPT_EXIT` /
    :data:`TERMINATE_EXIT`, not 1, so a script tells an interrupted run from bad input."""
    with contextlib.suppress(OSError, ValueError):
        click.echo("Aborted!", err=True)
    sys.exit(TERMINATE_EXIT if isinstance(err, Terminated) else INTERRUPT_EXIT)


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null (so the interpreter's final flush cannot fail again) and
    exit with :data:`PIPE_CLOSED_EXIT`, silently."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # not a real file (e.g. a test runner)
        pass
    sys.exit(PIPE_CLOSED_EXIT)


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kws-export")
def main() -> None:
    """Deploy NanoMamba keyword spotters to Arm Cortex-M: quantize, simulate, export,
    generate C, build, run and flash firmware."""


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--audio", "audio", type=click.Path(path_type=Path), multiple=True,
              help="Clip to classify with the float model (WAV, FLAC or raw .f32); repeat "
              "--audio for each clip.")
@handle_errors
def info(checkpoint: Path, audio: tuple[Path, ...]) -> None:
    """Describe a checkpoint: config, parameters, MACs; classify clips with --audio."""
    from export.report import print_info
    print_info(checkpoint, list(audio))


# ---------------------------------------------------------------------------------------
# Firmware (issue 8): boards, build, run, bench, flash. Logic in export/firmware.py;
# printing in export/firmware_report.py.
# ---------------------------------------------------------------------------------------

@main.command()
@handle_errors
def boards() -> None:
    """List the boards firmware can be built for (QEMU, pyOCD, build-only)."""
    from export.firmware_report import print_boards
    print_boards()


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--board", "-b", "board", required=True,
              help="Board id (kws-export boards) or a board .toml file.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (ELF, BIN, HEX, map, firmware.json, src/).")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option("--opt", type=click.Choice(["O2", "Os"]), default="O2", show_default=True,
              help="Optimisation level.")
@click.option("--demo-clip", type=click.Path(path_type=Path), default=None,
              help="Clip built into real-board firmware (default: examples/clips/yes.wav "
              "of a checkout, else a synthetic demo clip).")
@click.option("--precision", type=click.Choice(["int8", "float32"]), default="int8",
              show_default=True,
              help="Model C generated from a checkpoint/bundle: the int8 model, or its "
                   "float32 C baseline (for bench --float-build).")
@handle_errors
def build(source: Path, board: str, out: Path, force: bool, opt: str,
          demo_clip: Path | None, precision: str) -> None:
    """Build firmware for a board from SOURCE (a checkpoint, a bundle, or a folder of model
    C sources exposing kws_model.h)."""
    from export.firmware import build_firmware
    from export.firmware_report import print_build
    cmd = "kws-export " + " ".join(sys.argv[1:])
    print_build(build_firmware(source, board, out, force=force, opt=opt,
                               demo_clip=demo_clip, command=cmd, precision=precision))


@main.command()
@click.argument("build_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.argument("clips", metavar="CLIP|FOLDER...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--board", "-b", default=None, help="Board (default: the one DIR was built for).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              callback=_finite_seconds, show_default=True, help="Seconds without firmware output before it counts as hung.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write every clip's result to this JSON file.")
@click.option("--force", is_flag=True, help="Overwrite an existing --json file.")
@handle_errors
def run(build_dir: Path, clips: tuple[Path, ...], board: str | None, timeout: float,
        json_out: Path | None, force: bool) -> None:
    """Run firmware on QEMU: label, confidence, int8 logits and exact instruction count
    per clip, all clips in one emulator boot; accuracy for labelled folders."""
    from export.firmware import run_firmware
    from export.firmware_report import check_json_output, print_run, write_run_json
    if json_out is not None:
        check_json_output(json_out, force, build_dir, clips)   # before the emulator runs
    result = run_firmware(build_dir, list(clips), board=board, timeout=timeout, progress=True)
    print_run(result)
    if json_out is not None:
        write_run_json(result, json_out, force=force)


@main.command()
@click.argument("build_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--clip", type=click.Path(path_type=Path), default=None,
              help="Input clip (default: the built-in demo clip).")
@click.option("--float-build", type=click.Path(path_type=Path), default=None,
              help="Build folder of the same model's float32 C, same board (extra column).")
@click.option("--macs", type=click.IntRange(min=1), default=None,
              help="MACs per inference for the MAC/2 bound (default: from kws_model.h).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              callback=_finite_seconds, show_default=True, help="Seconds without firmware output before it counts as hung.")
@handle_errors
def bench(build_dir: Path, clip: Path | None, float_build: Path | None, macs: int | None,
          timeout: float) -> None:
    """Deterministic benchmark on QEMU: instructions (front end, network), flash, RAM
    (data + bss + peak stack)."""
    from export.firmware import bench_firmware
    from export.firmware_report import print_bench
    print_bench(bench_firmware(build_dir, clip=clip, float_build=float_build, macs=macs,
                               timeout=timeout))


@main.command()
@click.argument("build_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="The real board to program.")
@click.option("--dry-run", is_flag=True, help="Only say what would be written where.")
@click.option("--probe", default=None, help="Debug probe unique id (default: the first).")
@handle_errors
def flash(build_dir: Path, board: str, dry_run: bool, probe: str | None) -> None:
    """Program a real board with DIR's firmware through pyOCD."""
    from export.firmware import FlashError, flash_firmware
    plan = flash_firmware(build_dir, board, dry_run=dry_run, probe=probe)
    if dry_run:
        click.echo(plan.describe())
        if plan.blocker:
            raise FlashError(plan.blocker)
    else:
        click.echo(plan.describe().replace("would write", "wrote", 1))


# ---- ONNX / TFLite / compare (issue 6) -------------------------------------------------

@main.command("onnx")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), required=True,
              help="Output folder (network.onnx, frontend.onnx, full.onnx, network_qdq.onnx).")
@click.option("--scan", type=click.Choice(["scan", "unrolled"]), default="scan", show_default=True,
              help="SSM recurrence as an ONNX Scan or unrolled over the 101 frames.")
@click.option("--stft", type=click.Choice(["dft", "op"]), default="dft", show_default=True,
              help="Full model's STFT: DFT as MatMul, or the ONNX STFT operator.")
@click.option("--frontend-dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True,
              help="Arithmetic of the front end in frontend.onnx/full.onnx (float64 = the "
                   "float model's; float32 misses 1e-4 on quiet high bands).")
@click.option("--quantize", is_flag=True,
              help="SOURCE is a checkpoint: quantize it first (export.quantize) and write "
                   "that bundle's QDQ graph too.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Calibration clips for --quantize (default: the generated set; implies "
                   "--quantize).")
@click.option("--opset", type=click.IntRange(21, 28), default=21, show_default=True,
              help="ONNX opset version of the graphs (21..28).")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@handle_errors
def onnx_cmd(source: Path, out: Path, scan: str, stft: str, frontend_dtype: str,
             quantize: bool, calib: Path | None, opset: int, force: bool) -> None:
    """ONNX graphs of SOURCE (a bundle .npz; or a .pt checkpoint: float graphs)."""
    from rich.table import Table

    from export.onnx_export import export_onnx
    from export.report import output_console
    res = export_onnx(source, out, scan=scan, stft=stft, frontend_dtype=frontend_dtype,
                      quantize=quantize, calib=calib, opset=opset, force=force, progress=True)
    table = Table("file", "nodes (with subgraphs)", "bytes",
                  title=f"{out} (opset {res['opset']}, model {res['model_hash'][:16]})")
    for name, st in res["files"].items():
        table.add_row(name, f"{st['nodes']} ({st['nodes_total']})", f"{st['bytes']:,}")
    output_console().print(table)
    click.echo(f"qdq: {res['qdq']}")


@main.command("tflite")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), required=True,
              help="Output .tflite file.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Clips for the converter's calibration of the tensors outside the bundle "
                   "(and for quantizing a checkpoint); default: the generated set.")
@click.option("--calib-count", type=click.IntRange(1), default=None,
              help="Clips taken from --calib (default: all).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@handle_errors
def tflite_cmd(source: Path, out: Path, calib: Path | None, calib_count: int | None,
               force: bool) -> None:
    """16x8 TFLite of SOURCE (bundle, or a checkpoint quantized first) for TFLite Micro,
    carrying the bundle's scales, loaded and run in the TFLM interpreter."""
    from rich.table import Table

    from export.report import output_console
    from export.tflite_export import export_tflite
    res = export_tflite(source, out, calib=calib, calib_count=calib_count, force=force,
                        progress=True)
    table = Table("op", "by input type", title=f"{out}: {res['bytes']:,} bytes")
    for op, types in res["ops"].items():
        table.add_row(op, ", ".join(f"{t} x{n}" for t, n in types.items()))
    output_console().print(table)
    hows: dict[str, int] = {}
    for r in res["scales"]:
        hows[r["how"]] = hows.get(r["how"], 0) + 1
    click.echo(f"TFLM tensor arena (minimum): {res['arena_bytes']:,} bytes; generated C arena: "
               f"see kws-export generate / docs/BENCHMARKS")
    click.echo(f"quantization: {res['quantization']}")
    click.echo("bundle tensors: " + ", ".join(f"{n} {h}" for h, n in sorted(hows.items())))
    click.echo(f"other tensors calibrated on: {res['representative']}")


@main.command("compare")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("eval_dir", type=click.Path(path_type=Path))
@click.option("--route", "routes", multiple=True,
              type=click.Choice(["torch", "onnx", "onnx-qdq", "tflm", "simulator", "c"]),
              help="Routes to run (default: all).")
@click.option("--onnx-dir", type=click.Path(path_type=Path), default=None,
              help="Folder written by kws-export onnx from SOURCE's model (else graphs are "
                   "built in memory); must hold the graphs the routes read.")
@click.option("--tflite", type=click.Path(path_type=Path), default=None,
              help="File written by kws-export tflite from SOURCE's model (else converted "
                   "in memory).")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Clips for quantizing a checkpoint SOURCE and the in-memory TFLite "
                   "conversion (default: the generated set).")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Evaluate at most this many clips (spread over label folders).")
@handle_errors
def compare_cmd(source: Path, eval_dir: Path, routes: tuple[str, ...], onnx_dir: Path | None,
                tflite: Path | None, calib: Path | None, limit: int | None) -> None:
    """Torch float vs onnxruntime float / QDQ vs TFLM vs simulator vs C: agreement, SQNR."""
    from export.compare import ROUTES, compare, print_compare
    res = compare(source, eval_dir, routes=tuple(routes) or ROUTES, onnx_dir=onnx_dir,
                  tflite=tflite, calib=calib, limit=limit)
    print_compare(res)

# --- evaluate (issue 7) ---------------------------------------------------------------------
@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Speech Commands V2 folder (testing split) or one folder per label.")
@click.option("--generated", type=click.IntRange(min=1), default=None,
              help="Instead of --data: N clips per label of the generated test split (espeak-ng).")
@click.option("--data-seed", type=int, default=1, show_default=True, help="Seed of --generated.")
@click.option("--route", "routes", multiple=True, default=("float",), show_default=True,
              type=click.Choice(["float", "int8"]),
              help="Inference route(s): float, int8 (repeat the option).")
@click.option("--noise", "noises", default=",".join(("white", "pink", "babble", "factory", "street")),
              show_default=True, callback=_noise_kinds,
              help="Comma-separated noise types (also 'recorded', 'file:NAME' "
              "with --noise-dir); '' for clean only.")
@click.option("--snr", "snrs", default="-15,-10,-5,0,5,10,15", show_default=True,
              callback=_comma_floats, help="Comma-separated SNRs in dB.")
@click.option("--noise-dir", type=click.Path(path_type=Path), default=None,
              help="Recorded noise (e.g. Speech Commands' _background_noise_).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--limit-per-class", type=click.IntRange(min=1), default=None, help="At most N clips per label.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for grid.json, grid.md, grid.png.")
@click.option("--cache", type=click.Path(path_type=Path),
              default=Path.home() / ".cache" / "nanomamba-kws", show_default=True,
              help="Cache of generated clips and babble.")
@click.option("--espeak", default=None, help="espeak-ng executable.")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Route int8: folder of calibration clips (default: the generated set).")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="Route int8: a saved bundle of this checkpoint instead of quantizing.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@handle_errors
def evaluate(checkpoint, data, generated, data_seed, routes, noises, snrs, noise_dir, seed,
             limit_per_class, out, cache, espeak, calib, bundle, force) -> None:
    """Accuracy over noise types x SNR (plus clean) for each route: a table, and with --out
    a JSON, a Markdown table and a PNG plot."""
    from export.evaluate import is_recorded_kind, run_evaluate
    if (data is None) == (generated is None):
        raise click.UsageError("give a dataset folder (--data) or a generated test split "
                               "(--generated N)" if data is None else
                               "give either --data or --generated, not both")
    for kind in noises:                   # an option combination: a usage error (exit 2)
        if is_recorded_kind(kind) and noise_dir is None:
            raise click.UsageError(f"--noise {kind} needs --noise-dir (a folder of noise "
                                   "recordings)")
    run_evaluate(checkpoint, data=data, generated=generated, data_seed=data_seed, routes=routes,
                 noises=noises, snrs=snrs, seed=seed, noise_dir=noise_dir,
                 limit_per_class=limit_per_class, out=out, force=force,
                 cache_dir=str(cache), espeak=espeak, calib=calib, bundle=bundle)


# ---- kws-export quantize (issue 4) -------------------------------------------------------
@main.command("quantize")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="Bundle file to write (.npz).")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Folder of calibration clips (16 kHz; default: the generated set).")
@click.option("--report", "report", is_flag=False, flag_value="", default=None,
              metavar="[DIR]", help="Write a report folder (DIR, default BUNDLE.report): "
              "per-tensor scales, per-layer SQNR, agreement, sqnr.png.")
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of clips the report evaluates on (default: the calibration clips).")
@click.option("--width", "widths", multiple=True, type=WidthOverride(),
              help="Bit-width override, e.g. h=32 or w.in_proj=8 (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite an existing bundle / report.")
@handle_errors
def quantize_cmd(checkpoint: Path, output: Path, calib: Path | None, report: str | None,
                 eval_dir: Path | None, widths: tuple[str, ...], force: bool) -> None:
    """Quantize CHECKPOINT into an integer bundle (int16 audio in, int8 logits out)."""
    from export.bundle import BundleError
    from export.quantize import quantize_checkpoint
    if output.is_dir():                   # before calibrating, not after (with or without --force)
        raise BundleError(f"{output}: is a directory, expected a bundle file name (.npz)")
    overrides = dict(widths)              # (name, bits) pairs, checked by WidthOverride
    res = quantize_checkpoint(checkpoint, output, calib=calib, force=force, report=report,
                              eval_dir=eval_dir, widths=overrides)
    click.echo(f"wrote {res['bundle']}")
    for label, r in res["results"].items():
        acc = (f", accuracy int {r['accuracy_int']:.2f} % / float {r['accuracy_float']:.2f} %"
               if "accuracy_int" in r else "")
        click.echo(f"{label}: {r['n']} clips, top-1 agreement {r['agreement']:.2f} %{acc}, "
                   f"logits SQNR {r['logits_sqnr_db']:.1f} dB")
    if res["report"]:
        click.echo(f"report: {res['report']}")


# ---------------------------------------------------------------------------------------
# C code generation (issue 5): generate, verify. Logic in export/codegen.py, export/verify.py.
# ---------------------------------------------------------------------------------------

@main.command("generate")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder of the C project.")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option("--kernels", "variant", type=click.Choice(["fast", "reference"]), default="fast",
              show_default=True, help="Kernel variant (same integers): typed storage with "
              "SMLAD pairs, or the int32 reference kernels.")
@handle_errors
def generate_cmd(source: Path, out: Path, force: bool, variant: str) -> None:
    """Generate the C project of a model from SOURCE (a bundle .npz or a checkpoint .pt,
    quantized first with the default calibration)."""
    from export.codegen import generate_c
    res = generate_c(source, out, force=force, variant=variant,
                     argv=["kws-export", *sys.argv[1:]], progress=True)
    click.echo(f"wrote {res.summary()}")


@main.command("verify")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--audio", "audio", type=click.Path(path_type=Path), multiple=True,
              help="Clip(s) to check (default: the shipped example clips and extreme inputs).")
@click.option("--no-frontend", is_flag=True,
              help="Skip the front end's internal intermediates (its outputs are still compared).")
@handle_errors
def verify_cmd(folder: Path, audio: tuple[Path, ...], no_frontend: bool) -> None:
    """Build FOLDER (from kws-export generate) for the host with UBSan, run it and compare
    every intermediate tensor with the simulator, byte for byte."""
    from export.verify import VerifyError, verify_dir
    res = verify_dir(folder, audio=[Path(a) for a in audio], frontend=not no_frontend)
    if not res.ok:
        raise VerifyError(res.summary())
    click.echo(res.summary())
