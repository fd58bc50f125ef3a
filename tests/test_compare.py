"""kws-export compare: routes, metrics and the table on the fixture clips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import compare as cmp

ROOT = Path(__file__).resolve().parents[1]


def test_metrics():
    ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = cmp.metrics(ref, ref + np.array([[0.1, 0.0], [0.0, 0.0]]), np.array([0, 0]))
    assert m["agreement"] == 100 and m["accuracy"] == 50
    assert abs(m["sqnr_db"] - 10 * np.log10(2 / 0.01)) < 1e-9
    assert cmp.sqnr_db(ref, ref) == float("inf")


def test_compare_routes_on_fixture_clips(fixtures_dir, tmp_path):
    """Every route but TFLM (tested in test_tflite_export.py) on the 3 fixture clips of a
    real Tiny bundle: the quantized routes read the bundle; the simulator agrees with the
    QDQ graph."""
    pytest.importorskip("torch")
    from export.bundle import save_bundle
    from qhelpers import small_bundle
    bundle, _, _ = small_bundle("tiny")
    save_bundle(bundle, tmp_path / "tiny.npz")
    res = cmp.compare(tmp_path / "tiny.npz", fixtures_dir / "audio",
                      routes=("torch", "onnx", "onnx-qdq", "simulator", "c"), progress=False)
    r = res["routes"]
    assert res["clips"] == 3 and not res["labelled"]
    assert r["onnx"].metrics["max_abs"] < 1e-4 and r["onnx"].metrics["agreement"] == 100
    assert r["onnx-qdq"].metrics["agreement"] == 100 and "bundle tiny.npz" in r["onnx-qdq"].note
    assert r["simulator"].metrics["agreement"] == 100 and r["simulator"].metrics["sqnr_db"] > 20
    assert "bundle tiny.npz" in res["quantization"]
    c = r["c"]
    assert c.logits is not None or c.note.startswith("n/a (")


def test_cli_compare_bad_inputs(upstream_ckpt, tmp_path):
    r = subprocess.run([sys.executable, "-m", "export", "compare", str(upstream_ckpt("tiny")),
                        str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "no such folder" in lines[0]
    (tmp_path / "clips").mkdir()
    r = subprocess.run([sys.executable, "-m", "export", "compare", str(upstream_ckpt("tiny")),
                        str(tmp_path / "clips")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "no audio clips" in r.stderr
