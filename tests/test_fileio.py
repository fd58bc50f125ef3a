"""Outputs are never overwritten without force and never left half-written."""

from __future__ import annotations

import pytest

from export.fileio import OutputExistsError, atomic_output_dir, atomic_write_text


def test_file_refused_then_forced(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "one")
    with pytest.raises(OutputExistsError, match="use --force"):
        atomic_write_text(p, "two")
    assert p.read_text() == "one"
    atomic_write_text(p, "two", force=True)
    assert p.read_text() == "two"


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
