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
])
def test_out_of_range_numbers_are_usage_errors(args, option):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}'" in r.output


def test_readme_lists_every_command():
    """A new user learns the commands from the README: each one appears there."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in main.commands if f"kws-export {name} " not in readme]
    assert not missing, f"README.md does not mention: {missing}"
