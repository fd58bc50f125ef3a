"""CLI usage errors: one ``error: ...`` line on stderr and exit status 2 (README "Bad input");
long output lines do not wrap when stdout is not a terminal."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from export.cli import USAGE_EXIT, OneLineErrorGroup, main


def _one_error_line(r) -> str:
    """The single stderr line of a failed invocation (stdout must be empty)."""
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["build", "x.pt", "--board", "mps2-an386", "-o", "out", "--zzz"],
     "error: No such option '--zzz' (see 'kws-export build --help')"),
    (["build"], "error: Missing argument 'SOURCE' (see 'kws-export build --help')"),
    (["nosuch"], "error: No such command 'nosuch' (see 'kws-export --help')"),
    (["build", "x.pt", "--board", "mps2-an386", "-o", "out", "--opt", "O3"],
     "error: Invalid value for '--opt': 'O3' is not one of 'O2', 'Os' "
     "(see 'kws-export build --help')"),
    (["--nope"], "error: No such option '--nope' (see 'kws-export --help')"),
    (["run", "build", "clip.wav", "--timeout", "-1"],
     "error: Invalid value for '--timeout': -1.0 is not in the range x>0 "
     "(see 'kws-export run --help')"),
    # robustness review: these used to exit 1 through the library's checks
    (["quantize", "x.pt", "-o", "b.npz", "--width", "h=7"],
     "error: Invalid value for '--width': 'h=7': bit width of 'h' must be 8, 16 or 32, not 7 "
     "(see 'kws-export quantize --help')"),
    (["quantize", "x.pt", "-o", "b.npz", "--width", "h=abc"],
     "error: Invalid value for '--width': 'h=abc': expected NAME=BITS, e.g. h=32 "
     "(see 'kws-export quantize --help')"),
    (["quantize", "x.pt", "-o", "b.npz", "--width", "h"],
     "error: Invalid value for '--width': 'h': expected NAME=BITS, e.g. h=32 "
     "(see 'kws-export quantize --help')"),
    (["onnx", "x.pt", "-o", "out", "--opset", "99"],
     "error: Invalid value for '--opset': 99 is not in the range 21<=x<=28 "
     "(see 'kws-export onnx --help')"),
    (["evaluate", "x.pt", "--route", "bogus"],
     "error: Invalid value for '--route': 'bogus' is not one of 'float', 'int8' "
     "(see 'kws-export evaluate --help')"),
    (["evaluate", "x.pt", "--generated", "1", "--snr", "abc"],
     "error: Invalid value for '--snr': not a comma-separated list of numbers: 'abc' "
     "(see 'kws-export evaluate --help')"),
    (["evaluate", "x.pt", "--generated", "1", "--noise", "white,bogus"],
     "error: Invalid value for '--noise': unknown noise type 'bogus' (expected white, pink, "
     "babble, factory, street, recorded or file:NAME) (see 'kws-export evaluate --help')"),
    (["evaluate", "x.pt"],
     "error: give a dataset folder (--data) or a generated test split (--generated N) "
     "(see 'kws-export evaluate --help')"),
    (["run", "build"], "error: Missing argument 'CLIP|FOLDER...' (see 'kws-export run --help')"),
])
def test_usage_error_is_one_line_exit_2(args, expected):
    r = CliRunner().invoke(main, args, prog_name="kws-export")
    assert r.exit_code == USAGE_EXIT == 2, r.output
    assert _one_error_line(r) == expected


def test_unknown_width_key_is_a_usage_error():
    r = CliRunner().invoke(main, ["quantize", "x.pt", "-o", "b.npz", "--width", "foo=8"],
                           prog_name="kws-export")
    assert r.exit_code == 2
    assert _one_error_line(r).startswith("error: Invalid value for '--width': 'foo=8': unknown "
                                         "bit-width key 'foo' (known: residual, ")


def test_unknown_board_stays_an_input_error():
    """--board may name a .toml file (input), so an unknown one is exit 1, not a usage error."""
    r = CliRunner().invoke(main, ["build", "x.pt", "--board", "nosuch-board", "-o", "out"],
                           prog_name="kws-export")
    assert r.exit_code == 1, r.output


def test_usage_error_suggestion_stays_on_the_line():
    r = CliRunner().invoke(main, ["build", "x.pt", "-b", "m", "-o", "o", "--forc"],
                           prog_name="kws-export")
    assert r.exit_code == 2
    line = _one_error_line(r)
    assert "No such option '--forc'" in line and "--force" in line, line


def test_nonexistent_path_argument_is_one_line(tmp_path):
    """click.Path(exists=True) errors (none of kws-export's arguments use it today: the
    library checks paths and names the file) go through the same one-line handling."""
    @click.group(cls=OneLineErrorGroup)
    def grp():
        pass

    @grp.command()
    @click.argument("src", type=click.Path(exists=True))
    def cmd(src):
        pass

    absent = tmp_path / "absent.pt"
    r = CliRunner().invoke(grp, ["cmd", str(absent)], prog_name="kws-export")
    assert r.exit_code == 2
    assert _one_error_line(r) == (f"error: Invalid value for 'SRC': Path '{absent}' does not "
                                  "exist (see 'kws-export cmd --help')")


def test_help_and_version_unchanged():
    r = CliRunner().invoke(main, ["build", "--help"], prog_name="kws-export")
    assert r.exit_code == 0 and r.stdout.startswith("Usage: kws-export build [OPTIONS] SOURCE")
    r = CliRunner().invoke(main, ["--version"], prog_name="kws-export")
    assert r.exit_code == 0 and r.stdout == "kws-export, version " + r.stdout.split()[-1] + "\n"
    r = CliRunner().invoke(main, [], prog_name="kws-export")    # bare: click's help text
    assert r.output.startswith("Usage: kws-export [OPTIONS] COMMAND") and "Commands:" in r.output


def test_long_error_line_is_not_wrapped(tmp_path):
    """A bad-input error naming a long path stays one line (stderr is not a terminal)."""
    long_dir = tmp_path / ("d" * 150)
    r = CliRunner().invoke(main, ["info", str(long_dir / "absent.pt")], prog_name="kws-export")
    assert r.exit_code == 1, r.output
    line = _one_error_line(r)
    assert str(long_dir / "absent.pt") in line and len(line) > 160


def test_report_console_does_not_wrap_when_not_a_terminal(monkeypatch, capsys):
    """rich assumes 80 columns off a terminal: long report lines and tables used to wrap."""
    from rich.table import Table

    from export.report import output_console
    monkeypatch.delenv("COLUMNS", raising=False)
    con = output_console(highlight=False)
    assert not con.is_terminal
    long = "x" * 200
    con.print(f"built {long}")
    t = Table("symbol", "bytes")
    t.add_row("s" * 150, "1,234")
    con.print(t)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"built {long}"
    assert any("s" * 150 in line and "1,234" in line for line in out), out
    monkeypatch.setenv("COLUMNS", "60")          # an explicit width is still honoured
    assert output_console().width == 60


def test_closed_stdout_pipe_exits_quietly():
    """`kws-export boards | head -1` exited 1 (rich's broken-pipe handling) with no message:
    now status 141 (128 + SIGPIPE, export.cli.PIPE_CLOSED_EXIT) and nothing on stderr."""
    import subprocess
    import sys

    from export.cli import PIPE_CLOSED_EXIT
    root = Path(__file__).resolve().parents[1]
    p = subprocess.Popen([sys.executable, "-m", "export", "boards"], cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                 # the reader goes away before anything is written
    err = p.stderr.read()
    assert p.wait(timeout=60) == PIPE_CLOSED_EXIT == 141 and err == b"", err
