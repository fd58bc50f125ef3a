"""export/bundle.py: round trip, determinism, atomic writes, refusal to overwrite, and one-line
errors for every kind of bad bundle file."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

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
# defence in depth (a bundle built in memory, or one without meta_sha256): QA's edits and the
# op contracts of export.bundle._OP_CONTRACT
_DEFENCE = [
    ("ops swapped", lambda m: m["ops"].insert(0, m["ops"].pop(1)),
     "op 'blocks.0.norm': input tensor 'patch' is not made by an earlier op (ops out of order?)"),
    ("per-channel scale length", lambda m: m["tensors"]["patch"].__setitem__("scale", [1.0, 2.0]),
     "tensors.patch.scale has 2 per-channel entries, its shape [16] has 16 channels on axis 0"),
    ("h scale length", lambda m: m["tensors"]["blocks.0.h"].__setitem__(
        "scale", m["tensors"]["blocks.0.h"]["scale"][:4]),
     "tensors.blocks.0.h.scale has 4 per-channel entries, its shape [24, 4] has 24 channels"),
    ("patch int8", lambda m: m["tensors"]["patch"].__setitem__("dtype", "int8"),
     "op 'blocks.0.residual': residual_add takes int32 tensors of one scale and zero point 0; "
     "'patch' is int8"),
    ("norm params", lambda m: m["ops"][1].__setitem__("params", {}),
     "op 'blocks.0.norm'.params has no 'channels'"),
    ("ssm params", lambda m: _fc(m, "blocks.0.sa_ssm").__setitem__("params", {}),
     "op 'blocks.0.sa_ssm'.params has no 'd_inner'"),
    ("ssm param not int", lambda m: _fc(m, "blocks.0.sa_ssm")["params"].__setitem__("d_shift", 2.5),
     "op 'blocks.0.sa_ssm'.params.d_shift must be an integer, not 2.5"),
    ("logits zero point", lambda m: m["tensors"]["logits"].__setitem__("zero_point", 10 ** 30),
     f"tensors.logits.zero_point {10 ** 30} is outside the int8 range -128..127"),
    ("p_shift", lambda m: _fc(m, "blocks.0.sa_ssm")["params"].__setitem__("p_shift", 40),
     "op 'blocks.0.sa_ssm'.params.p_shift is 40, outside the range the kernels take (0..31)"),
    ("requantize shift", lambda m: _fc(m, "blocks.0.B_gate")["params"].__setitem__("shift", -32),
     "op 'blocks.0.B_gate'.params.shift is -32, outside the range the kernels take (-31..30)"),
    ("multiplier", lambda m: _fc(m, "mean")["params"].__setitem__("multiplier", 2 ** 31),
     "op 'mean'.params.multiplier is 2147483648, outside the range the kernels take"),
    ("left_shift", lambda m: _fc(m, "blocks.0.dt_add")["params"].__setitem__("left_shift", 16),
     "op 'blocks.0.dt_add': ('blocks.0.dt_raw' - zero point) << left_shift 16 overflows int32"),
    ("lut kind", lambda m: _fc(m, "blocks.0.silu_u")["params"].__setitem__("kind", "s8"),
     "op 'blocks.0.silu_u': a kind s8 table takes an int8 input"),
    ("arity", lambda m: _fc(m, "blocks.0.B_gate")["inputs"].pop(),
     "op 'blocks.0.B_gate': a mul op takes 2 input(s) and gives 1 output(s), not 1 and 1"),
    ("no ssm internal", lambda m: _drop(m["tensors"], "blocks.0.du"),
     "op 'blocks.0.sa_ssm': its internal tensor 'blocks.0.du' is not declared"),
    ("frame after clip", lambda m: m["ops"][0].__setitem__("stage", "clip"),
     "op 'blocks.0.norm': a frame op after the clip op 'patch_proj'"),
    ("frame reads pooled", lambda m: _fc(m).__setitem__("stage", "frame"),
     "op 'classifier': a frame op cannot read 'pooled', made once per clip by 'mean'"),
    ("no finalize", lambda m: _drop(_fc(m, "mean"), "finalize_kernel"),
     "op 'mean': finalize_kernel must be 'mean_pool_finalize', not null"),
    ("ln channels", lambda m: _fc(m, "final_norm")["params"].__setitem__("channels", 24),
     "op 'final_norm': array 'gamma' has shape [16], channels is [24]"),
    ("features format", lambda m: m["tensors"]["features"].__setitem__("zero_point", 3),
     "tensors.features (dtype, scale, zero_point) int16, 0.00048828125, 3 differ from the front "
     "end's output format"),
    ("written twice", lambda m: _fc(m, "blocks.0.in_proj_z").__setitem__("outputs", ["blocks.0.u"]),
     "op 'blocks.0.in_proj_z': output tensor 'blocks.0.u' is already made by an earlier op"),
]
_EDITS += _DEFENCE


@pytest.mark.parametrize("what, edit, problem", _EDITS, ids=[e[0] for e in _EDITS])
def test_schema_errors_name_file_and_first_problem(real_bundle, tmp_path, what, edit, problem):
    p = tmp_path / "bad.npz"
    _mutated(real_bundle, p, edit)
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    msg = _one_line(e)
    assert msg.startswith(f"{p}: invalid bundle metadata: "), msg
    assert problem in msg, msg


def test_schema_rejects_out_of_range_requantize_array(real_bundle, tmp_path):
    """Per-channel requantize shifts live in arrays: their range is checked too."""
    b = load_bundle(real_bundle)
    key = b.op("classifier")["arrays"]["shift"]
    arrays = dict(b.arrays)
    arrays[key] = np.full_like(arrays[key], 31)
    p = tmp_path / "shift.npz"
    save_bundle(Bundle(meta=json.loads(json.dumps(b.meta)), arrays=arrays), p)
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    assert _one_line(e) == (f"{p}: invalid bundle metadata: op 'classifier': array 'shift' "
                            f"holds 31..31, outside the range the kernels take (-31..30)")


# ---- the metadata digest (meta_sha256): hand edits of __bundle__ inside the zip -----------

def _rewrite_meta(src, dst, edit):
    """Copy bundle ``src`` to ``dst`` with ``edit(meta)`` applied to the ``__bundle__`` member
    directly (as a hand edit of the zip would: nothing recomputed)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == B.META_KEY + ".npy":
                meta = json.loads(bytes(np.load(io.BytesIO(data))).decode())
                edit(meta)
                text = json.dumps(meta, indent=1)
                data = B._npy_bytes(np.frombuffer(text.encode(), np.uint8))
            zout.writestr(item, data)


