"""Firmware for Cortex-M boards: build, size report, QEMU run, benchmark, pyOCD flash.

Flow (``kws-export build|run|bench|flash``)::

    model C folder (kws_model.h API)  --render app templates for the board-->  DIR/src
    arm-none-eabi-gcc  -->  DIR/firmware.{elf,bin,hex,map} + DIR/firmware.json (manifest,
                           size report)
    run/bench: qemu-system-arm -icount, clips via semihosting, one boot for all clips
    flash: pyOCD Python API (real boards)

The model is any folder of C sources exposing ``kws_model.h`` (see
``firmware_templates/standin_model/kws_model.h`` for the contract).
:func:`resolve_model_source` is the one place where a checkpoint or bundle will be turned
into such a folder by the code generator.

Instruction counting (``docs/FIRMWARE.md``): QEMU runs with ``-icount shift=S`` so each
instruction advances virtual time by exactly 2^S ns; SysTick counts that virtual time at
the board's clock; the host turns ticks back into instructions (:class:`Counter`) and the
firmware checks it at every boot with a self-test loop of known length.

No torch import.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cmsis_stub import stub_root
from export import __version__
from export.boards import BOARDS_DIR, Board, BoardError, load_board, parse_board, uart_context
from export.fileio import OutputExistsError, atomic_output_dir, check_output
from export.hostc import STRICT_CFLAGS, ToolError
from firmware_templates import template_root
from nanomamba.errors import KwsError

# ---------------------------------------------------------------------------------------
# Constants and errors
# ---------------------------------------------------------------------------------------

#: QEMU ``-icount shift``: every instruction advances virtual time by 2^8 = 256 ns, so
#: SysTick sees clock_hz * 256e-9 ticks per instruction (5.1 at 20 MHz, 6.4 at 25 MHz,
#: 8.2 at 32 MHz): more than 2, which makes rounding ticks back to instructions exact.
ICOUNT_SHIFT = 8
#: Host file the QEMU firmware reads the clips from (in QEMU's working folder).
CLIPS_FILE = "kws_clips.bin"
#: Manifest written next to the firmware.
MANIFEST = "firmware.json"
#: Firmware file names in a build folder.
ELF, BIN, HEX, MAP = "firmware.elf", "firmware.bin", "firmware.hex", "firmware.map"
#: The build folder's copy of a user's board .toml (firmware.json: board_file, board_sha256).
BOARD_COPY = "board.toml"
#: Optimisation levels ``build`` accepts; the default is -O2 (docs/FIRMWARE.md: it runs
#: the stand-in in fewer instructions for a few hundred bytes more flash than -Os).
OPT_LEVELS = ("O2", "Os")
DEFAULT_OPT = "O2"
#: Flags every firmware C file compiles with, on top of the board's target flags.
FIRMWARE_CFLAGS = (*STRICT_CFLAGS, "-ffunction-sections", "-fdata-sections", "-g",
                   "-fno-common")
#: Seconds ``run``/``bench`` wait for the next output line before calling the firmware hung.
DEFAULT_TIMEOUT = 60.0
#: Model API every model folder's kws_model.h must declare.
MODEL_API = ("KWS_SAMPLES", "KWS_HOP", "KWS_N_CLASSES", "kws_init", "kws_run",
             "kws_run_frontend", "kws_run_network", "kws_reset", "kws_push_hop",
             "kws_classify", "kws_labels")

#: Model precisions ``build`` generates C for from a checkpoint or bundle: the int8 model
#: (export/codegen.py) or its float32 C baseline (export/codegen_float.py).
PRECISIONS = ("int8", "float32")
APT_GCC = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
APT_QEMU = "apt-get install qemu-system-arm"


class FirmwareError(KwsError):
    """A firmware build or run failed (bad model folder, compile error, QEMU error)."""


class FirmwareFault(FirmwareError):
    """The firmware took a fault in the emulator (the message has the fault registers)."""


class FirmwareTimeout(FirmwareError):
    """The firmware printed nothing for longer than the timeout (hung)."""


class FlashError(KwsError):
    """Flashing is impossible: no pyOCD, no probe, a missing CMSIS-Pack, wrong board."""


# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------

def arm_gcc() -> str:
    """Path of arm-none-eabi-gcc (``$KWS_ARM_GCC`` overrides).

    Raises:
        ToolError: not found; names the Debian packages to install.
    """
    cand = os.environ.get("KWS_ARM_GCC", "arm-none-eabi-gcc")
    found = shutil.which(cand)
    if not found:
        raise ToolError(f"{cand} not found: install the Arm embedded toolchain with "
                        f"'{APT_GCC}'")
    return found


def _objcopy(gcc: str) -> str:
    cand = gcc[:-3] + "objcopy" if gcc.endswith("gcc") else "arm-none-eabi-objcopy"
    found = shutil.which(cand) or shutil.which("arm-none-eabi-objcopy")
    if not found:
        raise ToolError(f"arm-none-eabi-objcopy not found: install it with '{APT_GCC}'")
    return found


def qemu_system_arm() -> str:
    """Path of qemu-system-arm (``$KWS_QEMU`` overrides).

    Raises:
        ToolError: not found; names the Debian package to install.
    """
    cand = os.environ.get("KWS_QEMU", "qemu-system-arm")
    found = shutil.which(cand)
    if not found:
        raise ToolError(f"{cand} not found: install QEMU with '{APT_QEMU}'")
    return found


def _tool_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------------
# Model sources (the code generator's hook)
# ---------------------------------------------------------------------------------------

@dataclass
class ModelSource:
    """A folder of model C sources exposing ``kws_model.h``.

    Attributes:
        folder: the folder.
        c_files: top-level ``.c`` files compiled into the firmware (files defining
            ``main`` are host drivers and left out).
        headers: top-level ``.h`` files (copied with the sources).
        sha256: hash of the sources' names and bytes (stamped into generated files).
        macros: optional numeric/string macros read from kws_model.h: KWS_MODEL_NAME,
            KWS_LOGIT_SCALE, KWS_LOGIT_ZERO_POINT, KWS_MACS_PER_INFERENCE, KWS_SAMPLES,
            KWS_HOP, KWS_N_CLASSES.
    """

    folder: Path
    c_files: list[Path]
    headers: list[Path]
    sha256: str
    macros: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """KWS_MODEL_NAME, else the folder name."""
        return str(self.macros.get("KWS_MODEL_NAME") or self.folder.name)


_MAIN_RE = re.compile(r"^\s*(?:int|void)\s+main\s*\(", re.M)
_DEFINE_RE = re.compile(r"^\s*#\s*define\s+(KWS_[A-Z0-9_]+)\s+(.+?)\s*(?:/\*.*)?$", re.M)


def _header_macros(text: str) -> dict:
    macros: dict = {}
    for name, value in _DEFINE_RE.findall(text):
        value = value.strip()
        m = re.fullmatch(r'"([^"]*)"', value)
        if m:
            macros[name] = m.group(1)
            continue
        value = value.strip("()").rstrip("uUlLfF")
        try:
            macros[name] = int(value, 0)
        except ValueError:
            try:
                macros[name] = float(value)
            except ValueError:
                pass
    return macros


def model_source_from_folder(folder: Path) -> ModelSource:
    """Check a model C folder and list what the firmware compiles from it.

    Args:
        folder: holds ``kws_model.h`` and the model's ``.c`` files at its top level.
    Returns:
        the :class:`ModelSource`.
    Raises:
        FirmwareError: not a folder, no kws_model.h, an API name missing from it, no
            ``.c`` file, a ``.c`` file its ``kws_model.json`` lists is missing (a
            ``kws-export generate`` folder; all named), KWS_SAMPLES/KWS_HOP/KWS_N_CLASSES
            not integers.
        CodegenError: its ``kws_model.json`` is corrupt or lists no ``c_sources``.
        CodegenError, BundleError: the folder has a ``bundle.npz`` that is corrupt or
            another model's than its C code's (:func:`export.codegen.load_folder_bundle`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FirmwareError(f"{folder}: no such folder of model C sources")
    header = folder / "kws_model.h"
    if not header.is_file():
        raise FirmwareError(f"{folder}: no kws_model.h (a model folder exposes the "
                            f"kws_model.h API; see firmware_templates/standin_model)")
    text = header.read_text(errors="replace")
    missing = [n for n in MODEL_API if not re.search(rf"\b{n}\b", text)]
    if missing:
        raise FirmwareError(f"{header}: does not declare {', '.join(missing)}")
    macros = _header_macros(text)
    for key in ("KWS_SAMPLES", "KWS_HOP", "KWS_N_CLASSES"):
        if not isinstance(macros.get(key), int) or macros[key] <= 0:
            raise FirmwareError(f"{header}: {key} must be #defined as a positive integer")
    from export.codegen import (BUNDLE_COPY, incomplete_folder_message,  # noqa: PLC0415
                                load_folder_bundle, missing_c_sources)
    missing = [n for n in missing_c_sources(folder) if "/" not in n]
    if missing:
        raise FirmwareError(incomplete_folder_message(folder, missing))
    c_files = sorted(p for p in folder.glob("*.c")
                     if not _MAIN_RE.search(p.read_text(errors="replace")))
    if not c_files:
        raise FirmwareError(f"{folder}: no model .c file (files defining main() are host "
                            f"drivers and are not compiled into the firmware)")
    if (folder / BUNDLE_COPY).is_file():
        load_folder_bundle(folder)      # a generate folder: its bundle.npz is its C's model
    headers = sorted(folder.glob("*.h"))
    h = hashlib.sha256()
    for p in c_files + headers:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return ModelSource(folder, c_files, headers, h.hexdigest(), macros)


def resolve_model_source(source: Path, workdir: Path, *,
                         precision: str = "int8") -> ModelSource:
    """Turn ``kws-export build``'s SOURCE into model C sources.

    THE code generator hook: SOURCE is a folder of model C sources exposing kws_model.h
    (built as it is: its precision is what its C is, ``KWS_PRECISION`` in kws_model.h,
    int8 when absent; ``precision="float32"`` is refused for a folder that is not float32
    C, since a C folder cannot be lowered), or a checkpoint (``.pt``) or quantized bundle,
    rendered into ``workdir/generated_model`` and built from there: by
    ``export.codegen.generate_c(source, out_dir)`` for ``precision="int8"``, by
    ``export.codegen_float.generate_float_c(source, out_dir)`` (the float32 C baseline of
    ``bench --float-build``) for ``precision="float32"``.

    Args:
        source: model folder, checkpoint or bundle.
        workdir: scratch folder for generated sources.
        precision: "int8" (default) or "float32" (see :data:`PRECISIONS`).
    Raises:
        FirmwareError: SOURCE missing, an unknown precision, ``precision="float32"`` for
            a C folder whose kws_model.h does not #define KWS_PRECISION "float32", or a
            checkpoint/bundle while the int8 generator is absent.
    """
    source = Path(source)
    if precision not in PRECISIONS:
        raise FirmwareError(f"--precision {precision}: must be one of {', '.join(PRECISIONS)}")
    if source.is_dir():
        model = model_source_from_folder(source)
        have = model.macros.get("KWS_PRECISION", "int8")
        if precision == "float32" and have != "float32":
            raise FirmwareError(f"{source}: --precision float32 needs a checkpoint or bundle "
                                f"(rendered to float32 C) or a float32 C folder; this folder's "
                                f"C is {have} (its kws_model.h does not #define KWS_PRECISION "
                                f"\"float32\")")
        return model
    if not source.exists():
        raise FirmwareError(f"{source}: no such model folder, checkpoint or bundle")
    if precision == "float32":
        from export.codegen_float import generate_float_c  # noqa: PLC0415
        out = Path(workdir) / "generated_model"
        generate_float_c(source, out)
        return model_source_from_folder(out)
    try:
        from export import codegen  # noqa: PLC0415  (issue 5: the C generator)
        generate_c = codegen.generate_c
    except (ImportError, AttributeError):
        raise FirmwareError(f"{source}: building from a checkpoint or bundle needs the C "
                            f"code generator (export/codegen.py generate_c), not available "
                            f"yet; pass a folder of model C sources exposing kws_model.h")
    out = Path(workdir) / "generated_model"
    generate_c(source, out)
    return model_source_from_folder(out)


def standin_model_dir() -> Path:
    """The stand-in model folder (firmware tests only; not a keyword spotter)."""
    return template_root() / "standin_model"


# ---------------------------------------------------------------------------------------
# Demo clip (built into real-board firmware; default clip of `bench`)
# ---------------------------------------------------------------------------------------

def default_demo_clip(n_samples: int = 16000) -> tuple[np.ndarray, str]:
    """The clip built into real-board demo firmware when none is given.

    From a source checkout this is the project's example clip ``examples/clips/yes.wav``
    (a spoken "yes", 16 kHz int16). A wheel install does not carry ``examples/``; there the
    clip is deterministic synthetic audio (a 0.5-s 300->1200 Hz chirp at amplitude 8000 in
    the middle of the window plus LCG noise of amplitude 200), which no model should call a
    keyword.

    Returns:
        (int16 array of ``n_samples``, one-line description).
    Raises:
        nanomamba.errors.AudioError: the example clip exists but is unreadable.
    """
    example = Path(__file__).resolve().parent.parent / "examples" / "clips" / "yes.wav"
    if example.is_file():
        from nanomamba.audio import load_audio
        return load_audio(example, dtype="int16", n_samples=n_samples), "examples/clips/yes.wav"
    t = np.arange(n_samples) / 16000.0
    x = np.zeros(n_samples)
    on = (t >= 0.25) & (t < 0.75)
    tt = t[on] - 0.25
    x[on] = 8000.0 * np.sin(2 * np.pi * (300.0 * tt + 900.0 * tt * tt)) * np.hanning(on.sum())
    state, noise = 12345, np.empty(n_samples)
    for i in range(n_samples):
        state = (state * 1103515245 + 12345) % 2**31
        noise[i] = (state >> 16) % 401 - 200
    y = np.clip(np.floor(x + noise + 0.5), -32768, 32767).astype(np.int16)
    return y, "synthetic chirp + noise (export.firmware.default_demo_clip)"


def _demo_clip(path: Path | None, n_samples: int) -> tuple[np.ndarray, str]:
    if path is None:
        return default_demo_clip(n_samples)
    from nanomamba.audio import load_audio
    return load_audio(path, dtype="int16", n_samples=n_samples), Path(path).name


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------

_SYSTEM_VECTORS = (  # exceptions 1..15 (0 is the initial SP)
    "Reset_Handler", "kws_fault_entry", "kws_fault_entry", "kws_fault_entry",
    "kws_fault_entry", "kws_fault_entry", "kws_fault_entry", "0", "0", "0",
    "kws_fault_entry", "kws_fault_entry", "0", "kws_fault_entry", "SysTick_Handler",
)


def app_templates(board: Board) -> dict[str, str]:
    """Output file name -> template of the firmware app for ``board`` (the choice of
    output channel and main program is made here, not in the templates)."""
    files = {
        "kws_app.h": "kws_app.h.j2",
        "kws_startup.c": "kws_startup.c.j2",
        "kws_counter.c": "kws_counter.c.j2",
        "kws_report.c": "kws_report.c.j2",
        "kws_linker.ld": "kws_linker.ld.j2",
    }
    if board.output == "semihosting":
        files["kws_io.c"] = "kws_io_semihosting.c.j2"
        files["kws_main.c"] = "kws_main_semihosting.c.j2"
    else:
        driver = board.uart.get("driver", "null")
        files["kws_io.c"] = "kws_io_null.c.j2" if driver == "null" else f"kws_io_uart_{driver}.c.j2"
        files["kws_main.c"] = "kws_main_demo.c.j2"
        files["kws_demo_clip.c"] = "kws_demo_clip.c.j2"
    return files


def render_app(board: Board, model: ModelSource, dest: Path, *,
               demo_clip: Path | None = None) -> list[Path]:
    """Render the firmware app for ``board`` into ``dest`` (startup, vector table, linker
    script, output channel, counter, main; real boards also the demo clip).

    Returns:
        the written files.
    Raises:
        BoardError: bad UART parameters; AudioError: unreadable demo clip.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root() / "app")),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False)
    stamp = (f" * Generated by kws-export {__version__} (export/firmware.py) for board "
             f"{board.name}, model {model.name}\n * (sources sha256 {model.sha256[:16]}). "
             f"Do not edit: rebuild with kws-export build.")
    ctx: dict = {
        "board": board, "stamp": stamp, "clips_file": CLIPS_FILE,
        "vector_align": board.vector_align(), "system_vectors": _SYSTEM_VECTORS,
        "regions": [
            {"name": "FLASH", "attrs": "rx", "origin": f"0x{board.flash.origin:08X}",
             "size": f"0x{board.flash.size:08X}"},
            {"name": "RAM", "attrs": "rwx", "origin": f"0x{board.ram.origin:08X}",
             "size": f"0x{board.ram.size:08X}"},
        ],
        "output_name": "semihosting" if board.output == "semihosting" else "the UART",
    }
    if board.output == "uart":
        ctx["uart"] = uart_context(board)
        n = int(model.macros["KWS_SAMPLES"])
        samples, desc = _demo_clip(demo_clip, n)
        rows = [", ".join(str(int(v)) for v in samples[i:i + 16]) for i in range(0, n, 16)]
        ctx["demo"] = {"source": desc, "samples": n, "rows": rows}
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for out_name, tpl in app_templates(board).items():
        path = dest / out_name
        path.write_text(env.get_template(tpl).render(**ctx))
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------

@dataclass
class BuildResult:
    """What :func:`build_firmware` produced.

    Attributes:
        out: the build folder; elf/bin/hex: its files; manifest: the parsed firmware.json
        (board, model, flags, sizes).
    """

    out: Path
    elf: Path
    bin: Path
    hex: Path
    manifest: dict


def _run_tool(cmd: list[str], cwd: Path, what: str,
              paths: Sequence[tuple[str, str]] = ()) -> None:
    """Run a tool; on failure raise FirmwareError with its first error line (a linker's
    first ``undefined reference to`` line rather than collect2's summary), with the
    build's relative source paths (``paths``: (prefix, replacement)) mapped back.

    The tool runs in its own process group, killed as a whole (gcc's cc1/as/ld too) when
    this process is interrupted (Ctrl-C, or SIGTERM through the CLI), so nothing keeps
    writing into a build folder that is being deleted."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        _, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        err = stderr.splitlines()
        lines = ([ln for ln in err if "undefined reference to" in ln]
                 or [ln for ln in err if "error" in ln.lower()]
                 or stderr.strip().splitlines() or ["(no message)"])
        msg = re.sub(r"^\S*\bld(\.\w+)?: ", "", lines[0].strip())   # the linker's own path
        msg = msg.replace("./../", "../")      # debug-info paths (-ffile-prefix-map .)
        for prefix, repl in paths:
            msg = msg.replace(prefix, repl)
        raise FirmwareError(f"{what} failed: {msg}")


def compile_flags(board: Board, opt: str = DEFAULT_OPT) -> list[str]:
    """arm-none-eabi-gcc compile flags for ``board`` (target, strict warnings, sections)."""
    if opt not in OPT_LEVELS:
        raise FirmwareError(f"--opt {opt}: must be one of {', '.join(OPT_LEVELS)}")
    return [*board.cflags(), f"-{opt}", *FIRMWARE_CFLAGS]


def link_flags(board: Board) -> list[str]:
    """Link flags: newlib-nano; semihosting C library (rdimon) for QEMU boards, nosys stubs
    for real boards; no start files (kws_startup.c); unused sections removed."""
    libs = "--specs=rdimon.specs" if board.output == "semihosting" else "--specs=nosys.specs"
    return [*board.cflags(), "--specs=nano.specs", libs, "-nostartfiles",
            "-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments"]


def build_firmware(source: Path, board_name: str, out: Path, *, force: bool = False,
                   opt: str = DEFAULT_OPT, demo_clip: Path | None = None,
                   command: str = "", precision: str = "int8") -> BuildResult:
    """Build firmware for a board from model C sources (or, via the generator hook, a
    checkpoint/bundle): ELF, BIN, HEX, linker map, manifest and size report.

    The build runs in a temporary sibling of ``out``
    (:func:`export.fileio.atomic_output_dir`) that is renamed into place only when
    everything succeeded; without ``force`` that rename never replaces a folder that
    appeared while the build ran (another build, a user's ``mkdir``). The ELF is
    byte-identical for the same inputs whatever ``out`` is (relative or absolute):
    debug-info paths are mapped to ``.``. ``out/src/`` keeps the exact sources compiled
    (rendered app, model, kernel headers), so the folder is self-contained.

    Args:
        source: model C folder (kws_model.h API); see :func:`resolve_model_source`.
        board_name: a board id (:func:`export.boards.board_names`) or a board .toml path.
        out: output folder.
        force: replace an existing ``out``.
        opt: ``"O2"`` or ``"Os"``.
        demo_clip: clip built into real-board firmware (default: :func:`default_demo_clip`).
        command: the command line, recorded in the manifest.
        precision: "int8" or "float32": which generator renders a checkpoint/bundle
            (ignored for a folder of model C sources); recorded in the manifest.
    Returns:
        :class:`BuildResult`.
    Raises:
        BoardError (also: a board .toml of the user's that takes a shipped board's name),
        OutputExistsError (``out`` exists, or appeared during the build,
        and not ``force``), ToolError (no arm-none-eabi-gcc: says how to install it),
        FirmwareError (bad model folder, a generated folder missing a listed ``.c`` file,
        compile or link error (a link error names the first undefined reference), image
        does not fit), AudioError (demo clip).
    """
    board = load_board(board_name)
    # a board file of the user's (not a shipped one) is copied into the build folder
    # (BOARD_COPY) and read back from there by run/bench/flash
    board_src = (None if board.path is None or board.path.parent == BOARDS_DIR
                 else Path(board.path))
    if board_src is not None and (BOARDS_DIR / f"{board.name}.toml").is_file():
        raise BoardError(f"{board_src}: board name '{board.name}' is a shipped board's; give "
                         f"your board its own name (name = \"...\" and the file name)")
    board_bytes = board_src.read_bytes() if board_src is not None else None
    gcc = arm_gcc()
    objcopy = _objcopy(gcc)
    out = Path(out)
    # before compiling anything: never replace (or put the output around) the source; an
    # existing file is refused even with --force (it is not a folder); the output's folder
    # must be creatable; then an existing folder needs --force
    check_output(out, True, expect="folder",
                 inputs=[Path(source)] + ([Path(demo_clip)] if demo_clip is not None else [])
                 + ([board_src] if board_src is not None else []))
    if os.path.lexists(out) and not force:      # a dangling symlink counts as existing
        raise OutputExistsError(f"{out}: output folder exists (use --force to replace it)")
    if demo_clip is not None and board.output != "uart":
        _demo_clip(Path(demo_clip), 16000)        # a bad clip is still an error, not ignored
        warnings.warn(f"{demo_clip}: --demo-clip ignored: {board.name} reads its clips from "
                      f"the host (kws-export run); only UART boards embed a demo clip",
                      UserWarning, stacklevel=2)
    result: dict = {}

    def fill(tmp: Path) -> None:
        tmp = tmp.resolve()          # absolute, so -ffile-prefix-map matches the debug info
        model = resolve_model_source(Path(source), tmp, precision=precision)
        from export.codegen import recorded_model_hash  # noqa: PLC0415
        src = tmp / "src"
        app_dir, model_dir, inc_dir = src / "app", src / "model", src / "include"
        render_app(board, model, app_dir, demo_clip=demo_clip)
        model_dir.mkdir(parents=True)
        for p in model.c_files + model.headers:
            shutil.copyfile(p, model_dir / p.name)
        inc_dir.mkdir()
        for lib in (template_root() / "kernels", stub_root()):
            for p in sorted(lib.glob("*.h")):
                if not (model_dir / p.name).exists():
                    shutil.copyfile(p, inc_dir / p.name)
        c_files = sorted(app_dir.glob("*.c")) + sorted(model_dir.glob("*.c"))
        names = [p.stem for p in c_files]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FirmwareError(f"{source}: model file name(s) {', '.join(dup)}.c clash with "
                                f"the firmware app's; rename them")
        obj = tmp / "obj"
        obj.mkdir()
        cflags = compile_flags(board, opt)
        includes = ["-I../src/app", "-I../src/model", "-I../src/include"]
        prefix = [f"-ffile-prefix-map={tmp}=.", f"-ffile-prefix-map={obj}=."]
        rel = [str(p.relative_to(tmp)) for p in c_files]
        src_paths = [("../src/model/", f"{model.folder}/"), ("../src/app/", f"{out}/src/app/"),
                     ("../src/include/", f"{out}/src/include/")]
        _run_tool([gcc, *cflags, *prefix, *includes, "-c", *[f"../{r}" for r in rel]],
                  obj, f"compiling for {board.name} ({board.core})", paths=src_paths)
        objs = [f"obj/{Path(r).stem}.o" for r in rel]
        lflags = link_flags(board)
        _run_tool([gcc, *lflags, "-Tsrc/app/kws_linker.ld", f"-Wl,-Map={MAP}",
                   *objs, "-lm", "-o", ELF], tmp, f"linking for {board.name}",
                  paths=src_paths)
        _run_tool([objcopy, "-O", "binary", ELF, BIN], tmp, "objcopy (BIN)")
        _run_tool([objcopy, "-O", "ihex", ELF, HEX], tmp, "objcopy (HEX)")
        shutil.rmtree(obj)
        sizes = size_report(tmp / ELF, board, map_file=tmp / MAP,
                            model_files=[p.stem for p in model.c_files])
        manifest = {
            "tool": f"kws-export {__version__}",
            "command": command,
            "board": board.name,
            "board_file": BOARD_COPY if board_bytes is not None else None,
            "board_sha256": (hashlib.sha256(board_bytes).hexdigest()
                             if board_bytes is not None else None),
            "board_kind": board.kind,
            "core": board.core,
            "model": {
                "name": model.name, "source": str(source), "sha256": model.sha256,
                "model_hash": recorded_model_hash(model.folder),
                "precision": model.macros.get("KWS_PRECISION", precision),
                "files": [p.name for p in model.c_files + model.headers],
                "samples": model.macros["KWS_SAMPLES"], "hop": model.macros["KWS_HOP"],
                "n_classes": model.macros["KWS_N_CLASSES"],
                "logit_scale": model.macros.get("KWS_LOGIT_SCALE"),
                "logit_zero_point": model.macros.get("KWS_LOGIT_ZERO_POINT", 0),
                "macs_per_inference": model.macros.get("KWS_MACS_PER_INFERENCE"),
            },
            "compiler": _tool_version(gcc),
            "cflags": cflags + includes,
            "ldflags": lflags + ["-Tsrc/app/kws_linker.ld", "-lm"],
            "sources": rel,
            "files": {"elf": ELF, "bin": BIN, "hex": HEX, "map": MAP},
            "load_segments": [list(s) for s in load_segments(tmp / ELF)],
            "counter": {"icount_shift": ICOUNT_SHIFT, "clock_hz": board.clock_hz,
                        "unit": "instructions" if board.emulated else "cycles"},
            "sizes": sizes,
        }
        if board_bytes is not None:
            (tmp / BOARD_COPY).write_bytes(board_bytes)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        result["manifest"] = manifest

    with atomic_output_dir(out, force=force) as tmp:   # never replaces without force
        fill(tmp)
    return BuildResult(out, out / ELF, out / BIN, out / HEX, result["manifest"])


def manifest_board(manifest: dict, build_dir: Path) -> Board:
    """The board a build was made for.

    A shipped board (no ``board_file``) is loaded by name; a build from a board .toml of
    the user's reads the build folder's own copy (``board_file``, relative to the build
    folder, normally ``board.toml``), checked against ``board_sha256``, so the build keeps
    working from any folder and after the original .toml moved or changed.

    Args:
        manifest: a :func:`read_manifest` result.
        build_dir: the build folder it was read from.
    Returns:
        the :class:`export.boards.Board`.
    Raises:
        BoardError: ``BUILD/board.toml: ...``: the copy is missing, its sha256 is not the
            recorded one, it is not a valid board file, or it names another board than the
            build's; or an unknown shipped board name.
    """
    rel = manifest.get("board_file")
    if not rel:
        return load_board(manifest["board"])
    path = Path(build_dir) / rel
    hint = "rebuild with kws-export build"
    if not path.is_file():
        raise BoardError(f"{path}: missing (this build's copy of its board file); {hint}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != manifest.get("board_sha256"):
        raise BoardError(f"{path}: changed since the build (sha256 {digest[:12]}, "
                         f"firmware.json records {str(manifest.get('board_sha256'))[:12]}); "
                         f"{hint}")
    board = parse_board(path)
    if board.name != manifest["board"]:
        raise BoardError(f"{path}: board '{board.name}', the build is for "
                         f"'{manifest['board']}'; {hint}")
    return board


def read_manifest(build_dir: Path) -> dict:
    """The manifest of a build folder, checked.

    The one entry of every command taking a build DIR (run, bench, flash, check), so they
    all say the same thing about a missing or wrong DIR, and a hand-edited or damaged
    ``firmware.json`` is one line naming the key instead of a KeyError later.

    Returns:
        the manifest dict; every key of :data:`MANIFEST_KEYS` is present with the
        documented type (optional ones may be absent or null).
    Raises:
        FirmwareError: no such folder; a file given for it; not a build folder (no
            firmware.json / firmware.elf); firmware.json not JSON, not an object, or a
            key missing or of the wrong type (``BUILD/firmware.json: missing or invalid
            'model.samples' (...); rebuild with kws-export build``).
    """
    build_dir = Path(build_dir)
    if not build_dir.exists():
        raise FirmwareError(f"{build_dir}: no such folder")
    if not build_dir.is_dir():
        raise FirmwareError(f"{build_dir}: is a file, expected a firmware build folder "
                            f"(make one with kws-export build)")
    path = build_dir / MANIFEST
    if not path.is_file() or not (build_dir / ELF).is_file():
        raise FirmwareError(f"{build_dir}: not a firmware build folder (no {MANIFEST} and "
                            f"{ELF}; make one with kws-export build)")
    check_elf(build_dir / ELF)
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:                 # JSONDecodeError, UnicodeDecodeError
        raise FirmwareError(f"{path}: corrupt manifest ({err}); rebuild with "
                            f"kws-export build") from None
    check_manifest(manifest, path)
    return manifest


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


#: the manifest keys read back by run / bench / flash / check (dotted path, required,
#: what it must be, test). Optional keys may be absent or null.
MANIFEST_KEYS: tuple = (
    ("board", True, "a board name", lambda v: isinstance(v, str) and bool(v)),
    ("board_file", False, "a board .toml path inside the build folder",
     lambda v: (isinstance(v, str) and bool(v) and not Path(v).is_absolute()
                and ".." not in Path(v).parts)),
    ("board_sha256", False, "a sha256 hex string",
     lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None),
    ("model", True, "an object", lambda v: isinstance(v, dict)),
    ("model.samples", True, "a positive integer", lambda v: _is_int(v) and v > 0),
    ("model.precision", False, "a string", lambda v: isinstance(v, str)),
    ("model.source", False, "a string", lambda v: isinstance(v, str)),
    ("model.model_hash", False, "a sha256 hex string",
     lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None),
    ("model.logit_scale", False, "a positive number", lambda v: _is_num(v) and v > 0),
    ("model.logit_zero_point", False, "an integer", _is_int),
    ("model.macs_per_inference", False, "a non-negative integer",
     lambda v: _is_int(v) and v >= 0),
    ("sizes", True, "an object", lambda v: isinstance(v, dict)),
    ("sizes.flash_total", True, "a non-negative integer", lambda v: _is_int(v) and v >= 0),
    ("sizes.ram_static", True, "a non-negative integer", lambda v: _is_int(v) and v >= 0),
    ("sizes.audio_buffer", False, "a non-negative integer", lambda v: _is_int(v) and v >= 0),
    ("sizes.components", False, "an object", lambda v: isinstance(v, dict)),
)


def check_manifest(manifest, path: Path | str = MANIFEST) -> None:
    """Check a build manifest (``firmware.json``) has every key of :data:`MANIFEST_KEYS`
    that run/bench/flash/check read, with the right type.

    Raises:
        FirmwareError: ``{path}: missing or invalid 'model.samples' (expected a positive
            integer, got "x"); rebuild with kws-export build`` (the first bad key), or
            ``{path}: not a build manifest (a JSON list, expected an object); ...``.
    """
    hint = "rebuild with kws-export build"
    if not isinstance(manifest, dict):
        raise FirmwareError(f"{path}: not a build manifest (a JSON {type(manifest).__name__}, "
                            f"expected an object); {hint}")
    for key, required, what, ok in MANIFEST_KEYS:
        *parents, leaf = key.split(".")
        node = manifest
        for part in parents:
            node = node[part]                 # parents are checked first (table order)
        value = node.get(leaf)
        if value is None and not required:
            continue
        if value is None or not ok(value):
            got = "absent" if leaf not in node else f"got {json.dumps(value)[:40]}"
            raise FirmwareError(f"{path}: missing or invalid '{key}' (expected {what}, "
                                f"{got}); {hint}")


#: symbols every firmware built by :func:`build_firmware` has (entry, vector table, model).
ELF_SYMBOLS = ("Reset_Handler", "kws_vectors", "main", "kws_run")


def check_elf(elf: Path) -> None:
    """Check that ``elf`` is a whole 32-bit little-endian ARM executable built by this tool,
    before QEMU or a probe gets it (a damaged file made QEMU report a CPU lockup instead).

    Checks (pyelftools): ELF header; ``e_machine`` EM_ARM, ELFCLASS32, little endian,
    ET_EXEC; at least one PT_LOAD segment with contents; every segment and the section
    header table inside the file (not truncated); a symbol table with :data:`ELF_SYMBOLS`.

    Raises:
        FirmwareError: ``{elf}: not a valid ARM ELF (<first problem>)``.
    """
    def bad(why: str):
        raise FirmwareError(f"{elf}: not a valid ARM ELF ({why}); rebuild with kws-export build")

    try:
        size = os.path.getsize(elf)
        with open(elf, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                bad("no ELF header")
            fh.seek(0)
            from elftools.elf.elffile import ELFFile
            e = ELFFile(fh)
            if e["e_machine"] != "EM_ARM" or e.elfclass != 32 or not e.little_endian:
                bad(f"machine {e['e_machine']}, {e.elfclass}-bit, "
                    f"{'little' if e.little_endian else 'big'} endian")
            if e["e_type"] != "ET_EXEC":
                bad(f"type {e['e_type']}, not an executable")
            if e["e_shoff"] + e["e_shnum"] * e["e_shentsize"] > size:
                bad(f"truncated: {size} bytes")
            loads = [g for g in e.iter_segments() if g["p_type"] == "PT_LOAD"]
            if not any(g["p_filesz"] > 0 for g in loads):
                bad("no loadable segment")
            if any(g["p_offset"] + g["p_filesz"] > size for g in loads):
                bad(f"truncated: {size} bytes")
            symtab = e.get_section_by_name(".symtab")
            if symtab is None:
                bad("no symbol table")
            names = {sym.name for sym in symtab.iter_symbols()}
            missing = [n for n in ELF_SYMBOLS if n not in names]
            if missing:
                bad(f"no symbol {', '.join(missing)}: not a kws-export firmware")
    except FirmwareError:
        raise
    except Exception as err:   # noqa: BLE001 - any parse failure (ELFError, OSError, ...)
        bad(f"{type(err).__name__}: {str(err).splitlines()[0][:60] if str(err) else 'unreadable'}")


# ---------------------------------------------------------------------------------------
# Size report (pyelftools)
# ---------------------------------------------------------------------------------------

def load_segments(elf: Path) -> list[tuple[int, int]]:
    """(physical address, size in bytes) of each loadable ELF segment with file contents:
    what a programmer writes to flash (LMA of .data included)."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        e = ELFFile(f)
        return [(int(s["p_paddr"]), int(s["p_filesz"])) for s in e.iter_segments()
                if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0]


_MAP_ENTRY = re.compile(
    r"^ (\.[\w.$]+|COMMON)\s*\n?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", re.M)


#: Input-section name prefixes counted by the size report -> where they live.
_MAP_KINDS = ((".text", "flash"), (".rodata", "flash"), (".kws_vectors", "flash"),
              (".ARM.exidx", "flash"), (".ARM.extab", "flash"), (".init", "flash"),
              (".fini", "flash"), (".init_array", "flash"), (".fini_array", "flash"),
              (".data", "data"), (".bss", "ram"), ("COMMON", "ram"))


def _component(path: str, model_files: Sequence[str]) -> str:
    base = path.replace("\\", "/")
    if "(" in base or base.endswith(".a"):
        lib = base.split("(")[0].rsplit("/", 1)[-1]
        return "libgcc" if "libgcc" in lib else "libc"
    stem = base.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return "model" if stem in model_files else "app"


def size_report(elf: Path, board: Board, *, map_file: Path | None = None,
                model_files: Sequence[str] = (), top: int = 12) -> dict:
    """Flash and RAM use of a firmware ELF, by section, by component and by symbol.

    flash = every allocated section with contents (vectors, .text, .rodata, exception
    tables, the initial values of .data); RAM = .data + .bss (static); the stack region is
    reported separately (reserved size; its measured peak comes from ``bench``).

    Args:
        elf: the ELF; board: its board (memory regions).
        map_file: the linker map, to split sizes into components (model, app, libc, libgcc).
        model_files: stems of the model's object files.
        top: how many of the largest symbols to list.
    Returns:
        dict: ``sections`` [{name, address, size, region}], ``flash_total``,
        ``ram_static``, ``ram_data``, ``ram_bss``, ``stack_reserved``, ``audio_buffer``
        (bytes of the firmware's audio buffer symbol), ``demo_clip`` (bytes of the
        built-in clip), ``components`` {name: {flash, ram}}, ``largest_symbols``
        [{name, size, section, kind}].
    """
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    sections, flash_total, data, bss, stack = [], 0, 0, 0, 0
    sym_rows: list[dict] = []
    sizes_by_name: dict[str, int] = {}
    with open(elf, "rb") as f:
        e = ELFFile(f)
        sec_names = {}
        for i, s in enumerate(e.iter_sections()):
            sec_names[i] = s.name
            if not s["sh_flags"] & 0x2 or s["sh_size"] == 0:   # SHF_ALLOC
                continue
            addr, size, nobits = int(s["sh_addr"]), int(s["sh_size"]), s["sh_type"] == "SHT_NOBITS"
            if s.name == ".stack":
                stack = size
                region = "ram"
            elif nobits:
                bss += size
                region = "ram"
            elif board.ram.contains(addr, size):
                data += size
                flash_total += size          # initial values live in flash
                region = "flash+ram"
            else:
                flash_total += size
                region = "flash"
            sections.append({"name": s.name, "address": addr, "size": size, "region": region})
        symtab = e.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                kind = sym["st_info"]["type"]
                size = int(sym["st_size"])
                if kind not in ("STT_FUNC", "STT_OBJECT") or size == 0 or not sym.name:
                    continue
                shndx = sym["st_shndx"]
                sec = sec_names.get(shndx, "?") if isinstance(shndx, int) else str(shndx)
                sizes_by_name[sym.name] = size
                sym_rows.append({"name": sym.name, "size": size, "section": sec,
                                 "kind": "code" if kind == "STT_FUNC" else "data"})
    sym_rows.sort(key=lambda r: (-r["size"], r["name"]))
    components: dict[str, dict[str, int]] = {}
    if map_file is not None and Path(map_file).is_file():
        text = Path(map_file).read_text(errors="replace")
        start = text.find("Linker script and memory map")
        for sec, _addr, size, path in _MAP_ENTRY.findall(text[start:]):
            size = int(size, 16)
            kind = next((k for p, k in _MAP_KINDS if sec == p or sec.startswith(p + ".")), None)
            if size == 0 or kind is None or path.startswith("load address"):
                continue
            comp = components.setdefault(_component(path.strip(), model_files),
                                         {"flash": 0, "ram": 0})
            if kind in ("flash", "data"):
                comp["flash"] += size
            if kind in ("ram", "data"):
                comp["ram"] += size
    return {
        "sections": sections,
        "flash_total": flash_total,
        "ram_data": data,
        "ram_bss": bss,
        "ram_static": data + bss,
        "stack_reserved": stack,
        "audio_buffer": sizes_by_name.get("kws_audio", 0),
        "demo_clip": sizes_by_name.get("kws_demo_clip", 0),
        "components": dict(sorted(components.items())),
        "largest_symbols": sym_rows[:top],
    }


def symbolize(elf: Path, addr: int) -> str:
    """``function+0xoff`` for a code address of the ELF, or ``?``."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection
    addr &= ~1
    best = None
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] != "STT_FUNC":
                    continue
                start = int(sym["st_value"]) & ~1
                if start <= addr < start + max(int(sym["st_size"]), 1):
                    best = (sym.name, addr - start)
                    break
    return f"{best[0]}+0x{best[1]:x}" if best else "?"


# ---------------------------------------------------------------------------------------
# Output protocol and instruction counter
# ---------------------------------------------------------------------------------------

def parse_line(line: str) -> tuple[str, dict] | None:
    """Parse one firmware output line ``KWS <tag> key=value ...``.

    Returns:
        (tag, {key: value string}) or None for other lines.
    """
    line = line.strip()
    if not line.startswith("KWS "):
        return None
    parts = line.split()
    if len(parts) < 2:
        return None
    fields = {}
    for p in parts[2:]:
        k, sep, v = p.partition("=")
        if sep:
            fields[k] = v
    return parts[1], fields


def _stamp(value: str) -> tuple[int, int]:
    ticks, _, wraps = value.partition(",")
    return int(ticks), int(wraps or 0)


@dataclass(frozen=True)
class Counter:
    """Ticks -> instructions for a firmware run under ``qemu -icount shift=S``.

    With icount, virtual time advances 2^S ns per executed instruction, and SysTick
    (processor clock ``clock_hz``) counts that time. An interval of n instructions
    therefore spans n * r ticks, r = clock_hz * 2^S / 1e9, up to +-1 tick of phase; with
    r > 2 rounding ticks / r recovers n exactly. Each SysTick wrap runs a handler of
    ``handler`` instructions inside the interval, and the two stamp reads cost
    ``overhead`` instructions (measured at boot): both are subtracted.

    Attributes:
        clock_hz, shift: the board clock and icount shift.
        handler: instructions per wrap handler.
        overhead: instructions of an empty interval (stamp to stamp).
    """

    clock_hz: int
    shift: int
    handler: int = 5
    overhead: int = 0

    @property
    def ticks_per_insn(self) -> float:
        """r = clock_hz * 2^shift / 1e9."""
        return self.clock_hz * 2 ** self.shift / 1e9

    def raw(self, ticks: int, wraps: int = 0) -> int:
        """Instructions in an interval of ``ticks`` with ``wraps`` handler runs, overhead
        included: round(ticks / r) - wraps * handler (integer arithmetic, ties up)."""
        num = self.clock_hz * 2 ** self.shift
        return (2 * ticks * 10**9 + num) // (2 * num) - wraps * self.handler

    def instructions(self, ticks: int, wraps: int = 0) -> int:
        """Instructions executed between two stamps (the stamps' own cost removed)."""
        return self.raw(ticks, wraps) - self.overhead


def counter_from_calib(clock_hz: int, fields: dict, shift: int = ICOUNT_SHIFT) -> Counter:
    """Build and verify the :class:`Counter` from the firmware's ``KWS calib`` line.

    The firmware times its assembly self-test loop (2 instructions per iteration) for n1
    and n2 iterations; the difference must be exactly 2 * (n2 - n1) instructions.

    Raises:
        FirmwareError: the ticks-per-instruction ratio is too small for exact counts, or
            the self-test disagrees (the board file's clock_hz is not QEMU's clock).
    """
    c = Counter(clock_hz, shift, handler=int(fields.get("handler", 5)))
    if c.ticks_per_insn <= 2.0:
        raise FirmwareError(f"instruction counter: {c.ticks_per_insn:.2f} SysTick ticks per "
                            f"instruction is too coarse for exact counts (need > 2)")
    empty = c.raw(*_stamp(fields["empty"]))
    c = Counter(clock_hz, shift, c.handler, empty)
    n1, n2 = int(fields["n1"]), int(fields["n2"])
    got = c.instructions(*_stamp(fields["loop2"])) - c.instructions(*_stamp(fields["loop1"]))
    if got != 2 * (n2 - n1):
        raise FirmwareError(f"instruction counter self-test failed: {got} instructions for "
                            f"{2 * (n2 - n1)} (is clock_hz {clock_hz} in the board file "
                            f"the clock QEMU gives SysTick?)")
    return c


# ---------------------------------------------------------------------------------------
# QEMU
# ---------------------------------------------------------------------------------------

def qemu_command(board: Board, elf: Path, mode: str = "run",
                 monitor: Path | None = None) -> list[str]:
    """qemu-system-arm command line running ``elf`` on ``board``.

    Semihosting boards: semihosting to the host's files (working folder) and console
    (QEMU's stdout); ``mode`` is the firmware's semihosting command line. UART boards:
    the board's first UART on QEMU's stdout, semihosting off (a BKPT would fault). Both:
    deterministic instruction-driven time (``-icount shift=ICOUNT_SHIFT,sleep=off``), no
    display; ``monitor``: a Unix socket for the QEMU monitor (else none).
    """
    cmd = [qemu_system_arm(), "-machine", board.qemu_machine, "-display", "none",
           "-chardev", "stdio,id=kws,signal=off"]
    if board.output == "semihosting":
        cmd += ["-serial", "null", "-semihosting-config",
                f"enable=on,target=native,chardev=kws,arg=kws,arg={mode}"]
    else:
        cmd += ["-serial", "chardev:kws"]
    cmd += ["-icount", f"shift={ICOUNT_SHIFT},sleep=off", "-kernel", str(elf)]
    if monitor is not None:
        cmd += ["-monitor", f"unix:{monitor},server=on,wait=off"]
    else:
        cmd += ["-monitor", "none"]
    return cmd


def _monitor_pc(sock_path: Path) -> int | None:
    """Ask a running QEMU's monitor for the program counter (R15)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(sock_path))
            s.sendall(b"info registers\n")
            buf, deadline = b"", time.monotonic() + 2.0
            while b"R15=" not in buf and time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    break
                buf += chunk
            time.sleep(0.05)
            m = re.search(rb"R15=([0-9a-fA-F]{8})", buf)
            return int(m.group(1), 16) if m else None
    except OSError:
        return None


def _hang_location(sock_path: Path, elf: Path, tries: int = 8) -> str:
    """``; PC=0x... in function+0xoff`` for a hung firmware, or ``""`` if QEMU's monitor
    does not answer.

    One monitor sample can land on the SysTick wrap interrupt (``SysTick_Handler``) or on
    QEMU's transient exception-return value (0xFFFFFFxx, an EXC_RETURN code in R15), which
    name no code of the program. Up to ``tries`` samples, 20 ms apart, are taken; the first
    that symbolizes to a thread-mode function is reported, else the last one seen.
    """
    seen: tuple[int, str] | None = None
    for i in range(tries):
        pc = _monitor_pc(sock_path)
        if pc is not None:
            seen = (pc, symbolize(elf, pc))
            if seen[1] != "?" and not seen[1].startswith("SysTick_Handler+"):
                break
        if i + 1 < tries:
            time.sleep(0.02)
    return f"; PC=0x{seen[0]:08x} in {seen[1]}" if seen else ""


_CFSR_BITS = {0: "IACCVIOL", 1: "DACCVIOL", 3: "MUNSTKERR", 4: "MSTKERR", 8: "IBUSERR",
              9: "PRECISERR", 10: "IMPRECISERR", 11: "UNSTKERR", 12: "STKERR",
              16: "UNDEFINSTR", 17: "INVSTATE", 18: "INVPC", 19: "NOCP", 20: "STKOF",
              24: "UNALIGNED", 25: "DIVBYZERO"}
_EXC_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault",
              7: "SecureFault", 11: "SVCall", 12: "DebugMonitor", 14: "PendSV"}


def _fault_message(board: Board, elf: Path, f: dict) -> str:
    exc = int(f.get("exception", "0"))
    name = _EXC_NAMES.get(exc, f"IRQ {exc - 16}" if exc >= 16 else f"exception {exc}")
    regs = " ".join(f"{k}={f[k]}" for k in ("CFSR", "HFSR", "MMFAR", "BFAR", "PC", "LR", "xPSR")
                    if k in f)
    why = ""
    if "CFSR" in f:
        cfsr = int(f["CFSR"], 16)
        bits = [n for b, n in _CFSR_BITS.items() if cfsr >> b & 1]
        why = f" ({', '.join(bits)})" if bits else ""
    where = symbolize(elf, int(f["PC"], 16)) if "PC" in f else "?"
    return (f"firmware fault on {board.name}: {name}{why} at {where}: {regs}")


@dataclass
class QemuRun:
    """Raw result of one emulator boot: parsed ``KWS`` lines in order, wall time."""

    lines: list[tuple[str, dict]]
    seconds: float
    boot_seconds: float


#: what the firmware's ``KWS error what=...`` codes mean (semihosting clip file).
_FIRMWARE_ERRORS = {
    "open": "could not open {file} (the clip file the host writes next to QEMU)",
    "length": "rejected {file}: its size is not a whole number of clips of the firmware's "
              "sample count",
    "read": "could not read {file}",
}


def _firmware_error_message(board: Board, fields: dict) -> str:
    """The one-line message of a ``KWS error what=W file=F`` line."""
    what, file = fields.get("what", "?"), fields.get("file", CLIPS_FILE)
    text = _FIRMWARE_ERRORS.get(what, "reported error '{what}' on {file}")
    return f"firmware on {board.name} " + text.format(what=what, file=file)


def run_qemu(build_dir: Path, board: Board, samples: Sequence[np.ndarray], *,
             mode: str = "run", timeout: float = DEFAULT_TIMEOUT,
             on_line: Callable[[str, dict], None] | None = None,
             names: Sequence[str] | None = None) -> QemuRun:
    """Boot the firmware once in QEMU and feed it all clips through semihosting.

    Args:
        build_dir: a build folder for an emulated board.
        board: its board.
        samples: int16 arrays of KWS_SAMPLES each.
        mode: "run" (kws_run per clip) or "bench" (front end / network / streaming).
        timeout: seconds without an output line after which the firmware counts as hung.
        on_line: called with each parsed line as it arrives (progress).
        names: the clips' names, for error messages.
    Returns:
        :class:`QemuRun`.
    Raises:
        ToolError: no qemu-system-arm (says how to install it).
        FirmwareTimeout: no output for ``timeout`` s; the message names the PC and the
            function the firmware was in (from the QEMU monitor).
        FirmwareFault: the firmware printed a fault report (registers in the message).
        FirmwareError: QEMU failed or exited without finishing, the firmware's clip size
            (KWS_SAMPLES on its boot line) is not the length of ``samples`` (a manifest
            that disagrees with its ELF), or the firmware reported an error.
        TypeError, ValueError: ``timeout`` not a number > 0 (:func:`check_timeout`).
    """
    timeout = check_timeout(timeout)
    elf = Path(build_dir) / ELF
    qemu = qemu_system_arm()
    with tempfile.TemporaryDirectory(prefix="kws-qemu-") as tmpname:
        tmp = Path(tmpname)
        with open(tmp / CLIPS_FILE, "wb") as fh:
            for s in samples:
                fh.write(np.ascontiguousarray(s, dtype="<i2").tobytes())
        mon = tmp / "monitor.sock"
        cmd = qemu_command(board, elf.resolve(), mode, monitor=mon)
        cmd[0] = qemu
        t_start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                text=True, errors="replace", start_new_session=True)
        lines_q: queue.Queue = queue.Queue()
        err_chunks: list[str] = []

        # Output that is not UTF-8 is decoded with U+FFFD (errors="replace"). A reader that
        # fails anyway hands its exception to the main loop (never dies silently, which
        # used to look like a hung firmware after `timeout` s).
        def pump_out() -> None:
            try:
                for ln in proc.stdout:            # type: ignore[union-attr]
                    lines_q.put(ln)
            except Exception as err:              # noqa: BLE001 - reported by the main loop
                lines_q.put(err)
            finally:
                lines_q.put(None)

        def pump_err() -> None:
            try:
                err_chunks.append(proc.stderr.read())   # type: ignore[union-attr]
            except Exception as err:              # noqa: BLE001 - only feeds a message
                err_chunks.append(f"(could not read QEMU's error output: {err})")

        threading.Thread(target=pump_out, daemon=True).start()
        threading.Thread(target=pump_err, daemon=True).start()
        parsed: list[tuple[str, dict]] = []
        boot_seconds = 0.0
        done_clips = 0

        def current() -> str:
            if not any(t == "calib" for t, _ in parsed) or done_clips >= len(samples):
                return ""
            name = f" ({names[done_clips]})" if names and done_clips < len(names) else ""
            return f" while on clip {done_clips + 1} of {len(samples)}{name}"
        try:
            while True:
                try:
                    raw = lines_q.get(timeout=timeout)
                except queue.Empty:
                    where = _hang_location(mon, elf)
                    last = parsed[-1][0] if parsed else "nothing"
                    raise FirmwareTimeout(
                        f"firmware on {board.name} printed nothing for {timeout:g} s (hung?)"
                        f"{current()}; last output: {last}{where}") from None
                if raw is None:
                    break
                if isinstance(raw, Exception):
                    raise FirmwareError(f"could not read the output of the firmware on "
                                        f"{board.name}: {type(raw).__name__}: {raw}")
                item = parse_line(raw)
                if item is None:
                    continue
                tag, fields = item
                if tag == "boot":
                    boot_seconds = time.monotonic() - t_start
                if tag == "fault":
                    raise FirmwareFault(_fault_message(board, elf, fields) + current())
                if (tag == "boot" and samples and "samples" in fields
                        and fields["samples"] != str(len(samples[0]))):
                    raise FirmwareError(
                        f"{build_dir}: {ELF} takes clips of {fields['samples']} "
                        f"samples but {MANIFEST} says {len(samples[0])} (the build folder was "
                        f"edited or mixed up); rebuild with kws-export build")
                if tag == "error":
                    raise FirmwareError(_firmware_error_message(board, fields))
                parsed.append(item)
                if tag in ("clip", "stream"):
                    done_clips += 1
                if on_line is not None:
                    on_line(tag, fields)
                if tag == "done" and board.output != "semihosting":
                    break                     # UART firmware sleeps forever after "done"
            if board.output != "semihosting" and parsed and parsed[-1][0] == "done":
                rc = 0
            else:
                rc = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if rc != 0 or not parsed or parsed[-1][0] != "done":
            err = "".join(err_chunks).strip().splitlines()
            msg = err[0] if err else f"exit status {rc}"
            raise FirmwareError(f"QEMU ({board.qemu_machine}) stopped before the firmware "
                                f"finished: {msg}")
        return QemuRun(parsed, time.monotonic() - t_start, boot_seconds)


# ---------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------

@dataclass
class ClipResult:
    """One clip's result on the board.

    Attributes:
        path: the clip; label/label_index: predicted class; logits: int8 values;
        confidence: softmax probability of the predicted class from the dequantized
        logits (None when the model gives no KWS_LOGIT_SCALE); instructions: executed by
        kws_run (exact, QEMU); truth: the label folder the clip is in (labelled folders).
    """

    path: str
    label_index: int
    label: str
    logits: list[int]
    confidence: float | None
    instructions: int
    truth: str | None = None


@dataclass
class RunResult:
    """All clips of one ``run``, plus the boot-level facts."""

    board: str
    clips: list[ClipResult]
    labels: list[str]
    stack_peak: int
    stack_size: int
    seconds: float
    boot_seconds: float

    @property
    def accuracy(self) -> float | None:
        """Fraction of labelled clips predicted right (None without labelled clips)."""
        lab = [c for c in self.clips if c.truth is not None]
        return sum(c.label == c.truth for c in lab) / len(lab) if lab else None

    @property
    def n_labelled(self) -> int:
        return sum(c.truth is not None for c in self.clips)


def softmax_confidence(logits: Sequence[int], scale: float | None, zero_point: int = 0
                       ) -> float | None:
    """max softmax probability of ``scale * (q - zero_point)`` (float64), or None."""
    if scale is None:
        return None
    z = scale * (np.asarray(logits, dtype=np.float64) - zero_point)
    z = np.exp(z - z.max())
    return float(z.max() / z.sum())


def check_timeout(timeout) -> float:
    """``timeout`` (seconds of emulator silence) checked: a finite number > 0.

    Raises:
        TypeError: not a number. ValueError: not finite and > 0.
    """
    import numbers
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout: expected seconds (a number > 0), got {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout: expected seconds > 0 (finite), got {timeout!r}")
    return float(timeout)


def collect_clips(inputs: Sequence[Path]) -> list[tuple[Path, str | None]]:
    """Clips named on the command line: files as given, folders expanded recursively.

    Args:
        inputs: a list of clip files and folders (str/PathLike); a single path is refused
            (:func:`export.fileio.path_list`).
    Returns:
        (clip, candidate label) pairs; the candidate is the name of the clip's first
        folder below the given folder (Speech Commands layout), else None.
    Raises:
        TypeError: ``inputs`` is a single path or not a list of paths.
        AudioError: a missing path; FirmwareError: nothing to run.
    """
    from export.fileio import path_list
    from nanomamba.audio import list_clips
    from nanomamba.errors import AudioError
    inputs = path_list(inputs)
    out: list[tuple[Path, str | None]] = []
    for p in inputs:
        if p.is_dir():
            for clip in list_clips(p):
                rel = clip.relative_to(p).parts
                out.append((clip, rel[0] if len(rel) > 1 else None))
        elif p.exists():
            out.append((p, None))
        else:
            raise AudioError(f"{p}: no such clip or folder")
    if not out:
        from nanomamba.audio import AUDIO_SUFFIXES
        raise FirmwareError(f"{', '.join(map(str, inputs))}: no audio clips "
                            f"({', '.join(AUDIO_SUFFIXES)})")
    return out


def _load_clips(paths: Sequence[Path], n_samples: int) -> list[np.ndarray]:
    """int16 clips via nanomamba.audio.load_audio; many alteration warnings are summarised."""
    from nanomamba.audio import load_audio
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = [load_audio(p, dtype="int16", n_samples=n_samples) for p in paths]
    for w in caught[:3]:
        warnings.warn(str(w.message), w.category, stacklevel=3)
    if len(caught) > 3:
        warnings.warn(f"... and {len(caught) - 3} more clips were altered to fit the model "
                      f"(padded, trimmed, resampled or downmixed)", caught[0].category,
                      stacklevel=3)
    return data


def check_board_arg(build_dir: Path, manifest: dict, board_name: str | None) -> None:
    """``--board`` of run/bench/flash against the board a build was made for.

    A name must be the build's board. A board .toml path must hold exactly the board file
    the build was made with (its sha256 equals ``board_sha256``, or, for a build for a
    shipped board, the shipped file's), so a same-named file with other contents is refused
    instead of being silently ignored.

    Raises:
        BoardError: another board, another board file, or an unknown name / bad file.
    """
    if board_name is None:
        return
    built_for = manifest["board"]
    rebuild = f"(rebuild with --board {board_name})"
    path = Path(board_name)
    if path.suffix == ".toml":
        if not path.is_file():
            raise BoardError(f"{path}: no such board file")
        recorded = manifest.get("board_sha256")
        if recorded is None:
            shipped = BOARDS_DIR / f"{built_for}.toml"
            recorded = (hashlib.sha256(shipped.read_bytes()).hexdigest()
                        if shipped.is_file() else None)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != recorded:
            raise BoardError(f"{path}: not the board file {build_dir} was built with "
                             f"(sha256 {digest[:12]}, the build's {str(recorded)[:12]}) "
                             f"{rebuild}")
        return
    if board_name != built_for:
        named = load_board(board_name).name          # unknown names: the usual error
        raise BoardError(f"{build_dir}: built for {built_for}, not {named} {rebuild}")


def _emulated_board(build_dir: Path, board_name: str | None) -> tuple[dict, Board]:
    manifest = read_manifest(build_dir)
    check_board_arg(build_dir, manifest, board_name)
    board = manifest_board(manifest, build_dir)
    if not board.emulated:
        qemu = "QEMU runs mps2-an386, mps2-an500, mps2-an505, mps3-an547"
        if board.flashable:
            raise BoardError(f"{build_dir}: board {board.name} is not emulated ({qemu}); "
                             f"flash it with kws-export flash")
        raise BoardError(f"{build_dir}: board {board.name} is build-only (no QEMU machine, no "
                         f"pyOCD target: kws-export can neither run nor flash it; {qemu}); "
                         f"program firmware.elf/.hex with your own tools")
    return manifest, board


def run_firmware(build_dir: Path, inputs: Sequence[Path], *, board: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, progress: bool = False) -> RunResult:
    """Classify clips with the firmware on QEMU, all in one emulator boot.

    Args:
        build_dir: build folder of an emulated board.
        inputs: a list of clips (WAV, FLAC, .f32) and folders (searched recursively; a
            folder in Speech Commands layout, one subfolder per label, gives each clip its
            truth); a single str/Path is refused (write ``[path]``). Must be empty for a
            UART board emulated in QEMU (mps2-an386-uart), whose real-board firmware
            classifies its built-in demo clip.
        board: must match the board the folder was built for (default: that board).
        timeout: seconds (> 0) of silence after which the firmware counts as hung.
        progress: show a progress bar (stderr) over the clips.
    Returns:
        :class:`RunResult` (per clip: label, confidence, int8 logits, exact instructions).
    Raises:
        TypeError: ``inputs`` not a list of paths (e.g. a single str/Path), ``timeout``
        not a number; ValueError: ``timeout`` <= 0 (both before any work).
        FirmwareError (not a build folder, QEMU failure, fault, hang), BoardError (board
        mismatch or not emulated), ToolError (no QEMU), AudioError (bad clip).
    """
    from export.fileio import path_list
    inputs = path_list(inputs)
    timeout = check_timeout(timeout)
    manifest, bd = _emulated_board(Path(build_dir), board)
    if bd.output != "semihosting":
        if inputs:
            raise FirmwareError(f"{build_dir}: {bd.name} firmware has UART output and "
                                f"classifies its built-in demo clip; run it without clips")
        qr = run_qemu(Path(build_dir), bd, [], mode="run", timeout=timeout)
        return _run_result(qr, bd, manifest, [(Path("(built-in demo clip)"), None)])
    if not inputs:
        raise FirmwareError("no clips given: name clip files or folders to run")
    clips = collect_clips(inputs)
    samples = _load_clips([c for c, _ in clips], int(manifest["model"]["samples"]))
    bar = None
    if progress and len(clips) >= 20:
        from tqdm import tqdm
        bar = tqdm(total=len(clips), unit="clip", desc=f"QEMU {bd.name}", leave=False,
                   disable=None)          # None: a bar on a terminal only

    def on_line(tag: str, fields: dict) -> None:
        if bar is not None and tag == "clip":
            bar.update(1)

    try:
        qr = run_qemu(Path(build_dir), bd, samples, mode="run", timeout=timeout,
                      on_line=on_line, names=[str(c) for c, _ in clips])
    finally:
        if bar is not None:
            bar.close()
    return _run_result(qr, bd, manifest, clips)


def _boot_facts(qr: QemuRun, board: Board) -> tuple[list[str], Counter, dict]:
    by_tag: dict[str, list[dict]] = {}
    for tag, fields in qr.lines:
        by_tag.setdefault(tag, []).append(fields)
    labels = by_tag["boot"][0].get("labels", "").split(",")
    if "calib" in by_tag:
        counter = counter_from_calib(board.clock_hz, by_tag["calib"][0])
    else:  # real-board firmware in QEMU: no self-test printed, stamps cost not removed
        counter = Counter(board.clock_hz, ICOUNT_SHIFT)
    stack = by_tag.get("stack", [{}])[0]
    return labels, counter, {"peak": int(stack.get("peak", 0)), "size": int(stack.get("size", 0))}


def _run_result(qr: QemuRun, board: Board, manifest: dict,
                clips: Sequence[tuple[Path, str | None]]) -> RunResult:
    labels, counter, stack = _boot_facts(qr, board)
    scale = manifest["model"].get("logit_scale")
    zp = int(manifest["model"].get("logit_zero_point") or 0)
    rows = [f for tag, f in qr.lines if tag == "clip"]
    if len(rows) != len(clips):
        raise FirmwareError(f"firmware reported {len(rows)} clips for {len(clips)} sent")
    results = []
    for (path, cand), f in zip(clips, rows):
        logits = [int(v) for v in f["logits"].split(",")]
        idx = int(f["label"])
        results.append(ClipResult(
            path=str(path), label_index=idx,
            label=labels[idx] if 0 <= idx < len(labels) else "?", logits=logits,
            confidence=softmax_confidence(logits, scale, zp),
            instructions=counter.instructions(*_stamp(f["count"])),
            truth=cand if cand in labels else None))
    return RunResult(board.name, results, labels, stack["peak"], stack["size"],
                     qr.seconds, qr.boot_seconds)


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

@dataclass
class BenchColumn:
    """Deterministic costs of one firmware build on one clip.

    Attributes:
        instructions_frontend / _network / _total: per inference (kws_run_frontend,
        kws_run_network, their sum), exact (QEMU -icount).
        hop_max: most instructions one kws_push_hop took; classify: kws_classify;
        stream_matches: streaming logits == batch logits (these three are None for
        real-board firmware, which runs no streaming pass).
        flash_total, flash_model: bytes; ram_static (data + bss), audio_buffer,
        stack_peak (measured by painting), ram_total_excl_audio = ram_static -
        audio_buffer + stack_peak.
        precision: the model's precision from the manifest ("int8", "float32").
    """

    build: str
    board: str
    instructions_frontend: int
    instructions_network: int
    instructions_total: int
    hop_max: int | None
    classify: int | None
    stream_matches: bool | None
    label: str
    flash_total: int
    flash_model: int | None
    ram_static: int
    audio_buffer: int
    stack_peak: int
    ram_total_excl_audio: int
    precision: str = "int8"


@dataclass
class BenchResult:
    """``bench``'s table: this build, optionally a float32 C build of the same model
    (hook), and the MAC-count / 2 lower bound (hook: 2 MACs per instruction with SMLAD)."""

    int8: BenchColumn
    float32: BenchColumn | None = None
    macs: int | None = None

    @property
    def mac_bound(self) -> int | None:
        """Lower bound on instructions: MACs / 2 (None when the MAC count is unknown)."""
        return None if self.macs is None else (self.macs + 1) // 2

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(metric, int8, float32 C, MAC/2 bound) rows as display strings."""
        def f(v):
            return "n/a" if v is None else f"{v:,}"
        a, b = self.int8, self.float32
        g = (lambda k: getattr(b, k)) if b is not None else (lambda k: None)
        return [
            ("instructions: front end", f(a.instructions_frontend), f(g("instructions_frontend")), "n/a"),
            ("instructions: network", f(a.instructions_network), f(g("instructions_network")), "n/a"),
            ("instructions: total", f(a.instructions_total), f(g("instructions_total")), f(self.mac_bound)),
            ("instructions: max per hop (streaming)", f(a.hop_max), f(g("hop_max")), "n/a"),
            ("flash: total (bytes)", f(a.flash_total), f(g("flash_total")), "n/a"),
            ("flash: model (bytes)", f(a.flash_model), f(g("flash_model")), "n/a"),
            ("RAM: data + bss (bytes)", f(a.ram_static), f(g("ram_static")), "n/a"),
            ("RAM: audio buffer (bytes)", f(a.audio_buffer), f(g("audio_buffer")), "n/a"),
            ("RAM: peak stack (bytes)", f(a.stack_peak), f(g("stack_peak")), "n/a"),
            ("RAM: total excl. audio (bytes)", f(a.ram_total_excl_audio), f(g("ram_total_excl_audio")), "n/a"),
        ]


def bench_column(build_dir: Path, *, clip: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> BenchColumn:
    """Benchmark one build folder on QEMU (see :func:`bench_firmware`)."""
    manifest, board = _emulated_board(Path(build_dir), None)
    n = int(manifest["model"]["samples"])
    if board.output == "semihosting":
        samples = [_demo_clip(clip, n)[0]]
    elif clip is not None:
        raise FirmwareError(f"{build_dir}: {board.name} firmware classifies its built-in "
                            f"demo clip; bench it without --clip")
    else:
        samples = []
    qr = run_qemu(Path(build_dir), board, samples, mode="bench", timeout=timeout)
    labels, counter, stack = _boot_facts(qr, board)
    bench = next(f for tag, f in qr.lines if tag == "bench")
    clip_line = next((f for tag, f in qr.lines if tag == "clip"), {})
    stream = next((f for tag, f in qr.lines if tag == "stream"), None)
    batch_logits = bench.get("logits", clip_line.get("logits"))
    fe = counter.instructions(*_stamp(bench["frontend"]))
    nn = counter.instructions(*_stamp(bench["network"]))
    sizes = manifest["sizes"]
    model_flash = sizes.get("components", {}).get("model", {}).get("flash")
    static = int(sizes["ram_static"])
    audio = int(sizes.get("audio_buffer", 0))
    idx = int(bench["label"])
    return BenchColumn(
        build=str(build_dir), board=board.name,
        instructions_frontend=fe, instructions_network=nn, instructions_total=fe + nn,
        hop_max=counter.instructions(*_stamp(stream["hop_max"])) if stream else None,
        classify=counter.instructions(*_stamp(stream["classify"])) if stream else None,
        stream_matches=stream["logits"] == batch_logits if stream else None,
        label=labels[idx] if 0 <= idx < len(labels) else "?",
        flash_total=int(sizes["flash_total"]), flash_model=model_flash,
        ram_static=static, audio_buffer=audio, stack_peak=stack["peak"],
        ram_total_excl_audio=static - audio + stack["peak"],
        precision=str(manifest["model"].get("precision", "int8")))


def bench_firmware(build_dir: Path, *, clip: Path | None = None,
                   float_build: Path | None = None, macs: int | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> BenchResult:
    """Deterministic benchmark of a build on QEMU: instructions per inference split into
    front end and network (kws_run_frontend / kws_run_network), streaming cost per hop,
    flash, RAM (data + bss + peak stack measured by stack painting).

    Args:
        build_dir: build folder of an emulated board.
        clip: input clip (default: the built-in demo clip).
        float_build: HOOK for the float32 C column: a build folder of the same model's
            float32 C (same board), benchmarked the same way.
        macs: HOOK for the lower-bound column: MACs per inference (default: the model's
            KWS_MACS_PER_INFERENCE, if its kws_model.h defines it).
    Returns:
        :class:`BenchResult`.
    Raises:
        as :func:`run_firmware`; BoardError when the float build is for another board;
        FirmwareError when the float build's ``model.precision`` (firmware.json) is not
        float32 (an int8 build as the baseline gave a meaningless 1.00x), or ``build_dir``
        itself is a float32 build, or the float build's
        ``model.model_hash`` is not the int8 build's (another model's float build; absent
        on both, e.g. the stand-in model, counts as equal). All are checked before QEMU
        runs.
    """
    fcol = None
    main_m = read_manifest(build_dir)
    if float_build is not None:
        float_m = read_manifest(float_build)
        if float_m["board"] != main_m["board"]:
            raise BoardError(f"{float_build}: float32 build is for {float_m['board']}, the int8 "
                             f"build for {main_m['board']}; bench them on the same board")
        mprec = main_m.get("model", {}).get("precision", "int8")
        if mprec == "float32":
            raise FirmwareError(f"{build_dir}: is a float32 build; --float-build compares an "
                                f"int8 build (DIR) with its float32 baseline")
        fprec = float_m.get("model", {}).get("precision", "int8")
        if fprec != "float32":
            raise FirmwareError(f"{float_build}: --float-build needs a float32 build, this one is "
                                f"{fprec} (make one with kws-export build --precision float32)")
        have, want = float_m["model"].get("model_hash"), main_m["model"].get("model_hash")
        if have != want:
            def _h(v):
                return v[:12] if v else "none recorded"
            raise FirmwareError(f"{float_build}: float32 build of another model (model hash "
                                f"{_h(have)}, the int8 build's {_h(want)}); build the float "
                                f"baseline from the same checkpoint or bundle")
    col = bench_column(build_dir, clip=clip, timeout=timeout)
    if float_build is not None:
        fcol = bench_column(float_build, clip=clip, timeout=timeout)
    if macs is None:
        macs = main_m["model"].get("macs_per_inference")
    return BenchResult(col, fcol, int(macs) if macs is not None else None)


# ---------------------------------------------------------------------------------------
# flash (pyOCD)
# ---------------------------------------------------------------------------------------

@dataclass
class FlashPlan:
    """What ``flash`` writes: ``file`` (Intel HEX) with ``ranges`` [(start, end)] of
    flash addresses, to pyOCD target ``target`` of ``board``."""

    board: str
    target: str
    pack: str | None
    file: Path
    ranges: list[tuple[int, int]]
    blocker: str | None = None   #: why a real flash would fail now (dry runs report it)

    def describe(self) -> str:
        """One line per range: file, address range, bytes, target."""
        parts = [f"{self.file}: 0x{a:08x}-0x{b - 1:08x} ({b - a:,} bytes)" for a, b in self.ranges]
        src = f"CMSIS-Pack {self.pack}" if self.pack else "built into pyOCD"
        return (f"would write {'; '.join(parts)} to {self.board} (pyOCD target "
                f"{self.target}, {src}) through the first attached debug probe")


def flash_plan(build_dir: Path, board_name: str) -> FlashPlan:
    """The flash plan of a build folder for ``board_name`` (no hardware needed).

    Raises:
        BoardError: unknown board, a build for another board, or a board pyOCD cannot
            flash (emulated or build-only); FirmwareError: not a build folder, or an image
            outside the board's flash.
    """
    build_dir = Path(build_dir)
    manifest = read_manifest(build_dir)
    check_board_arg(build_dir, manifest, board_name)
    board = manifest_board(manifest, build_dir)
    if not board.flashable:
        hint = "use kws-export run" if board.emulated else "it is a build-only target"
        raise BoardError(f"board {board.name} has no pyOCD target ({hint})")
    ranges = []
    for addr, size in load_segments(build_dir / ELF):
        if not board.flash.contains(addr, size):
            raise FirmwareError(f"{build_dir / ELF}: segment 0x{addr:08x}+{size} lies outside "
                                f"{board.name}'s flash")
        ranges.append((addr, addr + size))
    return FlashPlan(board.name, board.pyocd_target, board.pyocd_pack, build_dir / HEX, ranges)


def _pyocd_target_available(target: str) -> bool:
    from pyocd.target import TARGET
    if target in TARGET:
        return True
    try:
        from pyocd.target.pack.pack_target import ManagedPacks
        return any(d.part_number.lower() == target.lower()
                   for d in ManagedPacks.get_installed_targets())
    except Exception:  # noqa: BLE001 - no pack support (cmsis-pack-manager missing)
        return False


def flash_firmware(build_dir: Path, board_name: str, *, dry_run: bool = False,
                   probe: str | None = None) -> FlashPlan:
    """Program a real board with a build folder's firmware through pyOCD's Python API.

    Args:
        build_dir: build folder for ``board_name``.
        board_name: a real board (has a pyOCD target).
        dry_run: only work out and return the plan (file, address ranges, target).
        probe: unique id of the debug probe (default: the first one attached).
    Returns:
        the :class:`FlashPlan` (written, or that would be written; a dry run sets
        ``blocker`` when the real flash would fail, e.g. a missing CMSIS-Pack).
    Raises:
        BoardError / FirmwareError: see :func:`flash_plan`.
        FlashError (not for dry runs): pyOCD not installed; the target's CMSIS-Pack not
            installed (names the ``pyocd pack install`` command); no debug probe
            attached; pyOCD failed.
    """
    plan = flash_plan(build_dir, board_name)
    try:
        import pyocd  # noqa: F401
    except ImportError:
        if dry_run:
            return plan
        raise FlashError("pyOCD is not installed: pip install 'nanomamba-kws[flash]' "
                         "(or pip install pyocd)") from None
    if not _pyocd_target_available(plan.target):
        if plan.pack:
            plan.blocker = (f"pyOCD target '{plan.target}' for {plan.board} comes from a "
                            f"CMSIS-Pack that is not installed: run 'pyocd pack install "
                            f"{plan.pack}'")
        else:
            plan.blocker = f"pyOCD does not know target '{plan.target}' (pyocd list --targets)"
        if not dry_run:
            raise FlashError(plan.blocker)
    if dry_run:
        return plan
    from pyocd.core.helpers import ConnectHelper
    from pyocd.flash.file_programmer import FileProgrammer
    probes = ConnectHelper.get_all_connected_probes(blocking=False, unique_id=probe,
                                                    print_wait_message=False)
    if not probes:
        which = f"with id {probe} " if probe else ""
        raise FlashError(f"no debug probe {which}attached: connect {plan.board} over USB "
                         f"(ST-LINK/CMSIS-DAP/J-Link) and retry (pyocd list shows probes)")
    try:
        session = ConnectHelper.session_with_chosen_probe(
            blocking=False, return_first=True, unique_id=probe,
            options={"target_override": plan.target, "frequency": 4_000_000})
        if session is None:
            raise FlashError("no debug probe attached (pyOCD could not open one)")
        with session:
            FileProgrammer(session).program(str(plan.file), file_format="hex")
            session.board.target.reset()
    except FlashError:
        raise
    except Exception as err:  # noqa: BLE001 - pyOCD raises many types
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FlashError(f"pyOCD could not flash {plan.board}: {msg}") from None
    return plan
