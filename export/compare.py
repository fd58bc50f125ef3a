"""Compare every inference route on one evaluation set: top-1 agreement and logits SQNR.

Routes (each optional except the reference):

- ``torch``: the float PyTorch model (the reference; compare is a comparison tool, so it may
  read the float model);
- ``onnx``: onnxruntime, float full model (audio -> logits);
- ``onnx-qdq``: onnxruntime, int8/int16 QDQ network on the float front end's features;
- ``tflm``: the TFLite Micro interpreter, 16x8 .tflite on the float front end's features;
- ``simulator``, ``c``: hooks for the integer simulator and the generated C (reported as
  not available until ``export/simulator.py`` / the C generator exist).

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


def sqnr_db(ref: np.ndarray, x: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (x - ref)^2) in dB (inf when equal)."""
    err = float(np.sum((np.asarray(x, np.float64) - ref) ** 2))
    sig = float(np.sum(np.asarray(ref, np.float64) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(sig / err)


def metrics(ref: np.ndarray, x: np.ndarray, labels: np.ndarray | None) -> dict:
    """agreement (%), sqnr_db, max_abs, accuracy (% or None) of logits ``x`` vs ``ref``."""
    out = {"agreement": float((x.argmax(1) == ref.argmax(1)).mean() * 100),
           "sqnr_db": sqnr_db(ref, x), "max_abs": float(np.abs(x - ref).max())}
    out["accuracy"] = None if labels is None else float((x.argmax(1) == labels).mean() * 100)
    return out


def _labels(clips: list[Path]) -> np.ndarray | None:
    names = [c.parent.name for c in clips]
    if all(n in LABELS for n in names):
        return np.array([LABELS.index(n) for n in names])
    return None


def compare(source: str | os.PathLike, eval_dir: str | os.PathLike, *,
            routes: tuple[str, ...] = ROUTES, onnx_dir: str | os.PathLike | None = None,
            tflite: str | os.PathLike | None = None, calib: str | os.PathLike | None = None,
            calib_count: int = 240, limit: int | None = None, progress: bool = True) -> dict:
    """Run the routes on the clips of ``eval_dir`` and measure them against torch float.

    Args:
        source: .pt checkpoint (the float reference; later also the bundle's source).
        eval_dir: folder of clips (sub-folders named by label give accuracy).
        routes: subset of :data:`ROUTES`.
        onnx_dir: an ``kws-export onnx`` folder (full.onnx, network_qdq.onnx, frontend.onnx);
            without it the graphs are built in memory.
        tflite: a ``kws-export tflite`` file; without it one is converted in memory (needs
            ``calib``).
        calib: calibration clips for in-memory QDQ/TFLite (stand-in until the bundle).
        calib_count: clips taken from ``calib``.
        limit: evaluate at most this many clips (spread over sub-folders).
        progress: show a progress bar for the per-clip TFLM route.
    Returns:
        dict: ``clips`` (count), ``reference`` ("torch"), ``routes`` (name -> RouteResult).
    Raises:
        CompareError, CheckpointError, AudioError, OnnxExportError, TfliteExportError.
    """
    import warnings

    from export import onnx_export as ox
    from nanomamba.audio import load_audio
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise CompareError(f"--route: unknown route {unknown[0]!r} (expected {', '.join(ROUTES)})")
    clips = ox.pick_clips(eval_dir, limit)
    labels = _labels(clips)
    src = ox.load_source(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio = np.stack([load_audio(c) for c in clips]).astype(np.float32)
    results: dict[str, RouteResult] = {}

    t = time.perf_counter()
    import torch

    from nanomamba.checkpoint import load_checkpoint
    model = load_checkpoint(source)
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(audio[i:i + 64])).numpy()
                              for i in range(0, len(audio), 64)])
    results["torch"] = RouteResult("torch", ref, time.perf_counter() - t, "float reference")

    od = Path(onnx_dir) if onnx_dir else None
    if od is not None and not od.is_dir():
        raise CompareError(f"{od}: no such ONNX folder (make one with kws-export onnx)")

    def load_or_build(name: str, build):
        if od is not None and (od / name).is_file():
            return ox.session(od / name), f"{od / name}"
        return ox.session(build()), "built in memory"

    feats = None
    if any(r in routes for r in ("onnx-qdq", "tflm")):
        fe, _ = load_or_build("frontend.onnx", lambda: ox.build_frontend(src.cfg, src.params))
        feats = ox.run_batched(fe, {"audio": audio})

    if "onnx" in routes:
        t = time.perf_counter()
        sess, how = load_or_build("full.onnx", lambda: ox.build_full(src.cfg, src.params))
        out = ox.run_batched(sess, {"audio": audio})[0]
        results["onnx"] = RouteResult("onnx", out, time.perf_counter() - t, f"float, {how}")

    calib_data = None

    def calibration():
        nonlocal calib_data
        if calib_data is None:
            if calib is None:
                raise CompareError("the checkpoint carries no quantization: give --calib "
                                   "CLIPS (or --onnx-dir / --tflite with exported models)")
            calib_data = ox.clip_features(src, ox.pick_clips(calib, calib_count))
        return calib_data

    if "onnx-qdq" in routes:
        t = time.perf_counter()
        if od is not None and (od / "network_qdq.onnx").is_file():
            sess, how = ox.session(od / "network_qdq.onnx"), str(od / "network_qdq.onnx")
        else:
            q = src.qspec or ox.calibrate(src.cfg, src.params, *calibration())
            sess, how = ox.session(ox.build_network(src.cfg, src.params, qspec=q)), q.source
        out = ox.run_batched(sess, {"features": feats[0], "snr_mel": feats[1]})[0]
        results["onnx-qdq"] = RouteResult("onnx-qdq", out, time.perf_counter() - t, how)

    if "tflm" in routes:
        from export import tflite_export as tx
        t = time.perf_counter()
        if tflite is not None:
            p = Path(tflite)
            if not p.is_file():
                raise CompareError(f"{p}: no such .tflite file")
            flat, how = p.read_bytes(), str(p)
        else:
            flat = tx.convert(src.cfg, src.params, *calibration())
            how = "converted in memory (stand-in calibration)"
        m = tx.tflm_load(flat)
        out = _run_tflm(m, feats, progress)
        results["tflm"] = RouteResult("tflm", out, time.perf_counter() - t,
                                      f"{how}; arena {m.arena_size:,} B")

    for name, why in (("simulator", "export/simulator.py not on main yet"),
                      ("c", "C generator not on main yet")):
        if name in routes:
            results[name] = RouteResult(name, None, 0.0, f"not available: {why}")

    for r in results.values():
        if r.logits is not None:
            r.metrics = metrics(ref, r.logits, labels)
    return {"clips": len(clips), "reference": "torch", "routes": results,
            "labelled": labels is not None}


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
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    table = Table("route", "top-1 agreement", "logits SQNR", "max |diff|", "accuracy", "time",
                  title=f"{result['clips']} clips, reference: {result['reference']} float")
    for r in result["routes"].values():
        if r.logits is None:
            table.add_row(r.name, "-", "-", "-", "-", "-")
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
