"""Float32 C code generation: a model's float weights -> a self-contained C folder with the
``kws_model.h`` API, computing the float model in float32 C.

It is the baseline the int8 firmware is benchmarked against (``kws-export build
--precision float32``, then ``kws-export bench INT8_DIR --float-build FLOAT_DIR``): the same
model, same board, same app, but the front end (STFT with a float radix-2 FFT, |X|, SNR
estimate, log-mel, instance norm) and the network (SA-SSM recurrence with ``expf``) in
float32 with the C library's ``expf``/``logf``/``log1pf``/``tanhf``/``sqrtf`` (newlib libm on
Cortex-M). Semantics: ``../shared/fixtures/README.md`` (as ``nanomamba/frontend.py`` and
``nanomamba/model.py``).

``generate_float_c(source, out_dir)`` renders the Jinja2 templates of
``firmware_templates/float_model/`` into ``out_dir``:

========================  ==============================================================
``kws_model.h``           the public API (firmware_templates/standin_model/kws_model.h
                          contract) plus ``kws_float_logits()``; KWS_* macros
``kws_model.c``           front end, network, streaming API (static state, no malloc)
``kws_float.h``           dimensions and the constants' layout
``kws_float_weights.c``   the float32 constants (flash)
========================  ==============================================================

Decisions (which arrays, their derived values, the logits' int8 scale) are made here; the
templates only loop over the results. Every file carries the tool version, the command line
and the model hash; no timestamps (same inputs, byte-identical files).

Logit quantization (so ``kws-export run`` prints int8 logits like an int8 build):
- a bundle source: the bundle's ``logits`` scale and zero point (those of the int8 build);
- a checkpoint source (no calibration): the tight range the final LayerNorm allows. Its
  output y (before the affine) has zero mean and norm sqrt(D) per frame (eps aside), and so
  does their mean over frames, hence logit_c lies in ``W_c . beta + b_c +- sqrt(D)
  ||centred(W_c * gamma)||``; the int8 range [-128, 127] covers [min_c lo_c, max_c hi_c]
  (asymmetric). It never saturates, but is coarser than a calibrated scale.

No torch import for a bundle source (a checkpoint is read with ``nanomamba.load_checkpoint``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from export.c_emit import stamp
from export.fileio import atomic_output_dir, check_output
from nanomamba.config import LABELS, N_BINS, N_FFT
from nanomamba.errors import KwsError

#: Files rendered into a float model folder: output name -> template name.
TEMPLATES = {
    "kws_model.h": "kws_model.h.j2",
    "kws_model.c": "kws_model.c.j2",
    "kws_float.h": "kws_float.h.j2",
    "kws_float_weights.c": "kws_float_weights.c.j2",
}

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class FloatCodegenError(KwsError):
    """The float weights cannot be turned into float32 C (missing key, bad shape, a
    non-finite value)."""


@dataclass
class FloatModel:
    """What the float generator reads from a source.

    Attributes:
        state: published key -> float32 numpy array (``mel_fb (40, 257)``, ``blocks.i.*``...).
        name: model name for reports (e.g. "NanoMamba-Tiny").
        labels: class names in logit order.
        model_hash: sha256 of the checkpoint's tensors (:func:`export.bundle.model_hash`).
        logit_scale, logit_zero_point: int8 quantization of the logits
            (real = scale * (q - zero_point)).
        logit_source: one line saying where the logit scale comes from.
        source: the source path (text).
    """

    state: dict
    name: str
    labels: list
    model_hash: str
    logit_scale: float
    logit_zero_point: int
    logit_source: str
    source: str


@dataclass
class FloatGenerateResult:
    """What :func:`generate_float_c` wrote: ``out_dir``, ``files`` (names), ``macs``
    ({frontend, network, total} per inference) and the config dict."""

    out_dir: Path
    files: list
    macs: dict
    config: dict = field(default_factory=dict)


def layer_norm_logit_range(state: dict) -> tuple[float, float]:
    """Range every logit lies in for any input, from the final LayerNorm and the classifier.

    Args:
        state: published state dict (``final_norm.{weight,bias}``, ``classifier.{weight,
            bias}``), numpy arrays.
    Returns:
        (lo, hi) in logit units: min over classes of W_c . beta + b_c - sqrt(D) ||v_c|| and
        max of ... + sqrt(D) ||v_c||, v_c = W_c * gamma minus its mean (LayerNorm's output
        before the affine has zero mean and norm sqrt(D); the mean over frames stays in
        that convex set). Source: torch.nn.LayerNorm definition.
    """
    W = np.asarray(state["classifier.weight"], np.float64)
    b = np.asarray(state["classifier.bias"], np.float64)
    g = np.asarray(state["final_norm.weight"], np.float64)
    beta = np.asarray(state["final_norm.bias"], np.float64)
    D = W.shape[1]
    v = W * g
    v = v - v.mean(axis=1, keepdims=True)
    radius = math.sqrt(D) * np.linalg.norm(v, axis=1)
    centre = W @ beta + b
    return float((centre - radius).min()), float((centre + radius).max())


def _range_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero_point) whose [-128, 127] covers [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(-128 - math.floor(lo / scale + 0.5), -128, 127))
    while scale * (127 - zp) < hi or scale * (-128 - zp) > lo:   # rounding of zp
        scale *= 1.0 + 2.0 ** -20
    return float(scale), zp


def load_float_source(source) -> FloatModel:
    """The float weights of a bundle or a checkpoint.

    Args:
        source: a bundle file (``.npz``; its ``float/<key>`` arrays, logits scale/zero
            point of the int8 build), an :class:`export.bundle.Bundle`, or a float
            checkpoint (``.pt``/``.pth``/``.ckpt``, read with nanomamba.load_checkpoint;
            logits range from :func:`layer_norm_logit_range`).
    Returns:
        :class:`FloatModel`.
    Raises:
        BundleError: missing/corrupt bundle; CheckpointError: bad checkpoint;
        FloatCodegenError: a bundle without float weights or a logits tensor.
    """
    from export.bundle import Bundle, load_bundle, model_hash
    if not isinstance(source, Bundle) and Path(source).suffix.lower() in _CHECKPOINT_SUFFIXES:
        from nanomamba import load_checkpoint
        from nanomamba.checkpoint import published_state_dict
        model = load_checkpoint(source)
        state = {k: v.detach().cpu().numpy().astype(np.float32)
                 for k, v in published_state_dict(model).items()}
        lo, hi = layer_norm_logit_range(state)
        scale, zp = _range_qparams(lo, hi)
        meta = getattr(model, "meta", {}) or {}
        return FloatModel(
            state=state, name=str(meta.get("model_name") or Path(source).stem),
            labels=list(LABELS[:state["classifier.weight"].shape[0]]),
            model_hash=model_hash(state), logit_scale=scale, logit_zero_point=zp,
            logit_source=f"checkpoint: the final LayerNorm's logit range [{lo:.3f}, "
                         f"{hi:.3f}], not calibrated",
            source=str(source))
    bundle = source if isinstance(source, Bundle) else load_bundle(source)
    where = str(bundle.path or "bundle")
    if not bundle.meta.get("float"):
        raise FloatCodegenError(f"{where}: the bundle holds no float weights ('float' keys)")
    state = {k: np.asarray(v, np.float32) for k, v in bundle.float_state().items()}
    lt = bundle.meta.get("tensors", {}).get("logits")
    if not lt or "scale" not in lt:
        raise FloatCodegenError(f"{where}: the bundle has no 'logits' tensor scale")
    model = bundle.meta.get("model", {})
    return FloatModel(
        state=state, name=str(model.get("name") or Path(where).stem),
        labels=list(model.get("labels") or LABELS), model_hash=str(model.get("sha256", "")),
        logit_scale=float(lt["scale"]), logit_zero_point=int(lt.get("zero_point", 0)),
        logit_source="the bundle's int8 logits scale and zero point", source=where)


def model_config(state: dict, where: str = "model") -> dict:
    """Network dimensions from the published tensor shapes.

    Returns:
        {d_model, d_inner, d_state, d_conv, n_layers, n_mels, n_classes}.
    Raises:
        FloatCodegenError: a key missing, or shapes that do not fit NanoMamba.
    """
    try:
        d_model, n_mels = state["patch_proj.weight"].shape
        n_layers = 1 + max(int(m.group(1)) for k in state
                           if (m := re.match(r"blocks\.(\d+)\.", k)))
        d_inner = state["blocks.0.in_proj.weight"].shape[0] // 2
        d_state = state["blocks.0.sa_ssm.A_log"].shape[1]
        d_conv = state["blocks.0.conv1d.weight"].shape[2]
        n_classes = state["classifier.weight"].shape[0]
    except (KeyError, ValueError, IndexError) as err:
        raise FloatCodegenError(f"{where}: not a NanoMamba state dict ({err})") from None
    if state["mel_fb"].shape != (n_mels, N_BINS):
        raise FloatCodegenError(f"{where}: mel_fb has shape {state['mel_fb'].shape}, expected "
                                f"({n_mels}, {N_BINS})")
    if d_conv < 2:
        raise FloatCodegenError(f"{where}: conv1d kernel {d_conv} < 2 is not supported")
    return {"d_model": int(d_model), "d_inner": int(d_inner), "d_state": int(d_state),
            "d_conv": int(d_conv), "n_layers": int(n_layers), "n_mels": int(n_mels),
            "n_classes": int(n_classes)}


def float_macs(cfg: dict, mel_nonzero: int, n_frames: int = 101) -> dict:
    """MACs per inference, counted as :func:`nanomamba.model.macs_per_inference` (same
    formula, torch-free): front end (window, FFT, |X|^2, SNR divisions, two mel
    projections) and network (every matrix product, conv, scan 3 E N + E, gate, classifier).

    Returns:
        {"frontend", "network", "total"}.
    """
    E, N, D, M, L = cfg["d_inner"], cfg["d_state"], cfg["d_model"], cfg["n_mels"], cfg["n_layers"]
    fft = 256 // 2 * 8 * 4 + 256 * 4
    fe = (512 + fft + 2 * 257 + 257 + 2 * mel_nonzero) * n_frames
    per_frame = (M * D + L * (D * 2 * E + E * cfg["d_conv"] + E * (1 + 2 * N) + M * (1 + N)
                              + E + 3 * E * N + E + E + E * D))
    net = per_frame * n_frames + D * cfg["n_classes"]
    return {"frontend": fe, "network": net, "total": fe + net}


def _f32_literal(v) -> str:
    """C float literal that reads back as exactly this float32 (shortest round trip)."""
    return np.format_float_scientific(np.float32(v), unique=True) + "f"


def _f32_body(values: np.ndarray, per_line: int = 8, indent: str = "    ") -> str:
    flat = np.asarray(values, np.float32).reshape(-1)
    rows = [indent + ", ".join(_f32_literal(v) for v in flat[i:i + per_line]) + ","
            for i in range(0, len(flat), per_line)]
    return "\n".join(rows)


def _int_body(values: np.ndarray, per_line: int = 16, indent: str = "    ") -> str:
    flat = np.asarray(values).reshape(-1)
    return "\n".join(indent + ", ".join(str(int(v)) for v in flat[i:i + per_line]) + ","
                     for i in range(0, len(flat), per_line))


def _check_finite(state: dict, where: str) -> None:
    for k, v in sorted(state.items()):
        if not np.all(np.isfinite(v)):
            raise FloatCodegenError(f"{where}: tensor '{k}' has NaN or Inf values")


def plan_float(model: FloatModel) -> dict:
    """Every decision of the float C, as plain data for the templates.

    Derived constants (float64 math rounded once to float32): periodic Hann window / 32768
    (torch.hann_window(512, periodic=True); the int16 -> float scaling folded in, exact as a
    power of two), twiddles cos/sin(2 pi k / 512), 8-bit bit reversal, the mel filterbank
    as (first bin, count, weights) per band (zeros outside each band's span dropped),
    A = -exp(A_log) (float32, as torch), gate constants 1 - alpha and alpha, |noise_scale|.

    Returns:
        the template context (dims, arrays, scalars, blocks, macs, labels, logits).
    Raises:
        FloatCodegenError: bad shapes or non-finite weights.
    """
    sd, where = model.state, model.source
    _check_finite(sd, where)
    cfg = model_config(sd, where)
    L, E, N = cfg["n_layers"], cfg["d_inner"], cfg["d_state"]
    n = np.arange(N_FFT, dtype=np.float64)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)) / 32768.0
    k = np.arange(N_FFT // 2, dtype=np.float64)
    bitrev = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], np.uint8)
    mel = np.asarray(sd["mel_fb"], np.float32)
    starts, counts, weights = [], [], []
    for row in mel:
        nz = np.nonzero(row)[0]
        first, last = (int(nz[0]), int(nz[-1])) if len(nz) else (0, -1)
        starts.append(first)
        counts.append(last - first + 1)
        weights.append(row[first:last + 1])
    mel_w = np.concatenate(weights) if weights else np.zeros(0, np.float32)
    if mel_w.size == 0:
        raise FloatCodegenError(f"{where}: mel_fb is all zeros")
    mel_nonzero = int(np.count_nonzero(mel))

    arrays = []

    def arr(name, values, comment, ctype="float"):
        body = _f32_body(values) if ctype == "float" else _int_body(values)
        arrays.append({"name": name, "ctype": ctype, "size": int(np.asarray(values).size),
                       "body": body, "comment": comment})
        return name

    arr("kwsf_window", window, "periodic Hann window / 32768 (int16 samples -> float folded in)")
    arr("kwsf_tw_cos", np.cos(2 * np.pi * k / N_FFT), "cos(2 pi k / 512), k = 0..255")
    arr("kwsf_tw_sin", np.sin(2 * np.pi * k / N_FFT), "sin(2 pi k / 512), k = 0..255")
    arr("kwsf_bitrev", bitrev, "8-bit bit reversal of 0..255", "uint8_t")
    arr("kwsf_mel_start", np.array(starts), "mel_fb: first bin of each band", "int16_t")
    arr("kwsf_mel_count", np.array(counts), "mel_fb: bins of each band", "int16_t")
    arr("kwsf_mel_w", mel_w, "mel_fb weights, band after band (first..last non-zero bin)")
    arr("kwsf_patch_w", sd["patch_proj.weight"], "patch_proj.weight [D][M]")
    arr("kwsf_patch_b", sd["patch_proj.bias"], "patch_proj.bias [D]")
    arr("kwsf_final_norm_w", sd["final_norm.weight"], "final_norm.weight [D]")
    arr("kwsf_final_norm_b", sd["final_norm.bias"], "final_norm.bias [D]")
    arr("kwsf_classifier_w", sd["classifier.weight"], "classifier.weight [C][D]")
    arr("kwsf_classifier_b", sd["classifier.bias"], "classifier.bias [C]")
    blocks = []
    for i in range(L):
        p = f"blocks.{i}."
        s = f"kwsf_b{i}_"
        A = -np.exp(np.asarray(sd[p + "sa_ssm.A_log"], np.float32))
        alpha = np.float32(sd[p + "sa_ssm.alpha"])
        fields = [
            ("norm_w", arr(s + "norm_w", sd[p + "norm.weight"], p + "norm.weight [D]")),
            ("norm_b", arr(s + "norm_b", sd[p + "norm.bias"], p + "norm.bias [D]")),
            ("in_proj", arr(s + "in_proj", sd[p + "in_proj.weight"], p + "in_proj.weight [2E][D]")),
            ("conv_w", arr(s + "conv_w", np.asarray(sd[p + "conv1d.weight"]).reshape(E, -1),
                           p + "conv1d.weight [E][K]")),
            ("conv_b", arr(s + "conv_b", sd[p + "conv1d.bias"], p + "conv1d.bias [E]")),
            ("x_proj", arr(s + "x_proj", sd[p + "sa_ssm.x_proj.weight"],
                           p + "sa_ssm.x_proj.weight [1+2N][E]")),
            ("snr_proj_w", arr(s + "snr_proj_w", sd[p + "sa_ssm.snr_proj.weight"],
                               p + "sa_ssm.snr_proj.weight [1+N][M]")),
            ("snr_proj_b", arr(s + "snr_proj_b", sd[p + "sa_ssm.snr_proj.bias"],
                               p + "sa_ssm.snr_proj.bias [1+N]")),
            ("dt_w", arr(s + "dt_w", np.asarray(sd[p + "sa_ssm.dt_proj.weight"]).reshape(-1),
                         p + "sa_ssm.dt_proj.weight [E]")),
            ("dt_b", arr(s + "dt_b", sd[p + "sa_ssm.dt_proj.bias"], p + "sa_ssm.dt_proj.bias [E]")),
            ("A", arr(s + "A", A, "A = -exp(" + p + "sa_ssm.A_log) [E][N] (float32)")),
            ("D", arr(s + "D", sd[p + "sa_ssm.D"], p + "sa_ssm.D [E]")),
            ("out_proj", arr(s + "out_proj", sd[p + "out_proj.weight"], p + "out_proj.weight [D][E]")),
            ("gate_base", _f32_literal(np.float32(1.0) - alpha)),
            ("gate_alpha", _f32_literal(alpha)),
        ]
        if A.shape != (E, N):
            raise FloatCodegenError(f"{where}: {p}sa_ssm.A_log has shape {A.shape}, expected ({E}, {N})")
        blocks.append(fields)
    ns = abs(float(np.float32(sd["snr_estimator.noise_scale"])))
    scalars = [
        {"name": "kwsf_noise_scale", "value": _f32_literal(ns), "comment": "|snr_estimator.noise_scale|"},
        {"name": "kwsf_logit_inv_scale", "value": _f32_literal(1.0 / model.logit_scale),
         "comment": "1 / KWS_LOGIT_SCALE"},
    ]
    if len(model.labels) != cfg["n_classes"]:
        raise FloatCodegenError(f"{where}: {len(model.labels)} labels for "
                                f"{cfg['n_classes']} classifier outputs")
    macs = float_macs(cfg, mel_nonzero)
    return {
        **cfg, "mel_nnz": int(mel_w.size), "arrays": arrays, "scalars": scalars,
        "blocks": blocks, "labels": [str(x).replace("\\", "\\\\").replace('"', '\\"')
                                     for x in model.labels],
        "model_name": f"{model.name} float32".replace('"', "'"),
        "logit_scale": repr(float(model.logit_scale)),
        "logit_zero_point": (str(model.logit_zero_point) if model.logit_zero_point >= 0
                             else f"({model.logit_zero_point})"),
        "logit_source": model.logit_source,
        "macs_total": macs["total"], "macs_frontend": macs["frontend"],
        "macs_network": macs["network"], "macs": macs, "model_hash": model.model_hash,
    }


def render_float(plan: dict, argv: Sequence[str] | None = None) -> dict:
    """Render the float model's files.

    Args:
        plan: :func:`plan_float`'s context.
        argv: command line stamped into the files (None: "(library call)").
    Returns:
        file name -> text.
    """
    import jinja2

    from firmware_templates import template_root
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root() / "float_model")),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False)
    ctx = dict(plan, stamp=stamp(plan["model_hash"], argv))
    return {out: env.get_template(tpl).render(**ctx) for out, tpl in TEMPLATES.items()}


def generate_float_c(source, out_dir, *, force: bool = False,
                     argv: Sequence[str] | None = None) -> FloatGenerateResult:
    """Write the float32 C folder of a model (``kws-export build --precision float32``).

    Args:
        source: bundle file / :class:`export.bundle.Bundle` (preferred: the int8 build's
            logit scale) or float checkpoint; see :func:`load_float_source`.
        out_dir: output folder, written atomically (temp sibling, then renamed).
        force: replace an existing ``out_dir``.
        argv: command line stamped into the files.
    Returns:
        :class:`FloatGenerateResult`.
    Raises:
        OutputExistsError: ``out_dir`` exists and not ``force`` (checked before any work).
        BundleError, CheckpointError, FloatCodegenError: see :func:`load_float_source`,
        :func:`plan_float`.
    """
    out_dir = Path(out_dir)
    check_output(out_dir, force, inputs=[source])
    model = load_float_source(source)
    plan = plan_float(model)
    files = render_float(plan, argv)
    with atomic_output_dir(out_dir, force=force) as tmp:
        for name, text in sorted(files.items()):
            (tmp / name).write_bytes(text.encode("utf-8"))
    return FloatGenerateResult(out_dir, sorted(files), plan["macs"],
                               {k: plan[k] for k in ("d_model", "d_inner", "d_state", "d_conv",
                                                      "n_layers", "n_mels", "n_classes")})
