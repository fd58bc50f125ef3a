"""Firmware: build the stand-in model for every board, run it on the four QEMU boards,
exact instruction counts, size report, bench, real-board images (issue 8).

Skipped when arm-none-eabi-gcc / qemu-system-arm are absent.
"""

from __future__ import annotations

import json

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _fw_util import (QEMU_BOARDS, REAL_BOARDS, host_reference, model_variant, needs_gcc,
                      needs_qemu, synthetic_clips, write_f32)
from export import firmware as fw
from export.boards import board_names, load_board
from export.cli import main as cli
from export.firmware import (Counter, build_firmware, counter_from_calib, default_demo_clip,
                             run_firmware, standin_model_dir)


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """The stand-in built for each QEMU board."""
    if not fw.shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is absent")
    root = tmp_path_factory.mktemp("fw")
    return {b: build_firmware(standin_model_dir(), b, root / b).out for b in QEMU_BOARDS}


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> tuple[list[np.ndarray], list[Path]]:
    root = tmp_path_factory.mktemp("clips")
    clips = synthetic_clips(5)
    return clips, [write_f32(root / f"clip{i}.f32", c) for i, c in enumerate(clips)]


@pytest.fixture(scope="module")
def reference(clip_files, tmp_path_factory):
    return host_reference(clip_files[0], tmp_path_factory.mktemp("host"))


# ---------------------------------------------------------------------------- boards

def test_board_files_parse_and_cover_the_required_boards():
    names = board_names()
    for required in (*QEMU_BOARDS, *REAL_BOARDS, "cortex-m0plus"):
        assert required in names
    cores = {b: load_board(b).core for b in names}
    assert cores["mps2-an386"] == "cortex-m4" and cores["mps2-an500"] == "cortex-m7"
    assert cores["mps2-an505"] == "cortex-m33" and cores["mps3-an547"] == "cortex-m55"
    for b in REAL_BOARDS:
        board = load_board(b)
        assert board.flashable and not board.emulated and board.output == "uart"
    assert load_board("nucleo-l4r5zi").pyocd_pack == "stm32l4r5zitx"
    assert load_board("b-l475e-iot01a").pyocd_target == "stm32l475xg"
    assert load_board("arduino-nano33-ble-sense").pyocd_target == "nrf52840"


@needs_qemu
def test_every_qemu_machine_exists():
    out = subprocess.run(["qemu-system-arm", "-machine", "help"], capture_output=True,
                         text=True).stdout
    machines = {ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()}
    for name in board_names():
        board = load_board(name)
        if board.emulated:
            assert board.qemu_machine in machines


# ------------------------------------------------------------------------ QEMU runs

@needs_qemu
def test_all_qemu_boards_give_the_host_logits(builds, clip_files, reference):
    clips, files = clip_files
    for board, out in builds.items():
        result = run_firmware(out, files)
        got = [(c.label_index, c.logits) for c in result.clips]
        assert got == reference, board
        assert all(c.instructions > 50_000 for c in result.clips)
        assert 0 < result.stack_peak < result.stack_size


@needs_qemu
def test_folder_runs_in_one_boot_with_accuracy(builds, clip_files, reference, tmp_path,
                                               monkeypatch):
    clips, _ = clip_files
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
              "silence", "unknown"]
    folder = tmp_path / "sc"
    truth = ["yes", "no", "no", "up", "yes"]
    for i, (c, t) in enumerate(zip(clips, truth)):
        write_f32(folder / t / f"c{i}.f32", c)
    launches = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(fw.subprocess, "Popen",
                        lambda *a, **k: launches.append(a) or real_popen(*a, **k))
    result = run_firmware(builds["mps2-an386"], [folder])
    assert len(launches) == 1 and len(result.clips) == 5
    # clips come sorted by path: no/c1, no/c2, up/c3, yes/c0, yes/c4
    order = [1, 2, 3, 0, 4]
    assert [c.truth for c in result.clips] == [truth[i] for i in order]
    expected = np.mean([labels[reference[i][0]] == truth[i] for i in order])
    assert result.accuracy == pytest.approx(expected)
    assert result.n_labelled == 5


@needs_qemu
def test_instruction_counts_are_deterministic(builds, clip_files):
    _, files = clip_files
    a = run_firmware(builds["mps2-an386"], files)
    b = run_firmware(builds["mps2-an386"], files[::-1])
    assert [c.instructions for c in a.clips] == [c.instructions for c in b.clips][::-1]
    # the same binary on another core gives other (but again fixed) counts
    m55 = run_firmware(builds["mps3-an547"], files)
    assert [c.instructions for c in m55.clips] != [c.instructions for c in a.clips]


