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
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.fileio import umask_mode
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
        (missing, unreadable, CRC, dtype/shape/sha256 mismatch).
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
        arrays = {}
        for key, spec in meta.get("arrays", {}).items():
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
    return Bundle(meta=meta, arrays=arrays, path=path)
