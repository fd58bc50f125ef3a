"""ONNX exports of NanoMamba built from a bundle's arrays with ``onnx.helper``.

The exporter never touches the PyTorch model: every graph is a function of a
:class:`~nanomamba.config.NanoMambaConfig`, a dict of float parameter arrays under the
published state-dict names (``mel_fb``, ``patch_proj.weight``, ``blocks.0.sa_ssm.A_log``...,
see ``../shared/fixtures/README.md``; a bundle stores them as ``float/<key>``) and, for the
quantized graph, a :class:`QuantSpec` made from the bundle (:func:`qspec_from_bundle`: its
scales, zero points, integer weights and biases). Graphs:

- **network** ``features (B,101,40), snr_mel (B,101,40) -> logits (B,12)``;
- **frontend** ``audio (B,16000) -> features, snr_mel`` (float, for the quantized routes);
- **full** ``audio (B,16000) -> logits`` (front end + network in one graph);
- **qdq** the network with QuantizeLinear/DequantizeLinear pairs carrying the bundle's
  quantization of every int8/int16 tensor, and the bundle's integer weights/biases behind
  DequantizeLinear (docs/EXPORT.md lists what stays float and why).

The SA-SSM recurrence ``h_t = dA_t * h_{t-1} + x_t`` (Mamba, Gu & Dao 2023, eq. 2a with the
reference code's ZOH A / Euler B) is expressed either as an ONNX ``Scan`` (``scan="scan"``)
or unrolled over the 101 frames (``scan="unrolled"``); ``benchmarks/bench_onnx.py`` measures
both. The STFT of the full model is either a DFT as two MatMuls (``stft="dft"``) or the ONNX
``STFT`` operator (``stft="op"``). The front end (frontend and full graphs) runs in double
by default (``frontend_dtype="float64"``: Cast of the audio, every front-end op in double,
Cast of features/snr_mel to float32), as the float model does
(``nanomamba.config.FRONTEND_DTYPE``); the network is float32.

Named intermediate tensors carry the bundle's tensor names (= the float model's tap names:
``patch``, ``blocks.{i}.u_act``, ``blocks.{i}.delta``, ``blocks.{i}.h``, ``final_norm``...).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nanomamba.config import (CLIP_SAMPLES, FRONTEND_DTYPE, FRONTEND_DTYPES, HOP, LOG_EPS,
                              N_FFT, N_FRAMES, NOISE_FRAMES, NORM_EPS, SNR_EPS, SNR_TANH_SCALE,
                              NanoMambaConfig)
from nanomamba.errors import KwsError

#: Default ONNX opset of every exported graph. 21 is the first opset whose
#: QuantizeLinear/DequantizeLinear accept int16 (needed for the SSM state); LayerNormalization
#: and STFT need 17, ReduceMean/Split-with-inputs forms need 18.
DEFAULT_OPSET = 21
MIN_OPSET = 21
SCAN_MODES = ("unrolled", "scan")
STFT_MODES = ("dft", "op")

#: Per-block activation tensors the QDQ graph quantizes (prefixed ``blocks.{i}.``); the
#: names are the float model's tap names (nanomamba.model.BLOCK_TAP_NAMES).
BLOCK_ACT_TENSORS = ("norm", "u", "z", "conv", "u_act", "dt_raw", "B", "C", "dt_shift", "g",
                     "dt_in", "dt_pre", "delta", "gate", "B_gated", "dA", "du", "h", "y_ssm",
                     "z_act", "y_gated", "proj", "out")
#: Network-level activation tensors (inputs included).
NET_ACT_TENSORS = ("features", "snr_mel", "patch", "final_norm", "pooled", "logits")


class OnnxExportError(KwsError):
    """An ONNX export or run failed on bad input (missing/invalid source, bad option)."""


def act_tensor_names(cfg: NanoMambaConfig) -> list[str]:
    """Every activation tensor name the graphs expose (network level and per block)."""
    names = list(NET_ACT_TENSORS[:3])
    for i in range(cfg.n_layers):
        names += [f"blocks.{i}.{n}" for n in BLOCK_ACT_TENSORS]
    return names + list(NET_ACT_TENSORS[3:])


# --------------------------------------------------------------------------------------
# quantization description (what the QDQ graph carries)
# --------------------------------------------------------------------------------------

@dataclass
class TensorQuant:
    """Affine quantization of one tensor: real = scale * (q - zero_point).

    Attributes:
        scale: float32, shape () per-tensor or (C,) per-channel.
        zero_point: int, same shape as scale.
        dtype: "int8", "uint8" or "int16".
        axis: channel axis of per-channel parameters, None for per-tensor. For a weight it
            is the axis of the weight as stored (a Linear weight (out, in): 0); for an
            activation it is the axis of the per-frame shape (the bundle's
            ``channel_axis``: ``h`` (d_inner, d_state) -> 0), and the graph adds the leading
            (batch, time) axes.
        values: the integers themselves (the bundle's weights and biases, GPTQ-rounded by
            the quantizer), or None to quantize the float array (:func:`quantize_array`).
    Source: ONNX QuantizeLinear/DequantizeLinear (opset 21) semantics.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str = "int8"
    axis: int | None = None
    values: np.ndarray | None = None

    @property
    def qrange(self) -> tuple[int, int]:
        """(min, max) of the integer type."""
        info = np.iinfo(self.dtype)
        return int(info.min), int(info.max)

    def to_json(self) -> dict:
        """JSON form (scales as float32 values, zero points as ints; no integer arrays)."""
        return {"scale": np.asarray(self.scale, np.float32).tolist(),
                "zero_point": np.asarray(self.zero_point).astype(int).tolist(),
                "dtype": self.dtype, "axis": self.axis}


@dataclass
class QuantSpec:
    """Quantization parameters the QDQ graph carries.

    Attributes:
        activations: tensor name (see :func:`act_tensor_names`) -> :class:`TensorQuant`.
            Tensors without an entry stay float.
        weights: parameter name (``patch_proj.weight``, ``blocks.0.in_proj.weight``...) ->
            per-channel :class:`TensorQuant` (axis 0 = output channel of the stored
            (out, in) weight). Parameters without an entry stay float.
        biases: parameter name (``patch_proj.bias``...) -> per-channel int32
            :class:`TensorQuant` (scale s_x s_w[o], zero point 0: the bundle's integer bias,
            behind DequantizeLinear). Biases without an entry stay float.
        float_tensors: named tensors the graph deliberately leaves float, with the reason
            (the bundle's int32 residual stream).
        source: where the numbers come from (bundle file and model hash).
    """

    activations: dict[str, TensorQuant] = field(default_factory=dict)
    weights: dict[str, TensorQuant] = field(default_factory=dict)
    biases: dict[str, TensorQuant] = field(default_factory=dict)
    float_tensors: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def to_json(self) -> dict:
        """JSON form written beside the QDQ graph (``quantization.json``)."""
        return {"source": self.source,
                "activations": {k: v.to_json() for k, v in self.activations.items()},
                "weights": {k: v.to_json() for k, v in self.weights.items()},
                "biases": {k: v.to_json() for k, v in self.biases.items()},
                "float_tensors": dict(self.float_tensors)}


