"""Outputs are never overwritten without force and never left half-written."""

from __future__ import annotations

import os
import stat

import pytest

from export.fileio import OutputExistsError, atomic_output_dir, atomic_write_text


def test_file_refused_then_forced(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "one")
    with pytest.raises(OutputExistsError, match="use --force"):
        atomic_write_text(p, "two")
    assert p.read_text() == "one"
    atomic_write_text(p, "two", force=True)
    assert p.read_text() == "two"


@pytest.mark.parametrize("force", [False, True])
def test_force_never_swaps_a_file_and_a_folder(tmp_path, force):
    """tflite -o FOLDER --force was an IsADirectoryError traceback after the whole conversion;
    onnx -o FILE --force silently replaced a file (e.g. a bundle) with a folder."""
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(OutputExistsError, match="is a directory, expected a file name"):
        atomic_write_text(folder, "x", force=force)
    afile = tmp_path / "model.npz"
    afile.write_text("keep")
    with pytest.raises(OutputExistsError, match="is a file, expected a folder name"):
        with atomic_output_dir(afile, force=force) as d:
            (d / "f").write_text("new")
    assert folder.is_dir() and afile.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "model.npz"]


def test_dir_failure_keeps_old_and_leaves_no_temp(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as d:
        (d / "f").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out, force=True) as d:
            (d / "f").write_text("new")
            raise RuntimeError("boom")
    assert (out / "f").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_output_dir(out, force=True) as d:
        (d / "g").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["g"]
    with pytest.raises(OutputExistsError):
        with atomic_output_dir(out):
            pass


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_umask_permissions_not_mkstemp_0600(tmp_path, umask_022):
    """Files and folders written atomically are 0644/0755 under umask 022 (mkstemp/mkdtemp
    alone would leave them 0600/0700: unreadable to the rest of a team or a CI user)."""
    import torch

    from export.bundle import save_bundle
    from export.firmware_report import write_run_json  # noqa: F401  (uses atomic_write_text)
    from nanomamba import TINY
    from nanomamba.checkpoint import save_checkpoint
    from nanomamba.model import NanoMamba
    from test_bundle import _bundle

    f = atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_output_dir(tmp_path / "d") as d:
        (d / "f").write_text("y")
    b = save_bundle(_bundle(), tmp_path / "b.npz")
    torch.manual_seed(0)
    c = save_checkpoint(NanoMamba(TINY), tmp_path / "c.pt")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (f, tmp_path / "d", b, c)}
    assert modes == {"a.txt": 0o644, "d": 0o755, "b.npz": 0o644, "c.pt": 0o644}


def test_unwritable_parent_is_one_line_error_before_work(tmp_path):
    """QA: -o /proc/nope/x gave FileNotFoundError tracebacks (generate, onnx, tflite, build,
    run --json). check_output now probes the nearest existing folder; nothing is left."""
    from export.fileio import OutputPathError, check_output
    for kind in ("file", "folder", None):
        with pytest.raises(OutputPathError, match=r"^/proc/nope/x: cannot create the output in /proc: "):
            check_output("/proc/nope/x", True, expect=kind)
    with pytest.raises(OutputPathError):
        atomic_write_text("/proc/nope/x.txt", "x")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output(f / "sub" / "out", False)
    check_output(tmp_path / "a" / "b" / "c", False)          # creatable: fine, nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_output_that_is_or_contains_an_input_is_refused_even_with_force(tmp_path):
    from export.fileio import check_output
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.npz").write_text("x")
    with pytest.raises(OutputExistsError, match="the output is the input"):
        check_output(src / "b.npz", True, inputs=[src / "b.npz"])
    with pytest.raises(OutputExistsError, match="the output contains the input"):
        check_output(src, True, inputs=[src / "b.npz"])
    with pytest.raises(OutputExistsError, match="the output is the input"):
        check_output(tmp_path / "." / "src", True, inputs=[src])
    check_output(src / "other", True, inputs=[src / "b.npz"])   # a sibling is fine


@pytest.mark.parametrize("cmd", [
    ["generate", "{b}", "-o", "/proc/nope/x"], ["onnx", "{b}", "-o", "/proc/nope/x"],
    ["tflite", "{b}", "-o", "/proc/nope/x.tflite"],
    ["build", "{b}", "--board", "mps2-an386", "-o", "/proc/nope/fw"]])
def test_cli_unwritable_output_parent(tmp_path, cmd):
    """The output is checked before the bundle is read: a placeholder bundle is enough."""
    from click.testing import CliRunner
    from export.cli import main
    b = tmp_path / "b.npz"
    b.write_bytes(b"")
    r = CliRunner().invoke(main, [a.format(b=b) for a in cmd])
    assert r.exit_code == 1, r.output
    assert r.output.startswith(f"error: {cmd[-1]}: cannot create the output in /proc: "), r.output
    assert r.output.count("\n") == 1


