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
- ``arrays``: key -> {dtype, shape, sha256} of every stored array (integrity check);
- ``meta_sha256``: :func:`meta_digest` of the metadata itself (every key above, the
  ``arrays`` index included, this key left out), so a hand edit of ``__bundle__`` (ops
  swapped, a scale or zero point changed) is refused at load. Together with the per-array
  sha256 it seals the whole file against accidental edits and corruption; it is not a
  signature (anyone can recompute it). A format-2 bundle written before this key existed
  (earlier commits of this tool) has no ``meta_sha256``: it is read without this check (the
  format version did not change), and :func:`check_bundle_meta` still validates it.
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

from export.fileio import make_parent, place_new, umask_mode
from nanomamba.errors import KwsError

FORMAT_NAME = "nanomamba-kws-bundle"
#: The bundle format version this tool writes and the only one it reads. Version 2 added the
#: label ops (``classifier_fine`` -> ``logits_fine`` int32, ``label`` = its argmax); a
#: version 1 bundle is refused (re-run ``kws-export quantize``).
FORMAT_VERSION = 2
META_KEY = "__bundle__"
#: metadata key of :func:`meta_digest` (written by :func:`save_bundle`, checked by
#: :func:`load_bundle` when present)
META_DIGEST_KEY = "meta_sha256"
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


def _canonical_json(meta: dict, leave_out: tuple[str, ...]) -> bytes:
    """The metadata without the keys ``leave_out`` as canonical JSON (UTF-8; sorted keys, no
    spaces, no NaN/Infinity): the one form :func:`bundle_digest` and :func:`meta_digest`
    hash. Raises TypeError / ValueError for metadata that is not JSON."""
    return json.dumps({k: v for k, v in meta.items() if k not in leave_out}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False).encode()


def meta_digest(meta: dict) -> str:
    """sha256 of a bundle's metadata, the value of its ``meta_sha256`` key.

    Args:
        meta: the decoded ``__bundle__`` JSON (a dict), as :func:`save_bundle` writes it
            (with the ``arrays`` index).
    Returns:
        hex sha256 of the metadata as canonical JSON (sorted keys, no spaces) with every key
        but ``meta_sha256`` itself, the ``arrays`` index included (so an array replaced
        together with its index entry is caught too).
    Raises:
        TypeError / ValueError: metadata that is not JSON.
    """
    return hashlib.sha256(_canonical_json(meta, (META_DIGEST_KEY,))).hexdigest()


