"""Firmware benchmark across the QEMU boards and both optimisation levels.

Builds a model C folder (default: the stand-in model) for mps2-an386 (M4), mps2-an500
(M7), mps2-an505 (M33) and mps3-an547 (M55) at -O2 and -Os, runs `bench` on each and
prints exact instructions per inference (front end, network), flash and RAM, plus QEMU
boot and per-clip wall times. Targets are compared here, never in tests.

    python benchmarks/firmware_bench.py [MODEL_C_FOLDER]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.firmware import (bench_column, build_firmware, default_demo_clip,  # noqa: E402
                             run_qemu, standin_model_dir)
from export.boards import load_board  # noqa: E402

BOARDS = ("mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547")


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else standin_model_dir()
    t = Table("board", "opt", "front end", "network", "total", "max/hop", "flash",
              "flash model", "RAM excl. audio", "peak stack", "build s",
              title=f"firmware bench: {source.name} (instructions exact, QEMU -icount)")
    timing = []
    with tempfile.TemporaryDirectory() as tmp:
        for board in BOARDS:
            for opt in ("O2", "Os"):
                t0 = time.monotonic()
                out = build_firmware(source, board, Path(tmp) / f"{board}-{opt}", opt=opt).out
                build_s = time.monotonic() - t0
                c = bench_column(out)
                t.add_row(board, opt, f"{c.instructions_frontend:,}",
                          f"{c.instructions_network:,}", f"{c.instructions_total:,}",
                          f"{c.hop_max:,}", f"{c.flash_total:,}", f"{c.flash_model:,}",
                          f"{c.ram_total_excl_audio:,}", f"{c.stack_peak:,}", f"{build_s:.1f}")
            # wall time of one boot with 1 and with 100 clips (same clip)
            clip = default_demo_clip()[0]
            b = load_board(board)
            one = run_qemu(out, b, [clip])
            many = run_qemu(out, b, [clip] * 100)
            timing.append((board, one.boot_seconds, one.seconds,
                           (many.seconds - one.seconds) / 99))
    con = Console(width=160)
    con.print(t)
    tt = Table("board", "boot to first line s", "1-clip run s", "per extra clip ms",
               title="QEMU wall time")
    for board, boot, one, per in timing:
        tt.add_row(board, f"{boot:.3f}", f"{one:.3f}", f"{1000 * per:.2f}")
    con.print(tt)


if __name__ == "__main__":
    main()