@needs_qemu
def test_counts_scale_exactly_with_work(tmp_path):
    # kws_run runs audio[0] iterations of a volatile loop, then the stand-in
    model = model_variant(tmp_path / "work", """
    volatile int32_t sink = 0;
    int32_t i;
    for (i = 0; i < audio[0]; i++) {
        sink += i;
    }
    return kws_run_real(audio, logits);""")
    out = build_firmware(model, "mps2-an386", tmp_path / "fw").out
    zero = np.zeros(16000, dtype=np.int16)
    files = []
    for k, n in enumerate((0, 100, 200, 300, 1000)):
        clip = zero.copy()
        clip[0] = n
        files.append(write_f32(tmp_path / f"w{k}.f32", clip))
    counts = [c.instructions for c in run_firmware(out, files).clips]
    steps = np.diff(counts)
    per_iter = steps[0] // 100
    assert per_iter >= 3 and steps[0] == 100 * per_iter
    assert list(steps) == [100 * per_iter, 100 * per_iter, 100 * per_iter, 700 * per_iter]


@needs_qemu
def test_dsp_intrinsics_match_portable_c(tmp_path):
    """cmsis_compiler.h's DSP path (ACLE / inline assembly, M4 and M55) gives the portable C
    results (host), including the edges: saturation, SMMLAR / SMMLSR wrap-around."""
    model = model_variant(tmp_path / "dsp", """
    uint32_t h = 2166136261u;
    int32_t i;
    int k;
    (void)audio;
    for (i = -70000; i < 70000; i += 37) {
        const uint32_t u = (uint32_t)i * 2654435761u;
        const int32_t s = (int32_t)(u >> 1) - 1073741824;
        h = (h ^ (uint32_t)__SSAT(s, 8)) * 16777619u;
        h = (h ^ (uint32_t)__SSAT(i, 16)) * 16777619u;
        h = (h ^ (uint32_t)__USAT(i, 8)) * 16777619u;
        h = (h ^ (uint32_t)__CLZ(u >> (uint32_t)(i & 31))) * 16777619u;
        h = (h ^ (uint32_t)__QADD(s, s)) * 16777619u;
        h = (h ^ (uint32_t)__QSUB(-s, s)) * 16777619u;
        h = (h ^ (uint32_t)__SMLAD(u, h, s)) * 16777619u;
        h = (h ^ (uint32_t)__SMUAD(u, ~u)) * 16777619u;
        h = (h ^ __SXTB16(u)) * 16777619u;
        h = (h ^ (uint32_t)__SMMULR(s, (int32_t)h)) * 16777619u;
        h = (h ^ (uint32_t)__SMMLAR(s, (int32_t)u, (int32_t)h)) * 16777619u;
        h = (h ^ (uint32_t)__SMMLSR((int32_t)u, s, (int32_t)h)) * 16777619u;
        h = (h ^ (uint32_t)__SMULWB(s, u)) * 16777619u;
        h = (h ^ (uint32_t)__SMULWT(s, u)) * 16777619u;
        h = (h ^ __SSAT16(u, 8)) * 16777619u;
        h = (h ^ __SSAT16(u, 1)) * 16777619u;
    }
    /* edges: INT32_MIN / INT32_MAX operands (SMMLAR / SMMLSR sums wrap modulo 2^64) */
    static const int32_t e[] = {INT32_MIN, INT32_MIN + 1, -65536, -32768, -1, 0, 1, 32767, 65536,
                                INT32_MAX - 1, INT32_MAX};
    for (i = 0; i < 11; i++) {
        for (k = 0; k < 11; k++) {
            const int32_t a = e[i], b = e[k], c = e[(i + k) % 11];
            h = (h ^ (uint32_t)__SMMULR(a, b)) * 16777619u;
            h = (h ^ (uint32_t)__SMMLAR(a, b, c)) * 16777619u;
            h = (h ^ (uint32_t)__SMMLSR(a, b, c)) * 16777619u;
            h = (h ^ (uint32_t)__SMULWB(a, (uint32_t)b)) * 16777619u;
            h = (h ^ (uint32_t)__SMULWT(a, (uint32_t)b)) * 16777619u;
            h = (h ^ __SSAT16((uint32_t)a, 16)) * 16777619u;
        }
    }
    for (k = 0; k < KWS_N_CLASSES; k++) {
        logits[k] = (int8_t)(int32_t)((h >> (uint32_t)(2 * k)) & 0x7Fu);
    }
    return 0;""")
    src = (model / "standin_model.c").read_text()
    (model / "standin_model.c").write_text(src.replace('#include "kws_intmath.h"',
                                                       '#include "kws_intmath.h"\n'
                                                       '#include "cmsis_compiler.h"'))
    clip = write_f32(tmp_path / "z.f32", np.zeros(16000, np.int16))
    ref = host_reference([np.zeros(16000, np.int16)], tmp_path, model=model, stream=False)
    for board in ("mps2-an386", "mps3-an547"):
        out = build_firmware(model, board, tmp_path / board).out
        got = run_firmware(out, [clip]).clips[0]
        assert got.logits == ref[0][1], board


