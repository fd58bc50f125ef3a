"""export/bundle.py: round trip, determinism, atomic writes, refusal to overwrite, and one-line
errors for every kind of bad bundle file."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from export import bundle as B
from export.bundle import Bundle, BundleError, load_bundle, model_hash, save_bundle


def _bundle() -> Bundle:
    meta = {"format": B.FORMAT_NAME, "format_version": B.FORMAT_VERSION,
            "tool": {"name": "nanomamba-kws", "version": "test"}, "model": {"sha256": "x"},
            "ops": [{"name": "fc", "type": "fully_connected", "arrays": {"weight": "op/fc/weight"}}],
            "tensors": {}, "float": ["w"]}
    arrays = {"op/fc/weight": np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
              "op/fc/bias": np.array([1, -2, 3], dtype=np.int32),
              "float/w": np.linspace(-1, 1, 5, dtype=np.float32)}
    return Bundle(meta=meta, arrays=arrays)


def test_round_trip_and_deterministic_bytes(tmp_path):
    p1, p2 = tmp_path / "a.npz", tmp_path / "b.npz"
    save_bundle(_bundle(), p1)
    save_bundle(_bundle(), p2)
    assert p1.read_bytes() == p2.read_bytes()
    b = load_bundle(p1)
    assert b.meta["format_version"] == B.FORMAT_VERSION
    assert b.op("fc")["type"] == "fully_connected"
    assert b.op_array("fc", "weight").dtype == np.int8
    for k, v in _bundle().arrays.items():
        assert np.array_equal(b.arrays[k], v) and b.arrays[k].dtype == v.dtype
    assert set(b.float_state()) == {"w"}
    # readable by plain numpy with allow_pickle=False
    with np.load(p1, allow_pickle=False) as z:
        assert json.loads(bytes(z[B.META_KEY]).decode())["format"] == B.FORMAT_NAME


def test_refuses_overwrite_without_force(tmp_path):
    p = tmp_path / "m.npz"
    save_bundle(_bundle(), p)
    before = p.read_bytes()
    with pytest.raises(BundleError, match="already exists .*--force"):
        save_bundle(_bundle(), p)
    assert p.read_bytes() == before
    save_bundle(_bundle(), p, force=True)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = B._npy_bytes

    def failing(arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(arr)

    monkeypatch.setattr(B, "_npy_bytes", failing)
    with pytest.raises(OSError):
        save_bundle(_bundle(), tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []
    bad = _bundle()
    bad.arrays["op/x"] = np.array([object()], dtype=object)
    with pytest.raises(BundleError, match="cannot be stored"):
        save_bundle(bad, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_load_errors(tmp_path):
    with pytest.raises(BundleError, match="no such file") as e:
        load_bundle(tmp_path / "missing.npz")
    _one_line(e)
    with pytest.raises(BundleError, match="is a directory"):
        load_bundle(tmp_path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip file" * 10)
    with pytest.raises(BundleError, match="not a nanomamba-kws-bundle") as e:
        load_bundle(junk)
    assert str(junk) in _one_line(e)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(BundleError, match="no '__bundle__' metadata"):
        load_bundle(plain)


def test_text_or_empty_file_is_not_called_pickled_data(tmp_path):
    """np.load calls any non-zip file 'pickled (object) data'; the error says what it is."""
    for name, data, what in [("text.npz", b"hello\n", "no zip header"),
                             ("empty.npz", b"", "empty file")]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(BundleError) as e:
            load_bundle(p)
        msg = _one_line(e)
        assert str(p) in msg and what in msg and "pickle" not in msg


def _write_meta(path, meta, arrays=None):
    b = _bundle()
    b.meta = meta
    if arrays is not None:
        b.arrays = arrays
    save_bundle(b, path)


def test_version_errors(tmp_path):
    meta = dict(_bundle().meta)
    meta["format_version"] = B.FORMAT_VERSION + 1
    p = tmp_path / "new.npz"
    _write_meta(p, meta)
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    msg = _one_line(e)
    assert f"version {B.FORMAT_VERSION + 1} is newer" in msg and f"reads (version {B.FORMAT_VERSION})" in msg
    meta["format_version"] = "one"
    p2 = tmp_path / "odd.npz"
    _write_meta(p2, meta)
    with pytest.raises(BundleError, match="unknown bundle format version 'one'"):
        load_bundle(p2)
    meta["format_version"] = B.FORMAT_VERSION - 1
    p4 = tmp_path / "old.npz"
    _write_meta(p4, meta)
    with pytest.raises(BundleError) as e:
        load_bundle(p4)
    assert f"version {B.FORMAT_VERSION - 1} is older" in _one_line(e)
    meta["format_version"] = B.FORMAT_VERSION
    meta["format"] = "something-else"
    p3 = tmp_path / "other.npz"
    _write_meta(p3, meta)
    with pytest.raises(BundleError, match="format 'something-else'"):
        load_bundle(p3)


def test_corrupt_arrays(tmp_path):
    p = tmp_path / "m.npz"
    save_bundle(_bundle(), p)
    # rewrite one member with different content but keep the recorded sha256
    q = tmp_path / "c.npz"
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(q, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "op/fc/bias.npy":
                data = B._npy_bytes(np.array([9, 9, 9], dtype=np.int32))
            zout.writestr(item, data)
    with pytest.raises(BundleError, match="corrupt bundle: array 'op/fc/bias'") as e:
        load_bundle(q)
    _one_line(e)
    # drop a member
    r = tmp_path / "d.npz"
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(r, "w") as zout:
        for item in zin.infolist():
            if item.filename != "float/w.npy":
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(BundleError, match="array 'float/w' is missing"):
        load_bundle(r)
    # truncated file
    t = tmp_path / "t.npz"
    t.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(BundleError):
        load_bundle(t)


def test_model_hash():
    a = {"x": np.arange(4, dtype=np.float32), "y": np.ones((2, 2), dtype=np.float32)}
    b = {"y": np.ones((2, 2), dtype=np.float32), "x": np.arange(4, dtype=np.float32)}
    assert model_hash(a) == model_hash(b)
    c = dict(a)
    c["x"] = c["x"].copy()
    c["x"][0] = 1e-7
    assert model_hash(c) != model_hash(a)
    assert len(model_hash(a)) == 64


def test_bundle_simulator_intmath_import_no_torch():
    code = ("import sys; import export.bundle, export.simulator, export.intmath; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
