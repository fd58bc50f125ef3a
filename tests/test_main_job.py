"""The README's main-job command: build the shipped default model for the reference board and
run it on the shipped clip in QEMU; it must print "yes" and be safe to re-run (--force).

The command's kws-export steps run here through the CLI (in-process) with the output folder
moved to a temporary one; the default generated calibration set is shrunk (2 words x 6
voices + 6 non-speech clips) to keep the test fast. The full command is timed in
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from _fw_util import HAVE_GCC, HAVE_QEMU
from export.boards import board_names
from export.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def main_job_steps() -> list[list[str]]:
    """The README's main-job command split at ``&&`` into argument lists."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"\*\*Main job\*\*.*?```sh\n(.*?)\n```", text, re.S)
    assert m, "README.md: no **Main job** sh block"
    return [shlex.split(part) for part in m.group(1).split("&&")]


def test_main_job_command_names_shipped_files():
    steps = main_job_steps()
    assert steps[0] == ["scripts/setup.sh"]
    assert [s[:2] for s in steps[1:]] == [[".venv/bin/kws-export", "build"],
                                         [".venv/bin/kws-export", "run"]]
    build, run = steps[1][1:], steps[2][1:]
    assert (ROOT / build[1]).is_file() and build[1].startswith("examples/")
    assert build[build.index("--board") + 1] == "mps2-an386" in board_names()
    assert "--force" in build                    # re-runs replace the output
    out = build[build.index("-o") + 1]
    assert out.startswith("out/") and run[1] == out   # out/ is git-ignored
    assert all((ROOT / c).is_file() and c.startswith("examples/") for c in run[2:])


@pytest.mark.skipif(not (HAVE_GCC and HAVE_QEMU), reason="arm-none-eabi-gcc or qemu-system-arm "
                    "is absent (scripts/setup.sh installs them)")
def test_main_job_prints_yes(tmp_path, monkeypatch):
    from export import quantize as Q
    full = Q.generated_calibration_set
    monkeypatch.setattr(Q, "generated_calibration_set",
                        lambda *a, **k: full(words=("yes", "no"), n_nonspeech=6))
    monkeypatch.chdir(ROOT)
    steps = main_job_steps()
    build, run = steps[1][1:], steps[2][1:]
    out = str(tmp_path / "default")
    build[build.index("-o") + 1] = out
    run[1] = out
    runner = CliRunner()
    r = runner.invoke(cli, build)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, run)
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("examples/clips/yes.wav: yes (") and "instructions=" in first
    # re-running is safe: --force replaces the folder (tests/test_firmware_errors.py
    # test_existing_output_needs_force checks the replacement leaves nothing behind)