def bundle_digest(bundle: "Bundle") -> str:
    """sha256 identifying one quantization of a model: its metadata and every array.

    Two bundles of the same checkpoint quantized differently (other calibration clips,
    widths or options) have the same :func:`model_hash` but different digests; a bundle
    and its saved-and-loaded copy have the same digest.

    Args:
        bundle: a :class:`Bundle` (in memory or loaded).
    Returns:
        hex digest over the metadata as canonical JSON (sorted keys, no spaces; the
        ``arrays`` integrity index and the ``meta_sha256`` digest left out, since
        :func:`save_bundle` computes them: a bundle saved before ``meta_sha256`` existed
        and the same bundle saved now have the same digest), a NUL
        byte, then for each array key in sorted order: the key (UTF-8), a NUL byte, the
        dtype (numpy ``dtype.str``), the shape as text, a NUL byte and the raw C-order bytes.
    Raises:
        TypeError / ValueError: metadata that is not JSON (as :func:`save_bundle` would).
    """
    h = hashlib.sha256(_canonical_json(bundle.meta, ("arrays", META_DIGEST_KEY)) + b"\0")
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
        bundle: metadata and arrays (the ``arrays`` and ``meta_sha256`` keys of the
            metadata are (re)computed: a bundle loaded, edited in Python and saved again
            is a new, consistent bundle).
        path: destination file (conventionally ``.npz``).
        force: overwrite an existing file.
    Returns:
        the path written.
    Raises:
        BundleError: ``path`` exists and not ``force``; an array key is the reserved
            ``__bundle__`` or an array holds Python objects.
        OutputExistsError: without ``force``, a file that appeared at ``path`` while the
            bundle was written (kept; :func:`export.fileio.place_new`).
    """
    path = Path(path)
    if os.path.lexists(path) and not path.exists() and not force:
        raise BundleError(f"{path}: exists (a symlink to a missing target); use --force "
                          f"to replace it")
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
    meta.pop(META_DIGEST_KEY, None)
    meta["arrays"] = index
    # the digest of the metadata as load_bundle will decode it (JSON round trip: tuples are
    # lists, keys are strings), then written with it
    meta[META_DIGEST_KEY] = meta_digest(json.loads(json.dumps(meta, allow_nan=False)))
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
        if force:
            os.replace(tmp, path)
        else:                             # never replaces a file that appeared meanwhile
            place_new(Path(tmp), path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    bundle.meta = meta
    bundle.path = path
    return path


class _NotFinite(ValueError):
    pass


def _not_finite(name: str):
    raise _NotFinite(f"a {name} value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"a number out of float range ({text[:20]})")
    return value


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and check a bundle file.

    Args:
        path: a file written by :func:`save_bundle`.
    Returns:
        the :class:`Bundle` (arrays in memory).
    Raises:
        BundleError (one line, naming the file): missing file; not a bundle (empty,
        truncated or not a zip archive: "not a nanomamba-kws-bundle file: truncated or not
        a zip archive (...)"; no ``__bundle__`` metadata, other format); a newer, older or
        unknown format version (says which version it is and which this tool reads);
        metadata edited after it was written (``meta_sha256`` mismatch: "metadata was
        edited after it was written (meta_sha256 mismatch); re-run kws-export quantize";
        not checked for a bundle without the key); corrupt metadata or arrays (missing,
        unreadable, CRC, dtype/shape/sha256 mismatch; NaN or infinite numbers in the
        metadata); metadata that fails
        :func:`check_bundle_meta` (names the first problem).
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    if path.is_dir():
        raise BundleError(f"{path}: is a directory, expected a bundle file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    # np.load would call any file that is not a whole zip (or .npy) "pickled (object) data",
    # a truncated bundle included: say what it is. A zip starts with a local file header
    # (PK\3\4; an empty one with its end record, PK\5\6) and ends with the end-of-central-
    # directory record that zipfile.is_zipfile looks for.
    what = ("empty file" if not head else
            f"{len(head)} bytes" if len(head) < 4 else
            "no zip header" if head not in (b"PK\x03\x04", b"PK\x05\x06") else
            None if zipfile.is_zipfile(path) else "no zip directory at the end")
    if what:
        raise BundleError(f"{path}: not a {FORMAT_NAME} file: truncated or not a zip archive "
                          f"({what})")
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
            meta = json.loads(bytes(npz[META_KEY]).decode("utf-8"),
                              parse_constant=_not_finite, parse_float=_finite_float)
        except _NotFinite as err:
            raise BundleError(f"{path}: corrupt bundle metadata ({err}; save_bundle never "
                              f"writes one)") from None
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
        if META_DIGEST_KEY in meta and meta[META_DIGEST_KEY] != meta_digest(meta):
            raise BundleError(f"{path}: metadata was edited after it was written "
                              f"({META_DIGEST_KEY} mismatch); re-run kws-export quantize")
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
#: (qmin, qmax) of each tensor dtype (a zero point must lie inside it)
_QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-2 ** 31, 2 ** 31 - 1)}
#: the network's inputs: the front end's outputs (every other tensor an op makes)
GRAPH_INPUTS = ("features", "snr_mel")

#: What export/simulator.py (``Simulator._op_<type>``) and export/codegen.py
#: (``_Gen._op_<type>``) read of each op type, and nothing more: (number of inputs, number
#: of outputs, integer ``params``, ``arrays`` -> shape in terms of those params (None: checked
#: on its own below)). ``add`` needs either ``same_scale`` (residual_add) or
#: :data:`_ADD_PARAMS`; ``lut`` needs ``kind`` "s8"/"s16"; ``mean`` needs
#: ``finalize_kernel``; ``sa_ssm`` needs the tensors ``<block>.dA``, ``.du``, ``.h``.
_OP_CONTRACT = {
    "fully_connected": (1, 1, ("rows", "cols"),
                        {"weight": ("rows", "cols"), "bias": ("rows",),
                         "multiplier": ("rows",), "shift": ("rows",)}),
    "conv1d_depthwise": (1, 1, ("channels", "kernel_size"),
                         {"weight": ("channels", "kernel_size"), "bias": ("channels",),
                          "multiplier": ("channels",), "shift": ("channels",)}),
    "layer_norm": (1, 1, ("channels", "eps_q", "z_frac_bits", "multiplier", "shift"),
                   {"gamma": ("channels",), "beta": ("channels",)}),
    "lut": (1, 1, (), {"table": None}),
    "add": (2, 1, (), {}),
    "mul": (2, 1, ("multiplier", "shift"), {}),
    "mean": (1, 1, ("multiplier", "shift"), {}),
    "argmax": (1, 1, ("n",), {}),
    "sa_ssm": (4, 1, ("d_inner", "d_state", "p_shift", "exp_frac_bits", "dA_frac_bits",
                      "d_shift"),
               {"k_a": ("d_inner", "d_state"), "exp_table": None,
                **{k: ("d_inner",) for k in ("du_multiplier", "du_shift", "x_shift",
                                             "h_read_shift", "d_q", "y_multiplier",
                                             "y_shift")}}),
}
_ADD_PARAMS = ("left_shift", "a_multiplier", "a_shift", "b_multiplier", "b_shift",
               "out_multiplier", "out_shift")
#: the lut kinds: table entries (lut_s8: table[x + 128]; lut_s16: lut_interp_s16, 513
#: entries) and the input dtype the table is indexed by
_LUT_KINDS = {"s8": (256, "int8"), "s16": (513, "int16")}
#: size params: positive integers
_SIZE_PARAMS = ("rows", "cols", "channels", "kernel_size", "n", "d_inner", "d_state")
_Q31 = (0, 2 ** 31 - 1)           # a Q31 multiplier (an int32_t argument of every kernel)
_MBQM_SHIFT = (-31, 30)           # multiply_by_quantized_multiplier / requantize_single_round
#: The legal range of each integer param and requantize array, from the kernels that use
#: it (export/intmath.py and its C twin firmware_templates/kernels/kws_intmath.h; the
#: kernels of firmware_templates/kernels/kws_nn.c):
#: - multipliers: Q31, 0..2^31 - 1 (quantize_multiplier gives 0 or 2^30..2^31 - 1);
#: - requantize shifts: -31..30 (multiply_by_quantized_multiplier,
#:   requantize_single_round; positive = left);
#: - left_shift: elementwise_add computes (int32_t)1 << left_shift: 0..30 (and the
#:   shifted input must fit int32, checked per op);
#: - eps_q: layer_norm's round_shift_right(eps_q, 2k) takes |x| < 2^62; at least 1;
#: - z_frac_bits: layer_norm shifts right by inv_sqrt_shift(V) - z_frac_bits with
#:   inv_sqrt_shift in 30..60, which must not be negative: 0..30;
#: - p_shift, dA_frac_bits, d_shift, h_read_shift: sa_ssm_step's round_shift_right32
#:   (n 0..31);
#: - exp_frac_bits: exp2_neg_lookup (frac_bits 1..16; a table of 2^frac_bits entries).
_RANGES = {"multiplier": _Q31, "a_multiplier": _Q31, "b_multiplier": _Q31,
           "out_multiplier": _Q31, "du_multiplier": _Q31, "y_multiplier": _Q31,
           "shift": _MBQM_SHIFT, "a_shift": _MBQM_SHIFT, "b_shift": _MBQM_SHIFT,
           "out_shift": _MBQM_SHIFT, "du_shift": _MBQM_SHIFT, "y_shift": _MBQM_SHIFT,
           "left_shift": (0, 30), "eps_q": (1, 2 ** 62 - 1), "z_frac_bits": (0, 30),
           "p_shift": (0, 31), "dA_frac_bits": (0, 31), "d_shift": (0, 31),
           "h_read_shift": (0, 31), "exp_frac_bits": (1, 16)}


def check_bundle_meta(meta: dict, arrays: dict, path: str | os.PathLike) -> None:
    """The schema check of a bundle's metadata (the one place; :func:`load_bundle` calls it).

    Checks the types and required keys of every section a later stage reads (``model``,
    ``model.config``, ``frontend``, ``tensors``, ``ops``, ``float``), and the cheap
    consistency rules: ``len(model.labels) == config.n_classes``; the front-end geometry is
    the one export/frontend_fixed.py implements (n_fft 512, hop 160, 16,000-sample clips,
    n_frames, n_bins; n_mels as in the config); every op's ``type`` is a simulator op and its
    ``kernel`` one of that type's kernels (:data:`KERNELS`); op names unique, stages "frame"
    or "clip", every op input/output a declared tensor, every array key stored; every
    tensor's dtype int8/int16/int32, scale(s) positive and finite, integer zero_point inside
    its dtype's range, shape a list of positive ints; a per-channel scale (a list) has
    exactly ``shape[channel_axis]`` entries (axis 0 when absent); ``features``/``snr_mel``
    of shape [n_mels] and in the front end's output format (dtype, scale, zero_point of
    ``frontend.meta.outputs``), ``logits`` [n_classes]; fully-connected weights of shape
    (rows, cols) matching their input and output tensors.

    It also checks what a hand edit or a buggy quantizer could break and the simulator or
    the C generator would otherwise crash on, miscompute or emit non-compiling C for (the
    ``meta_sha256`` digest catches hand edits first; this covers bundles built in memory and
    bundles without the digest):

    - execution order: every op input is a network input (:data:`GRAPH_INPUTS`) or made by
      an earlier op, every tensor is made once (an ``sa_ssm`` op also makes its
      ``<block>.dA``/``.du``/``.h``), the frame ops come before the clip ops and none reads
      a mean's or a clip op's output;
    - per op type, :data:`_OP_CONTRACT`: input and output counts; the integer params the
      simulator and the C generator read (sizes positive; shifts, multipliers, eps_q,
      frac bits inside :data:`_RANGES`, the kernels' legal ranges); the arrays they read,
      their shapes, and requantize multiplier/shift arrays inside :data:`_RANGES`;
    - per op type: weight_dtype = the weight array's dtype and the kernel's (``_w16``);
      conv1d/layer_norm tensors of ``channels`` elements; lut ``kind`` s8/s16 with a
      256/513-entry table, an int8/int16 input and kernel ``lut_<kind>``; residual_add
      (``same_scale``) on int32 tensors of one scale and zero point 0; elementwise_add with
      ``(x - zp) << left_shift`` inside int32; add/lut/mean inputs of their output's size;
      mean's ``finalize_kernel`` ``mean_pool_finalize``; argmax over ``n`` elements to one
      int32; sa_ssm tensors of d_inner/d_state elements, its internal tensors declared with
      shapes [d_inner, d_state]/[d_inner], an exp_table of 2^exp_frac_bits entries.

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
        qmin, qmax = _QRANGE[t["dtype"]]
        if not qmin <= get(t, "zero_point", "int", w) <= qmax:
            bad(f"{w}.zero_point {t['zero_point']} is outside the {t['dtype']} range "
                f"{qmin}..{qmax}")
        if "scale" not in t:
            bad(f"{w} has no 'scale'")
        scales = t["scale"] if isinstance(t["scale"], list) else [t["scale"]]
        if not scales or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                 and math.isfinite(s) and s > 0 for s in scales):
            bad(f"{w}.scale must be positive and finite, not {json.dumps(t['scale'])[:40]}")
        if isinstance(t["scale"], list):
            # per-channel: one scale per index of shape[channel_axis] (the simulator's
            # Simulator.scale and the ONNX exporter read it so; axis 0 when absent)
            axis = t.get("channel_axis", 0)
            if not isinstance(axis, int) or isinstance(axis, bool) \
                    or not 0 <= axis < len(shape):
                bad(f"{w}.channel_axis must be an axis of its shape {shape}, not "
                    f"{json.dumps(axis)[:40]}")
            if len(scales) != shape[axis]:
                bad(f"{w}.scale has {len(scales)} per-channel entries, its shape {shape} has "
                    f"{shape[axis]} channels on axis {axis}")
    want_shape = {"features": [c["n_mels"]], "snr_mel": [c["n_mels"]],
                  "logits": [c["n_classes"]]}
    for name, shape in want_shape.items():
        if name not in tensors:
            bad(f"tensors has no '{name}'")
        if tensors[name]["shape"] != shape:
            bad(f"tensors.{name}.shape is {tensors[name]['shape']}, the config says {shape}")
    for name in GRAPH_INPUTS:
        # the front end makes them in its own format; the network reads them as declared
        o, t = outs[name], tensors[name]
        have = (get(o, "dtype", "str", f"frontend.meta.outputs.{name}"), o["scale"],
                o["zero_point"])
        if have != (t["dtype"], t["scale"], t["zero_point"]):
            bad(f"tensors.{name} (dtype, scale, zero_point) {t['dtype']}, {t['scale']}, "
                f"{t['zero_point']} differ from the front end's output format "
                f"(frontend.meta.outputs.{name}) {have[0]}, {have[1]}, {have[2]}")

    # ops
    if not ops:
        bad("ops is empty")
    seen = set()
    made = set(GRAPH_INPUTS)        # the tensors the ops so far have made
    first_clip = None               # name of the first op of stage "clip"
    once_per_clip = {}              # tensor -> the mean or clip op that makes it
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
        _check_op(op, typ, w, tensors, arrays, bad, get)
        # execution order: the simulator runs the ops in list order, the C generator the
        # frame ops, then the clip ops; both need every input made before it is read
        if op["stage"] == "clip":
            first_clip = first_clip or name
        elif first_clip:
            bad(f"{w}: a frame op after the clip op '{first_clip}' (the frame ops come first)")
        for t in op["inputs"]:
            if t not in made:
                bad(f"{w}: input tensor '{t}' is not made by an earlier op (ops out of order?)")
            if op["stage"] == "frame" and t in once_per_clip:
                bad(f"{w}: a frame op cannot read '{t}', made once per clip by "
                    f"'{once_per_clip[t]}'")
        if op["stage"] == "clip" or typ == "mean":      # the mean's output: at the clip end
            once_per_clip.update({t: name for t in op["outputs"]})
        internal = ([f"{name.rsplit('.', 1)[0]}.{k}" for k in ("dA", "du", "h")]
                    if typ == "sa_ssm" else [])
        for t in op["outputs"] + internal:
            if t in made:
                bad(f"{w}: output tensor '{t}' is already made by an earlier op or the front end")
            made.add(t)
    for key in fkeys:
        if f"float/{key}" not in arrays:
            bad(f"float array '{key}' is not stored")


