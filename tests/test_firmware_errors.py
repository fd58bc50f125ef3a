"""Firmware bad input and faults, each a one-line error (issue 8): unknown board, missing
tools, existing output, bad model folders, a faulting and a hanging firmware in QEMU, and
pyOCD flashing without hardware (dry run, no probe, missing CMSIS-Pack)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _fw_util import model_variant, needs_gcc, needs_qemu, one_line_error, write_f32
from export import firmware as fw
from export.boards import BoardError, load_board
from export.cli import main as cli
from export.firmware import build_firmware, run_firmware, standin_model_dir
from export.hostc import ToolError
from nanomamba.errors import AudioError

HAVE_PYOCD = importlib.util.find_spec("pyocd") is not None


@pytest.fixture(scope="module")
def an386(tmp_path_factory) -> Path:
    if not fw.shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is absent")
    return build_firmware(standin_model_dir(), "mps2-an386",
                          tmp_path_factory.mktemp("e") / "fw").out


@pytest.fixture(scope="module")
def l475(tmp_path_factory) -> Path:
    if not fw.shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is absent")
    return build_firmware(standin_model_dir(), "b-l475e-iot01a",
                          tmp_path_factory.mktemp("e") / "l475").out


def test_unknown_board_lists_the_known_ones(tmp_path):
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "--board", "mps9",
                                 "-o", str(tmp_path / "x")])
    line = one_line_error(r)
    assert "unknown board 'mps9'" in line and "mps2-an386" in line and "nucleo-l4r5zi" in line
    assert not (tmp_path / "x").exists()


def test_bad_board_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ncore = "cortex-m99"\n')
    with pytest.raises(BoardError, match="unknown core 'cortex-m99'"):
        load_board(str(bad))


def test_missing_arm_gcc_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_ARM_GCC", "no-such-arm-none-eabi-gcc")
    with pytest.raises(ToolError, match="apt-get install gcc-arm-none-eabi "
                                        "libnewlib-arm-none-eabi"):
        build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@needs_gcc
def test_missing_qemu_says_how_to_install(an386, monkeypatch, tmp_path):
    monkeypatch.setenv("KWS_QEMU", "no-such-qemu-system-arm")
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    r = CliRunner().invoke(cli, ["run", str(an386), str(clip)])
    assert "apt-get install qemu-system-arm" in one_line_error(r)


@needs_gcc
def test_existing_output_needs_force(an386, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(fw.OutputExistsError, match="--force"):
        build_firmware(standin_model_dir(), "mps2-an386", out)
    assert (out / "keep.txt").read_text() == "mine"
    build_firmware(standin_model_dir(), "mps2-an386", out, force=True)
    assert not (out / "keep.txt").exists() and (out / "firmware.elf").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]      # no temp siblings


@needs_gcc
def test_compile_error_loses_nothing(tmp_path):
    model = model_variant(tmp_path / "m", "    return undeclared_thing;")
    with pytest.raises(fw.FirmwareError, match="compiling for mps2-an386.*undeclared_thing"):
        build_firmware(model, "mps2-an386", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@needs_gcc
def test_warnings_are_errors(tmp_path):
    model = model_variant(tmp_path / "m", "    int32_t big = 70000;\n    int16_t small = big;\n"
                                          "    (void)small;\n    return kws_run_real(audio, logits);")
    with pytest.raises(fw.FirmwareError, match="conversion"):
        build_firmware(model, "mps2-an386", tmp_path / "out")


def test_bad_model_folders(tmp_path):
    with pytest.raises(fw.FirmwareError, match="no kws_model.h"):
        fw.model_source_from_folder(tmp_path)
    (tmp_path / "kws_model.h").write_text("#define KWS_SAMPLES 16000\nvoid kws_init(void);\n")
    with pytest.raises(fw.FirmwareError, match="does not declare .*kws_run"):
        fw.model_source_from_folder(tmp_path)
    with pytest.raises(fw.FirmwareError, match="no such model folder"):
        fw.resolve_model_source(tmp_path / "nope", tmp_path)
    # a checkpoint goes through the C generator (export.codegen), whose loader refuses it
    from nanomamba.errors import KwsError
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"x")
    with pytest.raises(KwsError, match="model.pt"):
        fw.resolve_model_source(ckpt, tmp_path)


@needs_qemu
def test_fault_prints_the_fault_registers(tmp_path):
    model = model_variant(tmp_path / "m", """
    if (audio[0] == 1234) {
        __builtin_trap();
    }
    return kws_run_real(audio, logits);""")
    out = build_firmware(model, "mps2-an505", tmp_path / "fw").out
    ok = write_f32(tmp_path / "ok.f32", np.zeros(16000, np.int16))
    bad = np.zeros(16000, np.int16)
    bad[0] = 1234
    bad = write_f32(tmp_path / "bad.f32", bad)
    r = CliRunner().invoke(cli, ["run", str(out), str(ok), str(bad)])
    line = one_line_error(r)
    for part in ("HardFault", "UNDEFINSTR", "CFSR=0x00010000", "HFSR=0x40000000", "MMFAR=",
                 "BFAR=", "PC=0x", "at kws_run+0x", "clip 2 of 2", "bad.f32"):
        assert part in line, part


@needs_qemu
def test_hang_times_out_with_the_pc(tmp_path):
    model = model_variant(tmp_path / "m", """
    volatile int spin = 1;
    while (audio[0] == 1234 && spin) {
    }
    return kws_run_real(audio, logits);""")
    out = build_firmware(model, "mps2-an386", tmp_path / "fw").out
    bad = np.zeros(16000, np.int16)
    bad[0] = 1234
    with pytest.raises(fw.FirmwareTimeout, match=r"printed nothing for 1\.5 s .*clip 1 of 1"
                                                 r".*PC=0x[0-9a-f]{8} in kws_run\+0x"):
        run_firmware(out, [write_f32(tmp_path / "bad.f32", bad)], timeout=1.5)


@needs_gcc
def test_run_rejects_wrong_boards_and_inputs(an386, l475, tmp_path):
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    with pytest.raises(BoardError, match="built for mps2-an386, not mps2-an500"):
        run_firmware(an386, [clip], board="mps2-an500")
    with pytest.raises(BoardError, match="not emulated"):
        run_firmware(l475, [clip])
    with pytest.raises(AudioError, match="no such clip"):
        run_firmware(an386, [tmp_path / "missing.wav"])
    with pytest.raises(fw.FirmwareError, match="no clips"):
        run_firmware(an386, [])
    with pytest.raises(fw.FirmwareError, match="not a firmware build folder"):
        run_firmware(tmp_path, [clip])


@needs_qemu
def test_run_json_output_is_checked_first_and_never_half_written(an386, tmp_path):
    """--json: a folder or an existing file is refused before QEMU runs (no traceback, no
    leftover temp file); a missing parent folder is created; --force overwrites."""
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    runner = CliRunner()
    folder = tmp_path / "out"
    folder.mkdir()
    msg = one_line_error(runner.invoke(cli, ["run", str(an386), str(clip), "--json", str(folder)]))
    assert str(folder) in msg and "is a directory" in msg
    existing = tmp_path / "r.json"
    existing.write_text("keep")
    msg = one_line_error(runner.invoke(cli, ["run", str(an386), str(clip), "--json", str(existing)]))
    assert str(existing) in msg and "--force" in msg and existing.read_text() == "keep"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    msg = one_line_error(runner.invoke(cli, ["run", str(an386), str(clip), "--json",
                                              "/proc/nope/j.json"]))
    assert msg.startswith("error: /proc/nope/j.json: cannot create the output in /proc: ")
    nested = tmp_path / "new" / "dir" / "r.json"
    r = runner.invoke(cli, ["run", str(an386), str(clip), "--json", str(nested)])
    assert r.exit_code == 0, r.output
    assert '"board": "mps2-an386"' in nested.read_text()
    r = runner.invoke(cli, ["run", str(an386), str(clip), "--json", str(existing), "--force"])
    assert r.exit_code == 0, r.output
    assert '"board": "mps2-an386"' in existing.read_text()
    manifest = (an386 / "firmware.json").read_text()
    for victim in (an386 / "firmware.json", clip):      # inputs: never overwritten, even with --force
        msg = one_line_error(runner.invoke(cli, ["run", str(an386), str(clip), "--json", str(victim),
                                                  "--force"]))
        assert "is the input" in msg, msg
    assert (an386 / "firmware.json").read_text() == manifest


@needs_gcc
def test_flash_dry_run_says_what_goes_where(l475):
    r = CliRunner().invoke(cli, ["flash", str(l475), "--board", "b-l475e-iot01a", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "firmware.hex: 0x08000000-0x08" in r.output and "stm32l475xg" in r.output
    plan = fw.flash_plan(l475, "b-l475e-iot01a")
    assert plan.ranges[0][0] == 0x08000000 and plan.file.name == "firmware.hex"


@needs_gcc
def test_flash_refuses_wrong_or_emulated_boards(an386, l475):
    with pytest.raises(BoardError, match="built for b-l475e-iot01a, not nucleo-l4r5zi"):
        fw.flash_plan(l475, "nucleo-l4r5zi")
    with pytest.raises(BoardError, match="use kws-export run"):
        fw.flash_plan(an386, "mps2-an386")


@needs_gcc
@pytest.mark.skipif(not HAVE_PYOCD, reason="pyOCD is absent (pip install pyocd)")
def test_flash_without_probe(l475):
    from pyocd.core.helpers import ConnectHelper
    if ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False):
        pytest.skip("a debug probe is attached to this machine")
    r = CliRunner().invoke(cli, ["flash", str(l475), "--board", "b-l475e-iot01a"])
    assert "no debug probe attached" in one_line_error(r)


@needs_gcc
@pytest.mark.skipif(not HAVE_PYOCD, reason="pyOCD is absent (pip install pyocd)")
def test_flash_missing_cmsis_pack(tmp_path):
    if fw._pyocd_target_available("stm32l4r5zitx"):
        pytest.skip("the STM32L4R5 CMSIS-Pack is installed here")
    out = build_firmware(standin_model_dir(), "nucleo-l4r5zi", tmp_path / "n").out
    for extra in ([], ["--dry-run"]):
        r = CliRunner().invoke(cli, ["flash", str(out), "--board", "nucleo-l4r5zi", *extra])
        assert "pyocd pack install stm32l4r5zitx" in one_line_error(r)


@needs_gcc
def test_build_folder_gets_umask_permissions(an386):
    """The build folder is not left 0700 by mkdtemp."""
    import os
    import stat
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(an386.stat().st_mode) == 0o777 & ~mask


@needs_gcc
def test_demo_clip_on_a_qemu_board_is_checked_then_ignored_with_a_warning(tmp_path):
    """A QEMU board embeds no demo clip: a missing --demo-clip was silently accepted."""
    with pytest.raises(AudioError, match="no such file"):
        build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "a",
                       demo_clip=tmp_path / "missing.wav")
    assert not (tmp_path / "a").exists()
    clip = write_f32(tmp_path / "c.f32", np.zeros(16000, np.int16))
    with pytest.warns(UserWarning, match="--demo-clip ignored: mps2-an386"):
        build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "b", demo_clip=clip)


def test_firmware_output_that_is_not_utf8_is_read_not_a_hang(tmp_path, monkeypatch):
    """QA: bytes that are not UTF-8 killed the output reader thread (UnicodeDecodeError),
    then run waited `timeout` s for a "hung" firmware. A fake QEMU prints such bytes."""
    import time
    fake = tmp_path / "fake-qemu"
    fake.write_text("#!/bin/sh\nprintf '\\377\\376 noise\\nKWS boot\\n\\377KWS x\\nKWS done\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KWS_QEMU", str(fake))
    t0 = time.monotonic()
    res = fw.run_qemu(tmp_path, load_board("mps2-an386"), [np.zeros(16000, np.int16)],
                      timeout=30)
    assert time.monotonic() - t0 < 10
    assert [t for t, _ in res.lines] == ["boot", "done"]


def test_output_reader_failure_is_reported(tmp_path, monkeypatch):
    """A reader thread that fails hands the error over instead of dying silently."""
    fake = tmp_path / "fake-qemu"
    fake.write_text("#!/bin/sh\nprintf 'KWS boot\\n'; sleep 20\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KWS_QEMU", str(fake))
    real_popen = fw.subprocess.Popen

    class Broken:
        def __iter__(self):
            raise OSError("read failed")

    def popen(*a, **k):
        p = real_popen(*a, **k)
        p.stdout = Broken()
        return p
    monkeypatch.setattr(fw.subprocess, "Popen", popen)
    with pytest.raises(fw.FirmwareError, match="could not read the output .*read failed"):
        fw.run_qemu(tmp_path, load_board("mps2-an386"), [np.zeros(16000, np.int16)], timeout=30)


@needs_gcc
@pytest.mark.parametrize("damage", ["truncated", "text", "host"])
def test_damaged_elf_is_named_before_qemu(an386, tmp_path, damage):
    """QA: a truncated or replaced firmware.elf made run/bench say "QEMU stopped ... Lockup"
    without naming the file."""
    import shutil
    out = tmp_path / "fw"
    shutil.copytree(an386, out)
    elf = out / "firmware.elf"
    data = elf.read_bytes()
    elf.write_bytes({"truncated": data[:len(data) // 2], "text": b"not an elf\n",
                     "host": Path(__import__("sys").executable).resolve().read_bytes()[:4096]}[damage])
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    for args in (["run", str(out), str(clip)], ["bench", str(out)]):
        line = one_line_error(CliRunner().invoke(cli, args))
        assert line.startswith(f"error: {elf}: not a valid ARM ELF ("), line


@pytest.mark.parametrize("cmd", [["build", "{src}", "-b", "mps2-an386", "-o", "{out}"],
                                 ["onnx", "{src}", "-o", "{out}"]])
def test_output_that_is_a_file_says_so_first(tmp_path, cmd):
    """build -o FILE said 'output folder exists (use --force ...)', and with --force 'is a
    file': the second message is the right one, with or without --force."""
    out = tmp_path / "afile"
    out.write_text("mine")
    src = Path(__file__).resolve().parents[1] / "examples" / "default_model" / "nanomamba_tiny_kws.pt"
    for force in ([], ["--force"]):
        r = CliRunner().invoke(cli, [a.format(src=src, out=out) for a in cmd] + force)
        assert r.exit_code == 1, r.output
        assert r.output == f"error: {out}: is a file, expected a folder name\n", r.output
    assert out.read_text() == "mine"


