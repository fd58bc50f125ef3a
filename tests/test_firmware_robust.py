"""Firmware build/run robustness found by a new-user break-it pass: a folder that appears
during ``build`` is never replaced without --force; the ELF is byte-identical whatever
``-o`` is; a hand-edited ``firmware.json`` is one line naming the key; link failures name
the undefined symbol; Ctrl-C / SIGTERM clean up (temp folder, compiler and QEMU process
groups) and exit 130 / 143 with one ``Aborted!`` line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _fw_util import model_variant, needs_gcc, needs_qemu, one_line_error, write_f32
from export import cli as cli_mod
from export import firmware as fw
from export.boards import load_board
from export.cli import main as cli
from export.firmware import build_firmware, standin_model_dir

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("firmware.elf", "firmware.bin", "firmware.hex", "firmware.json", "firmware.map")


@pytest.fixture(scope="module")
def an386(tmp_path_factory) -> Path:
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is absent")
    return build_firmware(standin_model_dir(), "mps2-an386",
                          tmp_path_factory.mktemp("r") / "fw").out


# --- 1. a folder that appears while build runs --------------------------------------------

@needs_gcc
def test_build_never_replaces_a_folder_that_appears_while_it_runs(tmp_path, monkeypatch):
    """`build q1.npz -o race & mkdir race; echo x > race/notes.txt` deleted notes.txt (rc 0):
    the output was checked only before compiling. (An empty folder is kept too:
    tests/test_fileio.py.)"""
    out = tmp_path / "race"
    real = fw.size_report

    def size_report_then_mkdir(*args, **kwargs):     # runs after link, before the rename
        if out.exists():
            return real(*args, **kwargs)
        out.mkdir()
        (out / "notes.txt").write_text("x")
        return real(*args, **kwargs)
    monkeypatch.setattr(fw, "size_report", size_report_then_mkdir)
    with pytest.raises(fw.OutputExistsError, match=f"{out}: output folder exists "
                                                   r"\(appeared while .*--force"):
        build_firmware(standin_model_dir(), "mps2-an386", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race"]       # no temp left
    build_firmware(standin_model_dir(), "mps2-an386", out, force=True)  # --force replaces
    assert (out / "firmware.elf").is_file() and not (out / "notes.txt").exists()


@needs_gcc
def test_build_refuses_a_dangling_symlink_output_before_compiling(tmp_path, monkeypatch):
    """A symlink to a missing target at -o counts as existing (it was only refused after
    the whole compile)."""
    def no_compile(*a, **k):
        raise AssertionError("compiled before refusing the output")
    monkeypatch.setattr(fw, "_run_tool", no_compile)
    link = tmp_path / "fw"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(fw.OutputExistsError, match="exists"):
        build_firmware(standin_model_dir(), "mps2-an386", link)
    assert link.is_symlink() and not (tmp_path / "missing").exists()


# --- 2. reproducible with a relative -o ---------------------------------------------------

@needs_gcc
def test_relative_and_absolute_out_give_identical_files(tmp_path, monkeypatch):
    """With a relative -o (the README's own `-o out/default-mps2-an386`) the ELF's debug
    info held the random temp path (-ffile-prefix-map got the relative path): two
    identical builds differed (cmp at byte 52751)."""
    monkeypatch.chdir(tmp_path)
    a = build_firmware(standin_model_dir(), "mps2-an386", Path("a/fw")).out
    b = build_firmware(standin_model_dir(), "mps2-an386", Path("out") / "b").out
    c = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "c" / "fw").out
    for name in OUTPUTS:
        data = (a / name).read_bytes()
        assert data == (b / name).read_bytes() == (c / name).read_bytes(), name
    elf = (a / "firmware.elf").read_bytes()
    assert b".tmp" not in elf and str(tmp_path).encode() not in elf


# --- 3. a link failure names the undefined symbol -----------------------------------------

@needs_gcc
def test_link_failure_names_the_first_undefined_reference(tmp_path):
    """A link failure said only 'collect2: error: ld returned 1 exit status'."""
    model = model_variant(tmp_path / "m", "    extern int kws_nowhere(void);\n"
                                          "    (void)kws_nowhere();\n"
                                          "    return kws_run_real(audio, logits);")
    with pytest.raises(fw.FirmwareError) as info:
        build_firmware(model, "mps2-an386", tmp_path / "out")
    msg = str(info.value)
    assert msg.startswith("linking for mps2-an386 failed: "), msg
    assert "undefined reference to `kws_nowhere'" in msg and f"{model}/standin_model.c" in msg
    assert "\n" not in msg and sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# --- 4. a hand-edited firmware.json -------------------------------------------------------

def _edit(build: Path, dest: Path, edit) -> Path:
    shutil.copytree(build, dest)
    m = json.loads((dest / "firmware.json").read_text())
    m = edit(m)
    (dest / "firmware.json").write_text(json.dumps(m))
    return dest


def _set(key, value):
    def edit(m):
        *parents, leaf = key.split(".")
        node = m
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[leaf]
        else:
            node[leaf] = value
        return m
    return edit


@needs_gcc
@pytest.mark.parametrize("edit, key", [
    (_set("model", KeyError), "'model' (expected an object, absent)"),
    (lambda m: {}, "'board' (expected a board name, absent)"),
    (lambda m: [], "not a build manifest (a JSON list, expected an object)"),
    (_set("model.samples", "x"), "'model.samples' (expected a positive integer, got \"x\")"),
    (_set("model.samples", 0), "'model.samples' (expected a positive integer, got 0)"),
    (_set("model.logit_scale", "big"), "'model.logit_scale' (expected a positive number"),
    (_set("model.logit_zero_point", 1.5), "'model.logit_zero_point' (expected an integer"),
    (_set("sizes", None), "'sizes' (expected an object, got null)"),
    (_set("sizes.ram_static", True), "'sizes.ram_static' (expected a non-negative integer"),
], ids=["no-model", "empty", "list", "samples-str", "samples-0", "scale", "zp", "sizes",
        "ram-bool"])
def test_edited_manifest_is_one_line_naming_the_key(an386, tmp_path, edit, key):
    """run/bench/flash on an edited firmware.json: KeyError 'model' / 'board', TypeError,
    ValueError from int(): now one FirmwareError line naming the key."""
    build = _edit(an386, tmp_path / "fw", edit)
    with pytest.raises(fw.FirmwareError) as info:
        fw.read_manifest(build)
    msg = str(info.value)
    assert msg.startswith(f"{build / 'firmware.json'}: ") and key in msg, msg
    assert msg.endswith("; rebuild with kws-export build") and "\n" not in msg
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    for args in (["run", str(build), str(clip)], ["bench", str(build)],
                 ["flash", str(build), "--board", "b-l475e-iot01a", "--dry-run"]):
        assert key in one_line_error(CliRunner().invoke(cli, args))


@needs_qemu
def test_manifest_samples_that_disagree_with_the_elf_are_named(an386, tmp_path):
    """model.samples=8000 gave 'firmware on mps2-an386 could not length kws_clips.bin'."""
    build = _edit(an386, tmp_path / "fw", _set("model.samples", 8000))
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    line = one_line_error(CliRunner().invoke(cli, ["run", str(build), str(clip)]))
    assert line == (f"error: {build}: firmware.elf takes clips of 16000 samples but "
                    f"firmware.json says 8000 (the build folder was edited or mixed up); "
                    f"rebuild with kws-export build")


def test_firmware_error_lines_read_as_sentences():
    board = load_board("mps2-an386")
    msg = fw._firmware_error_message(board, {"what": "length", "file": "kws_clips.bin"})
    assert msg == ("firmware on mps2-an386 rejected kws_clips.bin: its size is not a whole "
                   "number of clips of the firmware's sample count")
    assert fw._firmware_error_message(board, {"what": "open", "file": "kws_clips.bin"}) \
        .startswith("firmware on mps2-an386 could not open kws_clips.bin")
    assert fw._firmware_error_message(board, {"what": "zap"}) == \
        "firmware on mps2-an386 reported error 'zap' on kws_clips.bin"


# --- 5. Ctrl-C and SIGTERM ----------------------------------------------------------------

def test_ctrl_c_exits_130_with_one_line(monkeypatch, tmp_path):
    """Ctrl-C exited 1, the status of bad input."""
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(fw, "build_firmware", interrupted)
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "-b", "mps2-an386",
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == cli_mod.INTERRUPT_EXIT == 130
    assert r.output == "Aborted!\n"


def test_sigterm_runs_the_cleanup_and_exits_143(monkeypatch, tmp_path):
    """SIGTERM (Python's default: die at once) becomes an exception, so finally blocks run;
    the handler is the caller's again afterwards."""
    cleaned = []

    def terminated(*a, **k):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)                     # the handler raises before this ends
        finally:
            cleaned.append(True)
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(fw, "build_firmware", terminated)
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "-b", "mps2-an386",
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == cli_mod.TERMINATE_EXIT == 143 and r.output == "Aborted!\n"
    assert cleaned == [True] and signal.getsignal(signal.SIGTERM) is before


_LAUNCH = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "sys.argv[0] = 'kws-export'; from export.cli import main; main()")


