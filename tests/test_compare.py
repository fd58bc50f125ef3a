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


@pytest.mark.parametrize("content, problem", [(b"hello\n", "not a TFLite model"),
                                              (b"", "not a TFLite model"),
                                              (None, "is a directory")])
def test_cli_compare_bad_tflite_is_one_line_error_before_any_work(tmp_path, content, problem):
    """--tflite that is not a flatbuffer: one-line error, no traceback, checked up front."""
    bad = tmp_path / "model.tflite"
    if content is None:
        bad.mkdir()
    else:
        bad.write_bytes(content)
    (tmp_path / "clips").mkdir()
    r = subprocess.run([sys.executable, "-m", "export", "compare", str(tmp_path / "x.npz"),
                        str(tmp_path / "clips"), "--route", "tflm", "--tflite", str(bad)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: {problem}"), r.stderr


# ---- exported files must exist and come from SOURCE's model (robustness review) ----------

CKPT = ROOT / "examples" / "default_model" / "nanomamba_tiny_kws.pt"
CLIPS = ROOT / "examples" / "clips"


def _invoke(args):
    from click.testing import CliRunner

    from export.cli import main
    return CliRunner().invoke(main, ["compare", str(CKPT), str(CLIPS), *args],
                              prog_name="kws-export")


def _fake_onnx(path: Path, model_hash: str | None) -> None:
    """A valid (Identity) ONNX file carrying ``model_hash`` in its metadata, or none."""
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g)
    if model_hash is not None:
        helper.set_model_props(m, {"model_hash": model_hash})
    onnx.save(m, str(path))


@pytest.mark.parametrize("routes, missing", [(["--route", "onnx"], "full.onnx"),
                                             (["--route", "onnx-qdq"], "frontend.onnx"),
                                             ([], "frontend.onnx")])
def test_onnx_dir_without_the_graphs_is_refused(tmp_path, routes, missing):
    """--onnx-dir lacking a graph a route needs used to build it in memory silently."""
    r = _invoke([*routes, "--onnx-dir", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"error: {tmp_path / missing}: missing"), r.stderr
    (tmp_path / "frontend.onnx").write_bytes(b"")     # the QDQ graph is named next
    r = _invoke(["--route", "onnx-qdq", "--onnx-dir", str(tmp_path)])
    assert r.stderr.startswith(f"error: {tmp_path / 'network_qdq.onnx'}: missing"), r.stderr


def test_onnx_dir_of_another_model_is_refused(tmp_path):
    from export.bundle import model_hash
    from nanomamba.checkpoint import load_state
    want = model_hash(load_state(CKPT)[0])
    _fake_onnx(tmp_path / "full.onnx", "ab" * 32)
    r = _invoke(["--route", "onnx", "--onnx-dir", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert r.stderr.strip() == (f"error: {tmp_path / 'full.onnx'}: made from another model than "
                                f"{CKPT.name} (model sha256 {'ab' * 6}... vs {want[:12]}...)")
    # a graph with no recorded hash: accepted with a warning (checked here in the library)
    from export.compare import check_model_hash, onnx_model_hash
    from export.onnx_export import load_source
    _fake_onnx(tmp_path / "old.onnx", None)
    assert onnx_model_hash(tmp_path / "old.onnx") is None
    with pytest.warns(UserWarning, match="records no model hash"):
        check_model_hash(tmp_path / "old.onnx", None, load_source(CKPT))
    check_model_hash(tmp_path / "full.onnx", want, load_source(CKPT))     # same model: fine


def test_tflite_of_another_model_is_refused(tmp_path):
    pytest.importorskip("tflite_micro")
    import flatbuffers

    from export.tflite_export import _tflm
    fb = _tflm().schema_fb
    m = fb.ModelT()
    m.version = 3
    m.description = b"nanomamba-kws 0; source small.npz (bundle); model 0123456789abcdef; x"
    builder = flatbuffers.Builder(256)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "small.tflite"
    path.write_bytes(bytes(builder.Output()))
    from export.compare import tflite_model_hash
    assert tflite_model_hash(path.read_bytes()) == "0123456789abcdef"
    r = _invoke(["--route", "tflm", "--tflite", str(path)])
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith(f"error: {path}: made from another model than {CKPT.name} "
                               f"(model sha256 0123456789ab... vs "), r.stderr
