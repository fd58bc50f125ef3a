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
def converted(fixtures_dir, speech_commands_test, tmp_path_factory):
    """A real Tiny bundle converted once (TF import + conversion are the slow part): the
    quantizer's plain 16x8 flatbuffer carrying the bundle's ranges, the island version,
    float reference logits and inputs."""
    from export.bundle import save_bundle
    from qhelpers import small_bundle
    bundle, _, _ = small_bundle("tiny")
    path = tmp_path_factory.mktemp("bundle") / "tiny.npz"
    save_bundle(bundle, path)
    src = ox.load_source(path)
    cf, cs, _ = tx.representative_inputs(src, speech_commands_test, 24)
    raw = tx.convert(src.cfg, tx.bundle_params(src), cf, cs, islands=False,
                     ranges=tx.bundle_ranges(src.bundle))
    flat = tx.float_islands(raw)
    clips = sorted((fixtures_dir / "audio").glob("*.f32"))
    f, s = ox.clip_features(src, clips)
    ref = ox.session(ox.build_network(src.cfg, src.params)).run(
        ["logits"], {"features": f, "snr_mel": s})[0]
    return {"src": src, "raw": raw, "flat": flat, "f": f, "s": s, "ref": ref, "path": path}


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
    # the bundle's scales: found for every bundle tensor, equal where 16x8 allows it
    rows = {r["name"]: r for r in tx.check_scales(converted["flat"], converted["src"].bundle)}
    assert set(rows) == set(converted["src"].bundle.meta["tensors"])
    assert all(r["how"] != "not found" and r["how"] != "overridden by the quantizer"
               for r in rows.values()), [r for r in rows.values() if r["how"] in ("not found", "overridden by the quantizer")]
    exact = [r for r in rows.values() if r["how"].startswith("bundle scale")]
    assert len(exact) >= 40 and all(abs(r["ratio"] - 1) < 1e-6 for r in exact)
    assert rows["snr_mel"]["how"] == "bundle scale, int16 for int8"
    assert rows["blocks.0.h"]["how"] == "per-channel -> per-tensor max"
    assert rows["blocks.0.dA"]["tflite_scales"] == [2.0 ** -15]
    # the bundle's int8 weights are in the .tflite as they are, in every channel whose
    # largest level is 127 (there the converter's max|w|/127 is the bundle's scale)
    fb = tx._tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(converted["flat"]), 0)
    want = converted["src"].bundle.op_array("classifier", "weight")
    full = np.abs(want).max(axis=1) == 127
    assert full.sum() >= len(want) - 2
    found = [np.frombuffer(bytes(bytearray(model.buffers[t.buffer].data)), np.int8)
             for t in model.subgraphs[0].tensors
             if t.type == fb.TensorType.INT8 and list(t.shape) == list(want.shape)
             and model.buffers[t.buffer].data is not None]
    assert any(np.array_equal(f.reshape(want.shape)[full], want[full]) for f in found)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_cli_tflite_errors(converted, tmp_path):
    from export.bundle import load_bundle, save_bundle
    b = load_bundle(converted["path"])
    b.meta["format_version"] = 7
    save_bundle(b, tmp_path / "newer.npz")
    r = _cli("tflite", str(tmp_path / "newer.npz"), "-o", str(tmp_path / "m.tflite"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "newer.npz" in lines[0] and "version 7 is newer" in lines[0]
    r = _cli("tflite", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.tflite"))
    assert r.returncode == 1 and "none.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "m.tflite").write_bytes(b"keep")
    r = _cli("tflite", str(converted["path"]), "-o", str(tmp_path / "m.tflite"))
    assert r.returncode == 1 and "--force" in r.stderr
    assert (tmp_path / "m.tflite").read_bytes() == b"keep"
    assert not (tmp_path / "newer.tflite").exists()
