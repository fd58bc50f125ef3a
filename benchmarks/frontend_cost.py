"""Cost of the fixed-point front end: instructions per 10 ms hop and per inference, code and
RAM bytes.

1. Emulated Cortex-M4 (mps2-an386, QEMU -icount, exact instruction counts) and other QEMU
   boards: a front-end-only model folder (kws_frontend.c + rendered params + a glue that
   implements the kws_model.h contract; its "network" only reads the 101 output rows)
   built with export.firmware and benchmarked with bench_column: kws_frontend_run (reset,
   100 hops, finish), the 101 output rows, the streaming pass (the most expensive
   push_hop; finish + rows), hence the average hop and the finish. Cortex-M0+ is built only.
2. --profile: where the instructions go on mps2-an386 (QEMU's execution trace, each
   instruction attributed to its innermost inlined function by addr2line).
3. Host proxy: valgrind --tool=callgrind instruction counts of the same C (-O2, x86-64,
   the portable C paths, no assembly) per kws_frontend_push_hop and kws_frontend_finish.
4. sizeof(kws_frontend_state_t), the scratch, code and constants, per target.

    python benchmarks/frontend_cost.py [--clip CLIP] [--boards mps2-an386,...] [--profile]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import frontend_c_util as fc  # noqa: E402
from export import frontend_fixed as ff  # noqa: E402
from firmware_templates import template_root  # noqa: E402
from nanomamba.audio import load_audio  # noqa: E402

FIX = ROOT.parent / "shared" / "fixtures"

MODEL_H = """/* kws_model.h - FRONT-END-ONLY benchmark model (benchmarks/frontend_cost.py): the
 * kws_model.h contract around kws_frontend.c; its "network" only reads the feature rows. */
#ifndef KWS_MODEL_H
#define KWS_MODEL_H
#include <stdint.h>
#define KWS_SAMPLES 16000
#define KWS_HOP 160
#define KWS_N_CLASSES 12
#define KWS_MODEL_NAME "frontend_only"
#define KWS_LOGIT_SCALE 1.0
#define KWS_LOGIT_ZERO_POINT 0
void kws_init(void);
int kws_run(const int16_t *audio, int8_t *logits);
int kws_run_frontend(const int16_t *audio);
int kws_run_network(int8_t *logits);
void kws_reset(void);
void kws_push_hop(const int16_t *hop);
int kws_classify(int8_t *logits);
extern const char *const kws_labels[KWS_N_CLASSES];
#endif
"""

GLUE_C = """/* fe_model.c - FRONT-END-ONLY benchmark model: kws_model.h over kws_frontend.c. */
#include "kws_model.h"
#include "kws_frontend.h"
#include "frontend_params.h"

static kws_frontend_state_t fe_state;
static int32_t fe_scratch[KWS_FE_SCRATCH_WORDS];
const uint32_t kws_fe_state_bytes = (uint32_t)sizeof(kws_frontend_state_t);

const char *const kws_labels[KWS_N_CLASSES] = {"yes", "no", "up", "down", "left", "right",
                                               "on", "off", "stop", "go", "silence", "unknown"};

void kws_init(void) { }

/* Reads the 101 output rows one at a time (what the network will do); nothing else. */
static int fe_rows(int8_t *logits)
{
    int16_t f[KWS_FE_N_MELS];
    int8_t s[KWS_FE_N_MELS];
    for (int32_t t = 0; t < KWS_FE_N_FRAMES; t++) {
        if (kws_frontend_output_row(&fe_state, t, f, s) != KWS_FE_OK) { return -1; }
    }
    for (int k = 0; k < KWS_N_CLASSES; k++) { logits[k] = (int8_t)((f[k] >> 8) + s[k]); }
    return 0;
}