def test_counter_arithmetic():
    c = Counter(clock_hz=25_000_000, shift=8, handler=5, overhead=26)
    assert c.ticks_per_insn == pytest.approx(6.4)
    for n in (0, 1, 7, 12345, 10_000_001):
        for phase in (-0.9, 0.0, 0.9):          # +-1 tick of SysTick phase
            ticks = int(round(n * 6.4 + phase))
            assert c.raw(ticks) == n
            # an interval with 2 SysTick wraps holds 2 handler runs of 5 instructions
            assert c.raw(int(round((n + 10) * 6.4 + phase)), wraps=2) == n
    assert c.instructions(int((1000 + 26) * 6.4)) == 1000
    fields = {"handler": "5", "empty": f"{int(26 * 6.4)},0", "n1": "1000", "n2": "3000",
              "loop1": f"{int((2000 + 40) * 6.4)},0", "loop2": f"{int((6000 + 40) * 6.4)},0"}
    assert counter_from_calib(25_000_000, fields).overhead == 26
    with pytest.raises(fw.FirmwareError, match="self-test failed"):
        counter_from_calib(20_000_000, fields)
    with pytest.raises(fw.FirmwareError, match="too coarse"):
        counter_from_calib(1_000_000, fields)


def test_hang_location_skips_samples_that_name_no_code(monkeypatch, tmp_path):
    """A monitor sample can be QEMU's transient EXC_RETURN value (seen 4 in 500 on a
    spinning kws_run) or the SysTick wrap handler; the next sample in code is reported."""
    names = {0x32CC: "kws_run+0xc", 0x100: "SysTick_Handler+0x2"}
    monkeypatch.setattr(fw, "symbolize", lambda elf, pc: names.get(pc, "?"))
    monkeypatch.setattr(fw.time, "sleep", lambda s: None)
    seq = iter([0xFFFFFFF8, 0x100, 0x32CC])
    monkeypatch.setattr(fw, "_monitor_pc", lambda sock: next(seq))
    assert fw._hang_location(tmp_path / "m", tmp_path / "e") == "; PC=0x000032cc in kws_run+0xc"
    # never a code address: the last sample is still shown; no answer at all: nothing
    monkeypatch.setattr(fw, "_monitor_pc", lambda sock: 0xFFFFFFF8)
    assert fw._hang_location(tmp_path / "m", tmp_path / "e", tries=3) == "; PC=0xfffffff8 in ?"
    monkeypatch.setattr(fw, "_monitor_pc", lambda sock: None)
    assert fw._hang_location(tmp_path / "m", tmp_path / "e", tries=3) == ""


# ---------------------------------------------------------------------- size, bench

@needs_gcc
def test_size_report_and_outputs(builds):
    out = builds["mps2-an386"]
    m = fw.read_manifest(out)
    s = m["sizes"]
    for f in ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.map"):
        assert (out / f).stat().st_size > 0
    assert (out / "firmware.hex").read_text().startswith(":")
    flash_secs = [x for x in s["sections"] if "flash" in x["region"]]
    assert s["flash_total"] == sum(x["size"] for x in flash_secs)
    assert {x["name"] for x in flash_secs} >= {".vectors", ".text", ".rodata"}
    assert s["ram_static"] == s["ram_data"] + s["ram_bss"]
    assert s["audio_buffer"] == 32000 and s["demo_clip"] == 0
    assert s["stack_reserved"] == load_board("mps2-an386").stack_size
    comps = s["components"]
    assert set(comps) >= {"app", "model"} and comps["model"]["flash"] > 500
    assert sum(v["flash"] for v in comps.values()) <= s["flash_total"]
    sizes = [x["size"] for x in s["largest_symbols"]]
    assert sizes == sorted(sizes, reverse=True) and s["largest_symbols"][0]["name"] == "kws_audio"
    assert (out / "firmware.bin").stat().st_size <= s["flash_total"] + 64
    assert m["model"]["macs_per_inference"] == 28992 and m["model"]["logit_scale"] == 0.125
    assert m["counter"] == {"icount_shift": 8, "clock_hz": 25_000_000, "unit": "instructions"}


@needs_gcc
def test_builds_are_byte_identical(builds, tmp_path):
    again = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "again").out
    for f in ("firmware.elf", "firmware.bin", "firmware.hex"):
        assert (again / f).read_bytes() == (builds["mps2-an386"] / f).read_bytes(), f
    for f in ("kws_main.c", "kws_startup.c", "kws_linker.ld"):
        assert (again / "src/app" / f).read_bytes() == (builds["mps2-an386"] / "src/app" / f).read_bytes()