def quantize_array(x: np.ndarray, tq: TensorQuant) -> np.ndarray:
    """real -> integer: clip(round_half_away(x / scale) + zero_point) in ``tq.dtype``.

    Args:
        x: float array (a weight as stored, (out, in) / (E, 1, K)).
        tq: its quantization; per-channel scales broadcast along ``tq.axis``.
    Returns:
        integer array of ``tq.dtype``, same shape. Rounding: half away from zero
        (export/intmath.round_half_away), as the bundle and the C code use.
    """
    from export.intmath import round_half_away
    scale = np.asarray(tq.scale, np.float64)
    zp = np.asarray(tq.zero_point, np.int64)
    if tq.axis is not None and scale.ndim == 1:
        shape = [1] * x.ndim
        shape[tq.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    q = np.asarray(round_half_away(np.asarray(x, np.float64) / scale), np.int64) + zp
    lo, hi = tq.qrange
    return np.clip(q, lo, hi).astype(tq.dtype)


# --------------------------------------------------------------------------------------
# graph builder
# --------------------------------------------------------------------------------------

_ONNX_INT = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "int16": TensorProto.INT16}


class _Builder:
    """Accumulates nodes and initializers with unique names; inserts Q/DQ pairs."""

    def __init__(self, qspec: QuantSpec | None = None, opset: int = DEFAULT_OPSET):
        self.nodes: list = []
        self.inits: list = []
        self.used: set[str] = set()
        self.qspec = qspec
        self.opset = opset
        self.taps: dict[str, str] = {}      # tap name -> float tensor name in the graph
        self._consts: dict[bytes, str] = {}

    def uniq(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name

    def const(self, base: str, value, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = base.encode() + arr.dtype.str.encode() + str(arr.shape).encode() + arr.tobytes()
        if key in self._consts:
            return self._consts[key]
        name = self.uniq(base)
        self.inits.append(numpy_helper.from_array(arr, name))
        self._consts[key] = name
        return name

    def ints(self, base: str, values) -> str:
        return self.const(base, np.asarray(values, np.int64), np.int64)

    def op(self, op_type: str, inputs: list[str], out: str | None = None, n_out: int = 1,
           outs: list[str] | None = None, **attrs):
        base = out or op_type.lower()
        names = outs or ([self.uniq(base)] if n_out == 1 else
                         [self.uniq(f"{base}_{k}") for k in range(n_out)])
        if outs:
            for n in outs:
                self.used.add(n)
        self.nodes.append(helper.make_node(op_type, inputs, names,
                                           name=self.uniq(f"n/{names[0]}"), **attrs))
        return names[0] if n_out == 1 and not outs else names

    def act(self, tensor: str, tap: str | None = None, lead: int = 2) -> str:
        """Register ``tensor`` as tap ``tap``; with a QuantSpec entry, wrap it in Q/DQ and
        return the dequantized name (what downstream nodes must read). ``lead``: leading
        axes before the per-frame shape (2: batch, time; 1 inside the Scan body)."""
        tap = tap or tensor
        self.taps[tap] = tensor
        tq = self.qspec.activations.get(tap) if self.qspec else None
        if tq is None:
            return tensor
        return self.qdq(tensor, tq, tap, lead)

    def qdq(self, tensor: str, tq: TensorQuant, tap: str, lead: int = 2,
            into: "_Builder | None" = None) -> str:
        """QuantizeLinear -> DequantizeLinear of ``tensor`` (per-axis when ``tq`` is
        per-channel: axis = ``lead`` + the per-frame channel axis). ``into``: the builder
        that receives the two nodes (a Scan body); the parameters stay initializers of
        ``self`` (outer-scope names are visible in subgraphs)."""
        scale, zp = self.act_params(tq, tap)
        attrs = {}
        if np.ndim(tq.scale) == 1:
            attrs["axis"] = lead + (tq.axis or 0)
        b = into or self
        q = b.op("QuantizeLinear", [tensor, scale, zp], out=f"{tap}.q", **attrs)
        return b.op("DequantizeLinear", [q, scale, zp], out=f"{tap}.dq", **attrs)

    def act_params(self, tq: TensorQuant, tap: str) -> tuple[str, str]:
        """Scale and zero-point initializers of an activation. int8 activations are stored
        as the equivalent uint8 (q_u8 = q_s8 + 128, zero_point + 128, same scale: the same
        real values), onnxruntime's native activation type: with int8 activations its
        QDQ propagation + S8->U8 rewrite fails at session creation (onnxruntime 1.32,
        opset 21)."""
        scale = self.const(f"{tap}.scale", np.asarray(tq.scale, np.float32))
        if tq.dtype == "int8":
            zp = self.const(f"{tap}.zero_point", np.asarray(tq.zero_point, np.int16) + 128,
                            np.uint8)
        else:
            zp = self.const(f"{tap}.zero_point", np.asarray(tq.zero_point), np.dtype(tq.dtype))
        return scale, zp

    def weight(self, key: str, w: np.ndarray, transpose: bool) -> str:
        """A weight stored (out, in...) -> graph tensor (transposed to (in, out) for MatMul
        when ``transpose``); integer + per-channel DequantizeLinear when the QuantSpec has
        it (the bundle's own integers when ``values`` is set)."""
        tq = self.qspec.weights.get(key) if self.qspec else None
        if tq is None:
            return self.const(key, w.T if transpose else w)
        if tq.values is not None:
            q = np.asarray(tq.values).reshape(w.shape).astype(tq.dtype)
        else:
            q = quantize_array(w, tq)
        axis = tq.axis
        if transpose:
            q = q.T
            axis = None if axis is None else q.ndim - 1 - axis
        return self._dq_const(key, q, tq, axis)

    def bias(self, key: str, b: np.ndarray) -> str:
        """A bias (O,): float, or the bundle's int32 bias behind a per-channel
        DequantizeLinear (scale s_x s_w[o]) when the QuantSpec has it."""
        tq = self.qspec.biases.get(key) if self.qspec else None
        if tq is None:
            return self.const(key, b)
        q = np.asarray(tq.values).reshape(np.shape(b)).astype(tq.dtype)
        return self._dq_const(key, q, tq, 0)

    def _dq_const(self, key: str, q: np.ndarray, tq: TensorQuant, axis: int | None) -> str:
        qn = self.const(f"{key}.quantized", q, q.dtype)
        scale = self.const(f"{key}.scale", np.asarray(tq.scale, np.float32))
        zp = self.const(f"{key}.zero_point", np.asarray(tq.zero_point), np.dtype(tq.dtype))
        attrs = {"axis": axis} if axis is not None and np.ndim(tq.scale) == 1 else {}
        return self.op("DequantizeLinear", [qn, scale, zp], out=f"{key}.dq", **attrs)


def _silu(g: _Builder, x: str, out: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x])], out=out)