def _check_op(op: dict, typ: str, w: str, tensors: dict, arrays: dict, bad, get) -> None:
    """The contract of one op (its type known, its tensors declared, its arrays stored):
    :data:`_OP_CONTRACT` (input/output counts, integer params in :data:`_RANGES`, array
    shapes and requantize-array ranges) and the per-type rules below. Calls ``bad(msg)``
    (which raises) on the first problem."""
    n_in, n_out, pnames, ashapes = _OP_CONTRACT[typ]
    ins, outs = op["inputs"], op["outputs"]
    if (len(ins), len(outs)) != (n_in, n_out):
        bad(f"{w}: a {typ} op takes {n_in} input(s) and gives {n_out} output(s), not "
            f"{len(ins)} and {len(outs)}")
    p, pw = op["params"], f"{w}.params"
    if "same_scale" in p:
        get(p, "same_scale", "bool", pw)
    same_scale = typ == "add" and p.get("same_scale") is True
    for k in pnames + (_ADD_PARAMS if typ == "add" and not same_scale else ()):
        v = get(p, k, "posint" if k in _SIZE_PARAMS else "int", pw)
        lo, hi = _RANGES.get(k, (None, None))
        if lo is not None and not lo <= v <= hi:
            bad(f"{pw}.{k} is {v}, outside the range the kernels take ({lo}..{hi})")
    for key, shape in ashapes.items():
        if key not in op["arrays"]:
            bad(f"{w} has no '{key}' array")
        arr = arrays[op["arrays"][key]]
        if shape is not None and list(arr.shape) != [p[d] for d in shape]:
            bad(f"{w}: array '{key}' has shape {list(arr.shape)}, {' x '.join(shape)} is "
                f"{[p[d] for d in shape]}")
        if key in _RANGES:
            lo, hi = _RANGES[key]
            if arr.dtype.kind not in "iu":
                bad(f"{w}: array '{key}' must hold integers, not {arr.dtype}")
            if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                bad(f"{w}: array '{key}' holds {int(arr.min())}..{int(arr.max())}, outside the "
                    f"range the kernels take ({lo}..{hi})")

    t = {x: tensors[x] for x in ins + outs}
    size = {x: math.prod(t[x]["shape"]) for x in t}

    def same_size(n: int, names, what: str) -> None:
        for x in names:
            if size[x] != n:
                bad(f"{w}: tensor '{x}' has {size[x]} elements, {what} is {n}")

    if typ in ("fully_connected", "conv1d_depthwise"):
        # the simulator reads the weight array as stored, the C generator by weight_dtype
        wdt = p.get("weight_dtype", "int8")
        have = arrays[op["arrays"]["weight"]].dtype
        if wdt not in ("int8", "int16") or have != np.dtype(wdt):
            bad(f"{w}: params.weight_dtype {wdt!r} and the weight array's {have} disagree")
        if op["kernel"].endswith("_w16") != (wdt == "int16"):
            bad(f"{w}: kernel {op['kernel']} does not take {wdt} weights")
    if typ in ("conv1d_depthwise", "layer_norm"):
        same_size(p["channels"], ins + outs, "params.channels")
    elif typ == "lut":
        kind = get(p, "kind", "str", pw)
        if kind not in _LUT_KINDS:
            bad(f"{pw}.kind is {kind!r}, expected one of {', '.join(_LUT_KINDS)}")
        n_table, in_dtype = _LUT_KINDS[kind]
        if op["kernel"] != f"lut_{kind}" or t[ins[0]]["dtype"] != in_dtype:
            bad(f"{w}: a kind {kind} table takes an {in_dtype} input (kernel lut_{kind}), not "
                f"{t[ins[0]]['dtype']} (kernel {op['kernel']})")
        if arrays[op["arrays"]["table"]].shape != (n_table,):
            bad(f"{w}: a kind {kind} table has {n_table} entries, not "
                f"{list(arrays[op['arrays']['table']].shape)}")
        same_size(size[outs[0]], ins, "its output's size")
    elif typ == "add":
        same_size(size[outs[0]], ins, "its output's size")
        if same_scale:
            # residual_add (kws_nn.c): a plain saturating int32 add, no zero points or
            # requantize: the quantizer makes it only for int32 tensors of one scale, zp 0
            s0 = t[outs[0]]["scale"]
            for x in ins + outs:
                if (t[x]["dtype"], t[x]["scale"], t[x]["zero_point"]) != ("int32", s0, 0):
                    bad(f"{w}: residual_add takes int32 tensors of one scale and zero point 0; "
                        f"'{x}' is {t[x]['dtype']}, scale {t[x]['scale']}, zero point "
                        f"{t[x]['zero_point']}")
        else:
            # elementwise_add (kws_nn.c) computes (x - x_zp) * 2^left_shift in int32
            for x in ins:
                qmin, qmax = _QRANGE[t[x]["dtype"]]
                zp = t[x]["zero_point"]
                if max(qmax - zp, zp - qmin) << p["left_shift"] > 2 ** 31 - 1:
                    bad(f"{w}: ('{x}' - zero point) << left_shift {p['left_shift']} overflows "
                        f"int32 for a {t[x]['dtype']} input")
    elif typ == "mean":
        if op.get("finalize_kernel") != "mean_pool_finalize":
            bad(f"{w}: finalize_kernel must be 'mean_pool_finalize', not "
                f"{json.dumps(op.get('finalize_kernel'))[:40]}")
        same_size(size[outs[0]], ins, "its output's size")
    elif typ == "argmax":
        same_size(p["n"], ins, "params.n")
        if size[outs[0]] != 1 or t[outs[0]]["dtype"] != "int32":
            bad(f"{w}: argmax_s32 gives one int32 value, not '{outs[0]}' "
                f"({t[outs[0]]['dtype']}, {size[outs[0]]} elements)")
    elif typ == "sa_ssm":
        E, N = p["d_inner"], p["d_state"]
        same_size(E, [ins[0], ins[1], outs[0]], "params.d_inner")      # u, delta, y
        same_size(N, [ins[2], ins[3]], "params.d_state")               # B_gated, C
        pre = op["name"].rsplit(".", 1)[0]
        for key, shape in (("dA", [E, N]), ("du", [E]), ("h", [E, N])):
            x = f"{pre}.{key}"
            if x not in tensors:
                bad(f"{w}: its internal tensor '{x}' is not declared in tensors")
            if tensors[x]["shape"] != shape:
                bad(f"tensors.{x}.shape is {tensors[x]['shape']}, d_inner x d_state give "
                    f"{shape}")
        n_exp = list(arrays[op["arrays"]["exp_table"]].shape)
        if n_exp != [1 << p["exp_frac_bits"]]:
            bad(f"{w}: array 'exp_table' has shape {n_exp}, exp_frac_bits "
                f"{p['exp_frac_bits']} needs {1 << p['exp_frac_bits']} entries")
