"""Issue 8's bench table: the generated int8 firmware vs its float32 C baseline vs the MAC/2
bound, for Tiny and Small on the QEMU boards; writes docs/BENCHMARKS.md's measured block.

For each published checkpoint (bundles quantized once with the default calibration, as
``kws-export quantize``, cached in --cache) and each board it builds the int8 firmware
(``kws-export build BUNDLE``) and the float32 C firmware of the same bundle
(``--precision float32``), runs ``bench`` on both (exact instructions, QEMU -icount; the
demo clip examples/clips/yes.wav) and prints markdown tables:

1. Cortex-M4 (mps2-an386): front end, network, total, max per hop, flash, RAM, vs float32 C
   and the MAC/2 bound; the issue-8 goals for Tiny, each met / not met;
2. the other QEMU boards (M7, M33, M55);
3. where the bytes go on the M4 (flash code / constants and RAM per part, from the linker
   map), the generated C's arena and state beside the TFLM tensor arena (docs/EXPORT.md);
4. -O2 vs -Os on the M4 (int8).

Targets are compared here, never in tests.

    python benchmarks/firmware_bench.py [--models tiny small] [--boards ...] [--cache DIR]
        [--write-docs]        # replace the block between the markers in docs/BENCHMARKS.md
    python benchmarks/firmware_bench.py --source MODEL_C_FOLDER|BUNDLE|CKPT [--boards ...]
        # one source (e.g. firmware_templates/standin_model), -O2 vs -Os per board
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export import firmware as fw  # noqa: E402
from export.firmware import bench_column, bench_firmware, build_firmware  # noqa: E402

from _published import SHARED, published_bundle  # noqa: E402
QEMU_BOARDS = ("mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547")
CORE = {"mps2-an386": "Cortex-M4", "mps2-an500": "Cortex-M7", "mps2-an505": "Cortex-M33",
        "mps3-an547": "Cortex-M55"}
#: issue 8's goals for Tiny on the Cortex-M4
GOALS = {"total": 1_500_000, "network": 400_000, "ratio": 3.0, "ram": 12 * 1024,
         "flash": 24 * 1024}
#: TFLM tensor arena of the 16x8 .tflite (docs/EXPORT.md, measured in the tflite_micro
#: interpreter by benchmarks/compare_routes.py)
TFLM_ARENA = {"tiny": 230_560, "small": 341_072}
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- firmware_bench:begin -->", "<!-- firmware_bench:end -->"

# parts of the firmware by object file (linker map input sections)
PARTS = {"kws_frontend": "front end (code + tables)", "frontend_params": "front end (code + tables)",
         "kws_model": "network code", "kws_nn_fast": "network code", "kws_nn": "network code",
         "kws_weights": "network constants (weights, LUTs)"}


def header_macros(build: Path) -> dict[str, int]:
    """Integer macros of the built model's kws_model.h (KWS_ARENA_BYTES, ...)."""
    text = (build / "src" / "model" / "kws_model.h").read_text()
    return {k: int(v) for k, v in re.findall(r"#define (KWS_\w+) (\d+)\b", text)}


def macs_split(build: Path) -> tuple[int, int]:
    """(front end, network) MACs per inference from the KWS_MACS_PER_INFERENCE comment."""
    text = (build / "src" / "model" / "kws_model.h").read_text()
    fe, nn = re.search(r"KWS_MACS_PER_INFERENCE \d+\s+/\* front end (\d+) \+ network (\d+)",
                       text).groups()
    return int(fe), int(nn)


def symbol_sizes(elf: Path) -> dict[str, int]:
    """Symbol name -> size (bytes) of the ELF's functions and objects."""
    from elftools.elf.elffile import ELFFile
    out = {}
    with open(elf, "rb") as f:
        for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT") and s["st_size"]:
                out[s.name] = int(s["st_size"])
    return out


