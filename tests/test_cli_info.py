"""`kws-export info` prints config, parameters, MACs and the float label."""

from __future__ import annotations

from click.testing import CliRunner

from export.cli import main


def test_info_small_yes(upstream_ckpt, fixtures_dir):
    res = CliRunner().invoke(main, ["info", str(upstream_ckpt("small")), "--audio",
                                    str(fixtures_dir / "audio" / "yes.f32")])
    assert res.exit_code == 0, res.output
    assert "12,032" in res.output and "MACs" in res.output
    assert "│ yes " in res.output


def test_info_bad_checkpoint_one_line(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_text("hello")
    res = CliRunner().invoke(main, ["info", str(bad)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
