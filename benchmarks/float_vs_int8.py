"""int8 firmware vs its float32 C baseline vs the MAC bound, per model, on one QEMU board.

For each SOURCE (checkpoint or bundle) builds the int8 firmware (export.codegen; skipped
with a note when the generator is absent) and the float32 C firmware
(``--precision float32``), benches both (exact instructions, QEMU -icount) and prints the
issue-8 table with the ratios and the goals for Tiny on the Cortex-M4 (float32 / int8 >= 3,
int8 total <= 1.5 M, network <= 0.4 M, RAM excl. audio <= 12 KB, flash <= 24 KB). Targets
are compared here, never in tests.

    python benchmarks/float_vs_int8.py [--board mps2-an386] SOURCE...
    e.g. ../shared/fixtures/upstream/nanomamba_tiny.pt ../shared/fixtures/upstream/nanomamba_small.pt
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export.firmware import FirmwareError, bench_firmware, build_firmware  # noqa: E402

GOALS = {"ratio": 3.0, "total": 1_500_000, "network": 400_000, "ram": 12 * 1024,
         "flash": 24 * 1024}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:,}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", type=Path)
    ap.add_argument("--board", default="mps2-an386")
    args = ap.parse_args()
    con = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        for src in args.sources:
            fdir = Path(tmp) / f"{src.stem}-float32"
            build_firmware(src, args.board, fdir, precision="float32")
            idir = Path(tmp) / f"{src.stem}-int8"
            try:
                build_firmware(src, args.board, idir, precision="int8")
                res = bench_firmware(idir, float_build=fdir)
                i8, f32 = res.int8, res.float32
            except FirmwareError as err:
                con.print(f"[yellow]{src}: no int8 build ({err}); float32 only[/yellow]")
                res = bench_firmware(fdir)
                i8, f32 = None, res.int8
            t = Table("metric", "int8", "float32 C", "float32 / int8", "MAC/2 bound",
                      title=f"{src.name} on {args.board} (exact instructions, demo clip)")

            def row(name, key, bound=None):
                a = getattr(i8, key) if i8 else None
                b = getattr(f32, key)
                ratio = f"{b / a:.2f}x" if a else "n/a"
                t.add_row(name, _fmt(a), _fmt(b), ratio, _fmt(bound))

            row("instructions: front end", "instructions_frontend")
            row("instructions: network", "instructions_network")
            row("instructions: total", "instructions_total", res.mac_bound)
            row("instructions: max per hop", "hop_max")
            row("flash: total (bytes)", "flash_total")
            row("flash: model (bytes)", "flash_model")
            row("RAM: total excl. audio (bytes)", "ram_total_excl_audio")
            con.print(t)
            if i8 is not None:
                checks = [
                    ("float32 / int8 instructions >= 3", f32.instructions_total
                     >= GOALS["ratio"] * i8.instructions_total),
                    ("int8 total <= 1.5 M", i8.instructions_total <= GOALS["total"]),
                    ("int8 network <= 0.4 M", i8.instructions_network <= GOALS["network"]),
                    ("int8 RAM excl. audio <= 12 KB", i8.ram_total_excl_audio <= GOALS["ram"]),
                    ("int8 flash <= 24 KB", i8.flash_total <= GOALS["flash"]),
                ]
                con.print("goals (Tiny on the M4): " + "; ".join(
                    f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))


if __name__ == "__main__":
    main()
