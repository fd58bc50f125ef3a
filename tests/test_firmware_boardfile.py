"""Board files of the user's (``--board path/to/myb.toml``): the build folder keeps its own
copy (BUILD/board.toml, sha256 in firmware.json) that run/bench/flash read from any folder;
board-file validation (irq_count bounds, name == file stem); ``--precision float32`` and
``bench --float-build`` refusing what cannot be a float baseline of the same model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import numpy as np

from _fw_util import needs_gcc, needs_qemu, one_line_error, write_f32
from export import firmware as fw
from export.boards import BOARDS_DIR, BoardError, load_board
from export.cli import main as cli
from export.firmware import build_firmware, standin_model_dir

AN386 = (BOARDS_DIR / "mps2-an386.toml").read_text()


def _board_file(folder: Path, stem: str = "myb", text: str | None = None, **edits) -> Path:
    """A copy of mps2-an386.toml renamed ``stem`` with ``key = value`` lines replaced."""
    lines = []
    for line in (text or AN386).splitlines():
        key = line.split("=")[0].strip()
        if key == "name":
            line = f'name = "{edits.pop("name", stem)}"'
        elif key in edits:
            line = f"{key} = {edits.pop(key)}"
        lines.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("value, why", [("100000000", "irq_count 100000000 must be 1..496"),
                                        ("-1", "irq_count -1 must be 1..496"),
                                        ("0", "irq_count 0 must be 1..496")])
def test_irq_count_out_of_range_is_refused_by_the_loader(tmp_path, value, why):
    path = _board_file(tmp_path, irq_count=value)
    with pytest.raises(BoardError, match=why) as err:
        load_board(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_irq_limit_follows_the_architecture(tmp_path):
    m0 = (BOARDS_DIR / "cortex-m0plus.toml").read_text()
    with pytest.raises(BoardError, match=r"irq_count 33 must be 1\.\.32 .*armv6-m"):
        load_board(str(_board_file(tmp_path, "m0", text=m0, irq_count="33")))
    m55 = (BOARDS_DIR / "mps3-an547.toml").read_text()
    with pytest.raises(BoardError, match=r"irq_count 481 must be 1\.\.480"):
        load_board(str(_board_file(tmp_path, "m55", text=m55, irq_count="481")))
    assert load_board(str(_board_file(tmp_path, "big", irq_count="496"))).irq_count == 496


def test_name_must_match_the_file_stem(tmp_path):
    path = _board_file(tmp_path, "myb", name="other")
    with pytest.raises(BoardError, match=r"myb\.toml: name 'other' does not match the file"):
        load_board(str(path))
    with pytest.raises(BoardError, match=r"nosuch\.toml: no such board file"):
        load_board(str(tmp_path / "nosuch.toml"))


def test_cli_refuses_a_huge_irq_count_at_once(tmp_path):
    path = _board_file(tmp_path / "b", irq_count="100000000")
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "--board", str(path),
                                 "-o", str(tmp_path / "o")])
    assert "irq_count 100000000" in one_line_error(r)
    assert not (tmp_path / "o").exists()


@needs_gcc
def test_build_keeps_its_own_copy_of_the_board_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _board_file(tmp_path / "boards2")
    res = build_firmware(standin_model_dir(), "boards2/myb.toml", Path("o_rel"))
    m = json.loads((tmp_path / "o_rel" / "firmware.json").read_text())
    assert m["board"] == "myb" and m["board_file"] == "board.toml"
    assert m["board_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (tmp_path / "o_rel" / "board.toml").read_bytes() == src.read_bytes()
    # the original moves away, commands run from elsewhere: the build's copy is used
    shutil.rmtree(tmp_path / "boards2")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    build = tmp_path / "o_rel"
    manifest, board = fw._emulated_board(build, None)
    assert board.name == "myb" and board.path == build / "board.toml"
    assert fw._emulated_board(build, "myb")[1].name == "myb"
    # a different file at the old relative path is never picked up
    _board_file(tmp_path / "elsewhere" / "boards2", clock_hz="1")
    assert fw._emulated_board(build, None)[1].clock_hz == board.clock_hz
    assert res.manifest["board_file"] == "board.toml"


@needs_gcc
def test_built_in_boards_record_no_board_file(tmp_path):
    m = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "o").manifest
    assert m["board_file"] is None and m["board_sha256"] is None
    assert not (tmp_path / "o" / "board.toml").exists()


@needs_gcc
def test_a_changed_or_missing_board_copy_is_one_line_naming_it(tmp_path):
    build = build_firmware(standin_model_dir(), str(_board_file(tmp_path / "b")),
                           tmp_path / "o").out
    copy = build / "board.toml"
    copy.write_text(copy.read_text().replace("clock_hz = ", "clock_hz = 1"))
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    for argv in (["run", str(build), str(clip)], ["bench", str(build)],
                 ["flash", str(build), "--board", "myb", "--dry-run"]):
        r = CliRunner().invoke(cli, argv)
        line = one_line_error(r)
        assert f"{copy}: changed since the build" in line, (argv, line)
    copy.unlink()
    with pytest.raises(BoardError, match=r"board\.toml: missing \(this build's copy"):
        fw._emulated_board(build, None)


@needs_gcc
def test_force_never_deletes_a_board_file_inside_the_output(tmp_path):
    out = tmp_path / "o"
    path = _board_file(out)
    with pytest.raises(fw.OutputExistsError):
        build_firmware(standin_model_dir(), str(path), out, force=True)
    assert path.is_file()


@needs_qemu
def test_run_from_another_folder_after_the_toml_moved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _board_file(tmp_path / "boards2")
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "--board",
                                 "boards2/myb.toml", "-o", "o_rel"])
    assert r.exit_code == 0, r.output
    shutil.rmtree(tmp_path / "boards2")
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path / "x")
    clip = write_f32(tmp_path / "a.f32", np.zeros(16000, np.int16))
    r = CliRunner().invoke(cli, ["run", "../o_rel", str(clip)])
    assert r.exit_code == 0, r.output


@needs_gcc
def test_float32_precision_is_refused_for_an_int8_c_folder(tmp_path):
    r = CliRunner().invoke(cli, ["build", str(standin_model_dir()), "--board", "mps2-an386",
                                 "--precision", "float32", "-o", str(tmp_path / "fwB")])
    line = one_line_error(r)
    assert "--precision float32 needs a checkpoint or bundle" in line and "int8" in line
    assert not (tmp_path / "fwB").exists()


@needs_gcc
def test_float_build_of_another_model_is_refused(tmp_path):
    a = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "a").out
    b = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "b").out
    man = json.loads((b / "firmware.json").read_text())
    man["model"]["precision"] = "float32"
    man["model"]["model_hash"] = "ab" * 32
    (b / "firmware.json").write_text(json.dumps(man))
    r = CliRunner().invoke(cli, ["bench", str(a), "--float-build", str(b)])
    line = one_line_error(r)
    assert f"{b}: float32 build of another model (model hash abababababab" in line
    assert "none recorded" in line


@needs_gcc
def test_board_path_given_to_run_or_flash_must_be_the_builds_board_file(tmp_path):
    """A same-named .toml with other contents was accepted by name and ignored; the build's
    own copy and the shipped file of a shipped board are accepted."""
    src = _board_file(tmp_path / "b")
    build = build_firmware(standin_model_dir(), str(src), tmp_path / "o").out
    manifest = fw.read_manifest(build)
    fw.check_board_arg(build, manifest, str(build / "board.toml"))
    fw.check_board_arg(build, manifest, str(src))
    fw.check_board_arg(build, manifest, "myb")
    other = _board_file(tmp_path / "b3", clock_hz="50_000_000")
    with pytest.raises(BoardError, match=rf"{other}: not the board file {build} was built with"):
        fw.check_board_arg(build, manifest, str(other))
    r = CliRunner().invoke(cli, ["flash", str(build), "--board", str(other), "--dry-run"])
    assert f"{other}: not the board file" in one_line_error(r)
    shipped = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "s").out
    fw.check_board_arg(shipped, fw.read_manifest(shipped), str(BOARDS_DIR / "mps2-an386.toml"))
    with pytest.raises(BoardError, match="not the board file"):
        fw.check_board_arg(shipped, fw.read_manifest(shipped), str(src))


@needs_gcc
def test_a_board_file_may_not_take_a_shipped_boards_name(tmp_path):
    path = _board_file(tmp_path / "b2", "mps2-an386", machine='"nosuchmachine"')
    with pytest.raises(BoardError, match="board name 'mps2-an386' is a shipped board's"):
        build_firmware(standin_model_dir(), str(path), tmp_path / "o")
    assert not (tmp_path / "o").exists()


@needs_gcc
def test_bench_refuses_a_float32_build_as_the_int8_side(tmp_path):
    b = build_firmware(standin_model_dir(), "mps2-an386", tmp_path / "b").out
    man = json.loads((b / "firmware.json").read_text())
    man["model"]["precision"] = "float32"
    (b / "firmware.json").write_text(json.dumps(man))
    r = CliRunner().invoke(cli, ["bench", str(b), "--float-build", str(b)])
    assert f"{b}: is a float32 build; --float-build compares an int8 build" in one_line_error(r)
