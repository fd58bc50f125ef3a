"""The quantized-model bundle: one self-describing, versioned file that every later stage
reads (simulator, ONNX/TFLite exporters, C code generator). No torch import.

File format (version 2)
-----------------------
A zip archive readable by ``numpy.load(path, allow_pickle=False)`` (an ``.npz``), written
deterministically (fixed member timestamps, sorted members: same inputs, same bytes):

- member ``__bundle__``: uint8 array, the UTF-8 JSON metadata (below);
- every other member: one integer or float32 array, named by its key.

JSON metadata keys:

- ``format`` ("nanomamba-kws-bundle"), ``format_version`` (int), ``tool`` {name, version};
- ``model``: {``sha256`` (:func:`model_hash` of the source checkpoint's tensors), ``source``
  (checkpoint file name), ``name``, ``config`` (NanoMambaConfig dict), ``labels``,
  ``n_frames``};
- ``calibration``: what the scales were calibrated on and how;
- ``quantization``: the bit-width choices and options the quantizer used;
- ``frontend``: {``impl``, ``meta`` (the front end's own metadata, incl. the dtype, scale and
  zero_point of ``features`` and ``snr_mel``), ``arrays`` (names; stored as
  ``frontend/<name>``)};
- ``tensors``: name -> {``dtype`` (int8/int16/int32), ``scale``, ``zero_point``, ``shape``
  (per frame, without batch and time), ``per_frame`` (bool), ``q_format`` (e.g. "Q15" for
  fixed-point tensors, else null), ``float_tap`` (the float model's tap of the same value,
  or null)};
- ``ops``: the network in execution order; each {``name``, ``type`` (fully_connected,
  conv1d_depthwise, layer_norm, lut, add, mul, sa_ssm, mean), ``kernel`` (the C/Python
  kernel name), ``stage`` ("frame": once per frame; "clip": once per window),
  ``inputs``, ``outputs`` (tensor names), ``params`` (scalars), ``arrays`` (param name ->
  array key), ``state`` (per-op state a streaming runtime keeps, with shapes and dtypes)};
- ``float``: the published state-dict keys; the float32 arrays are stored as
  ``float/<key>`` (the float exporters and a float32 C build use these);
- ``arrays``: key -> {dtype, shape, sha256} of every stored array (integrity check).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.fileio import make_parent, umask_mode
from nanomamba.errors import KwsError

FORMAT_NAME = "nanomamba-kws-bundle"
#: The bundle format version this tool writes and the only one it reads. Version 2 added the
#: label ops (``classifier_fine`` -> ``logits_fine`` int32, ``label`` = its argmax); a
#: version 1 bundle is refused (re-run ``kws-export quantize``).
FORMAT_VERSION = 2
META_KEY = "__bundle__"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class BundleError(KwsError):
    """A bundle file is missing, not a bundle, from a newer/unknown format version, corrupt,
    or would be overwritten without force."""


def model_hash(state: dict) -> str:
    """sha256 identifying a checkpoint's tensors.

    Args:
        state: published-format state dict (key -> array or torch tensor).
    Returns:
        hex digest over, for each key in sorted order: the key (UTF-8), a NUL byte, the
        dtype name, the shape as text, a NUL byte and the raw little-endian bytes of the
        tensor as float32 (floating tensors) or its own dtype.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        v = state[key]
        arr = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype("<f4")
        arr = np.ascontiguousarray(arr)
        h.update(key.encode() + b"\0" + arr.dtype.str.encode() + str(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    return h.hexdigest()


def bundle_digest(bundle: "Bundle") -> str:
    """sha256 identifying one quantization of a model: its metadata and every array.

    Two bundles of the same checkpoint quantized differently (other calibration clips,
    widths or options) have the same :func:`model_hash` but different digests; a bundle
    and its saved-and-loaded copy have the same digest.

    Args:
        bundle: a :class:`Bundle` (in memory or loaded).
    Returns:
        hex digest over the metadata as canonical JSON (sorted keys, no spaces; the
        ``arrays`` integrity index left out, since :func:`save_bundle` computes it), a NUL
        byte, then for each array key in sorted order: the key (UTF-8), a NUL byte, the
        dtype (numpy ``dtype.str``), the shape as text, a NUL byte and the raw C-order bytes.
    Raises:
        TypeError / ValueError: metadata that is not JSON (as :func:`save_bundle` would).
    """
    meta = {k: v for k, v in bundle.meta.items() if k != "arrays"}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, separators=(",", ":"),
                                  allow_nan=False).encode() + b"\0")
    for key in sorted(bundle.arrays):
        arr = np.ascontiguousarray(bundle.arrays[key])
        h.update(key.encode() + b"\0" + arr.dtype.str.encode() + str(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    return h.hexdigest()


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


@dataclass
class Bundle:
    """A quantized model in memory: ``meta`` (the JSON metadata) and ``arrays`` (key ->
    numpy array). ``path`` is the file it was loaded from, if any."""

    meta: dict
    arrays: dict = field(default_factory=dict)
    path: Path | None = None

    def op(self, name: str) -> dict:
        """The op called ``name``. Raises KeyError."""
        for op in self.meta["ops"]:
            if op["name"] == name:
                return op
        raise KeyError(name)

    def op_array(self, op_name: str, param: str) -> np.ndarray:
        """Array parameter ``param`` of op ``op_name``."""
        return self.arrays[self.op(op_name)["arrays"][param]]

    def float_state(self) -> dict:
        """The float parameters: published key -> float32 array."""
        return {k: self.arrays[f"float/{k}"] for k in self.meta["float"]}


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(arr, order="C", copy=True), allow_pickle=False)
    return buf.getvalue()


def save_bundle(bundle: Bundle, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write ``bundle`` to ``path`` atomically (temp file in the same folder + rename).

    Args:
        bundle: metadata and arrays (the ``arrays`` key of the metadata is (re)computed).
        path: destination file (conventionally ``.npz``).
        force: overwrite an existing file.
    Returns:
        the path written.
    Raises:
        BundleError: ``path`` exists and not ``force``; an array key is the reserved
            ``__bundle__`` or an array holds Python objects.
    """
    path = Path(path)
    if path.exists() and not force:
        raise BundleError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise BundleError(f"{path}: is a directory, expected a bundle file name")
    meta = dict(bundle.meta)
    index = {}
    for key in sorted(bundle.arrays):
        arr = np.asarray(bundle.arrays[key])
        if key == META_KEY or arr.dtype == object:
            raise BundleError(f"{path}: array '{key}' cannot be stored in a bundle")
        index[key] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "sha256": _sha(arr)}
    meta["arrays"] = index
    text = json.dumps(meta, indent=1, sort_keys=False, allow_nan=False)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise BundleError(f"{path}: cannot write the bundle: {err.strerror or err}") from None
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            members = [(META_KEY, np.frombuffer(text.encode(), dtype=np.uint8))]
            members += [(k, np.asarray(bundle.arrays[k])) for k in sorted(bundle.arrays)]
            for key, arr in members:
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, _npy_bytes(arr))
        umask_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    bundle.meta = meta
    bundle.path = path
    return path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and check a bundle file.

    Args:
        path: a file written by :func:`save_bundle`.
    Returns:
        the :class:`Bundle` (arrays in memory).
    Raises:
        BundleError (one line, naming the file): missing file; not a bundle (not a zip/npz,
        no ``__bundle__`` metadata, other format); a newer, older or unknown format version
        (says which version it is and which this tool reads); corrupt metadata or arrays
        (missing, unreadable, CRC, dtype/shape/sha256 mismatch); metadata that fails
        :func:`check_bundle_meta` (names the first problem).
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    if path.is_dir():
        raise BundleError(f"{path}: is a directory, expected a bundle file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(b"PK"):
        # np.load would call any non-zip, non-.npy file "pickled (object) data"
        what = "empty file" if not head else "no zip header"
        raise BundleError(f"{path}: not a {FORMAT_NAME} file (not an npz archive: {what})")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise BundleError(f"{path}: not a {FORMAT_NAME} file (not an npz archive: "
                          f"{str(err).splitlines()[0][:80] if str(err) else type(err).__name__})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise BundleError(f"{path}: not a {FORMAT_NAME} file (a single .npy array, not an archive)")
    with npz:
        if META_KEY not in npz.files:
            raise BundleError(f"{path}: not a {FORMAT_NAME} file (no '{META_KEY}' metadata)")
        try:
            meta = json.loads(bytes(npz[META_KEY]).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as err:
            raise BundleError(f"{path}: corrupt bundle metadata ({type(err).__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            fmt = meta.get("format") if isinstance(meta, dict) else None
            raise BundleError(f"{path}: not a {FORMAT_NAME} file (format {fmt!r})")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise BundleError(f"{path}: unknown bundle format version {version!r} "
                              f"(this tool reads version {FORMAT_VERSION})")
        if version > FORMAT_VERSION:
            raise BundleError(f"{path}: bundle format version {version} is newer than this tool "
                              f"reads (version {FORMAT_VERSION}); upgrade nanomamba-kws")
        if version < FORMAT_VERSION:
            raise BundleError(f"{path}: bundle format version {version} is older than this tool "
                              f"reads (version {FORMAT_VERSION}: the label ops); re-run "
                              f"kws-export quantize")
        index = meta.get("arrays")
        if not isinstance(index, dict) or not all(
                isinstance(v, dict) and {"dtype", "shape", "sha256"} <= set(v) for v in index.values()):
            raise BundleError(f"{path}: invalid bundle metadata: 'arrays' must be an object of "
                              f"{{dtype, shape, sha256}} entries")
        arrays = {}
        for key, spec in index.items():
            if key not in npz.files:
                raise BundleError(f"{path}: corrupt bundle: array '{key}' is missing")
            try:
                arr = npz[key]
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
                raise BundleError(f"{path}: corrupt bundle: array '{key}' is unreadable "
                                  f"({str(err).splitlines()[0][:60] if str(err) else type(err).__name__})") from None
            if arr.dtype.str != spec["dtype"] or list(arr.shape) != spec["shape"] \
                    or _sha(arr) != spec["sha256"]:
                raise BundleError(f"{path}: corrupt bundle: array '{key}' does not match its "
                                  f"recorded dtype/shape/sha256")
            arrays[key] = arr
    check_bundle_meta(meta, arrays, path)
    return Bundle(meta=meta, arrays=arrays, path=path)


#: op type (the simulator's ``Simulator._op_<type>``) -> the kernel names it may carry (the
#: C kernels of firmware_templates/kernels/kws_nn*.c). tests/test_bundle.py checks the types
#: against the simulator.
KERNELS = {
    "fully_connected": ("fully_connected", "fully_connected_w16"),
    "conv1d_depthwise": ("conv1d_depthwise_step", "conv1d_depthwise_step_w16"),
    "layer_norm": ("layer_norm",),
    "lut": ("lut_s8", "lut_s16"),
    "add": ("residual_add", "elementwise_add"),
    "mul": ("elementwise_mul",),
    "mean": ("mean_pool_accumulate",),
    "argmax": ("argmax_s32",),
    "sa_ssm": ("sa_ssm_step",),
}
_CONFIG_KEYS = ("d_model", "d_inner", "d_state", "d_conv", "n_layers", "n_mels", "n_classes")
_TENSOR_DTYPES = ("int8", "int16", "int32")


def check_bundle_meta(meta: dict, arrays: dict, path: str | os.PathLike) -> None:
    """The schema check of a bundle's metadata (the one place; :func:`load_bundle` calls it).

    Checks the types and required keys of every section a later stage reads (``model``,
    ``model.config``, ``frontend``, ``tensors``, ``ops``, ``float``), and the cheap
    consistency rules: ``len(model.labels) == config.n_classes``; the front-end geometry is
    the one export/frontend_fixed.py implements (n_fft 512, hop 160, 16,000-sample clips,
    n_frames, n_bins; n_mels as in the config); every op's ``type`` is a simulator op and its
    ``kernel`` one of that type's kernels (:data:`KERNELS`); op names unique, stages "frame"
    or "clip", every op input/output a declared tensor, every array key stored; every
    tensor's dtype int8/int16/int32, scale(s) positive and finite, integer zero_point, shape
    a list of positive ints (one scale per channel when per-channel); ``features``/
    ``snr_mel`` of shape [n_mels], ``logits`` [n_classes]; fully-connected weights of shape
    (rows, cols) matching their input and output tensors.

    Args:
        meta: the decoded ``__bundle__`` JSON (a dict).
        arrays: the stored arrays (key -> ndarray).
        path: the bundle file, for the message.
    Raises:
        BundleError: ``{path}: invalid bundle metadata: <first problem>``.
    """
    from export import frontend_fixed as ff      # numpy only; imported here: no cycle

    def bad(msg: str):
        raise BundleError(f"{path}: invalid bundle metadata: {msg}")

    def get(d: dict, key: str, kind, where: str):
        if key not in d:
            bad(f"{where} has no '{key}'")
        v = d[key]
        ok = {"dict": isinstance(v, dict), "list": isinstance(v, list),
              "str": isinstance(v, str), "bool": isinstance(v, bool),
              "int": isinstance(v, int) and not isinstance(v, bool),
              "posint": isinstance(v, int) and not isinstance(v, bool) and v > 0,
              "number": isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v)}[kind]
        if not ok:
            what = {"dict": "an object", "list": "a list", "str": "a string", "bool": "a boolean",
                    "int": "an integer", "posint": "a positive integer",
                    "number": "a finite number"}[kind]
            bad(f"{where}.{key} must be {what}, not {json.dumps(v)[:40]}")
        return v

    def str_list(v, where):
        if not all(isinstance(x, str) for x in v):
            bad(f"{where} must be a list of strings")
        return v

    model = get(meta, "model", "dict", "bundle")
    frontend = get(meta, "frontend", "dict", "bundle")
    tensors = get(meta, "tensors", "dict", "bundle")
    ops = get(meta, "ops", "list", "bundle")
    fkeys = str_list(get(meta, "float", "list", "bundle"), "float")
    get(model, "sha256", "str", "model")
    cfg = get(model, "config", "dict", "model")
    c = {k: get(cfg, k, "posint", "model.config") for k in _CONFIG_KEYS}
    labels = str_list(get(model, "labels", "list", "model"), "model.labels")
    if len(labels) != c["n_classes"]:
        bad(f"model.labels has {len(labels)} entries, model.config.n_classes is {c['n_classes']}")
    n_frames = get(model, "n_frames", "posint", "model")

    # front end: the geometry is fixed by export/frontend_fixed.py
    fm = get(frontend, "meta", "dict", "frontend")
    for name in str_list(get(frontend, "arrays", "list", "frontend"), "frontend.arrays"):
        if f"frontend/{name}" not in arrays:
            bad(f"frontend array '{name}' is not stored")
    want = {"clip_samples": ff.CLIP, "n_fft": ff.N_FFT, "hop": ff.HOP, "n_frames": ff.N_FRAMES,
            "n_bins": ff.N_BINS, "n_mels": c["n_mels"], "noise_frames": ff.NOISE_FRAMES}
    for key, value in want.items():
        if get(fm, key, "int", "frontend.meta") != value:
            bad(f"frontend.meta.{key} is {fm[key]}, this front end has {value}")
    if n_frames != ff.N_FRAMES:
        bad(f"model.n_frames is {n_frames}, the front end makes {ff.N_FRAMES}")
    for key in ("version", "mel_nnz", "window_frac", "twiddle_frac", "mel_weight_frac",
                "mag_float_shift", "mel_float_shift", "log_frac", "log_bits", "snr_bits",
                "snr_weight_bits", "tanh_in_frac", "snr_code_step", "feature_frac",
                "noise_mult", "noise_shift", "snr_eps", "norm_eps"):
        get(fm, key, "int", "frontend.meta")
    get(fm, "noise_scale_abs", "number", "frontend.meta")
    outs = get(fm, "outputs", "dict", "frontend.meta")
    for key in ("features", "snr_mel"):
        o = get(outs, key, "dict", "frontend.meta.outputs")
        get(o, "zero_point", "int", f"frontend.meta.outputs.{key}")
        if get(o, "scale", "number", f"frontend.meta.outputs.{key}") <= 0:
            bad(f"frontend.meta.outputs.{key}.scale must be positive")

    # tensors
    for name, t in tensors.items():
        w = f"tensors.{name}"
        if not isinstance(t, dict):
            bad(f"{w} must be an object")
        if get(t, "dtype", "str", w) not in _TENSOR_DTYPES:
            bad(f"{w}.dtype is {t['dtype']!r}, expected one of {', '.join(_TENSOR_DTYPES)}")
        shape = get(t, "shape", "list", w)
        if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                for n in shape):
            bad(f"{w}.shape must be a non-empty list of positive integers, not {shape}")
        get(t, "per_frame", "bool", w)
        get(t, "zero_point", "int", w)
        if "scale" not in t:
            bad(f"{w} has no 'scale'")
        scales = t["scale"] if isinstance(t["scale"], list) else [t["scale"]]
        if not scales or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                 and math.isfinite(s) and s > 0 for s in scales):
            bad(f"{w}.scale must be positive and finite, not {json.dumps(t['scale'])[:40]}")
    want_shape = {"features": [c["n_mels"]], "snr_mel": [c["n_mels"]],
                  "logits": [c["n_classes"]]}
    for name, shape in want_shape.items():
        if name not in tensors:
            bad(f"tensors has no '{name}'")
        if tensors[name]["shape"] != shape:
            bad(f"tensors.{name}.shape is {tensors[name]['shape']}, the config says {shape}")

    # ops
    if not ops:
        bad("ops is empty")
    seen = set()
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            bad(f"ops[{i}] must be an object")
        name = get(op, "name", "str", f"ops[{i}]")
        w = f"op '{name}'"
        if name in seen:
            bad(f"two ops are called '{name}'")
        seen.add(name)
        typ = get(op, "type", "str", w)
        if typ not in KERNELS:
            bad(f"{w}: unknown op type {typ!r} (the simulator has {', '.join(KERNELS)})")
        if get(op, "kernel", "str", w) not in KERNELS[typ]:
            bad(f"{w}: unknown kernel {op['kernel']!r} for a {typ} op "
                f"(known: {', '.join(KERNELS[typ])})")
        if get(op, "stage", "str", w) not in ("frame", "clip"):
            bad(f"{w}: stage must be 'frame' or 'clip', not {op['stage']!r}")
        for key in ("inputs", "outputs"):
            for t in str_list(get(op, key, "list", w), f"{w}.{key}"):
                if t not in tensors:
                    bad(f"{w}: {key[:-1]} tensor '{t}' is not declared in tensors")
        get(op, "params", "dict", w)
        get(op, "state", "dict", w)
        for param, key in get(op, "arrays", "dict", w).items():
            if not isinstance(key, str) or key not in arrays:
                bad(f"{w}: array '{param}' ({key}) is not stored")
        if typ == "fully_connected":
            rows = get(op["params"], "rows", "posint", f"{w}.params")
            cols = get(op["params"], "cols", "posint", f"{w}.params")
            if "weight" not in op["arrays"]:
                bad(f"{w} has no weight array")
            wshape = tuple(arrays[op["arrays"]["weight"]].shape)
            ishape = tensors[op["inputs"][0]]["shape"] if op["inputs"] else None
            oshape = tensors[op["outputs"][0]]["shape"] if op["outputs"] else None
            if wshape != (rows, cols) or not ishape or ishape[-1] != cols \
                    or not oshape or oshape[-1] != rows:
                bad(f"{w}: weight {list(wshape)}, rows x cols {rows} x {cols}, input shape "
                    f"{ishape} and output shape {oshape} disagree")
    for key in fkeys:
        if f"float/{key}" not in arrays:
            bad(f"float array '{key}' is not stored")