def _stalling_tool(path: Path, marker: Path) -> Path:
    """A stand-in for a compiler or QEMU that starts a child and waits: the test checks
    that the whole process group dies with the command."""
    path.write_text(f"#!/bin/sh\nsleep 120 &\necho $! > {marker}\nwait\n")
    path.chmod(0o755)
    return path


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _interrupt_cli(args: list[str], env: dict, marker: Path, sig: int) -> tuple[int, str]:
    p = subprocess.Popen([sys.executable, "-c", _LAUNCH, *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not (marker.is_file() and marker.read_text().strip()):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() - t0 < 60, "the stalling tool never started"
            time.sleep(0.05)
        # let Popen return in the command first: a signal inside Popen() itself, before it
        # hands back the child's pid, cannot kill that child (a window of microseconds
        # normally, but a loaded machine can run the whole tool script inside it)
        time.sleep(0.5)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    child = int(marker.read_text())
    for _ in range(50):                       # SIGKILLed: gone (or a zombie) at once
        if not _alive(child):
            break
        time.sleep(0.05)
    assert not _alive(child), f"the tool outlived the command ({p.returncode}, {err!r})"
    return p.returncode, err


@needs_gcc
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_interrupted_build_leaves_nothing(tmp_path, sig, code):
    """SIGTERM during build left a hidden .NAME.tmp-XXXX/ folder (Ctrl-C cleaned up)."""
    marker, work, tmpdir = tmp_path / "pid", tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    gcc = _stalling_tool(tmp_path / "arm-none-eabi-gcc", marker)
    env = dict(os.environ, KWS_ARM_GCC=str(gcc), TMPDIR=str(tmpdir))
    rc, err = _interrupt_cli(["build", str(standin_model_dir()), "-b", "mps2-an386",
                              "-o", str(work / "fw")], env, marker, sig)
    assert (rc, err) == (code, "Aborted!\n")
    assert list(work.iterdir()) == [] and list(tmpdir.iterdir()) == []


@needs_gcc
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)")
def test_sigterm_during_run_kills_qemu(an386, tmp_path):
    marker, tmpdir = tmp_path / "pid", tmp_path / "tmp"
    tmpdir.mkdir()
    qemu = _stalling_tool(tmp_path / "qemu-system-arm", marker)
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    env = dict(os.environ, KWS_QEMU=str(qemu), TMPDIR=str(tmpdir))
    rc, err = _interrupt_cli(["run", str(an386), str(clip)], env, marker, signal.SIGTERM)
    assert (rc, err) == (143, "Aborted!\n")
    assert list(tmpdir.iterdir()) == []               # the kws-qemu-* folder is gone