@needs_qemu
def test_bench_splits_front_end_and_network(builds, tmp_path):
    res = fw.bench_firmware(builds["mps2-an386"])
    a = res.int8
    assert a.instructions_total == a.instructions_frontend + a.instructions_network
    assert a.instructions_frontend > 50_000 and a.instructions_network > 50_000
    assert a.stream_matches is True and 0 < a.hop_max < a.instructions_frontend
    assert res.mac_bound == 28992 // 2 and res.float32 is None
    assert a.ram_total_excl_audio == a.ram_static - 32000 + a.stack_peak
    # deterministic: the same numbers again
    assert fw.bench_firmware(builds["mps2-an386"]).int8 == a
    # float32 column hook: a float32 build of the same board fills it; an int8 build is
    # refused before QEMU runs (it gave a meaningless 1.00x). The stand-in model is int8 C:
    # its manifest is relabelled float32 to stand in for a float build (fast, no float C).
    other = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "os", opt="Os").out
    with pytest.raises(fw.FirmwareError, match=r"--float-build needs a float32 build, this one is int8"):
        fw.bench_firmware(builds["mps2-an386"], float_build=other)
    man = json.loads((other / "firmware.json").read_text())
    man["model"]["precision"] = "float32"
    (other / "firmware.json").write_text(json.dumps(man))
    res2 = fw.bench_firmware(builds["mps2-an386"], float_build=other, macs=1000)
    assert res2.float32 is not None and res2.float32.instructions_total > 0
    assert res2.mac_bound == 500
    rows = {r[0]: r for r in res2.rows()}
    assert rows["instructions: total"][3] == "500"
    with pytest.raises(fw.BoardError, match="same board"):
        fw.bench_firmware(builds["mps2-an386"], float_build=builds["mps2-an500"])


# ---------------------------------------------------------------------- real boards

@needs_gcc
@pytest.mark.parametrize("board", [*REAL_BOARDS, "cortex-m0plus"])
def test_real_board_images(board, tmp_path):
    res = build_firmware(standin_model_dir(), board, tmp_path / board)
    b = load_board(board)
    for f in (res.elf, res.bin, res.hex):
        assert f.stat().st_size > 0
    seg = fw.load_segments(res.elf)
    assert seg[0][0] == b.flash.origin and all(b.flash.contains(a, n) for a, n in seg)
    assert res.manifest["sizes"]["demo_clip"] == 32000
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(res.elf)], capture_output=True,
                         text=True).stdout
    assert "bkpt" not in dis                     # no semihosting on a real board
    assert "--specs=nosys.specs" in res.manifest["ldflags"]


@needs_qemu
def test_real_board_firmware_runs_in_qemu(builds, tmp_path):
    """mps2-an386-uart: the real-board app (UART, built-in demo clip, no semihosting)."""
    out = build_firmware(standin_model_dir(), "mps2-an386-uart", tmp_path / "uart").out
    demo = run_firmware(out, [])
    assert len(demo.clips) == 1
    ref = run_firmware(builds["mps2-an386"], [write_f32(tmp_path / "demo.f32",
                                                        default_demo_clip()[0])])
    assert demo.clips[0].logits == ref.clips[0].logits
    assert abs(demo.clips[0].instructions - ref.clips[0].instructions) < 100
    col = fw.bench_column(out)
    assert col.instructions_total > 0 and col.hop_max is None


# ------------------------------------------------------------------------------ CLI

@needs_qemu
def test_cli_build_run_bench(tmp_path, clip_files):
    _, files = clip_files
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(cli, ["build", str(standin_model_dir()), "--board", "mps2-an386",
                            "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "largest symbols" in r.output and "kws_audio" in r.output
    r = runner.invoke(cli, ["run", str(out), str(files[1]), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "instructions=" in r.output and "logits=" in r.output and "one QEMU boot" in r.output
    assert (tmp_path / "r.json").is_file()
    r = runner.invoke(cli, ["bench", str(out)])
    assert r.exit_code == 0, r.output
    assert "instructions: front end" in r.output and "MAC/2 bound" in r.output
    r = runner.invoke(cli, ["boards"])
    assert r.exit_code == 0 and "nucleo-l4r5zi" in r.output


@needs_qemu
@pytest.mark.fixtures
def test_real_clips_and_speech_commands_folder(builds, fixtures_dir, speech_commands_test):
    audio = fixtures_dir / "audio"
    res = run_firmware(builds["mps2-an386"], [audio / "yes.f32", audio / "no.f32",
                                              audio / "down.f32"])
    assert len(res.clips) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = run_firmware(builds["mps2-an386"], [speech_commands_test])
    assert len(sc.clips) == 1200 and sc.n_labelled == 1200 and sc.accuracy is not None