int kws_run_frontend(const int16_t *audio)
{
    return kws_frontend_run(&fe_state, fe_scratch, &kws_frontend_params, audio, 0, 0) == KWS_FE_OK ? 0 : -1;
}
int kws_run_network(int8_t *logits) { return fe_rows(logits); }
int kws_run(const int16_t *audio, int8_t *logits)
{
    (void)kws_run_frontend(audio);
    return kws_run_network(logits);
}
void kws_reset(void) { (void)kws_frontend_reset(&fe_state, &kws_frontend_params); }
void kws_push_hop(const int16_t *hop) { (void)kws_frontend_push_hop(&fe_state, fe_scratch, hop); }
int kws_classify(int8_t *logits)
{
    (void)kws_frontend_finish(&fe_state, fe_scratch);
    return fe_rows(logits);
}
"""


def model_folder(params: dict, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "kws_model.h").write_text(MODEL_H)
    (dest / "fe_model.c").write_text(GLUE_C)
    shutil.copy(template_root() / "kernels" / "kws_frontend.c", dest / "kws_frontend.c")
    for name, text in ff.render_frontend_params_c(params, fc.PROVENANCE).items():
        (dest / name).write_text(text)
    return dest


def real_params() -> dict:
    import nanomamba
    model = nanomamba.load_checkpoint(FIX / "upstream" / "nanomamba_tiny.pt")
    return ff.make_frontend_params(model.frontend.mel_fb.numpy(),
                                   float(model.frontend.snr_estimator.noise_scale.detach()))


def callgrind(exe: Path, audio: np.ndarray, fn: str, tmp: Path) -> int:
    inp = tmp / "cg_audio.bin"
    audio.astype(np.int16).tofile(inp)
    out = tmp / f"cg.{fn}.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--toggle-collect={fn}",
                    f"--callgrind-out-file={out}", str(exe), "bench", str(inp), str(tmp)],
                   check=True, capture_output=True)
    m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M) or \
        re.search(r"^totals:\s+(\d+)", out.read_text(), re.M)
    return int(m.group(1))


def profile(out: Path, clip: Path, tmp: Path, top: int = 24) -> list[tuple[str, int]]:
    """(function, instructions) of one run of ``clip`` on the mps2-an386 build in ``out``:
    QEMU's in_asm + exec trace (no TB chaining), each executed instruction attributed to its
    innermost inlined function (arm-none-eabi-addr2line -i)."""
    import collections

    from export.boards import load_board
    from export.firmware import CLIPS_FILE, qemu_command
    audio = load_audio(clip, dtype="int16")
    (tmp / CLIPS_FILE).write_bytes(audio.astype("<i2").tobytes())
    log = tmp / "qemu.log"
    cmd = qemu_command(load_board("mps2-an386"), (out / "firmware.elf").resolve(), "run")
    subprocess.run(cmd + ["-d", "in_asm,exec,nochain", "-D", str(log)], cwd=tmp,
                   capture_output=True, timeout=900)
    tb: dict[int, list[int]] = {}
    cur = None
    count: collections.Counter = collections.Counter()
    with open(log) as fh:
        for line in fh:
            if line.startswith("IN:") or not line.strip():
                cur = None
            elif line.startswith("0x"):
                a = int(line[2:10], 16)
                if cur is None:
                    cur = a
                    tb[a] = []
                tb[cur].append(a)
            elif line.startswith("Trace"):
                m = re.search(r"/([0-9a-f]{8})/", line)
                if m:
                    for a in tb.get(int(m.group(1), 16), []):
                        count[a] += 1
    log.unlink()
    addrs = sorted(count)
    res = subprocess.run(["arm-none-eabi-addr2line", "-a", "-f", "-i", "-e", str(out / "firmware.elf")]
                         + [hex(a) for a in addrs], capture_output=True, text=True).stdout.splitlines()
    fn: dict[int, str] = {}
    cur_a, first = None, None
    for ln in res:
        if ln.startswith("0x"):
            cur_a, first = int(ln, 16), None
        elif first is None and ":" not in ln:
            fn[cur_a] = first = ln
    by: collections.Counter = collections.Counter()
    for a, c in count.items():
        by[fn.get(a, "?")] += c
    return by.most_common(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=FIX / "audio" / "yes.f32")
    ap.add_argument("--boards", default="mps2-an386,mps2-an500,mps2-an505,mps3-an547")
    ap.add_argument("--profile", action="store_true", help="where the instructions go (mps2-an386)")
    args = ap.parse_args()
    console = Console(width=150)
    params = real_params() if (FIX / "upstream").exists() else ff.make_frontend_params(fc.synthetic_mel_fb(), 4.2)
    audio = load_audio(args.clip, dtype="int16")[None]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # --- emulated boards
        from export.firmware import bench_column, build_firmware
        src = model_folder(params, tmp / "fe_model")
        t = Table("board", "per hop (avg of 100 push_hop)", "max hop", "finish", "101 output rows",
                  "per inference (hops + finish + rows)", "flash total", "RAM excl. audio (incl. stack)",
                  title=f"front end on QEMU (exact instructions, -O2), clip {args.clip.name}")
        builds = {}
        for board in args.boards.split(","):
            out = build_firmware(src, board, tmp / f"fw-{board}").out
            builds[board] = out
            c = bench_column(out, clip=args.clip)
            rows = c.instructions_network
            finish = c.classify - rows
            hop_avg = (c.instructions_frontend - finish) / 100
            t.add_row(board, f"{hop_avg:,.0f}", f"{c.hop_max:,}", f"{finish:,}", f"{rows:,}",
                      f"{c.instructions_frontend + rows:,}", f"{c.flash_total:,}",
                      f"{c.ram_total_excl_audio:,}")
        build_firmware(src, "cortex-m0plus", tmp / "fw-m0")
        console.print(t)
        console.print("cortex-m0plus: builds warning-free (no emulator for it)")
        if args.profile and "mps2-an386" in builds:
            pt = Table("function (innermost inlined)", "instructions", "per hop", "share",
                       title=f"where the instructions go: mps2-an386, one run of {args.clip.name} "
                             "(firmware start-up included)")
            prof = profile(builds["mps2-an386"], args.clip, tmp)
            total = sum(v for _, v in prof)
            for name, v in prof:
                pt.add_row(name, f"{v:,}", f"{v / 100:,.0f}", f"{100 * v / total:.1f} %")
            console.print(pt)
        # --- sizes per target
        sizes = Table("target", "sizeof(kws_frontend_state_t)", "scratch", "kws_frontend.o .text",
                      "frontend_params.o .rodata+.text", title="front-end memory (bytes)")
        for cpu in ("cortex-m4", "cortex-m0plus"):
            objs = {}
            for c_file in ("kws_frontend.c", "frontend_params.c", "fe_model.c"):
                o = tmp / f"{cpu}-{c_file}.o"
                subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror",
                                "-Wconversion", "-O2", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft",
                                f"-I{template_root() / 'kernels'}", f"-I{ROOT / 'cmsis_stub'}",
                                f"-I{src}", "-c", str(src / c_file), "-o", str(o)], check=True)
                objs[c_file] = o
            sz = subprocess.run(["arm-none-eabi-size", str(objs["kws_frontend.c"]),
                                 str(objs["frontend_params.c"])], check=True, capture_output=True,
                                text=True).stdout.splitlines()[1:]
            state = _state_size(objs["fe_model.c"])
            sizes.add_row(cpu, f"{state:,}", f"{4 * 512:,}", sz[0].split()[0], sz[1].split()[0])
        console.print(sizes)
        # --- host proxy
        exe = fc.build(params, tmp / "host", taps=False, sanitize=False, opt="-O2")
        push = callgrind(exe, audio, "kws_frontend_push_hop", tmp)
        fin = callgrind(exe, audio, "kws_frontend_finish", tmp)
        h = Table("function (x86-64 -O2, callgrind, portable C)", "instructions", "per call",
                  title="host proxy (one clip)")
        h.add_row("kws_frontend_push_hop x 100", f"{push:,}", f"{push / 100:,.0f}")
        h.add_row("kws_frontend_finish (frames 99, 100 + norm)", f"{fin:,}", f"{fin:,}")
        console.print(h)


def _state_size(obj: Path) -> int:
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        sym = symtab.get_symbol_by_name("kws_fe_state_bytes")[0]
        sec = elf.get_section(sym["st_shndx"])
        data = sec.data()[sym["st_value"]: sym["st_value"] + 4]
        return int.from_bytes(data, "little")


if __name__ == "__main__":
    main()