def _linear(g: _Builder, p: dict, x: str, key: str, out: str, bias: bool = True) -> str:
    y = g.op("MatMul", [x, g.weight(f"{key}.weight", p[f"{key}.weight"], transpose=True)],
             out=out if not bias else None)
    if bias:
        y = g.op("Add", [y, g.bias(f"{key}.bias", p[f"{key}.bias"])], out=out)
    return y


def _layer_norm(g: _Builder, p: dict, x: str, key: str, out: str) -> str:
    return g.op("LayerNormalization", [x, g.const(f"{key}.weight", p[f"{key}.weight"]),
                                       g.const(f"{key}.bias", p[f"{key}.bias"])],
                out=out, axis=-1, epsilon=NORM_EPS)


def _scan_unrolled(g: _Builder, dA: str, x: str, T: int, pre: str) -> str:
    ones = g.ints("split_ones_T", [1] * T)
    dAs = g.op("Split", [dA, ones], out=f"{pre}dA_t", n_out=T, axis=1)
    dAs = [dAs] if isinstance(dAs, str) else dAs
    xs = g.op("Split", [x, ones], out=f"{pre}x_t", n_out=T, axis=1)
    xs = [xs] if isinstance(xs, str) else xs
    tq = g.qspec.activations.get(f"{pre}h") if g.qspec else None
    hs = []
    h = None
    for t in range(T):
        h = xs[t] if h is None else g.op("Add", [g.op("Mul", [dAs[t], h]), xs[t]],
                                          out=f"{pre}h_t{t}")
        if tq is not None:
            h = g.qdq(h, tq, f"{pre}h", lead=2)
        hs.append(h)
    return g.op("Concat", hs, out=f"{pre}h" + (".seq" if tq is not None else ""), axis=1)


def _scan_op(g: _Builder, dA: str, x: str, E: int, N: int, batch_of: str, pre: str) -> str:
    """ONNX Scan over axis 1 (time); state h (B, E, N) starts at zero."""
    tq = g.qspec.activations.get(f"{pre}h") if g.qspec else None
    sub = _Builder(None, g.opset)
    sub.used = set(g.used)          # body names must not shadow outer names
    h_prev, dA_t, x_t = sub.uniq("h_prev"), sub.uniq("dA_t"), sub.uniq("x_t")
    h_new = sub.op("Add", [sub.op("Mul", [dA_t, h_prev]), x_t], out="h_new")
    if tq is not None:
        # outer-scope scale/zero-point initializers are visible inside the body; h_t is
        # (B, E, N) there: one leading axis
        h_new = g.qdq(h_new, tq, f"{pre}h", lead=1, into=sub)
    h_out = sub.op("Identity", [h_new], out="h_out")
    f = TensorProto.FLOAT
    body = helper.make_graph(
        sub.nodes, f"{pre}scan_body",
        [helper.make_tensor_value_info(h_prev, f, None),
         helper.make_tensor_value_info(dA_t, f, None),
         helper.make_tensor_value_info(x_t, f, None)],
        [helper.make_tensor_value_info(h_new, f, None),
         helper.make_tensor_value_info(h_out, f, None)],
        initializer=sub.inits)
    g.used |= sub.used
    bsz = g.op("Slice", [g.op("Shape", [batch_of]), g.ints("i0", [0]), g.ints("i1", [1])])
    shape = g.op("Concat", [bsz, g.ints(f"EN_{E}_{N}", [E, N])], axis=0)
    h0 = g.op("ConstantOfShape", [shape], out=f"{pre}h0",
              value=numpy_helper.from_array(np.zeros(1, np.float32)))
    _, hseq = g.op("Scan", [h0, dA, x], out=f"{pre}scan", n_out=2,
                   outs=[g.uniq(f"{pre}h_last"), g.uniq(f"{pre}h" + (".seq" if tq else ""))],
                   body=body, num_scan_inputs=2, scan_input_axes=[1, 1],
                   scan_output_axes=[1])
    return hseq