def parts(build: Path) -> dict[str, dict[str, int]]:
    """Bytes per part of the firmware: {part: {code, const, ram}} from the linker map."""
    text = (build / "firmware.map").read_text(errors="replace")
    text = text[text.find("Linker script and memory map"):]
    out: dict[str, dict[str, int]] = {}
    for sec, _a, size, path in fw._MAP_ENTRY.findall(text):
        size = int(size, 16)
        if size == 0 or path.startswith("load address"):
            continue
        path = path.strip()
        if "(" in path or path.endswith(".a"):
            part = "libgcc" if "libgcc" in path else "libc (newlib-nano)"
        else:
            part = PARTS.get(path.rsplit("/", 1)[-1].rsplit(".", 1)[0], "app (startup, I/O, counter)")
        d = out.setdefault(part, {"code": 0, "const": 0, "ram": 0})
        if sec.startswith(".text") or sec.startswith(".kws_vectors") or sec.startswith(".ARM.ex"):
            d["code"] += size
        elif sec.startswith(".rodata"):
            d["const"] += size
        elif sec.startswith(".data"):
            d["const"] += size
            d["ram"] += size
        elif sec.startswith(".bss") or sec == "COMMON":
            d["ram"] += size
    return out


def n(v) -> str:
    return "n/a" if v is None else f"{v:,}"


def m(v) -> str:
    return f"{v / 1e6:.2f} M"