def _swap01(meta):
    meta["ops"][0], meta["ops"][1] = meta["ops"][1], meta["ops"][0]


def test_hand_edited_metadata_is_refused(real_bundle, tmp_path):
    """QA: swapping ops[0] and ops[1] inside the zip passed load_bundle, generate and build,
    and the firmware said `down` for `yes`."""
    meta = json.loads(bytes(np.load(real_bundle)[B.META_KEY]).decode())
    assert meta[B.META_DIGEST_KEY] == B.meta_digest(meta)
    for what, edit in [("swap", _swap01),
                       ("scale", lambda m: m["tensors"]["logits"].__setitem__("scale", 0.5)),
                       ("label", lambda m: m["model"]["labels"].reverse())]:
        p = tmp_path / f"{what}.npz"
        _rewrite_meta(real_bundle, p, edit)
        with pytest.raises(BundleError) as e:
            load_bundle(p)
        assert _one_line(e) == (f"{p}: metadata was edited after it was written (meta_sha256 "
                                f"mismatch); re-run kws-export quantize")
    # a NaN is never written: refused as corrupt, not a ValueError from the digest
    p = tmp_path / "nan.npz"
    _rewrite_meta(real_bundle, p, lambda m: m["tensors"]["logits"].__setitem__("scale", math.nan))
    with pytest.raises(BundleError) as e:
        load_bundle(p)
    assert _one_line(e).startswith(f"{p}: corrupt bundle metadata (a NaN value")


def test_bundle_without_digest_loads_and_is_still_checked(real_bundle, tmp_path):
    """A format-2 bundle written before meta_sha256 existed: read without the digest check
    (same format version), its bundle_digest unchanged; check_bundle_meta still runs."""
    old = tmp_path / "old.npz"
    _rewrite_meta(real_bundle, old, lambda m: m.pop(B.META_DIGEST_KEY))
    b_old, b_new = load_bundle(old), load_bundle(real_bundle)
    assert B.META_DIGEST_KEY not in b_old.meta
    assert B.bundle_digest(b_old) == B.bundle_digest(b_new)
    # saved again: the digest key is added, the bundle digest stays, the bytes are those of
    # a bundle written by this version
    again = tmp_path / "again.npz"
    save_bundle(b_old, again)
    assert again.read_bytes() == real_bundle.read_bytes()
    assert B.bundle_digest(load_bundle(again)) == B.bundle_digest(b_new)
    bad = tmp_path / "old_swapped.npz"
    _rewrite_meta(real_bundle, bad, lambda m: (_swap01(m), m.pop(B.META_DIGEST_KEY)))
    with pytest.raises(BundleError) as e:
        load_bundle(bad)
    assert _one_line(e) == (f"{bad}: invalid bundle metadata: op 'blocks.0.norm': input tensor "
                            f"'patch' is not made by an earlier op (ops out of order?)")


def test_truncated_bundle_is_not_called_pickled_data(real_bundle, tmp_path):
    """QA: the first 2 bytes of a bundle were 'pickled (object) data' to np.load."""
    data = real_bundle.read_bytes()
    for n, what in [(2, "2 bytes"), (4, "no zip directory at the end"),
                    (len(data) // 2, "no zip directory at the end")]:
        p = tmp_path / f"cut{n}.npz"
        p.write_bytes(data[:n])
        with pytest.raises(BundleError) as e:
            load_bundle(p)
        assert _one_line(e) == (f"{p}: not a nanomamba-kws-bundle file: truncated or not a zip "
                                f"archive ({what})")


def test_generate_refuses_hand_edited_bundle(real_bundle, tmp_path):
    """`python -m export generate BAD -o out`: exit 1, one line, nothing written."""
    bad = tmp_path / "bad.npz"
    _rewrite_meta(real_bundle, bad, _swap01)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "export", "generate", str(bad), "-o", str(out)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert r.stderr == (f"error: {bad}: metadata was edited after it was written (meta_sha256 "
                        f"mismatch); re-run kws-export quantize\n")
    assert sorted(tmp_path.iterdir()) == [bad]


@pytest.mark.parametrize("what, edit, problem", _DEFENCE, ids=[e[0] for e in _DEFENCE])
def test_generate_refuses_invalid_metadata(real_bundle, tmp_path, what, edit, problem):
    """The defence-in-depth cases through the CLI (a bundle whose digest matches its edited
    metadata, as a buggy quantizer would write): exit 1, one line, nothing written."""
    from click.testing import CliRunner
    from export.cli import main
    p = tmp_path / "bad.npz"
    _mutated(real_bundle, p, edit)
    r = CliRunner().invoke(main, ["generate", str(p), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: invalid bundle metadata: ")
    assert problem in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == [p]


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