def _network(g: _Builder, cfg: NanoMambaConfig, p: dict, feats: str, snr: str,
             scan: str, T: int) -> str:
    E, N = cfg.d_inner, cfg.d_state
    g.n_classes = cfg.n_classes
    feats = g.act(feats, "features")
    snr = g.act(snr, "snr_mel")
    x = g.act(_linear(g, p, feats, "patch_proj", "patch"))
    for i in range(cfg.n_layers):
        pre = f"blocks.{i}."
        s = f"{pre}sa_ssm."
        xn = g.act(_layer_norm(g, p, x, f"{pre}norm", f"{pre}norm"))
        uz = _linear(g, p, xn, f"{pre}in_proj", f"{pre}uz", bias=False)
        u, z = g.op("Split", [uz, g.ints(f"split_{E}_{E}", [E, E])], n_out=2, axis=-1,
                    outs=[f"{pre}u", f"{pre}z"])
        u, z = g.act(u), g.act(z)
        # causal depthwise conv1d (kernel K, left padding K-1), as torch's cross-correlation:
        # conv[t] = bias + sum_k w[:, k] * u_pad[t + k]; Pad/Slice/Mul/Add (no Transpose:
        # keeps onnxruntime's QDQ optimizers on their well-trodden path).
        K = cfg.d_conv
        w = g.weight(f"{pre}conv1d.weight", p[f"{pre}conv1d.weight"].reshape(E, K), True)
        up = g.op("Pad", [u, g.ints(f"pads_causal_{K}", [0, K - 1, 0, 0, 0, 0])])
        acc = g.bias(f"{pre}conv1d.bias", p[f"{pre}conv1d.bias"])
        for k in range(K):
            tap_k = g.op("Slice", [up, g.ints(f"i{k}", [k]), g.ints(f"i{k}_T", [k + T]),
                                   g.ints("axis_1", [1])])
            wk = g.op("Gather", [w, g.const(f"k{k}", np.int64(k), np.int64)], axis=0)
            acc = g.op("Add", [acc, g.op("Mul", [tap_k, wk])],
                       out=f"{pre}conv" if k == K - 1 else None)
        conv = g.act(acc)
        u_act = g.act(_silu(g, conv, f"{pre}u_act"))
        xp = g.op("MatMul", [u_act, g.weight(f"{s}x_proj.weight", p[f"{s}x_proj.weight"], True)])
        dt_raw, Bm, Cm = g.op("Split", [xp, g.ints(f"split_1_{N}_{N}", [1, N, N])], n_out=3,
                              axis=-1, outs=[f"{pre}dt_raw", f"{pre}B", f"{pre}C"])
        dt_raw, Bm, Cm = g.act(dt_raw), g.act(Bm), g.act(Cm)
        sp = _linear(g, p, snr, f"{s}snr_proj", f"{pre}snr_proj")
        dt_shift, gg = g.op("Split", [sp, g.ints(f"split_1_{N}", [1, N])], n_out=2, axis=-1,
                            outs=[f"{pre}dt_shift", f"{pre}g"])
        dt_shift, gg = g.act(dt_shift), g.act(gg)
        dt_in = g.act(g.op("Add", [dt_raw, dt_shift], out=f"{pre}dt_in"))
        # dt_proj: Linear(1 -> E) of a scalar per frame (a MatMul with K = 1: exact products)
        dtp = g.act(_linear(g, p, dt_in, f"{s}dt_proj", f"{pre}dt_pre"))
        delta = g.act(g.op("Softplus", [dtp], out=f"{pre}delta"))
        alpha = float(np.asarray(p[f"{s}alpha"]))
        gate = g.act(g.op("Add", [g.op("Mul", [g.op("Sigmoid", [gg]), g.const("alpha", alpha, np.float32)]),
                                  g.const("one_minus_alpha", 1.0 - alpha)], out=f"{pre}gate"))
        # constants named per block
        B_g = g.act(g.op("Mul", [Bm, gate], out=f"{pre}B_gated"))
        A = -np.exp(np.asarray(p[f"{s}A_log"], np.float64)).astype(np.float32)   # (E, N)
        ax_m1 = g.ints("axis_m1", [-1])
        dA = g.act(g.op("Exp", [g.op("Mul", [g.op("Unsqueeze", [delta, ax_m1]),
                                             g.const(f"{s}A", A)])], out=f"{pre}dA"))
        du = g.act(g.op("Mul", [delta, u_act], out=f"{pre}du"))
        xin = g.op("Mul", [g.op("Unsqueeze", [du, ax_m1]),
                           g.op("Unsqueeze", [B_g, g.ints("axis_2", [2])])], out=f"{pre}dBu")
        if scan == "unrolled":
            h = _scan_unrolled(g, dA, xin, T, pre)
        else:
            h = _scan_op(g, dA, xin, E, N, feats, pre)
        g.taps[f"{pre}h"] = h
        # y = sum_n C_n h[:, n] + D u  as a MatMul (B,T,E,N) @ (B,T,N,1)
        hc = g.op("MatMul", [h, g.op("Unsqueeze", [Cm, ax_m1])])
        yss = g.op("Squeeze", [hc, ax_m1])
        y = g.act(g.op("Add", [yss, g.op("Mul", [u_act, g.const(f"{s}D", p[f"{s}D"])])],
                       out=f"{pre}y_ssm"))
        z_act = g.act(_silu(g, z, f"{pre}z_act"))
        yg = g.act(g.op("Mul", [y, z_act], out=f"{pre}y_gated"))
        o = g.act(g.op("MatMul", [yg, g.weight(f"{pre}out_proj.weight",
                                                p[f"{pre}out_proj.weight"], True)],
                       out=f"{pre}proj"))
        x = g.act(g.op("Add", [o, x], out=f"{pre}out"))
    xf = g.act(_layer_norm(g, p, x, "final_norm", "final_norm"))
    pooled = g.act(g.op("ReduceMean", [xf, g.ints("axis_1", [1])], out="pooled", keepdims=0))
    logits = _linear(g, p, pooled, "classifier", "logits_pre")
    return g.act(logits, "logits")


def _frontend(g: _Builder, cfg: NanoMambaConfig, p: dict, audio: str, stft: str,
              dtype: str = FRONTEND_DTYPE) -> tuple[str, str]:
    """audio (B, 16000) float32 -> (features, snr_mel) float32; semantics and arithmetic
    (``dtype``: "float64" casts the audio to double, runs every step in double and casts the
    two outputs back) of nanomamba.frontend.FrontEnd."""
    fdt = np.float64 if dtype == "float64" else np.float32
    if dtype == "float64":
        audio = g.op("Cast", [audio], out="audio_f64", to=TensorProto.DOUBLE)
    half = N_FFT // 2
    pad = g.op("Pad", [audio, g.ints("pads_reflect", [0, half, 0, half])], mode="reflect")
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)          # periodic Hann
    n_bins = N_FFT // 2 + 1
    if stft == "dft":
        idx = np.arange(N_FRAMES)[:, None] * HOP + n[None, :]    # (101, 512)
        frames = g.op("Gather", [pad, g.const("frame_index", idx, np.int32)], axis=1)   # (B,101,512)
        k = np.arange(n_bins)
        ang = 2 * np.pi * (np.outer(n, k) % N_FFT) / N_FFT
        wc = (window[:, None] * np.cos(ang)).astype(fdt)
        ws = (-window[:, None] * np.sin(ang)).astype(fdt)
        re = g.op("MatMul", [frames, g.const("dft_cos", wc, fdt)])
        im = g.op("MatMul", [frames, g.const("dft_sin", ws, fdt)])
        pw = g.op("Add", [g.op("Mul", [re, re]), g.op("Mul", [im, im])])
    else:
        sig = g.op("Unsqueeze", [pad, g.ints("axis_m1", [-1])])   # (B, L, 1)
        spec = g.op("STFT", [sig, g.const("hop", np.int64(HOP), np.int64),
                             g.const("hann", window.astype(fdt), fdt),
                             g.const("n_fft", np.int64(N_FFT), np.int64)], onesided=1)
        pw = g.op("ReduceSum", [g.op("Mul", [spec, spec]), g.ints("axis_m1", [-1])], keepdims=0)
    mag = g.op("Sqrt", [pw], out="magnitude")                    # (B, 101, 257)
    melT = g.const("mel_fb_T", np.asarray(p["mel_fb"], np.float32).T, fdt)
    noise = g.op("ReduceMean", [g.op("Slice", [mag, g.ints("i0", [0]),
                                               g.ints("noise_frames", [NOISE_FRAMES]),
                                               g.ints("axis_1", [1])]),
                                g.ints("axis_1", [1])], keepdims=1)
    ns = abs(float(np.asarray(p["snr_estimator.noise_scale"], np.float32)))
    denom = g.op("Add", [g.op("Mul", [noise, g.const("noise_scale_abs", ns, fdt)]),
                         g.const("snr_eps", SNR_EPS, fdt)])
    snr = g.op("Div", [mag, denom])
    snr_mel = g.op("Tanh", [g.op("Div", [g.op("MatMul", [snr, melT]),
                                         g.const("snr_tanh_scale", SNR_TANH_SCALE, fdt)])],
                   out="snr_mel_float")
    mel = g.op("MatMul", [mag, melT], out="mel")
    logmel = g.op("Log", [g.op("Add", [mel, g.const("log_eps", LOG_EPS, fdt)])], out="log_mel")
    ax1 = g.ints("axis_1", [1])
    mean = g.op("ReduceMean", [logmel, ax1], keepdims=1)
    cen = g.op("Sub", [logmel, mean])
    var = g.op("ReduceMean", [g.op("Mul", [cen, cen]), ax1], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const("norm_eps", NORM_EPS, fdt)])])
    feats = g.op("Div", [cen, std], out="features_float")
    if dtype == "float64":
        feats = g.op("Cast", [feats], out="features_f32", to=TensorProto.FLOAT)
        snr_mel = g.op("Cast", [snr_mel], out="snr_mel_f32", to=TensorProto.FLOAT)
    return feats, snr_mel


