"""Compare every inference route on one evaluation set: top-1 agreement and logits SQNR.

Routes (each optional except the reference):

- ``torch``: the float PyTorch model (the reference; compare is a comparison tool, so it may
  read the float model);
- ``onnx``: onnxruntime, float full model (audio -> logits; its front end in float64, as the
  float model's: docs/EXPORT.md "Float accuracy");
- ``onnx-qdq``: onnxruntime, the bundle's QDQ network on the float front end's features;
- ``tflm``: the TFLite Micro interpreter, the bundle's 16x8 .tflite on the float front
  end's features;
- ``simulator``: the bundle's integer pipeline (``export.simulator``, int16 audio in, int8
  logits out, fixed-point front end included);
- ``c``: the generated C run on the host (``export.codegen.generate_c`` +
  ``export.verify.build_host``/``run_host``) when those modules exist, else reported as
  "n/a (codegen not available)".

The quantized routes all read one bundle: the SOURCE itself, or, for a checkpoint, the
bundle ``export.quantize`` makes from it (``--calib`` clips or its generated set).

Metrics per route against the reference: top-1 agreement (%), logits SQNR
10 log10(sum ref^2 / sum (x - ref)^2) in dB, max |x - ref|, and accuracy when the folder
uses the Speech Commands one-folder-per-label layout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanomamba.config import LABELS
from nanomamba.errors import KwsError

ROUTES = ("torch", "onnx", "onnx-qdq", "tflm", "simulator", "c")


class CompareError(KwsError):
    """Bad input to the comparison (no clips, unknown route, missing artefact)."""


@dataclass
class RouteResult:
    """Outcome of one route: logits (N, 12) float32 or a reason it did not run."""

    name: str
    logits: np.ndarray | None = None
    seconds: float = 0.0
    note: str = ""
    metrics: dict = field(default_factory=dict)
    #: the route's own labels (N,) when they are not the argmax of ``logits`` (the integer
    #: routes: argmax of the fine int32 grid, docs/QUANTIZATION.md "The label")
    labels: np.ndarray | None = None


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (x - ref)^2) in dB (inf when equal)."""
    err = float(np.sum((np.asarray(x, np.float64) - ref) ** 2))
    sig = float(np.sum(np.asarray(ref, np.float64) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(sig / err)


def metrics(ref: np.ndarray, x: np.ndarray, labels: np.ndarray | None,
            pred: np.ndarray | None = None) -> dict:
    """agreement (%), sqnr_db, max_abs, accuracy (% or None) of logits ``x`` vs ``ref``;
    ``pred``: the route's predicted labels (N,) (default: argmax of ``x``)."""
    pred = x.argmax(1) if pred is None else np.asarray(pred).reshape(-1)
    out = {"agreement": float((pred == ref.argmax(1)).mean() * 100),
           "sqnr_db": sqnr_db(ref, x), "max_abs": float(np.abs(x - ref).max())}
    out["accuracy"] = None if labels is None else float((pred == labels).mean() * 100)
    return out


def _labels(clips: list[Path]) -> np.ndarray | None:
    names = [c.parent.name for c in clips]
    if all(n in LABELS for n in names):
        return np.array([LABELS.index(n) for n in names])
    return None


def _torch_model(src):
    """The float PyTorch model of a source: the checkpoint, or a bundle's float arrays."""
    import torch

    from nanomamba.checkpoint import _to_module_key, load_checkpoint
    from nanomamba.model import NanoMamba
    if src.bundle is None:
        return load_checkpoint(src.path)
    model = NanoMamba(src.cfg)
    model.load_state_dict({_to_module_key(k): torch.from_numpy(np.asarray(v, np.float32))
                           for k, v in src.bundle.float_state().items()}, strict=True)
    return model.eval()


def run_simulator(bundle, audio_i16: np.ndarray, progress: bool = True,
                  batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's integer pipeline on int16 clips (N, 16000): (dequantized logits (N, 12)
    float32 (real = scale (q - zero_point) of the int8 ``logits``), labels (N,) int64 (the
    simulator's ``label``))."""
    from tqdm import tqdm

    from export.simulator import Simulator
    sim = Simulator(bundle)
    out, lab = [], []
    for i in tqdm(range(0, len(audio_i16), batch), desc="simulator", leave=False,
                  disable=None if progress else True):
        r = sim.run(audio_i16[i:i + batch], keep=["logits", "label"],
                    frontend_intermediates=False)
        out.append(sim.dequantize("logits", r["logits"]))
        lab.append(r["label"].reshape(-1).astype(np.int64))
    return np.concatenate(out).astype(np.float32), np.concatenate(lab)


def run_c(bundle, audio_i16: np.ndarray) -> tuple[np.ndarray | None, str, np.ndarray | None]:
    """The generated C on the host, if the code generator is available.

    Uses ``export.codegen.generate_c(bundle, dir)``, ``export.verify.build_host`` and
    ``export.verify.run_host`` (int8 logits, dequantized with the bundle's scale/zero point,
    and the labels kws_run returned).
    Returns (logits or None, note, labels or None); never raises for a missing or failing
    generator (the note says why).
    """
    import importlib.util
    import tempfile
    if importlib.util.find_spec("export.codegen") is None or \
            importlib.util.find_spec("export.verify") is None:
        return None, "n/a (codegen not available)", None
    from export import codegen, verify
    if not all(hasattr(m, f) for m, f in ((codegen, "generate_c"), (verify, "build_host"),
                                          (verify, "run_host"))):
        return None, "n/a (codegen has no host verify runner)", None
    try:
        with tempfile.TemporaryDirectory(prefix="kws-compare-c-") as tmp:
            tmp = Path(tmp)
            codegen.generate_c(bundle, tmp / "gen")
            build = verify.build_host(tmp / "gen", tmp / "build", taps=False, sanitize=False)
            c_out = verify.run_host(build, audio_i16, tmp / "work")
            q, lab = c_out["logits"], c_out["labels"].astype(np.int64)
    except Exception as err:      # a hook: report, do not abort the other routes
        return None, f"n/a (C route failed: {str(err).splitlines()[0][:150] if str(err) else type(err).__name__})", None
    t = bundle.meta["tensors"]["logits"]
    real = (q.astype(np.float64) - int(t["zero_point"])) * float(t["scale"])
    return real.astype(np.float32), "generated C on the host (export.codegen + export.verify)", lab


def _read_tflite(path: str | os.PathLike) -> bytes:
    """Bytes of a ``.tflite`` file, checked to be a TFLite flatbuffer.

    A TFLite model carries the flatbuffer file identifier ``"TFL3"`` at bytes 4..7
    (TensorFlow Lite ``schema.fbs``: ``file_identifier "TFL3"``); TFLM's loader crashes on
    anything else, so other files are refused here.

    Raises:
        CompareError: missing file, a directory, or not a TFLite flatbuffer.
    """
    p = Path(path)
    if p.is_dir():
        raise CompareError(f"{p}: is a directory, expected a .tflite file")
    if not p.is_file():
        raise CompareError(f"{p}: no such .tflite file")
    flat = p.read_bytes()
    if len(flat) < 8 or flat[4:8] != b"TFL3":
        raise CompareError(f"{p}: not a TFLite model (no 'TFL3' flatbuffer identifier; "
                           f"make one with kws-export tflite)")
    return flat


#: The graphs of a ``kws-export onnx`` folder each route reads when ``--onnx-dir`` is given
#: (the quantized routes take the float front end's features from ``frontend.onnx``).
ROUTE_ONNX_FILES = {"onnx": ("full.onnx",), "onnx-qdq": ("frontend.onnx", "network_qdq.onnx"),
                    "tflm": ("frontend.onnx",)}
#: file name -> the routes that read it ("onnx-qdq/tflm"), for the missing-file message
ONNX_FILE_ROUTES = {f: "/".join(r for r, fs in ROUTE_ONNX_FILES.items() if f in fs)
                    for fs in ROUTE_ONNX_FILES.values() for f in fs}
_MAKE_HINT = {"network_qdq.onnx": "kws-export onnx writes it from a bundle, or a checkpoint "
                                  "with --quantize"}


def onnx_files_needed(routes) -> list[str]:
    """File names an ``--onnx-dir`` folder must hold for ``routes`` (sorted, unique)."""
    return sorted({f for r in routes for f in ROUTE_ONNX_FILES.get(r, ())})


def onnx_model_hash(path: Path) -> str | None:
    """The model hash an exported ONNX graph records (metadata ``model_hash``, written by
    :func:`export.onnx_export.export_onnx`), or None when it carries none.

    Raises:
        CompareError: not a readable ONNX file.
    """
    import onnx
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise CompareError(f"{path}: not an ONNX model ({str(err).splitlines()[0][:120]})") from None
    return next((p.value for p in model.metadata_props if p.key == "model_hash"), None) or None


def tflite_model_hash(flat: bytes) -> str | None:
    """The model hash (16 hex digits) a ``kws-export tflite`` flatbuffer records in its
    ``description`` (``...; model <hash>; ...``, :func:`export.tflite_export.stamp`), or None."""
    import re

    from export.tflite_export import _tflm
    try:
        desc = _tflm().schema_fb.Model.GetRootAs(flat, 0).Description()
    except Exception:                  # a malformed table: no readable description
        desc = None
    desc = desc.decode("utf-8", "replace") if isinstance(desc, bytes) else (desc or "")
    m = re.search(r"(?:^|; )model ([0-9a-f]{12,64})(?:;|$)", desc)
    return m.group(1) if m else None


def check_model_hash(path: Path, recorded: str | None, src) -> None:
    """Refuse an exported file made from another model than ``src`` (an
    :class:`export.onnx_export.ExportSource`); warn when the file records no model hash.

    Hashes are compared on the digits the file records (a .tflite records 16).

    Raises:
        CompareError: the recorded hash differs from ``src.model_hash``.
    """
    import warnings
    want = src.model_hash
    if not recorded:
        warnings.warn(f"{path}: records no model hash (an older or foreign export?); cannot "
                      f"check it was made from {src.path.name}", stacklevel=2)
        return
    n = min(len(recorded), len(want))
    if recorded[:n] != want[:n]:
        raise CompareError(f"{path}: made from another model than {src.path.name} "
                           f"(model sha256 {recorded[:12]}... vs {want[:12]}...)")


def compare(source: str | os.PathLike, eval_dir: str | os.PathLike, *,
            routes: tuple[str, ...] = ROUTES, onnx_dir: str | os.PathLike | None = None,
            tflite: str | os.PathLike | None = None, calib: str | os.PathLike | None = None,
            limit: int | None = None, progress: bool = True) -> dict:
    """Run the routes on the clips of ``eval_dir`` and measure them against torch float.

    Args:
        source: bundle (.npz) or checkpoint (.pt; quantized by ``export.quantize`` for the
            quantized routes).
        eval_dir: folder of clips (sub-folders named by label give accuracy).
        routes: subset of :data:`ROUTES`.
        onnx_dir: an ``kws-export onnx`` folder (full.onnx, network_qdq.onnx, frontend.onnx)
            made from the same model; it must hold every graph the routes read
            (:data:`ROUTE_ONNX_FILES`); without it the graphs are built in memory.
        tflite: a ``kws-export tflite`` file of the same model; without it one is converted
            in memory.
        calib: clips for quantizing a checkpoint and for the converter's calibration of the
            tensors outside the bundle (default: the quantizer's generated set).
        limit: evaluate at most this many clips (spread over sub-folders).
        progress: progress bars (simulator, TFLM).
    Returns:
        dict: ``clips`` (count), ``reference`` ("torch"), ``routes`` (name -> RouteResult),
        ``labelled``, ``quantization`` (the bundle's source, when a quantized route ran).
    Raises:
        CompareError (also: a graph missing from ``onnx_dir``; an exported file whose
            recorded model hash differs from the source's), BundleError, CheckpointError,
            AudioError, OnnxExportError,
        TfliteExportError, CalibrationError, QuantizationError.
    """
    import warnings

    from export import onnx_export as ox
    from nanomamba.audio import load_audio
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise CompareError(f"--route: unknown route {unknown[0]!r} (expected {', '.join(ROUTES)})")
    # User-given files are checked before any slow work (quantizing, conversions).
    user_flat = _read_tflite(tflite) if tflite is not None and "tflm" in routes else None
    od = Path(onnx_dir) if onnx_dir else None
    if od is not None and not od.is_dir():
        raise CompareError(f"{od}: no such ONNX folder (make one with kws-export onnx)")
    onnx_files = onnx_files_needed(routes) if od is not None else []
    for name in onnx_files:
        if not (od / name).is_file():
            raise CompareError(f"{od / name}: missing (route {ONNX_FILE_ROUTES[name]} reads it "
                               f"from --onnx-dir; "
                               f"{_MAKE_HINT.get(name, 'make the folder with kws-export onnx')})")
    clips = ox.pick_clips(eval_dir, limit)
    labels = _labels(clips)
    src = ox.load_source(source)
    for name in onnx_files:
        check_model_hash(od / name, onnx_model_hash(od / name), src)
    if user_flat is not None:
        check_model_hash(Path(tflite), tflite_model_hash(user_flat), src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio_i16 = np.stack([load_audio(c, dtype="int16") for c in clips])
    audio = (audio_i16.astype(np.float32) / 32768.0)
    results: dict[str, RouteResult] = {}

    t = time.perf_counter()
    import torch
    model = _torch_model(src)
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(audio[i:i + 64])).numpy()
                              for i in range(0, len(audio), 64)])
    results["torch"] = RouteResult("torch", ref, time.perf_counter() - t, "float reference")


    def load_or_build(name: str, build):
        if od is not None:               # checked above: present, made from this model
            return ox.session(od / name), f"{od / name}"
        return ox.session(build()), "built in memory"

    quantized = [r for r in routes if r in ("onnx-qdq", "tflm", "simulator", "c")]
    qsrc = src
    if quantized and src.bundle is None and not (
            set(quantized) <= {"onnx-qdq", "tflm"}
            and (("onnx-qdq" not in quantized) or od is not None)
            and (("tflm" not in quantized) or tflite)):
        qsrc = ox.quantize_source(src, calib, progress)

    feats = None
    if any(r in routes for r in ("onnx-qdq", "tflm")):
        fe, _ = load_or_build("frontend.onnx", lambda: ox.build_frontend(src.cfg, src.params))
        feats = ox.run_batched(fe, {"audio": audio})

    if "onnx" in routes:
        t = time.perf_counter()
        sess, how = load_or_build("full.onnx", lambda: ox.build_full(src.cfg, src.params))
        out = ox.run_batched(sess, {"audio": audio})[0]
        results["onnx"] = RouteResult("onnx", out, time.perf_counter() - t, f"float, {how}")

    if "onnx-qdq" in routes:
        t = time.perf_counter()
        if od is not None:
            sess, how = ox.session(od / "network_qdq.onnx"), str(od / "network_qdq.onnx")
        else:
            sess = ox.session(ox.build_network(qsrc.cfg, qsrc.params, scan="scan",
                                               qspec=qsrc.qspec))
            how = f"built in memory from {qsrc.qspec.source}"
        out = ox.run_batched(sess, {"features": feats[0], "snr_mel": feats[1]})[0]
        results["onnx-qdq"] = RouteResult("onnx-qdq", out, time.perf_counter() - t, how)

    if "tflm" in routes:
        from export import tflite_export as tx
        t = time.perf_counter()
        if tflite is not None:
            flat, how = user_flat, str(tflite)
        else:
            flat, _ = tx.convert_bundle(qsrc, calib)
            how = f"converted in memory from {qsrc.qspec.source}"
        m = tx.tflm_load(flat)
        out = _run_tflm(m, feats, progress)
        results["tflm"] = RouteResult("tflm", out, time.perf_counter() - t,
                                      f"{how}; TFLM arena {m.arena_size:,} B")

    if "simulator" in routes:
        t = time.perf_counter()
        out, lab = run_simulator(qsrc.bundle, audio_i16, progress)
        results["simulator"] = RouteResult("simulator", out, time.perf_counter() - t,
                                           f"export.simulator on {qsrc.qspec.source} "
                                           f"(fixed-point front end, int16 audio)", labels=lab)

    if "c" in routes:
        t = time.perf_counter()
        out, note, lab = run_c(qsrc.bundle, audio_i16)
        results["c"] = RouteResult("c", out, time.perf_counter() - t, note, labels=lab)

    for r in results.values():
        if r.logits is not None:
            r.metrics = metrics(ref, r.logits, labels, r.labels)
    return {"clips": len(clips), "reference": "torch", "routes": results,
            "labelled": labels is not None,
            "quantization": qsrc.qspec.source if qsrc.qspec is not None else None}


def _run_tflm(m, feats, progress: bool) -> np.ndarray:
    f, s = feats
    if not progress:
        return m.run(f, s)
    from tqdm import tqdm
    outs = [m.run(f[i:i + 1], s[i:i + 1])
            for i in tqdm(range(len(f)), desc="tflm", leave=False, disable=None)]
    return np.concatenate(outs)


def print_compare(result: dict, console=None) -> None:
    """One rich table: route, agreement, SQNR, max |diff|, accuracy, time, note."""
    from rich.table import Table

    from export.report import output_console
    console = console or output_console()
    table = Table("route", "top-1 agreement", "logits SQNR", "max |diff|", "accuracy", "time",
                  title=f"{result['clips']} clips, reference: {result['reference']} float")
    for r in result["routes"].values():
        if r.logits is None:
            table.add_row(r.name, r.note or "-", "-", "-", "-", "-")
            continue
        m = r.metrics
        table.add_row(r.name, f"{m['agreement']:.2f} %",
                      "ref" if r.name == result["reference"] else f"{m['sqnr_db']:.1f} dB",
                      f"{m['max_abs']:.2e}",
                      "-" if m["accuracy"] is None else f"{m['accuracy']:.2f} %",
                      f"{r.seconds:.1f} s")
    console.print(table)
    for r in result["routes"].values():
        console.print(f"  {r.name}: {r.note}", highlight=False)
