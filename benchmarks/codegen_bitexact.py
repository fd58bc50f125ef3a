"""Generated C vs the simulator, byte for byte, on the full sets (issue 5 must-shows).

For each published checkpoint (Tiny, Small) it quantizes with the default calibration (as
``kws-export quantize``; bundles cached in --cache), generates the C (``--kernels`` fast
and/or reference) and runs ``export.verify.verify_dir`` (host gcc, strict flags, UBSan
unless --no-ubsan) on:

- ``clean``: the 1,200 clips of ../shared/fixtures/speech_commands_test/;
- ``noisy0dB``: the same clips mixed with ../shared/fixtures/background_noise/ at 0 dB SNR
  (``export.quantize.mix_at_snr``, RMS scaling, seed 2 as benchmarks/quantization_accuracy.py);
- ``generated``: ``export.verify.generated_inputs(1000)`` (silence, rails, full-scale square
  waves, INT16_MIN runs, clipped noise, tones, chirps, impulses, bursts, LSB noise);
- ``fe``: 24 clips with the front end's internal intermediates compared too.

Every intermediate tensor of every frame is compared (front-end outputs, every op output,
the SA-SSM's dA, du and h, pooled, logits of kws_run and of the streaming API). It then
compiles the model for Cortex-M4 and M0+ with arm-none-eabi-gcc (strict flags) and reports
static RAM (arena + state) and flash (weights + LUTs + code) read with pyelftools.

Usage: python benchmarks/codegen_bitexact.py [--models tiny small] [--kernels fast]
       [--no-ubsan] [--cache DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from export import codegen, verify  # noqa: E402
from export import quantize as Q  # noqa: E402
from export.bundle import load_bundle  # noqa: E402
from export.hostc import STRICT_CFLAGS  # noqa: E402

from _published import SHARED, published_bundle  # noqa: E402


def arm_sizes(folder: Path, cpu: str, work: Path) -> dict:
    """Compile the generated folder for ``cpu`` (strict flags, -O2, sections) and sum the
    sections of every object: code (.text), const (.rodata), RAM (.data + .bss). Objects are
    linked with --gc-sections against a stub main calling the API, so only reachable code and
    data count."""
    from elftools.elf.elffile import ELFFile
    info = json.loads((folder / codegen.MODEL_JSON).read_text())
    main_c = work / f"main_{cpu}.c"
    main_c.write_text('#include "kws_model.h"\nstatic int16_t a[KWS_SAMPLES];\n'
                      'static int8_t l[KWS_N_CLASSES];\nint main(void)\n{\n    kws_init();\n'
                      '    kws_push_hop(a);\n    (void)kws_classify(l);\n'
                      '    return kws_run(a, l);\n}\n')
    elf = work / f"model_{cpu}.elf"
    cmd = ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", *STRICT_CFLAGS, "-O2",
           "-ffunction-sections", "-fdata-sections", f"-I{folder}",
           *[str(folder / s) for s in info["c_sources"]], str(main_c), "--specs=nano.specs",
           "--specs=nosys.specs", "-Wl,--gc-sections", "-o", str(elf)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    out = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    model_syms = {"code": 0, "const": 0, "ram": 0}
    with open(elf, "rb") as fh:
        e = ELFFile(fh)
        symtab = e.get_section_by_name(".symtab")
        secs = {i: s.name for i, s in enumerate(e.iter_sections())}
        objs = {}
        for s in symtab.iter_symbols():
            if s["st_size"] and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                objs[s.name] = (s["st_size"], secs.get(s["st_shndx"], ""), s["st_info"]["type"])
    # model symbols: everything from the generated folder (not libc / the stub main)
    model_names = set()
    for src in info["c_sources"]:
        o = work / (Path(src).stem + f"_{cpu}.o")
        subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", *STRICT_CFLAGS, "-O2",
                        "-ffunction-sections", "-fdata-sections", f"-I{folder}", "-c",
                        str(folder / src), "-o", str(o)], check=True)
        with open(o, "rb") as fh:
            for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols():
                if s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                    model_names.add(s.name)
    for name, (size, sec, kind) in objs.items():
        if name not in model_names:
            continue
        if sec.startswith(".text"):
            model_syms["code"] += size
        elif sec.startswith(".rodata"):
            model_syms["const"] += size
        elif sec.startswith(".bss") or sec.startswith(".data"):
            model_syms["ram"] += size
    return model_syms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--kernels", nargs="+", default=["fast"], choices=codegen.VARIANTS)
    ap.add_argument("--sets", nargs="+", default=["clean", "noisy0dB", "generated", "fe"])
    ap.add_argument("--no-ubsan", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "kws-codegen-bench")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (SHARED / "speech_commands_test").is_dir():
        print(f"needs {SHARED}/speech_commands_test (absent)")
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    clean, names = Q.load_clip_folder(SHARED / "speech_commands_test", what="evaluation")
    noise = Q.load_noise_bank(SHARED / "background_noise")
    noisy = Q.mix_at_snr(clean, names, noise, 0.0, seed=2)
    gen, gnames = verify.generated_inputs(1000)
    fe_idx = np.arange(0, len(clean), len(clean) // 24)[:24]
    sets = {"clean": (clean, names), "noisy0dB": (noisy, [n + "@0dB" for n in names]),
            "generated": (gen, gnames), "fe": (clean[fe_idx], [names[i] for i in fe_idx])}
    rows, results = [], []
    for model in args.models:
        bpath = published_bundle(model, args.cache)
        bundle = load_bundle(bpath)
        for variant in args.kernels:
            with tempfile.TemporaryDirectory(prefix="kws-cg-") as tmp:
                tmp = Path(tmp)
                folder = tmp / "model"
                gen_res = codegen.generate_c(bpath, folder, variant=variant)
                p = gen_res.plan
                for s in args.sets:
                    clips, nm = sets[s]
                    t0 = time.time()
                    r = verify.verify_dir(folder, clips, nm, frontend=(s == "fe"),
                                          sanitize=not args.no_ubsan, chunk=100,
                                          build_dir=tmp / "build")
                    dt = time.time() - t0
                    res = {"model": model, "kernels": variant, "set": s, "clips": r.n_clips,
                           "tensors": r.tensors, "values": r.values, "bit_exact": r.ok,
                           "mismatch": str(r.mismatch) if r.mismatch else None,
                           "ubsan": not args.no_ubsan, "seconds": round(dt, 1)}
                    results.append(res)
                    print(f"{model:5s} {variant:9s} {s:9s} {r.n_clips:5d} clips {r.tensors:3d} tensors "
                          f"{r.values:>14,} values  {'BIT-EXACT' if r.ok else 'MISMATCH'}"
                          f"  {dt:6.1f} s{'' if r.ok else '  ' + str(r.mismatch)}", flush=True)
                sizes = {cpu: arm_sizes(folder, cpu, tmp) for cpu in ("cortex-m4", "cortex-m0plus")}
                mem = {"model": model, "kernels": variant, "arena_bytes": p.arena_bytes,
                       "network_state_bytes": p.state_bytes, "const_bytes_weights_luts": p.const_bytes,
                       "arm": sizes}
                results.append(mem)
                rows.append(mem)
    print()
    print("| model | kernels | arena B | network state B | weights+LUTs B (generator) | "
          "M4 model code B | M4 model const B | M4 model RAM B | M0+ code B | M0+ RAM B |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        a4, a0 = m["arm"]["cortex-m4"], m["arm"]["cortex-m0plus"]
        print(f"| {m['model']} | {m['kernels']} | {m['arena_bytes']} | {m['network_state_bytes']} | "
              f"{m['const_bytes_weights_luts']} | {a4['code']} | {a4['const']} | {a4['ram']} | "
              f"{a0['code']} | {a0['ram']} |")
    print("(model RAM = arena + network state + front-end state + small statics; const = "
          "weights, LUTs, front-end tables; code = kernels + run functions)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r.get("bit_exact", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
