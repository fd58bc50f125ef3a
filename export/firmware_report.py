"""Printing for the firmware commands (``kws-export boards|build|run|bench``): rich tables
and plain per-clip lines over the results of :mod:`export.firmware`."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from export.boards import board_names, load_board
from export.firmware import BenchResult, BuildResult, RunResult
from export.report import output_console


def _console(console: Console | None) -> Console:
    return console or output_console(highlight=False)


def print_boards(console: Console | None = None) -> None:
    """One line per shipped board: name, kind, core, FPU, clock, flash, RAM, QEMU machine
    or pyOCD target, description."""
    c = _console(console)
    for name in board_names():
        b = load_board(name)
        if b.qemu_machine:
            target = f"qemu {b.qemu_machine}"
        elif b.pyocd_target:
            target = f"pyocd {b.pyocd_target}" + (f" (pack {b.pyocd_pack})" if b.pyocd_pack else "")
        else:
            target = "build only"
        c.print(f"{b.name:26s} {b.core:14s} FPU {b.fpu or 'none':12s} {b.clock_hz / 1e6:4g} MHz  "
                f"flash {b.flash.size // 1024:5d} KB @0x{b.flash.origin:08x}  "
                f"RAM {b.ram.size // 1024:5d} KB @0x{b.ram.origin:08x}  {target}", soft_wrap=True)


def print_build(result: BuildResult, console: Console | None = None) -> None:
    """The size report of a build: sections, components, largest symbols, totals."""
    c = _console(console)
    m = result.manifest
    s = m["sizes"]
    c.print(f"built {result.out}: {result.elf.name}, {result.bin.name}, {result.hex.name} "
            f"for {m['board']} ({m['core']}), model {m['model']['name']}")
    t = Table("section", "address", "bytes", "in", title="sections")
    for sec in s["sections"]:
        t.add_row(sec["name"], f"0x{sec['address']:08x}", f"{sec['size']:,}", sec["region"])
    c.print(t)
    if s["components"]:
        t = Table("component", "flash bytes", "RAM bytes", title="by component")
        for name, v in s["components"].items():
            t.add_row(name, f"{v['flash']:,}", f"{v['ram']:,}")
        c.print(t)
    t = Table("symbol", "bytes", "section", "kind", title="largest symbols")
    for sym in s["largest_symbols"]:
        t.add_row(sym["name"], f"{sym['size']:,}", sym["section"], sym["kind"])
    c.print(t)
    extra = f", of which demo clip {s['demo_clip']:,}" if s["demo_clip"] else ""
    c.print(f"flash {s['flash_total']:,} bytes{extra}; RAM data + bss {s['ram_static']:,} bytes "
            f"(audio buffer {s['audio_buffer']:,}), stack reserved {s['stack_reserved']:,}")


def print_run(result: RunResult, console: Console | None = None) -> None:
    """One line per clip (label, confidence, int8 logits, instructions), then a summary
    with accuracy for labelled clips."""
    c = _console(console)
    for r in result.clips:
        conf = f"{r.confidence:.3f}" if r.confidence is not None else "n/a"
        truth = f" truth={r.truth}" if r.truth is not None else ""
        c.print(f"{r.path}: {r.label} ({conf}) logits={','.join(map(str, r.logits))} "
                f"instructions={r.instructions:,}{truth}", soft_wrap=True)
    n = [r.instructions for r in result.clips]
    c.print(f"{len(n)} clip(s) on {result.board} in one QEMU boot, {result.seconds:.2f} s; "
            f"instructions per inference min {min(n):,} mean {sum(n) / len(n):,.0f} "
            f"max {max(n):,}; peak stack {result.stack_peak:,} of {result.stack_size:,} bytes")
    if result.accuracy is not None:
        right = sum(r.label == r.truth for r in result.clips if r.truth is not None)
        c.print(f"accuracy {right}/{result.n_labelled} = {100 * result.accuracy:.2f} %")


def check_json_output(path: Path, force: bool = False, build_dir: Path | None = None,
                      clips=()) -> Path:
    """Check that ``path`` can take :func:`write_run_json`'s file.

    Args:
        path: the JSON file to write.
        force: replace an existing file.
        build_dir: the build folder being run: none of its files (``firmware.json``,
            ``firmware.elf``, ...) may be the output, even with ``force``.
        clips: the input clips/folders: never the output either.
    Raises:
        OutputExistsError: ``path`` exists and not ``force``, is a directory, or is one of
            the inputs.
        OutputPathError: the folder of ``path`` cannot be created.
    """
    from export.fileio import check_output
    inputs = list(clips)
    if build_dir is not None and Path(build_dir).is_dir():
        inputs += sorted(Path(build_dir).iterdir())
    return check_output(path, force, expect="file", inputs=inputs)


def write_run_json(result: RunResult, path: Path, *, force: bool = False) -> None:
    """Write every clip's result to ``path`` as JSON (atomically; the folder is created).

    Raises:
        OutputExistsError: ``path`` exists and not ``force``, or is a directory.
    """
    from export.fileio import atomic_write_text
    data = {"board": result.board, "labels": result.labels, "accuracy": result.accuracy,
            "stack_peak": result.stack_peak,
            "clips": [vars(r) for r in result.clips]}
    path = check_json_output(path, force)
    atomic_write_text(path, json.dumps(data, indent=1), force=force)


def print_bench(result: BenchResult, console: Console | None = None) -> None:
    """The bench table: metric x (this int8 build, float32 C build, MAC/2 bound)."""
    c = _console(console)
    a = result.int8
    t = Table("metric", f"{a.precision} (this build)", "float32 C", "MAC/2 bound",
              title=f"bench on {a.board} (QEMU -icount: exact instructions)")
    for row in result.rows():
        t.add_row(*row)
    c.print(t)
    notes = [f"label of the bench clip: {a.label}"]
    if a.stream_matches is not None:
        notes.append(f"streaming logits {'equal' if a.stream_matches else 'DIFFER FROM'} "
                     f"kws_run's")
    if result.float32 is not None and result.float32.instructions_total:
        notes.append(f"float32 / {a.precision} instructions: "
                     f"{result.float32.instructions_total / a.instructions_total:.2f}x")
    if result.mac_bound:
        notes.append(f"{a.precision} / MAC bound: {a.instructions_total / result.mac_bound:.2f}x")
    c.print("; ".join(notes))