def _make_model(g: _Builder, inputs, outputs, name: str, doc: str) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)],
                              producer_name="nanomamba-kws", producer_version=_version(),
                              doc_string=doc)
    model.ir_version = min(model.ir_version, 10)   # readable by onnxruntime >= 1.17
    if any(not o.type.tensor_type.HasField("shape") for o in model.graph.output):
        # tap outputs: take their types from shape inference of the graph
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type for v in (*inferred.graph.value_info, *inferred.graph.input)}
        for o in model.graph.output:
            if not o.type.tensor_type.HasField("shape"):
                src = o.name.split(":", 1)[1] if ":" in o.name else o.name
                tensor = g.taps.get(src, src)
                if tensor in types and types[tensor].tensor_type.HasField("shape"):
                    o.type.CopyFrom(types[tensor])
                else:
                    o.type.tensor_type.shape.SetInParent()
                    o.type.tensor_type.shape.ClearField("dim")
    return model


def _version() -> str:
    from export import __version__
    return __version__


def _check_params(cfg: NanoMambaConfig, params: dict, need_frontend: bool) -> dict:
    keys = ["patch_proj.weight", "patch_proj.bias", "final_norm.weight", "final_norm.bias",
            "classifier.weight", "classifier.bias"]
    for i in range(cfg.n_layers):
        b = f"blocks.{i}."
        keys += [b + k for k in ("norm.weight", "norm.bias", "in_proj.weight", "conv1d.weight",
                                 "conv1d.bias", "sa_ssm.A_log", "sa_ssm.D", "sa_ssm.alpha",
                                 "sa_ssm.x_proj.weight", "sa_ssm.snr_proj.weight",
                                 "sa_ssm.snr_proj.bias", "sa_ssm.dt_proj.weight",
                                 "sa_ssm.dt_proj.bias", "out_proj.weight")]
    if need_frontend:
        keys += ["mel_fb", "snr_estimator.noise_scale"]
    missing = [k for k in keys if k not in params]
    if missing:
        raise OnnxExportError(f"parameters: missing '{missing[0]}'"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return {k: np.asarray(v, np.float32) for k, v in params.items()}


def _io(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def build_network(cfg: NanoMambaConfig, params: dict, *, scan: str = "unrolled",
                  qspec: QuantSpec | None = None, taps: bool = False,
                  opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The network graph: ``features (B,101,40) float32, snr_mel (B,101,40) float32 ->
    logits (B,12) float32``.

    Args:
        cfg: network configuration.
        params: float parameter arrays under published names (see module docstring).
        scan: "unrolled" (101 Mul/Add pairs per block) or "scan" (ONNX Scan).
        qspec: quantization to carry as QDQ (None: float graph).
        taps: also output every named intermediate (:func:`act_tensor_names`), float, for
            calibration and debugging.
        opset: ONNX opset (>= 21).
    Returns:
        the ModelProto (checked by ``onnx.checker``).
    Raises:
        OnnxExportError: missing parameter, unknown scan mode, opset too old.
    """
    _check_options(scan, "dft", opset)
    p = _check_params(cfg, params, need_frontend=False)
    g = _Builder(qspec, opset)
    g.used |= {"features", "snr_mel"}
    logits = _network(g, cfg, p, "features", "snr_mel", scan, N_FRAMES)
    if qspec is not None:
        unused = sorted(set(qspec.activations) - set(g.taps))
        if unused:
            raise OnnxExportError(f"quantization: tensor '{unused[0]}' is not in the network "
                                  f"graph ({len(unused)} unused)")
    outs = _outputs(g, logits, taps)
    model = _make_model(g, [_io("features", ["B", N_FRAMES, cfg.n_mels]),
                            _io("snr_mel", ["B", N_FRAMES, cfg.n_mels])], outs,
                        "nanomamba_network" + ("_qdq" if qspec else ""),
                        _doc(cfg, "network", scan, None, qspec))
    onnx.checker.check_model(model, full_check=True)
    return model


def build_frontend(cfg: NanoMambaConfig, params: dict, *, stft: str = "dft",
                   frontend_dtype: str = FRONTEND_DTYPE,
                   opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The float front end: ``audio (B,16000) float32 in [-1,1] -> features (B,101,40),
    snr_mel (B,101,40)`` float32 (semantics of :mod:`nanomamba.frontend`).

    Args: as :func:`build_full`.
    Raises:
        OnnxExportError: missing parameter, unknown stft mode or frontend_dtype.
    """
    _check_options("unrolled", stft, opset, frontend_dtype)
    p = _check_params(cfg, params, need_frontend=True)
    g = _Builder(None, opset)
    g.used.add("audio")
    feats, snr = _frontend(g, cfg, p, "audio", stft, frontend_dtype)
    g.op("Identity", [feats], outs=["features"])
    g.op("Identity", [snr], outs=["snr_mel"])
    model = _make_model(g, [_io("audio", ["B", CLIP_SAMPLES])],
                        [_io("features", ["B", N_FRAMES, cfg.n_mels]),
                         _io("snr_mel", ["B", N_FRAMES, cfg.n_mels])],
                        "nanomamba_frontend",
                        _doc(cfg, "frontend", None, stft, None, frontend_dtype))
    onnx.checker.check_model(model, full_check=True)
    return model


def build_full(cfg: NanoMambaConfig, params: dict, *, scan: str = "unrolled",
               stft: str = "dft", frontend_dtype: str = FRONTEND_DTYPE, taps: bool = False,
               opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The whole float model: ``audio (B,16000) float32 in [-1,1] -> logits (B,12)``.

    STFT as ``torch.stft(n_fft=512, hop=160, periodic Hann, center=True, reflect)``:
    a reflect Pad, then either frames (Gather) times window-folded cos/sin matrices
    (``stft="dft"``) or the ONNX STFT operator (``stft="op"``); magnitude sqrt(re^2+im^2).

    Args: as :func:`build_network`, plus ``stft`` ("dft" or "op") and ``frontend_dtype``
        ("float64", the default = ``nanomamba.config.FRONTEND_DTYPE``: the front end in
        double, Cast to float32 before the network, as the float model computes it; or
        "float32"). With ``taps`` the features and snr_mel are outputs too.
    Raises:
        OnnxExportError: missing parameter, unknown mode, opset too old.
    """
    _check_options(scan, stft, opset, frontend_dtype)
    p = _check_params(cfg, params, need_frontend=True)
    g = _Builder(None, opset)
    g.used.add("audio")
    feats, snr = _frontend(g, cfg, p, "audio", stft, frontend_dtype)
    logits = _network(g, cfg, p, feats, snr, scan, N_FRAMES)
    outs = _outputs(g, logits, taps)
    model = _make_model(g, [_io("audio", ["B", CLIP_SAMPLES])], outs, "nanomamba_full",
                        _doc(cfg, "full", scan, stft, None, frontend_dtype))
    onnx.checker.check_model(model, full_check=True)
    return model


def _outputs(g: _Builder, logits: str, taps: bool) -> list:
    g.op("Identity", [logits], outs=["logits"])
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", g.n_classes])]
    if taps:
        for tap, tensor in g.taps.items():
            if tap == "logits":
                continue
            name = f"tap:{tap}"
            g.op("Identity", [tensor], outs=[name])
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, []))
            outs[-1].type.tensor_type.ClearField("shape")
    return outs


def _check_options(scan: str, stft: str, opset: int, frontend_dtype: str = FRONTEND_DTYPE) -> None:
    if scan not in SCAN_MODES:
        raise OnnxExportError(f"--scan: unknown mode {scan!r} (expected one of {', '.join(SCAN_MODES)})")
    if stft not in STFT_MODES:
        raise OnnxExportError(f"--stft: unknown mode {stft!r} (expected one of {', '.join(STFT_MODES)})")
    if frontend_dtype not in FRONTEND_DTYPES:
        raise OnnxExportError(f"--frontend-dtype: unknown {frontend_dtype!r} "
                              f"(expected one of {', '.join(FRONTEND_DTYPES)})")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise OnnxExportError(f"--opset: {opset} is not supported "
                              f"(need {MIN_OPSET}..{onnx.defs.onnx_opset_version()})")


def _doc(cfg, kind, scan, stft, qspec, frontend_dtype=None) -> str:
    info = {"tool": f"nanomamba-kws {_version()}", "graph": kind, "config": cfg.to_dict()}
    if scan:
        info["scan"] = scan
    if stft:
        info["stft"] = stft
    if frontend_dtype:
        info["frontend_dtype"] = frontend_dtype
    if qspec is not None:
        info["quantization"] = qspec.source
    return json.dumps(info, sort_keys=True)


def model_hash(params: dict) -> str:
    """sha256 (first 16 hex digits) of the float parameters, sorted by name (float32 bytes)."""
    h = hashlib.sha256()
    for k in sorted(params):
        h.update(k.encode())
        h.update(np.ascontiguousarray(np.asarray(params[k], np.float32)).tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------

def session(model: onnx.ModelProto | bytes | str | os.PathLike, threads: int = 0,
            qdq_fusion: bool = False):
    """An onnxruntime CPU InferenceSession for a ModelProto, serialized bytes or a path.

    Args:
        model: the graph.
        threads: intra-op threads (0: onnxruntime's default).
        qdq_fusion: let onnxruntime fuse DQ -> op -> Q into its integer kernels
            (MatMulIntegerToFloat, QLinearMul...). Off by default: on x86 CPUs without
            VNNI (AVX2 only) those u8 x s8 kernels accumulate pairs in saturating int16
            (vpmaddubsw), which corrupts results whenever |q_a * q_w| pairs exceed 32767
            (measured: top-1 agreement 50 % instead of 98 %+ on this machine). Unfused,
            onnxruntime evaluates QDQ exactly as its definition (dequantize, float op,
            quantize): the reference semantics of the QDQ graph.

    Raises:
        OnnxExportError: the file is missing or onnxruntime refuses it.
    """
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not qdq_fusion:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    if threads:
        so.intra_op_num_threads = threads
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise OnnxExportError(f"{path}: no such ONNX file")
        model = str(path)
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as err:   # onnxruntime raises its own untyped errors
        msg = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise OnnxExportError(f"{model if isinstance(model, str) else 'model'}: "
                              f"onnxruntime refused it ({msg})") from None


def run_batched(sess, feeds: dict[str, np.ndarray], batch: int = 64,
                outputs: list[str] | None = None) -> list[np.ndarray]:
    """Run ``sess`` over the first axis of every feed in batches; outputs concatenated.

    Args:
        sess: onnxruntime session.
        feeds: input name -> float32 array (N, ...), the same N for all.
        batch: clips per run.
        outputs: output names (default: all).
    Returns:
        list of arrays (N, ...) in ``outputs`` order.
    """
    n = len(next(iter(feeds.values())))
    outs = None
    for s in range(0, n, batch):
        res = sess.run(outputs, {k: np.ascontiguousarray(v[s:s + batch], np.float32)
                                 for k, v in feeds.items()})
        outs = [[r] for r in res] if outs is None else [o + [r] for o, r in zip(outs, res)]
    return [np.concatenate(o) for o in outs]


def graph_stats(model: onnx.ModelProto) -> dict:
    """Node counts of a graph (top level and inside Scan/Loop bodies) and its size.

    Returns:
        dict with ``nodes`` (top level), ``nodes_total`` (with subgraphs), ``op_types``
        (type -> count, top level), ``bytes`` (serialized size).
    """
    def count(graph) -> int:
        n = 0
        for node in graph.node:
            n += 1
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    n += count(a.g)
        return n
    types: dict[str, int] = {}
    for node in model.graph.node:
        types[node.op_type] = types.get(node.op_type, 0) + 1
    return {"nodes": len(model.graph.node), "nodes_total": count(model.graph),
            "op_types": dict(sorted(types.items())), "bytes": model.ByteSize()}


# --------------------------------------------------------------------------------------
# the bundle's quantization as QDQ parameters
# --------------------------------------------------------------------------------------

#: Graph weight (published name, per block where prefixed ``blocks.{i}.``) -> the bundle
#: ops whose integer weights it concatenates (along the output channel, in this order).
WEIGHT_OPS = {"patch_proj": ("patch_proj",), "classifier": ("classifier",)}
BLOCK_WEIGHT_OPS = {"in_proj": ("in_proj_u", "in_proj_z"), "conv1d": ("conv1d",),
                    "sa_ssm.x_proj": ("x_proj_dt", "x_proj_B", "x_proj_C"),
                    "sa_ssm.snr_proj": ("snr_proj_dt", "snr_proj_g"),
                    "sa_ssm.dt_proj": ("dt_proj",), "out_proj": ("out_proj",)}
#: Layers whose float model has a bias (the bundle stores an int32 bias for every layer; for
#: the others it is zero and the graph has no Add).
BIASED = ("patch_proj", "classifier", "conv1d", "sa_ssm.snr_proj", "sa_ssm.dt_proj")


def qspec_from_bundle(bundle) -> QuantSpec:
    """The QDQ parameters a bundle prescribes.

    - Activations: every bundle tensor of dtype int8/int16 with its scale and zero point
      (per tensor; ``blocks.{i}.h`` and ``blocks.{i}.du`` per channel along the bundle's
      ``channel_axis``). int32 tensors (the residual stream ``patch``, ``blocks.{i}.proj``,
      ``blocks.{i}.out``) stay float: ONNX QuantizeLinear has no int32 output (opset 21),
      and their grid (~4e-5) is finer than float32's own spacing above ~300, so float32 is
      the closest an ONNX graph gets to them (listed in ``float_tensors``).
    - Weights: the bundle's integers (int8 or int16, GPTQ-rounded) with its per-output-
      channel ``weight_scale``; layers the bundle splits (in_proj -> u, z; x_proj -> dt, B,
      C; snr_proj -> dt, g) are concatenated back along the output channel (int8 parts are
      widened to int16 when the parts differ: the same real values).
    - Biases: the bundle's int32 biases, scale s_x s_w[o] (TFLite/ONNX bias convention).

    Args:
        bundle: an :class:`export.bundle.Bundle`.
    Returns:
        the :class:`QuantSpec` (``source`` names the bundle and its model hash).
    Raises:
        OnnxExportError: the bundle lacks an op or tensor the network needs.
    """
    tens = bundle.meta["tensors"]
    name = bundle.path.name if bundle.path is not None else "bundle (in memory)"
    acts: dict[str, TensorQuant] = {}
    floats: dict[str, str] = {}
    for tname, t in tens.items():
        if t["dtype"] == "int32":
            floats[tname] = ("int32 in the bundle: no int32 QuantizeLinear in ONNX; float32 "
                             "stands in (finer than float32 spacing at these magnitudes)")
            continue
        if t["dtype"] not in ("int8", "int16"):
            raise OnnxExportError(f"{name}: tensor '{tname}' has unsupported dtype {t['dtype']}")
        scale = np.asarray(t["scale"], np.float32)
        if scale.ndim:
            acts[tname] = TensorQuant(scale, np.full(scale.shape, int(t["zero_point"])),
                                      t["dtype"], axis=int(t.get("channel_axis", 0)))
        else:
            acts[tname] = TensorQuant(scale, np.asarray(int(t["zero_point"])), t["dtype"])
    ops = {op["name"]: op for op in bundle.meta["ops"]}
    n_layers = int(bundle.meta["model"]["config"]["n_layers"])
    layers = dict(WEIGHT_OPS)
    for i in range(n_layers):
        layers.update({f"blocks.{i}.{k}": tuple(f"blocks.{i}.{o}" for o in v)
                       for k, v in BLOCK_WEIGHT_OPS.items()})
    weights, biases = {}, {}
    for layer, parts in layers.items():
        missing = [o for o in parts if o not in ops]
        if missing:
            raise OnnxExportError(f"{name}: bundle has no op '{missing[0]}'")
        ws = [np.asarray(bundle.arrays[ops[o]["arrays"]["weight"]]) for o in parts]
        wdt = "int16" if any(w.dtype == np.int16 for w in ws) else "int8"
        w = np.concatenate([x.astype(wdt) for x in ws], axis=0)
        sw = np.concatenate([np.asarray(bundle.arrays[ops[o]["arrays"]["weight_scale"]],
                                        np.float64) for o in parts])
        weights[f"{layer}.weight"] = TensorQuant(sw.astype(np.float32), np.zeros(len(sw), wdt),
                                                 wdt, axis=0, values=w)
        if any(layer.endswith(b) for b in BIASED):
            sx = np.concatenate([np.full(len(bundle.arrays[ops[o]["arrays"]["weight_scale"]]),
                                         float(tens[ops[o]["inputs"][0]]["scale"]))
                                 for o in parts])
            bq = np.concatenate([np.asarray(bundle.arrays[ops[o]["arrays"]["bias"]], np.int64)
                                 for o in parts])
            biases[f"{layer}.bias"] = TensorQuant((sx * sw).astype(np.float32),
                                                  np.zeros(len(sw), np.int32), "int32", axis=0,
                                                  values=bq.astype(np.int32))
    sha = bundle.meta["model"].get("sha256", "")[:16]
    return QuantSpec(acts, weights, biases, floats,
                     source=f"bundle {name} (model {sha}; format {bundle.meta['format_version']})")


# --------------------------------------------------------------------------------------
# sources (what the exporters read) and clips
# --------------------------------------------------------------------------------------

@dataclass
class ExportSource:
    """What an exporter reads: config, float parameters, quantization, provenance.

    Attributes:
        cfg: network configuration.
        params: float32 arrays under the published state-dict names (a bundle's
            ``float/<key>`` arrays).
        qspec: the quantization to carry (the bundle's), or None (a float checkpoint).
        path: the file read.
        kind: "bundle" or "checkpoint".
        model_hash: sha256 of the float parameters (:func:`export.bundle.model_hash`; for a
            bundle the hash it records).
        bundle: the :class:`export.bundle.Bundle`, or None for a checkpoint.
    """

    cfg: NanoMambaConfig
    params: dict
    qspec: QuantSpec | None
    path: Path
    kind: str
    model_hash: str
    bundle: object = None


def source_from_bundle(bundle) -> ExportSource:
    """An :class:`ExportSource` for a loaded bundle (float parameters, QDQ parameters).

    Raises:
        OnnxExportError: the bundle lacks float parameters or ops the exporters need.
    """
    path = bundle.path if bundle.path is not None else Path("bundle (in memory)")
    try:
        cfg = NanoMambaConfig(**bundle.meta["model"]["config"])
    except (KeyError, TypeError) as err:
        raise OnnxExportError(f"{path}: bundle has no valid model config ({err})") from None
    try:
        params = {k: np.asarray(v, np.float32) for k, v in bundle.float_state().items()}
    except KeyError as err:
        raise OnnxExportError(f"{path}: bundle lacks float parameter array {err}") from None
    try:
        _check_params(cfg, params, need_frontend=True)
    except OnnxExportError as err:
        raise OnnxExportError(f"{path}: bundle {err}") from None
    return ExportSource(cfg, params, qspec_from_bundle(bundle), path, "bundle",
                        bundle.meta["model"]["sha256"], bundle)


def quantize_source(src: ExportSource, calib: str | os.PathLike | None = None,
                    progress: bool = False) -> ExportSource:
    """Quantize a checkpoint source with the project's quantizer (``export.quantize``:
    ``--calib DIR`` clips, or its generated calibration set) and return the bundle's
    source. The exporters then read only that bundle.

    Raises:
        CheckpointError, CalibrationError, AudioError, QuantizationError.
    """
    if src.bundle is not None:
        return src
    from export import quantize as qz
    from nanomamba import load_checkpoint
    model = load_checkpoint(src.path)
    if calib is None:
        audio, _ = qz.generated_calibration_set()
        cal = {"source": "generated (espeak-ng words + noise, tones, chirps; seed 0)"}
    else:
        audio, _ = qz.load_clip_folder(calib)
        cal = {"source": str(calib)}
    bundle = qz.quantize_model(model, audio, calibration=cal, progress=progress)
    out = source_from_bundle(bundle)
    out.path = src.path
    out.kind = "bundle (quantized from the checkpoint by export.quantize)"
    out.qspec.source = (f"bundle quantized in memory from {src.path.name} by export.quantize "
                        f"(calibration: {cal['source']})")
    return out


def load_source(path: str | os.PathLike) -> ExportSource:
    """Read an exporter's input: a quantized bundle (the contract) or a float checkpoint.

    A bundle (``.npz``, :func:`export.bundle.load_bundle`) gives the float parameters (its
    ``float/<key>`` arrays) and the quantization. A published-format ``.pt`` checkpoint
    (``nanomamba.checkpoint.load_state``: torch.load(weights_only=True)) gives only the float
    parameters: enough for the float graphs; quantized outputs need :func:`quantize_source`
    first.

    Args:
        path: bundle (.npz) or checkpoint (.pt).
    Returns:
        an :class:`ExportSource`.
    Raises:
        OnnxExportError: missing file or unsupported kind. BundleError: a bad bundle (newer
            format version, corrupt...). CheckpointError: unreadable or malformed checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise OnnxExportError(f"{path}: no such file (expected a bundle .npz or a .pt checkpoint)")
    if path.is_dir():
        raise OnnxExportError(f"{path}: is a directory, expected a bundle .npz or a .pt checkpoint")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from export.bundle import load_bundle
        return source_from_bundle(load_bundle(path))
    if suffix != ".pt":
        raise OnnxExportError(f"{path}: unsupported source '{path.suffix or '(none)'}' "
                              f"(expected a bundle .npz or a .pt checkpoint)")
    from export.bundle import model_hash as bundle_hash
    from nanomamba.checkpoint import infer_config, load_state
    state, _ = load_state(path)
    cfg = infer_config(state, str(path))
    params = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}
    _check_params(cfg, params, need_frontend=True)
    return ExportSource(cfg, params, None, path, "checkpoint", bundle_hash(params))


def pick_clips(folder: str | os.PathLike, count: int | None) -> list[Path]:
    """Up to ``count`` clips of ``folder`` (all when None), spread evenly over its
    sub-folders (one-folder-per-label layouts give a class-balanced pick), deterministic.

    Raises:
        AudioError: the folder does not exist. OnnxExportError: it holds no clips.
    """
    from nanomamba.audio import list_clips
    clips = list_clips(folder)
    if not clips:
        raise OnnxExportError(f"{folder}: no audio clips (.wav, .flac, .f32) found")
    if count is None or count >= len(clips):
        return clips
    groups: dict[Path, list[Path]] = {}
    for c in clips:
        groups.setdefault(c.parent, []).append(c)
    picked: list[Path] = []
    k = 0
    while len(picked) < count:
        for g in groups.values():
            if k < len(g) and len(picked) < count:
                picked.append(g[k])
        k += 1
    return sorted(picked)


def clip_features(src: ExportSource, clips: list[Path], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Float front-end outputs of clips, computed by the front-end ONNX in onnxruntime.

    Returns:
        features, snr_mel: float32 (N, 101, 40).
    Raises:
        AudioError: an unreadable clip.
    """
    import warnings

    from nanomamba.audio import load_audio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio = np.stack([load_audio(c) for c in clips]).astype(np.float32)
    sess = session(build_frontend(src.cfg, src.params))
    f, s = run_batched(sess, {"audio": audio}, batch)
    return f, s


def export_onnx(source: str | os.PathLike, out_dir: str | os.PathLike, *, scan: str = "scan",
                stft: str = "dft", frontend_dtype: str = FRONTEND_DTYPE, quantize: bool = False,
                calib: str | os.PathLike | None = None, opset: int = DEFAULT_OPSET,
                force: bool = False, progress: bool = False) -> dict:
    """Write the ONNX set for one model into ``out_dir`` (atomically, as one folder).

    Files: ``network.onnx`` (float, features -> logits), ``frontend.onnx`` (float, audio ->
    features, snr_mel), ``full.onnx`` (float, audio -> logits) and, when the source is a
    bundle (or a checkpoint quantized first: ``quantize``/``calib``), ``network_qdq.onnx``
    (the bundle's scales, zero points and integer weights as QDQ) and ``quantization.json``
    (the numbers it carries and the tensors it leaves float).

    Args:
        source: bundle (.npz) or checkpoint (.pt).
        out_dir: output folder (refused if it exists, unless ``force``).
        scan, stft, frontend_dtype, opset: graph options (see :func:`build_full`).
        quantize: with a checkpoint, quantize it first (``export.quantize``, generated
            calibration set unless ``calib``) and export that bundle's QDQ graph.
        calib: folder of calibration clips for that quantization (implies ``quantize``).
        force: replace an existing ``out_dir``.
        progress: progress bar while quantizing.
    Returns:
        dict: ``files`` (name -> graph stats), ``qdq`` (source of the quantization or why it
        was skipped), ``model_hash``, ``opset``, ``out_dir``.
    Raises:
        OnnxExportError, BundleError, CheckpointError, AudioError, CalibrationError,
        QuantizationError, OutputExistsError.
    """
    from export.fileio import atomic_output_dir, check_output
    _check_options(scan, stft, opset, frontend_dtype)
    check_output(out_dir, force, expect="folder",
                 inputs=[source] + ([calib] if calib is not None else []))
    src = load_source(source)
    if src.qspec is None and (quantize or calib is not None):
        src = quantize_source(src, calib, progress)
    graphs = {"network.onnx": build_network(src.cfg, src.params, scan=scan, opset=opset),
              "frontend.onnx": build_frontend(src.cfg, src.params, stft=stft,
                                              frontend_dtype=frontend_dtype, opset=opset),
              "full.onnx": build_full(src.cfg, src.params, scan=scan, stft=stft,
                                      frontend_dtype=frontend_dtype, opset=opset)}
    qspec = src.qspec
    if qspec is not None:
        graphs["network_qdq.onnx"] = build_network(src.cfg, src.params, scan=scan,
                                                   qspec=qspec, opset=opset)
    stamp = {"tool": f"nanomamba-kws {_version()}", "source": str(src.path),
             "source_kind": src.kind, "model_hash": src.model_hash}
    with atomic_output_dir(out_dir, force=force) as tmp:
        for name, model in graphs.items():
            for k, v in stamp.items():
                helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                               k: v})
            (tmp / name).write_bytes(model.SerializeToString())
        if qspec is not None:
            (tmp / "quantization.json").write_text(
                json.dumps({**stamp, **qspec.to_json()}, indent=1, sort_keys=True) + "\n")
    return {"files": {n: graph_stats(m) for n, m in graphs.items()},
            "qdq": qspec.source if qspec is not None else
            "skipped: a checkpoint carries no quantization (give a bundle, or --quantize)",
            "model_hash": src.model_hash, "opset": opset, "out_dir": str(out_dir)}
