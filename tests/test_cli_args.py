"""CLI argument ranges: nonsense numbers are refused by click before any work (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from export.cli import main


@pytest.mark.parametrize("args, option", [
    (["evaluate", "x.pt", "--generated", "-3"], "--generated"),      # was a ValueError traceback
    (["evaluate", "x.pt", "--generated", "0"], "--generated"),
    (["evaluate", "x.pt", "--limit-per-class", "0"], "--limit-per-class"),
    (["bench", "build", "--macs", "-5"], "--macs"),                 # was a negative ratio
    (["bench", "build", "--timeout", "0"], "--timeout"),
    (["run", "build", "clip.wav", "--timeout", "-1"], "--timeout"),
    # nan/inf passed FloatRange(min=0, min_open=True): a ValueError traceback, exit 1
    (["run", "build", "clip.wav", "--timeout", "nan"], "--timeout"),
    (["run", "build", "clip.wav", "--timeout", "inf"], "--timeout"),
    (["bench", "build", "--timeout", "nan"], "--timeout"),
    (["bench", "build", "--timeout", "inf"], "--timeout"),
    # a non-finite SNR was accepted and gave a meaningless grid cell
    (["evaluate", "x.pt", "--snr", "0,nan"], "--snr"),
    (["evaluate", "x.pt", "--snr", "inf"], "--snr"),
    (["evaluate", "x.pt", "--snr", "-Infinity,5"], "--snr"),
    (["evaluate", "x.pt", "--snr", "1e999"], "--snr"),
])
def test_out_of_range_numbers_are_usage_errors(args, option):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}'" in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output


def test_readme_lists_every_command():
    """A new user learns the commands from the README: each one appears there."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in main.commands if f"kws-export {name} " not in readme]
    assert not missing, f"README.md does not mention: {missing}"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_quantize_into_a_folder_is_refused_before_calibrating(tmp_path, force):
    """-o FOLDER: one-line error at once (it used to calibrate first, or say 'already
    exists (use --force)' although --force could never help); the folder is untouched."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep").write_text("x")
    r = CliRunner().invoke(main, ["quantize", str(tmp_path / "absent.pt"), "-o", str(folder),
                                  *force])
    assert r.exit_code == 1, r.output
    assert r.output.strip() == f"error: {folder}: is a directory, expected a bundle file name (.npz)"
    assert (folder / "keep").read_text() == "x"


def test_every_option_has_a_help_text():
    """--help must explain every option to a firmware engineer (bench --timeout and
    onnx --opset had none)."""
    import click
    bare = [f"{name} {p.opts[0]}" for name, cmd in main.commands.items() for p in cmd.params
            if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert not bare, bare


@pytest.mark.parametrize("width, problem", [
    ("nosuch=8", "unknown bit-width key 'nosuch'"),
    ("h=64", "bit width of 'h' must be 8, 16 or 32, not 64"),
    ("w.in_proj=32", "bit width of 'w.in_proj' must be 8, 16, not 32"),
])
def test_quantize_width_checked_before_calibrating(tmp_path, monkeypatch, width, problem):
    """QA: a bad --width was refused only after calibration (7-15 s wasted). The checkpoint
    is not even loaded: a missing one must not be the error."""
    import export.quantize as Q

    def no_calibration(*a, **k):
        raise AssertionError("calibrated before checking --width")
    monkeypatch.setattr(Q, "collect_ranges", no_calibration)
    monkeypatch.setattr(Q, "generated_calibration_set", no_calibration)
    r = CliRunner().invoke(main, ["quantize", str(tmp_path / "absent.pt"), "-o",
                                  str(tmp_path / "q.npz"), "--width", width])
    assert r.exit_code == 2, r.output          # a usage error, found by click
    assert r.output.startswith(f"error: Invalid value for '--width': '{width}': {problem}")
    assert r.output.count("\n") == 1, r.output
    assert list(tmp_path.iterdir()) == []