@pytest.mark.parametrize("cmd, problem", [
    (["tflite", "{d}/self.npz", "-o", "{d}/self.npz", "--force"], "is the input"),
    (["onnx", "{d}/self.npz", "-o", "{d}", "--force"], "contains the input"),
    (["generate", "{d}/self.npz", "-o", "{d}", "--force"], "contains the input"),
    (["build", "{d}", "--board", "mps2-an386", "-o", "{d}", "--force"], "is the input"),
    (["quantize", "{d}/self.npz", "-o", "{d}/self.npz", "--force"], "is the input"),
])
def test_cli_refuses_to_replace_its_own_input(tmp_path, cmd, problem):
    """QA: --force with the output equal to (or around) the input deleted the input."""
    from click.testing import CliRunner
    from export.cli import main
    d = tmp_path / "src"
    d.mkdir()
    (d / "self.npz").write_bytes(b"keep")
    (d / "kws_model.c").write_text("keep")
    r = CliRunner().invoke(main, [a.format(d=d) for a in cmd])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and f"the output {problem} " in r.output, r.output
    assert r.output.count("\n") == 1
    assert (d / "self.npz").read_bytes() == b"keep" and (d / "kws_model.c").read_text() == "keep"
    assert sorted(p.name for p in d.iterdir()) == ["kws_model.c", "self.npz"]


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "fallback"])
@pytest.mark.parametrize("appears", ["folder", "empty-folder", "file"])
def test_output_that_appears_meanwhile_is_never_replaced_without_force(
        tmp_path, monkeypatch, renameat2, appears):
    """`kws-export build` replaced a folder created while it ran (data loss: the only check
    was at the start). Without force the final rename now never replaces anything, even an
    empty folder (which a plain os.rename would): the new output is dropped, the path kept."""
    import export.fileio as fio
    if not renameat2:
        monkeypatch.setattr(fio, "_renameat2_noreplace", lambda src, dst: False)

    def appear(path):
        if appears == "file":
            path.write_text("mine")
        else:
            path.mkdir()
            if appears == "folder":
                (path / "notes.txt").write_text("mine")

    out = tmp_path / "out"
    with pytest.raises(OutputExistsError, match="appeared while this command ran.*--force"):
        with atomic_output_dir(out) as d:
            (d / "f").write_text("new")
            appear(out)
    if appears == "file":
        assert out.read_text() == "mine"
    else:
        assert [p.name for p in out.iterdir()] == (["notes.txt"] if appears == "folder" else [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]      # no temp left

    f = tmp_path / "a.txt"
    real = fio.umask_mode

    def umask_then_appear(path):                  # runs just before the final rename
        real(path)
        if not f.exists():
            f.write_text("mine")
    monkeypatch.setattr(fio, "umask_mode", umask_then_appear)
    with pytest.raises(OutputExistsError, match="appeared while this command ran"):
        atomic_write_text(f, "new")
    assert f.read_text() == "mine"
    atomic_write_text(f, "new", force=True)               # force still replaces
    assert f.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "out"]


@pytest.mark.parametrize("rel", [".", "..", "../..", "./"])
def test_output_that_is_or_contains_the_current_folder_is_refused(tmp_path, monkeypatch, rel):
    """generate/build/evaluate -o . (or ..) --force were an 'OSError: Device or resource busy'
    traceback after the work; --force never helps. Nothing is touched."""
    from export.fileio import check_output
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    (cwd / "in.npz").write_text("x")
    monkeypatch.chdir(cwd)
    for force in (False, True):
        with pytest.raises(OutputExistsError,
                           match=r"is the current folder \(or contains it\); choose another output"):
            check_output(rel, force, expect="folder", inputs=["in.npz"])
        with pytest.raises(OutputExistsError, match="current folder"):
            with atomic_output_dir(rel, force=force) as d:
                (d / "f").write_text("y")
    with pytest.raises(OutputExistsError, match="current folder"):
        check_output(cwd, True)                       # absolute spelling too
    assert sorted(p.name for p in cwd.iterdir()) == ["in.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    check_output("sub", True, inputs=["in.npz"])       # a folder below cwd is fine


def test_output_that_is_an_ancestor_of_an_input_is_refused(tmp_path):
    from export.fileio import check_output
    deep = tmp_path / "x" / "y"
    deep.mkdir(parents=True)
    (deep / "in.pt").write_text("x")
    with pytest.raises(OutputExistsError, match="the output contains the input"):
        check_output(tmp_path / "x", True, inputs=[deep / "in.pt"])
    with pytest.raises(OutputExistsError, match="the output contains the input"):
        check_output(deep / "..", True, inputs=[deep / "in.pt"])


def test_dangling_symlink_counts_as_existing(tmp_path):
    """quantize -o DANGLING replaced the link without --force; generate refused it saying
    it 'appeared while this command ran'."""
    from export.fileio import check_output
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    for call in (lambda: check_output(link, False),
                 lambda: atomic_write_text(link, "x"),
                 lambda: atomic_output_dir(link).__enter__()):
        with pytest.raises(OutputExistsError,
                           match=r"out: exists \(a symlink to a missing target\); use --force"):
            call()
        assert os.path.islink(link) and not link.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_output_dir(link, force=True) as d:
        (d / "f").write_text("new")
    assert not os.path.islink(link) and (link / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_over_a_symlink_to_a_folder_leaves_nothing_behind(tmp_path):
    """generate -o LINK_TO_DIR --force left a hidden .LINK.XXXX.old symlink (rmtree refuses
    links). The link is the output: it is replaced by the new folder; its target is kept."""
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("k")
    link = tmp_path / "lnk"
    link.symlink_to(target)
    with atomic_output_dir(link, force=True) as d:
        (d / "f").write_text("new")
    assert not os.path.islink(link) and (link / "f").read_text() == "new"
    assert (target / "keep").read_text() == "k"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lnk", "target"]
