"""TFLite export: 16x8 conversion with float islands, run in the TFLite Micro interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow-cpu (the 'tflite' extra) is not installed")
pytest.importorskip("tflite_micro", reason="tflite-micro (the 'tflite' extra) is not installed")

from export import onnx_export as ox  # noqa: E402
from export import tflite_export as tx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def converted(upstream_ckpt, fixtures_dir, speech_commands_test):
    """Tiny converted once (TF import + conversion are the slow part): the converter's
    plain 16x8 flatbuffer, the island version, float reference logits and inputs."""
    src = ox.load_source(upstream_ckpt("tiny"))
    calib = ox.pick_clips(speech_commands_test, 24)
    cf, cs = ox.clip_features(src, calib)
    raw = tx.convert(src.cfg, src.params, cf, cs, islands=False)
    flat = tx.float_islands(raw)
    clips = sorted((fixtures_dir / "audio").glob("*.f32"))
    f, s = ox.clip_features(src, clips)
    ref = ox.session(ox.build_network(src.cfg, src.params)).run(
        ["logits"], {"features": f, "snr_mel": s})[0]
    return {"src": src, "raw": raw, "flat": flat, "f": f, "s": s, "ref": ref}


def test_conversion_islands_and_tflm_run(converted):
    """One test (the conversion is shared; splitting it would convert once per xdist worker)."""
    # the converter's plain 16x8 model has int16 EXP/LOG, which TFLM refuses
    ops = tx.op_summary(converted["raw"])
    assert ops["EXP"] == {"int16": 4} and ops["LOG"] == {"int16": 2}
    with pytest.raises(tx.TfliteExportError, match="EXP|exp.cc"):
        tx.tflm_load(converted["raw"], arena_size=tx.DEFAULT_ARENA)
    # islands leave only kernels TFLM has
    ops = tx.op_summary(converted["flat"])
    for op in tx.FLOAT_OPS:
        assert set(ops[op]) == {"float32"}, op
    assert set(ops["FULLY_CONNECTED"]) == {"int16"}
    assert set(ops["MUL"]) == {"float32", "int16"}     # LayerNorm's normalisation is float
    assert ops["MEAN"].get("float32", 0) == 2 * (converted["src"].cfg.n_layers + 1)
    # TFLM allocates and runs it on the fixture clips
    m = tx.tflm_load(converted["flat"])
    assert 100_000 < m.arena_size < 400_000
    assert m.inputs[0]["dtype"] == np.int16 and m.output["dtype"] == np.int16
    out = m.run(converted["f"], converted["s"])
    ref = converted["ref"]
    assert (out.argmax(1) == ref.argmax(1)).all()
    sqnr = 10 * np.log10((ref ** 2).sum() / ((out - ref) ** 2).sum())
    assert sqnr > 20, sqnr
    # the reported arena is the minimum: 64 bytes less is refused
    with pytest.raises(tx.TfliteExportError):
        tx.tflm_load(converted["flat"], arena_size=m.arena_size - 64)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_cli_tflite_errors(upstream_ckpt, tmp_path):
    r = _cli("tflite", str(upstream_ckpt("tiny")), "-o", str(tmp_path / "m.tflite"))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--calib" in lines[0] and lines[0].startswith("error: ")
    r = _cli("tflite", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.tflite"))
    assert r.returncode == 1 and "none.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "m.tflite").write_bytes(b"keep")
    r = _cli("tflite", str(upstream_ckpt("tiny")), "-o", str(tmp_path / "m.tflite"),
             "--calib", str(tmp_path))
    assert r.returncode == 1 and "--force" in r.stderr
    assert (tmp_path / "m.tflite").read_bytes() == b"keep"
