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


def test_round_trip_and_deterministic_bytes(tmp_path, monkeypatch):
    # the toy metadata is not a whole model: this test is about the container only
    monkeypatch.setattr(B, "check_bundle_meta", lambda meta, arrays, path: None)
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



# ---- schema check of the metadata (check_bundle_meta), on a real tiny bundle ----------------

@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    """A real tiny bundle (calibrated once per process by tests/qhelpers.small_bundle)."""
    from qhelpers import small_bundle
    b, _, _ = small_bundle("tiny")
    path = tmp_path_factory.mktemp("schema") / "tiny.npz"
    save_bundle(Bundle(meta=json.loads(json.dumps(b.meta)), arrays=dict(b.arrays)), path)
    return path


def _mutated(src, dst, edit):
    b = load_bundle(src)
    meta = json.loads(json.dumps(b.meta))
    edit(meta)
    save_bundle(Bundle(meta=meta, arrays=b.arrays), dst)


def _fc(meta, name="classifier"):
    return next(o for o in meta["ops"] if o["name"] == name)


def _drop(d, key):
    del d[key]


_EDITS = [
    ("no model", lambda m: _drop(m, "model"), "bundle has no 'model'"),
    ("no ops", lambda m: _drop(m, "ops"), "bundle has no 'ops'"),
    ("no tensors", lambda m: _drop(m, "tensors"), "bundle has no 'tensors'"),
    ("no frontend", lambda m: _drop(m, "frontend"), "bundle has no 'frontend'"),
    ("labels cut", lambda m: m["model"].__setitem__("labels", m["model"]["labels"][:5]),
     "model.labels has 5 entries, model.config.n_classes is 12"),
    ("d_model text", lambda m: m["model"]["config"].__setitem__("d_model", "sixteen"),
     "model.config.d_model must be a positive integer"),
    ("no n_layers", lambda m: _drop(m["model"]["config"], "n_layers"),
     "model.config has no 'n_layers'"),
    ("logits width", lambda m: m["tensors"]["logits"].__setitem__("shape", [5]),
     "tensors.logits.shape is [5], the config says [12]"),
    ("negative scale", lambda m: m["tensors"]["logits"].__setitem__("scale", -0.5),
     "tensors.logits.scale must be positive and finite"),
    ("unknown kernel", lambda m: _fc(m).__setitem__("kernel", "nosuch_kernel"),
     "op 'classifier': unknown kernel 'nosuch_kernel'"),
    ("unknown type", lambda m: _fc(m).__setitem__("type", "conv2d"),
     "op 'classifier': unknown op type 'conv2d'"),
    ("n_fft", lambda m: m["frontend"]["meta"].__setitem__("n_fft", 500),
     "frontend.meta.n_fft is 500, this front end has 512"),
    ("undeclared tensor", lambda m: _fc(m).__setitem__("inputs", ["nowhere"]),
     "op 'classifier': input tensor 'nowhere' is not declared"),
    ("fc rows", lambda m: _fc(m)["params"].__setitem__("rows", 11), "op 'classifier': weight"),
]


@pytest.mark.parametrize("what, edit, problem", _EDITS, ids=[e[0] for e in _EDITS])
def test_schema_errors_name_file_and_first_problem(real_bundle, tmp_path, what, edit, problem):
    p = tmp_path / "bad.npz"
    _mutated(real_bundle, p, edit)
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    msg = _one_line(e)
    assert msg.startswith(f"{p}: invalid bundle metadata: "), msg
    assert problem in msg, msg


def test_schema_metadata_list_and_bad_arrays_index(real_bundle, tmp_path):
    """A __bundle__ that is a JSON list, or whose 'arrays' index is not an object: one line."""
    with np.load(real_bundle, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    for name, meta in [("list", [1, 2]), ("arrays", None)]:
        if meta is None:
            meta = json.loads(bytes(members[B.META_KEY]).decode())
            meta["arrays"] = ["x"]
        p = tmp_path / f"{name}.npz"
        np.savez(p, **{**members, B.META_KEY: np.frombuffer(json.dumps(meta).encode(), np.uint8)})
        with pytest.raises(BundleError) as e:
            load_bundle(p)
        assert _one_line(e).startswith(f"{p}: "), _one_line(e)


def test_real_bundle_passes_and_kernel_types_match_simulator(real_bundle):
    from export.simulator import Simulator
    load_bundle(real_bundle)
    ops = {n[len("_op_"):] for n in dir(Simulator) if n.startswith("_op_")}
    assert set(B.KERNELS) == ops


@pytest.mark.parametrize("command", [["generate", "-o", "{out}"], ["onnx", "-o", "{out}.onnx"],
                                     ["tflite", "-o", "{out}.tflite"],
                                     ["build", "--board", "mps2-an386", "-o", "{out}"]])
def test_cli_refuses_invalid_bundle_in_one_line(real_bundle, tmp_path, command):
    """QA: labels cut to 5 made `generate` emit kws_labels[12] with 5 initialisers."""
    from click.testing import CliRunner
    from export.cli import main
    p = tmp_path / "cut.npz"
    _mutated(real_bundle, p, lambda m: m["model"].__setitem__("labels", m["model"]["labels"][:5]))
    out = tmp_path / "out"
    args = [command[0], str(p)] + [a.format(out=out) for a in command[1:]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert r.output.strip() == (f"error: {p}: invalid bundle metadata: model.labels has 5 "
                                f"entries, model.config.n_classes is 12"), r.output
    assert list(tmp_path.iterdir()) == [p]