@pytest.mark.parametrize("board, hint", [("cortex-m0plus", "is build-only (no QEMU machine, "
                                                           "no pyOCD target"),
                                         ("b-l475e-iot01a", "flash it with kws-export flash")])
def test_run_hint_matches_the_board_kind(tmp_path, monkeypatch, board, hint):
    """run on a build-only board's build suggested 'kws-export flash', which refuses it."""
    monkeypatch.setattr(fw, "read_manifest", lambda d: {"board": board})
    with pytest.raises(BoardError, match=r"\b" + hint.replace("(", r"\(")) as info:
        fw._emulated_board(tmp_path, None)
    if board == "cortex-m0plus":
        assert "kws-export flash" not in str(info.value)


def test_missing_or_file_build_dir_is_named_by_every_command(tmp_path):
    """run, bench and flash share read_manifest: a missing DIR is 'no such folder', a file is
    'is a file', an empty folder 'not a firmware build folder' (no toolchain needed)."""
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    missing, afile, empty = tmp_path / "nope", tmp_path / "f.txt", tmp_path / "empty"
    afile.write_text("x")
    empty.mkdir()
    runner = CliRunner()
    for d, want in ((missing, f"error: {missing}: no such folder"),
                    (afile, f"error: {afile}: is a file, expected a firmware build folder"),
                    (empty, f"error: {empty}: not a firmware build folder")):
        for args in (["flash", str(d), "--board", "b-l475e-iot01a", "--dry-run"],
                     ["run", str(d), str(clip)], ["bench", str(d)]):
            r = runner.invoke(cli, args)
            assert r.exit_code == 1, (args, r.output)
            assert one_line_error(r).startswith(want), (args, r.output)