def model_tables(models, boards, cache: Path, tmp: Path) -> str:
    cols, builds, t_build = {}, {}, {}
    for name in models:
        bundle = published_bundle(name, cache)
        for board in boards:
            for prec in ("int8", "float32"):
                out = tmp / f"{name}-{board}-{prec}"
                t0 = time.monotonic()
                build_firmware(bundle, board, out, precision=prec)
                t_build[(name, board, prec)] = time.monotonic() - t0
                builds[(name, board, prec)] = out
            res = bench_firmware(builds[(name, board, "int8")],
                                 float_build=builds[(name, board, "float32")])
            cols[(name, board)] = res
            print(f"# benched {name} on {board}", file=sys.stderr)
    md = []
    m4 = "mps2-an386"
    if m4 in boards:
        md += [f"### Cortex-M4 (`{m4}`), -O2, exact instructions per inference (demo clip "
               f"`examples/clips/yes.wav`)", "",
               "| metric | " + " | ".join(f"{x.capitalize()} int8 | {x.capitalize()} float32 C | "
                                          f"float / int8" for x in models) + " |",
               "|---|" + "---|---|---|" * len(models)]
        rows = [("instructions: front end", "instructions_frontend"),
                ("instructions: network", "instructions_network"),
                ("instructions: total", "instructions_total"),
                ("instructions: max per hop (streaming)", "hop_max"),
                ("instructions: kws_classify (streaming)", "classify"),
                ("flash: whole firmware (B)", "flash_total"),
                ("flash: model part (B)", "flash_model"),
                ("RAM: data + bss (B)", "ram_static"),
                ("RAM: audio buffer (B)", "audio_buffer"),
                ("RAM: peak stack (B)", "stack_peak"),
                ("RAM: total excl. audio buffer (B)", "ram_total_excl_audio")]
        for label, key in rows:
            cells = []
            for name in models:
                r = cols[(name, m4)]
                a, b = getattr(r.int8, key), getattr(r.float32, key)
                cells += [n(a), n(b), f"{b / a:.2f}x" if a and b is not None else "n/a"]
            md.append(f"| {label} | " + " | ".join(cells) + " |")
        cells = []
        for name in models:
            mac = cols[(name, m4)].macs
            cells += [f"{n(mac)} MACs -> **{n(cols[(name, m4)].mac_bound)}**", "", ""]
        md.append("| MAC/2 bound (instructions) | " + " | ".join(cells) + " |")
        cells = []
        for name in models:
            fe_m, nn_m = macs_split(builds[(name, m4, "int8")])
            r = cols[(name, m4)]
            cells += [f"front end {n((fe_m + 1) // 2)} "
                      f"({r.int8.instructions_frontend / ((fe_m + 1) // 2):.1f}x), network "
                      f"{n((nn_m + 1) // 2)} ({r.int8.instructions_network / ((nn_m + 1) // 2):.1f}x)",
                      "", ""]
        md.append("| MAC/2 bound per part (int8 / bound) | " + " | ".join(cells) + " |")
        cells = []
        for name in models:
            r = cols[(name, m4)]
            cells += [f"{r.int8.instructions_total / r.mac_bound:.1f}x the bound",
                      f"{r.float32.instructions_total / r.mac_bound:.1f}x", ""]
        md.append("| total / MAC/2 bound | " + " | ".join(cells) + " |")
        md.append("| label on the demo clip | " + " | ".join(
            f"{cols[(x, m4)].int8.label} | {cols[(x, m4)].float32.label} | " for x in models) + " |")
        md.append("| streaming logits = batch logits | " + " | ".join(
            f"{cols[(x, m4)].int8.stream_matches} | {cols[(x, m4)].float32.stream_matches} | "
            for x in models) + " |")
        md.append("")
        if "tiny" in models:
            r = cols[("tiny", m4)]
            a, b = r.int8, r.float32
            goals = [
                ("instructions all-in", "<= 1.5 M", m(a.instructions_total),
                 a.instructions_total <= GOALS["total"]),
                ("instructions, network", "<= 0.4 M", m(a.instructions_network),
                 a.instructions_network <= GOALS["network"]),
                ("float32 C / int8 instructions", ">= 3x",
                 f"{b.instructions_total / a.instructions_total:.2f}x",
                 b.instructions_total >= GOALS["ratio"] * a.instructions_total),
                ("RAM excl. audio buffer (data + bss + peak stack)", "<= 12 KB (12,288 B)",
                 f"{a.ram_total_excl_audio:,} B", a.ram_total_excl_audio <= GOALS["ram"]),
                ("flash, whole firmware", "<= 24 KB (24,576 B)", f"{a.flash_total:,} B",
                 a.flash_total <= GOALS["flash"]),
            ]
            md += ["### Issue-8 goals, Tiny on the Cortex-M4", "",
                   "| goal | target | measured | |", "|---|---|---|---|"]
            md += [f"| {g} | {t} | {v} | {'met' if ok else '**not met**'} |"
                   for g, t, v, ok in goals]
            md.append("")
        md += ["### Where the flash goes (Cortex-M4, int8, -O2; linker map input sections)", "",
               "| part | " + " | ".join(f"{x.capitalize()} code (B) | {x.capitalize()} constants (B)"
                                        for x in models) + " |",
               "|---|" + "---|---|" * len(models)]
        allparts = {name: parts(builds[(name, m4, "int8")]) for name in models}
        order = ["front end (code + tables)", "network code", "network constants (weights, LUTs)",
                 "app (startup, I/O, counter)", "libc (newlib-nano)", "libgcc"]
        for p in order + sorted({k for d in allparts.values() for k in d} - set(order)):
            cells = []
            for name in models:
                d = allparts[name].get(p, {"code": 0, "const": 0, "ram": 0})
                cells += [n(d["code"]), n(d["const"])]
            md.append(f"| {p} | " + " | ".join(cells) + " |")
        md.append("| **total** | " + " | ".join(
            f"{n(sum(d['code'] for d in allparts[x].values()))} | "
            f"{n(sum(d['const'] for d in allparts[x].values()))}" for x in models) + " |")
        md.append("")
        hm = {x: header_macros(builds[(x, m4, "int8")]) for x in models}
        syms = {x: symbol_sizes(builds[(x, m4, "int8")] / "firmware.elf") for x in models}
        md += ["### Where the RAM goes (Cortex-M4, int8; bytes, excluding the 32,000-B audio "
               "buffer)", "", "| part | " + " | ".join(x.capitalize() for x in models) + " |",
               "|---|" + "---|" * len(models)]
        ram_rows = [
            ("front-end window state (`kws_state`: 101 x 40 int16 feature cells, sample "
             "history, SNR weights / norm stats, counters)", lambda x: syms[x]["kws_state"]),
            ("arena (`kws_arena`: the front end's scratch, 512 x int32, inside a hop; the "
             "network's per-frame tensors and its state inside `kws_run_network`)",
             lambda x: syms[x].get("kws_arena")),
            ("app (.data + .bss other than the audio buffer)",
             lambda x: cols[(x, m4)].int8.ram_static - cols[(x, m4)].int8.audio_buffer
             - syms[x]["kws_state"] - syms[x].get("kws_arena", 0)),
            ("peak stack (painted, after the run)", lambda x: cols[(x, m4)].int8.stack_peak),
            ("**total**", lambda x: cols[(x, m4)].int8.ram_total_excl_audio),
            ("(network state: conv histories, h, mean sums; inside the arena, not added)",
             lambda x: hm[x]["KWS_NETWORK_STATE_BYTES"])]
        for label, f in ram_rows:
            md.append(f"| {label} | " + " | ".join(n(f(x)) for x in models) + " |")
        md.append("")
        md += ["### Model RAM: generated C vs TFLM", "",
               "| | " + " | ".join(x.capitalize() for x in models) + " |",
               "|---|" + "---|" * len(models)]
        rows = [("generated C arena (`KWS_ARENA_BYTES`: front-end scratch, overlaid by the "
                 "network's tensors and state)",
                 lambda x: hm[x].get("KWS_ARENA_BYTES")),
                ("generated C network state (`KWS_NETWORK_STATE_BYTES`: conv histories, h, "
                 "sums; inside the arena)", lambda x: hm[x].get("KWS_NETWORK_STATE_BYTES")),
                ("generated C `kws_state` (front-end window state)",
                 lambda x: syms[x].get("kws_state")),
                ("generated C constants (`KWS_CONST_BYTES`, flash)",
                 lambda x: hm[x].get("KWS_CONST_BYTES")),
                ("TFLM tensor arena, 16x8 .tflite (docs/EXPORT.md)", lambda x: TFLM_ARENA.get(x))]
        for label, f in rows:
            md.append(f"| {label} | " + " | ".join(n(f(x)) for x in models) + " |")
        md.append("")
    others = [b for b in boards if b != m4]
    if others:
        md += ["### The other QEMU boards (-O2, exact instructions, demo clip)", "",
               "| model | board | core | int8 front end | int8 network | int8 total | "
               "float32 C total | float / int8 | flash (B) | RAM excl. audio (B) |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for name in models:
            for board in boards:
                r = cols[(name, board)]
                md.append(f"| {name.capitalize()} | `{board}` | {CORE.get(board, '?')} | "
                          f"{n(r.int8.instructions_frontend)} | {n(r.int8.instructions_network)} | "
                          f"{n(r.int8.instructions_total)} | {n(r.float32.instructions_total)} | "
                          f"{r.float32.instructions_total / r.int8.instructions_total:.2f}x | "
                          f"{n(r.int8.flash_total)} | {n(r.int8.ram_total_excl_audio)} |")
        md.append("")
    if m4 in boards:
        md += ["### -O2 vs -Os (Cortex-M4, int8)", "",
               "| model | opt | front end | network | total | flash (B) |", "|---|---|---|---|---|---|"]
        for name in models:
            for opt in ("O2", "Os"):
                out = builds[(name, m4, "int8")]
                if opt == "Os":
                    out = build_firmware(published_bundle(name, cache), m4, tmp / f"{name}-Os", opt="Os").out
                c = bench_column(out)
                md.append(f"| {name.capitalize()} | -{opt} | {n(c.instructions_frontend)} | "
                          f"{n(c.instructions_network)} | {n(c.instructions_total)} | "
                          f"{n(c.flash_total)} |")
        md.append("")
    return "\n".join(md)


def source_table(source: Path, boards, tmp: Path) -> str:
    md = [f"### {source} (exact instructions, demo clip)", "",
          "| board | opt | front end | network | total | max/hop | flash (B) | RAM excl. audio (B) |",
          "|---|---|---|---|---|---|---|---|"]
    for board in boards:
        for opt in ("O2", "Os"):
            out = build_firmware(source, board, tmp / f"{board}-{opt}", opt=opt).out
            c = bench_column(out)
            md.append(f"| `{board}` | -{opt} | {n(c.instructions_frontend)} | "
                      f"{n(c.instructions_network)} | {n(c.instructions_total)} | {n(c.hop_max)} | "
                      f"{n(c.flash_total)} | {n(c.ram_total_excl_audio)} |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--boards", nargs="+", default=list(QEMU_BOARDS))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kws-bench-bundles")
    ap.add_argument("--source", type=Path, help="bench one source instead of the models")
    ap.add_argument("--write-docs", action="store_true",
                    help=f"replace the measured block of {DOC.relative_to(ROOT)}")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.source:
            print(source_table(args.source, args.boards, Path(tmp)))
            return
        md = model_tables(args.models, args.boards, args.cache, Path(tmp))
    print(md)
    if args.write_docs:
        text = DOC.read_text()
        if BEGIN not in text or END not in text:
            sys.exit(f"{DOC}: no {BEGIN} ... {END} block to replace")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = (head + BEGIN + "\n<!-- generated by benchmarks/firmware_bench.py --write-docs; "
               "do not edit by hand -->\n\n" + md + "\n" + END + tail)
        tmpf = DOC.with_suffix(".md.tmp")
        tmpf.write_text(new)
        tmpf.replace(DOC)
        print(f"# wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
