"""TensorFlow Lite (Micro) export of a NanoMamba bundle, checked in the TFLM interpreter.

The exporter builds a TensorFlow function from the bundle's float parameter arrays, with
the bundle's weights and biases dequantized (:func:`bundle_params`; never the PyTorch
model), converts it calibrate-only with ``tf.lite.TFLiteConverter``, writes the bundle's
tensor ranges into the calibration statistics (:func:`bundle_ranges`,
:func:`set_calibration_ranges`), quantizes with TFLite's post-training quantizer in 16x8
mode (int16 activations, int8 per-channel weights, int64 biases:
``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``) and then makes the
handful of ops TFLite Micro has no integer kernel for run in float32 ("float islands").
:func:`check_scales` reports, tensor by tensor, what the result carries against the bundle.

Why islands: TFLM's EXP, LOG kernels accept float32 only (``exp.cc``: "input->type !=
kTfLiteFloat32 (INT16 != FLOAT32)", the error the interpreter prints on a plain 16x8 or
int8 model), and its RSQRT accepts float32/int8 only. The SA-SSM needs EXP twice (the
decay dA = exp(A * delta) and, inside softplus, exp(-|x|)) and LOG once (softplus);
LayerNorm needs RSQRT. Each such op gets a DEQUANTIZE before it and a QUANTIZE after it,
with the quantizer's scales (the bundle's, for ``dA``), so the rest of the graph stays
int16 x int8.

The graph (batch 1, the shapes TFLM needs static):
``features (1,101,40) int16, snr_mel (1,101,40) int16 -> logits (1,12) int16``.
The 101-frame scan is unrolled (TFLM runs no Scan; its WHILE would need a quantized
subgraph the converter does not produce): per frame one MUL and one ADD per block.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass

import numpy as np

from nanomamba.config import N_FRAMES, NORM_EPS, NanoMambaConfig
from nanomamba.errors import KwsError

#: Ops made float32 islands in the int16 model (no int16 kernel in TFLite Micro).
FLOAT_OPS = ("EXP", "LOG", "RSQRT")
#: Name scope of the TF ops that form float islands (LayerNorm's normalisation).
ISLAND = "float_island"
#: Arena size the interpreter is first tried with (bytes); :func:`min_arena_size` searches.
DEFAULT_ARENA = 4 * 1024 * 1024


class TfliteExportError(KwsError):
    """A TFLite export or TFLM run failed (missing tools, bad input, refused model)."""


def _tf():
    """Import TensorFlow quietly. Raises TfliteExportError when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        raise TfliteExportError("tensorflow is not installed (pip install "
                                "'nanomamba-kws[tflite]' installs tensorflow-cpu and tflite-micro)") from None
    return tf


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise TfliteExportError("tflite-micro is not installed (pip install "
                                "'nanomamba-kws[tflite]')") from None
    return runtime


#: Prefix of the TF op names that produce a bundle tensor (``bq.blocks.0.u``): the
#: calibrated flatbuffer names tensors after the ops (fused ops join names with ";", repeated
#: names get "_1", "_2"...), which is how :func:`bundle_ranges` finds them.
MARK = "bq."


def build_tf_network(cfg: NanoMambaConfig, params: dict):
    """The float network as a ``tf.function`` with a static batch of 1.

    Every op producing a tensor of the bundle is named ``MARK + <bundle tensor name>``
    (``bq.patch``, ``bq.blocks.0.u``, ``bq.blocks.0.h`` once per frame...).

    Args:
        cfg: configuration.
        params: float parameter arrays under the published names (the bundle's float
            arrays, with its weights and biases dequantized: :func:`bundle_params`).
    Returns:
        ``tf.function(features (1,101,40) float32, snr_mel (1,101,40) float32) -> logits
        (1,12) float32``, semantics of ``../shared/fixtures/README.md``; softplus as
        max(x,0) + log(1 + exp(min(x,0) - max(x,0))) (exact), LayerNorm as mean / centred mean square /
        rsqrt.
    Raises:
        TfliteExportError: tensorflow missing.
    """
    tf = _tf()
    P = {k: np.asarray(v, np.float32) for k, v in params.items()}
    T, M = N_FRAMES, cfg.n_mels
    E, N, K = cfg.d_inner, cfg.d_state, cfg.d_conv

    def ln(x, w, b, name=None):
        with tf.name_scope(ISLAND):
            m = tf.reduce_mean(x, -1, keepdims=True)
            c = x - m
            v = tf.reduce_mean(c * c, -1, keepdims=True)
            xn = c * tf.math.rsqrt(v + NORM_EPS)
        return tf.add(xn * w, b, name=name)

    def fc(x, W, b=None, name=None):
        if b is None:
            return tf.matmul(x, tf.constant(np.ascontiguousarray(W.T)), name=name)
        return tf.add(tf.matmul(x, tf.constant(np.ascontiguousarray(W.T))), b, name=name)

    def nm(name: str) -> str:
        return MARK + name

    def softplus(x, name=None):
        pos, neg = tf.maximum(x, 0.0), tf.minimum(x, 0.0)      # -|x| = neg - pos (no NEG:
        return tf.add(pos, tf.math.log(1.0 + tf.exp(neg - pos)), name=name)   # no 16x8 NEG

    spec = [tf.TensorSpec([1, T, M], tf.float32, name="features"),
            tf.TensorSpec([1, T, M], tf.float32, name="snr_mel")]

    @tf.function(input_signature=spec)
    def network(features, snr_mel):
        x = tf.reshape(features, [T, M])
        s = tf.reshape(snr_mel, [T, M])
        x = fc(x, P["patch_proj.weight"], P["patch_proj.bias"], nm("patch"))
        for i in range(cfg.n_layers):
            p, q = f"blocks.{i}.", f"blocks.{i}.sa_ssm."
            xn = ln(x, P[p + "norm.weight"], P[p + "norm.bias"], nm(p + "norm"))
            w_in = P[p + "in_proj.weight"]
            u, z = fc(xn, w_in[:E], name=nm(p + "u")), fc(xn, w_in[E:], name=nm(p + "z"))
            # causal depthwise conv1d as DEPTHWISE_CONV_2D over (1, T+K-1, 1, E)
            up = tf.reshape(tf.pad(u, [[K - 1, 0], [0, 0]]), [1, T + K - 1, 1, E])
            kern = P[p + "conv1d.weight"].transpose(2, 1, 0)[:, :, :, None]   # (K,1,E,1)
            conv = tf.nn.depthwise_conv2d(up, tf.constant(kern), [1, 1, 1, 1], "VALID")
            conv = tf.add(tf.reshape(conv, [T, E]), P[p + "conv1d.bias"], name=nm(p + "conv"))
            ua = tf.multiply(conv, tf.sigmoid(conv), name=nm(p + "u_act"))
            wx = P[q + "x_proj.weight"]
            dt_raw = fc(ua, wx[:1], name=nm(p + "dt_raw"))
            Bm = fc(ua, wx[1:1 + N], name=nm(p + "B"))
            Cm = fc(ua, wx[1 + N:], name=nm(p + "C"))
            ws, bs = P[q + "snr_proj.weight"], P[q + "snr_proj.bias"]
            dt_shift = fc(s, ws[:1], bs[:1], nm(p + "dt_shift"))
            g = fc(s, ws[1:], bs[1:], nm(p + "g"))
            dt_in = tf.add(dt_raw, dt_shift, name=nm(p + "dt_in"))
            dtp = tf.add(dt_in * P[q + "dt_proj.weight"][:, 0], P[q + "dt_proj.bias"],
                         name=nm(p + "dt_pre"))
            delta = softplus(dtp, nm(p + "delta"))                             # (T, E)
            a = float(P[q + "alpha"])
            gate = tf.add((1.0 - a), a * tf.sigmoid(g), name=nm(p + "gate"))
            Bg = tf.multiply(Bm, gate, name=nm(p + "B_gated"))                 # (T, N)
            A = -np.exp(P[q + "A_log"].astype(np.float64)).astype(np.float32)  # (E, N)
            dA = tf.exp(tf.reshape(delta, [T, E, 1]) * A, name=nm(p + "dA"))   # (T, E, N)
            du = tf.multiply(delta, ua, name=nm(p + "du"))
            # du B~ and dA h are in the state's units in the bundle (its int32 accumulator
            # of h): they are given h's range (named as h), not a per-frame calibration
            dBu = tf.multiply(tf.reshape(du, [T, E, 1]), tf.reshape(Bg, [T, 1, N]),
                              name=nm(p + "h"))
            dAs, xs = tf.unstack(dA, axis=0), tf.unstack(dBu, axis=0)
            h, hs = None, []
            for t in range(T):
                h = xs[t] if h is None else tf.add(tf.multiply(dAs[t], h, name=nm(p + "h")),
                                                   xs[t], name=nm(p + "h"))
                hs.append(h)
            hseq = tf.stack(hs, 0)                                             # (T, E, N)
            y = tf.add(tf.reduce_sum(hseq * tf.reshape(Cm, [T, 1, N]), -1), ua * P[q + "D"],
                       name=nm(p + "y_ssm"))
            z_act = tf.multiply(z, tf.sigmoid(z), name=nm(p + "z_act"))
            yg = tf.multiply(y, z_act, name=nm(p + "y_gated"))
            x = tf.add(fc(yg, P[p + "out_proj.weight"], name=nm(p + "proj")), x, name=nm(p + "out"))
        x = ln(x, P["final_norm.weight"], P["final_norm.bias"], nm("final_norm"))
        pooled = tf.reduce_mean(x, 0, keepdims=True, name=nm("pooled"))
        return fc(pooled, P["classifier.weight"], P["classifier.bias"], nm("logits"))

    return network


def convert(cfg: NanoMambaConfig, params: dict, calib_features: np.ndarray,
            calib_snr: np.ndarray, float_ops: tuple[str, ...] = FLOAT_OPS,
            islands: bool = True, ranges: dict | None = None) -> bytes:
    """Convert the network to a 16x8 .tflite for TFLite Micro, with float islands.

    Args:
        cfg, params: as :func:`build_tf_network`.
        calib_features, calib_snr: float32 (N, 101, 40) representative inputs: the
            converter's calibration (per-tensor min/max; int16 symmetric scales max|x|/32767,
            zero_point 0; int8 weights symmetric per output channel) comes from them for
            every tensor ``ranges`` does not cover.
        float_ops: TFLite op names to run in float32 (see module docstring).
        islands: apply :func:`float_islands` (False: the converter's plain 16x8 model,
            which TFLM refuses at EXP).
        ranges: bundle tensor name -> (min, max) real range to impose (:func:`bundle_ranges`):
            the model is converted calibrate-only, these ranges overwrite the recorded
            min/max of every tensor whose producing op is named ``MARK + name`` (inputs:
            ``features``, ``snr_mel``), and TFLite's quantizer then runs on the edited
            statistics (what it derives from them is checked by :func:`check_scales`).
    Returns:
        the flatbuffer bytes (inputs/outputs int16).
    Raises:
        TfliteExportError: tensorflow missing or the converter fails.
    """
    tf = _tf()
    net = build_tf_network(cfg, params)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for i in range(len(calib_features)):
            yield [calib_features[i:i + 1].astype(np.float32), calib_snr[i:i + 1].astype(np.float32)]

    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    try:
        with _quiet():
            if ranges is None:
                flat = conv.convert()
            else:
                conv._experimental_calibrate_only = True
                conv.inference_input_type = tf.float32    # int16 I/O is set by the quantizer
                conv.inference_output_type = tf.float32
                calibrated = set_calibration_ranges(conv.convert(), ranges)
                flat = _quantize_calibrated(calibrated)
    except TfliteExportError:
        raise
    except Exception as err:    # the converter raises many untyped errors
        msg = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise TfliteExportError(f"TFLite converter failed: {msg}") from None
    return float_islands(flat, float_ops) if islands else flat


def _quantize_calibrated(calibrated: bytes) -> bytes:
    """TFLite's post-training quantizer (the one ``TFLiteConverter`` uses for 16x8) on a
    model that already carries calibration min/max: int16 activations, int8 per-channel
    weights, int64 biases, int16 inputs/outputs, no float fallback. Nothing is fed to the
    calibrator, so the statistics in ``calibrated`` are the ones used."""
    from tensorflow.lite.python.optimize import calibrator
    cal = calibrator.Calibrator(calibrated)
    i16, i64 = np.dtype(np.int16).num, np.dtype(np.int64).num
    return bytes(cal._calibrator.QuantizeModel(i16, i16, False, i16, i64, False, False))


INPUT_NAMES = ("features", "snr_mel")


def _key(sg, idx: int, t) -> str | None:
    """Bundle tensor name of tensor ``idx`` of subgraph ``sg``: graph inputs by position
    (features, snr_mel), the output as ``logits``, others by their ``MARK``-named
    producing op."""
    ins = list(sg.inputs)
    if idx in ins:
        return INPUT_NAMES[ins.index(idx)] if ins.index(idx) < len(INPUT_NAMES) else None
    if idx in list(sg.outputs):
        return "logits"
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
    return _tensor_bundle_name(name)


def _tensor_bundle_name(name: str) -> str | None:
    """Bundle tensor name of a flatbuffer tensor named after ``MARK``-named ops, else None."""
    import re
    for part in name.split(";"):
        part = part.rsplit("/", 1)[-1]
        m = re.fullmatch(re.escape(MARK) + r"(.+?)(_?\d+)?", part)
        if m:
            return m.group(1)
    return None


def set_calibration_ranges(calibrated: bytes, ranges: dict) -> bytes:
    """Overwrite the calibration min/max of the tensors named after bundle tensors.

    Args:
        calibrated: a calibrate-only flatbuffer (float tensors with min/max statistics).
        ranges: bundle tensor name -> (min, max).
    Returns:
        the edited flatbuffer.
    Raises:
        TfliteExportError: a range names a tensor the model does not have.
    """
    import flatbuffers
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(calibrated), 0)
    sg = model.subgraphs[0]
    seen = set()
    for idx, t in enumerate(sg.tensors):
        q = t.quantization
        if q is None or q.min is None or len(q.min) == 0:
            continue
        key = _key(sg, idx, t)
        if key in ranges:
            lo, hi = ranges[key]
            q.min = np.array([lo], np.float32)
            q.max = np.array([hi], np.float32)
            seen.add(key)
    missing = sorted(set(ranges) - seen)
    if missing:
        raise TfliteExportError(f"calibrated model has no tensor for bundle tensor "
                                f"'{missing[0]}' ({len(missing)} missing)")
    builder = flatbuffers.Builder(len(calibrated) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def bundle_ranges(bundle) -> dict[str, tuple[float, float]]:
    """The real range (min, max) to impose on each int8/int16 bundle tensor in the 16x8
    model, chosen so that TFLite's int16 rule (symmetric, scale = max(|min|, |max|) / 32767,
    zero point 0) reproduces the bundle's scale wherever 16x8 can:

    - int16, zero point 0, per tensor: +-32767 s -> scale s (the bundle's exactly);
    - int8 (``snr_mel``, ``logits``, any zero point): +-32767 s -> int16 with the bundle's
      scale s: the bundle's lattice s (q - zp) is a subset of it (16x8 has no int8
      activations);
    - int16 with a zero point != 0 (asymmetric): the bundle's real range
      [s (-32768 - zp), s (32767 - zp)] -> a symmetric scale up to 2x coarser;
    - per channel (``h``, ``du``): +-32767 max_e s_e (TFLite activations are per tensor).

    The int32 tensors (the residual stream ``patch``, ``blocks.{i}.proj``, ``blocks.{i}.out``)
    get no range: 16x8 has no int32 activations, and one int16 range shared by the whole
    stream (the bundle's, without its headroom) cost 8 dB of logits SQNR against the
    converter's own per-tensor calibration (23.6 vs 31.9 dB, Tiny, 96 test clips), so the
    converter calibrates them.

    Args:
        bundle: :class:`export.bundle.Bundle`.
    Returns:
        bundle tensor name -> (min, max), float (int8/int16 tensors only).
    """
    out = {}
    for name, t in bundle.meta["tensors"].items():
        if t["dtype"] == "int32":
            continue
        scale = np.asarray(t["scale"], np.float64)
        zp = int(t["zero_point"])
        s = float(scale.max())
        if t["dtype"] == "int16" and zp != 0 and scale.ndim == 0:
            out[name] = (s * (-32768 - zp), s * (32767 - zp))
        else:
            out[name] = (-32767.0 * s, 32767.0 * s)
    return out


def check_scales(flat: bytes, bundle) -> list[dict]:
    """What the 16x8 model carries for each bundle tensor, against the bundle.

    Returns:
        one row per bundle tensor: ``name``, ``bundle`` (dtype, scale (max over channels),
        zero point), ``tflite_scales`` (distinct int16 scales of the tensors it names, e.g.
        one per frame for ``h``), ``ratio`` (max TFLite scale / bundle scale) and ``how``:
        "bundle scale" (relative difference < 1e-6), "bundle scale, int16 for int8",
        "per-channel -> per-tensor max", "asymmetric -> symmetric", "int32 -> int16,
        converter's calibration",
        "float32 (island)", "overridden by the quantizer" (other ratios), "label path (not
        exported)" (``logits_fine`` and ``label``: the model ends at the logits here) or
        "not found".
    """
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    sg = model.subgraphs[0]
    found: dict[str, set] = {}
    floats: set[str] = set()
    for idx, t in enumerate(sg.tensors):
        if t.type == fb.TensorType.FLOAT32:
            key = _key(sg, idx, t)
            if key is not None:
                floats.add(key)
            continue
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) != 1 or t.type != fb.TensorType.INT16:
            continue
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        if name.endswith("_requantized"):
            continue
        key = _key(sg, idx, t)
        if key is not None:
            found.setdefault(key, set()).add(float(q.scale[0]))
    rows = []
    label_path = {n for op in bundle.meta["ops"] if op["type"] == "argmax"
                  for n in op["inputs"] + op["outputs"]}
    for name, t in bundle.meta["tensors"].items():
        scale = np.asarray(t["scale"], np.float64)
        s = float(scale.max())
        got = sorted(found.get(name, ()))
        row = {"name": name, "bundle": (t["dtype"], s, int(t["zero_point"])),
               "tflite_scales": got, "ratio": (max(got) / s) if got else None}
        if not got and name in label_path:
            row["how"] = "label path (not exported)"
        elif not got:
            row["how"] = "float32 (island)" if name in floats else "not found"
        elif t["dtype"] == "int32":
            row["how"] = "int32 -> int16, converter's calibration"
        elif scale.ndim:
            row["how"] = "per-channel -> per-tensor max"
        elif abs(row["ratio"] - 1.0) < 1e-6 and len(got) == 1:
            row["how"] = "bundle scale" + (", int16 for int8" if t["dtype"] == "int8" else "")
        elif t["dtype"] == "int16" and int(t["zero_point"]) != 0:
            row["how"] = "asymmetric -> symmetric"
        else:
            row["how"] = "overridden by the quantizer"
        rows.append(row)
    return rows


def bundle_params(src) -> dict:
    """Float parameters for the TF graph from a bundle source: its float arrays, with every
    weight and bias the bundle quantizes replaced by the bundle's integers times their
    scales (w_q s_w[o]; b_q s_x s_w[o]). The converter's per-channel int8 rule
    (max|w| / 127) then recovers the bundle's int8 weights exactly where a channel's largest
    level is 127, and its int64 bias (b / (s_in s_w)) the bundle's bias where the input
    scale is the bundle's; int16 bundle weights are rounded to int8 (16x8 has no int16
    weights).

    Args:
        src: :class:`export.onnx_export.ExportSource` of a bundle (``qspec`` set).
    Returns:
        published name -> float32 array.
    """
    p = {k: np.asarray(v, np.float32) for k, v in src.params.items()}
    for key, tq in {**src.qspec.weights, **src.qspec.biases}.items():
        q = np.asarray(tq.values, np.float64)
        sc = np.asarray(tq.scale, np.float64).reshape((-1,) + (1,) * (q.ndim - 1))
        p[key] = (q * sc).reshape(p[key].shape).astype(np.float32)
    return p


@contextlib.contextmanager
def _quiet():
    """Silence TensorFlow's C++ chatter on stderr (fd 2) for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def float_islands(flat: bytes, ops: tuple[str, ...] = FLOAT_OPS, scope: str = ISLAND) -> bytes:
    """Rewrite a quantized flatbuffer so that some ops run in float32.

    The island is every op whose type is in ``ops`` or whose output tensor name starts with
    ``scope`` (TF numbers repeated scopes ``scope_1``...; the TF name scope of :func:`build_tf_network`'s LayerNorm
    normalisation). Quantized tensors entering the island pass through a new DEQUANTIZE
    (quantized constants are dequantized offline into float buffers); tensors the island
    produces become float32, and those read outside it (or graph outputs) are re-made by a
    new QUANTIZE with the converter's original scale and zero point. Operator order stays
    topological.

    Args:
        flat: a .tflite flatbuffer.
        ops: builtin op names (``tflite::BuiltinOperator``), e.g. ("EXP", "LOG").
        scope: tensor-name prefix marking island ops.
    Returns:
        the rewritten flatbuffer.
    Source: TFLite schema (schema.fbs) object API as shipped in tflite_micro; real value
    = scale * (q - zero_point) (TFLite quantization spec).
    """
    import flatbuffers
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    np_types = {fb.TensorType.INT8: np.int8, fb.TensorType.INT16: np.int16,
                fb.TensorType.INT32: np.int32, fb.TensorType.INT64: np.int64,
                fb.TensorType.UINT8: np.uint8}

    def code_of(op_code) -> int:
        return max(int(op_code.builtinCode), int(op_code.deprecatedBuiltinCode))

    def opcode_index(builtin: int) -> int:
        for i, c in enumerate(model.operatorCodes):
            if code_of(c) == builtin:
                return i
        c = fb.OperatorCodeT()
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = min(builtin, 127)
        c.version = 1
        model.operatorCodes.append(c)
        return len(model.operatorCodes) - 1

    def name_of(t) -> str:
        return t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")

    def quantized(t) -> bool:
        q = t.quantization
        return (t.type in (fb.TensorType.INT8, fb.TensorType.INT16, fb.TensorType.UINT8)
                and q is not None and q.scale is not None and len(q.scale) > 0)

    want = {getattr(fb.BuiltinOperator, o) for o in ops}
    deq = opcode_index(fb.BuiltinOperator.DEQUANTIZE)
    qua = opcode_index(fb.BuiltinOperator.QUANTIZE)
    import re
    marked = re.compile(re.escape(scope) + r"(_\d+)?/")
    for sg in model.subgraphs:
        T = sg.tensors

        def new_float(src, suffix: str, buffer: int = 0) -> int:
            t = fb.TensorT()
            t.shape = list(src.shape) if src.shape is not None else []
            t.type = fb.TensorType.FLOAT32
            t.buffer = buffer
            t.name = (name_of(src) + suffix).encode()
            T.append(t)
            return len(T) - 1

        island = [i for i, op in enumerate(sg.operators)
                  if code_of(model.operatorCodes[op.opcodeIndex]) in want
                  or any(marked.match(name_of(T[o])) for o in op.outputs)]
        island = [i for i in island if any(quantized(T[x]) for x in
                                           [*sg.operators[i].inputs, *sg.operators[i].outputs] if x >= 0)]
        in_island = set(island)
        read_outside = set(sg.outputs)
        for i, op in enumerate(sg.operators):
            if i not in in_island:
                read_outside.update(x for x in op.inputs if x >= 0)
        float_of: dict[int, int] = {}
        new_ops = []
        for i, op in enumerate(sg.operators):
            if i not in in_island:
                new_ops.append(op)
                continue
            ins = []
            for x in op.inputs:
                if x < 0 or not quantized(T[x]) and x not in float_of:
                    ins.append(x)
                    continue
                if x not in float_of:
                    src = T[x]
                    data = model.buffers[src.buffer].data if src.buffer else None
                    if data is not None and len(data):
                        q = np.frombuffer(bytes(bytearray(data)), np_types[src.type]).astype(np.float64)
                        sc = np.asarray(src.quantization.scale, np.float64)
                        zp = np.asarray(src.quantization.zeroPoint, np.float64)
                        if sc.size > 1:
                            shape = [1] * max(len(src.shape), 1)
                            shape[src.quantization.quantizedDimension] = -1
                            q = q.reshape(src.shape)
                            sc, zp = sc.reshape(shape), zp.reshape(shape)
                        buf = fb.BufferT()
                        buf.data = list(np.ascontiguousarray(((q - zp) * sc).astype(np.float32)).tobytes())
                        model.buffers.append(buf)
                        float_of[x] = new_float(src, "/float", len(model.buffers) - 1)
                    else:
                        float_of[x] = new_float(src, "/float")
                        d = fb.OperatorT()
                        d.opcodeIndex, d.inputs, d.outputs = deq, [x], [float_of[x]]
                        new_ops.append(d)
                ins.append(float_of[x])
            op.inputs = ins
            new_ops.append(op)
            outs = []
            for y in op.outputs:
                if not quantized(T[y]):
                    outs.append(y)
                    continue
                f = new_float(T[y], "/float")
                float_of[y] = f
                outs.append(f)
                if y in read_outside:
                    qn = fb.OperatorT()
                    qn.opcodeIndex, qn.inputs, qn.outputs = qua, [f], [y]
                    new_ops.append(qn)
            op.outputs = outs
        sg.operators = new_ops
    builder = flatbuffers.Builder(len(flat) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --------------------------------------------------------------------------------------
# TFLite Micro interpreter
# --------------------------------------------------------------------------------------

@dataclass
class TflmModel:
    """A .tflite loaded in the TFLM Python interpreter, with its I/O quantization."""

    interpreter: object
    arena_size: int
    inputs: list[dict]
    output: dict

    def run(self, features: np.ndarray, snr_mel: np.ndarray) -> np.ndarray:
        """Float (N,101,40) inputs -> float logits (N,12): quantize each input with its
        tensor's scale/zero_point (round half away from zero, saturate), invoke once per
        clip, dequantize the int16 logits."""
        from export.intmath import round_half_away
        out = []
        for i in range(len(features)):
            for k, x in enumerate((features[i:i + 1], snr_mel[i:i + 1])):
                d = self.inputs[k]
                q = _quant(d)
                if q is None:
                    self.interpreter.set_input(x.astype(np.float32), k)
                    continue
                scale, zp = q
                info = np.iinfo(d["dtype"])
                v = np.clip(round_half_away(x.astype(np.float64) / scale) + zp, info.min, info.max)
                self.interpreter.set_input(v.astype(d["dtype"]), k)
            self.interpreter.invoke()
            y = np.asarray(self.interpreter.get_output(0))
            q = _quant(self.output)
            out.append(y.astype(np.float32) if q is None
                       else ((y.astype(np.float64) - q[1]) * q[0]).astype(np.float32))
        return np.concatenate(out).reshape(len(features), -1)


def _quant(detail: dict):
    qp = detail.get("quantization_parameters") or {}
    scales = qp.get("scales")
    if scales is None or len(scales) == 0:
        return None
    return float(scales[0]), int(qp["zero_points"][0])


def tflm_load(flat: bytes, arena_size: int | None = None) -> TflmModel:
    """Load a flatbuffer in the TFLite Micro Python interpreter (all builtin ops
    registered, recording allocator).

    Args:
        flat: .tflite bytes.
        arena_size: tensor arena in bytes (default: the minimum, :func:`min_arena_size`).
    Raises:
        TfliteExportError: tflite-micro missing, or TFLM refuses the model (the message
            carries TFLM's own first error line, e.g. an op without a kernel for a type).
    """
    runtime = _tflm()
    size = arena_size or min_arena_size(flat)
    try:
        with _capture_fd2() as err:
            it = runtime.Interpreter.from_bytes(bytes(flat), arena_size=size)
    except RuntimeError as e:
        first = next((ln for ln in err.getvalue().splitlines() if ln.strip()), str(e))
        raise TfliteExportError(f"TFLite Micro refused the model: {first.strip()[:200]}") from None
    return TflmModel(it, size, [it.get_input_details(0), it.get_input_details(1)],
                     it.get_output_details(0))


@contextlib.contextmanager
def _capture_fd2():
    """Capture what C++ code writes to stderr (fd 2) into a StringIO."""
    import tempfile
    buf = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield buf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            buf.write(tmp.read().decode(errors="replace"))


def min_arena_size(flat: bytes, hi: int = DEFAULT_ARENA, step: int = 16) -> int:
    """Smallest tensor arena (bytes) with which TFLM allocates the model.

    Loads the model once with ``hi`` bytes and reads the recording allocator's total
    (head + tail, what ``print_allocations`` reports), then confirms that size by loading
    again, growing by ``step`` until it allocates. The Python interpreter's arena holds
    what TFLM keeps on a device too: tensors, per-node structures, persistent buffers.

    Raises:
        TfliteExportError: the model does not allocate even with ``hi`` bytes.
    """
    import re
    runtime = _tflm()

    def ok(size: int) -> bool:
        try:
            with _capture_fd2():
                runtime.Interpreter.from_bytes(bytes(flat), arena_size=size)
            return True
        except RuntimeError:
            return False

    try:
        with _capture_fd2() as err:
            it = runtime.Interpreter.from_bytes(bytes(flat), arena_size=hi)
            it.print_allocations()
    except RuntimeError:
        tflm_load(flat, hi)       # raises with TFLM's message
    m = re.search(r"Arena allocation total (\d+) bytes", err.getvalue())
    size = -(-int(m.group(1)) // step) * step if m else hi
    while size < hi and not ok(size):
        size += step
    return min(size, hi)


def stamp(flat: bytes, text: str) -> bytes:
    """Set the flatbuffer's ``description`` (schema.fbs Model.description) to ``text``
    (tool version, source, model hash: provenance without timestamps)."""
    import flatbuffers
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    model.description = text.encode()
    builder = flatbuffers.Builder(len(flat) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_summary(flat: bytes) -> dict[str, dict[str, int]]:
    """Operator counts of a flatbuffer: op name -> {input dtype: count}."""
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    out: dict[str, dict[str, int]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            c = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(max(int(c.builtinCode), int(c.deprecatedBuiltinCode)), "?")
            t = type_names.get(sg.tensors[op.inputs[0]].type, "?") if len(op.inputs) else "-"
            out.setdefault(name, {}).setdefault(t.lower(), 0)
            out[name][t.lower()] += 1
    return dict(sorted(out.items()))


def tensor_scales(flat: bytes) -> dict[str, tuple[float, int, str]]:
    """Per-tensor (first) scale, zero_point and type of every quantized tensor, by name."""
    fb = _tflm().schema_fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(flat), 0)
    type_names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    out = {}
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            out[name] = (float(q.scale[0]), int(q.zeroPoint[0]), type_names[t.type].lower())
    return out


def representative_inputs(src, calib: str | os.PathLike | None = None,
                          count: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Float front-end outputs (features, snr_mel: float32 (N, 101, 40)) of the clips the
    converter calibrates the tensors outside the bundle on (LayerNorm/softplus internals,
    per-frame requantizations): ``calib`` clips, or the quantizer's generated calibration
    set (``export.quantize.generated_calibration_set``, what a bundle is calibrated on by
    default). Returns (features, snr_mel, description).

    Raises:
        AudioError, OnnxExportError: unreadable or empty ``calib`` folder.
    """
    from export.onnx_export import build_frontend, clip_features, pick_clips, run_batched, session
    if calib is not None:
        clips = pick_clips(calib, count)
        f, s = clip_features(src, clips)
        return f, s, f"{len(clips)} clips of {calib}"
    from export.quantize import generated_calibration_set
    audio, _ = generated_calibration_set()
    audio = audio[:count] if count else audio
    f, s = run_batched(session(build_frontend(src.cfg, src.params)),
                       {"audio": audio.astype(np.float32) / 32768.0})
    return f, s, f"{len(audio)} clips of the quantizer's generated calibration set"


def convert_bundle(src, calib: str | os.PathLike | None = None,
                   calib_count: int | None = None) -> tuple[bytes, dict]:
    """The 16x8 .tflite (with float islands) of a bundle source: the bundle's weights and
    biases (:func:`bundle_params`) and its tensor ranges (:func:`bundle_ranges`).

    Returns:
        (flatbuffer, info) with info ``representative`` (what the other tensors were
        calibrated on) and ``scales`` (:func:`check_scales`).
    Raises:
        TfliteExportError, AudioError.
    """
    f, s, rep = representative_inputs(src, calib, calib_count)
    flat = convert(src.cfg, bundle_params(src), f, s, ranges=bundle_ranges(src.bundle))
    return flat, {"representative": rep, "scales": check_scales(flat, src.bundle)}


def export_tflite(source: str | os.PathLike, out: str | os.PathLike, *,
                  calib: str | os.PathLike | None = None, calib_count: int | None = None,
                  force: bool = False, progress: bool = False) -> dict:
    """Write the 16x8 .tflite (with float islands) of one model, checked in TFLM.

    Quantization: the bundle's (:func:`convert_bundle`); a checkpoint is quantized first
    by ``export.quantize`` (on ``calib`` clips, or its generated calibration set).

    Args:
        source: bundle (.npz) or checkpoint (.pt).
        out: output .tflite path (refused if it exists, unless ``force``).
        calib: folder of clips (the checkpoint's quantization, and the converter's
            calibration of the tensors outside the bundle); default: the generated set.
        calib_count: clips taken from ``calib`` (default all).
        force: overwrite ``out``.
        progress: progress bar while quantizing a checkpoint.
    Returns:
        dict with ``bytes``, ``ops`` (:func:`op_summary`), ``arena_bytes`` (minimum TFLM
        arena), ``quantization`` (source), ``representative``, ``scales``, ``model_hash``.
    Raises:
        TfliteExportError, OnnxExportError, BundleError, CheckpointError, AudioError,
        CalibrationError, QuantizationError, OutputExistsError.
    """
    from export.fileio import atomic_write_bytes, check_output
    from export.onnx_export import load_source, pick_clips, quantize_source
    check_output(out, force, expect="file",
                 inputs=[source] + ([calib] if calib is not None else []))
    src = load_source(source)
    if calib is not None:
        pick_clips(calib, None)      # a missing or empty --calib fails now, not after converting
    _tf()
    _tflm()
    if src.qspec is None:
        src = quantize_source(src, calib, progress)
    flat, info = convert_bundle(src, calib, calib_count)
    from export import __version__
    flat = stamp(flat, f"nanomamba-kws {__version__}; source {src.path} ({src.kind}); "
                       f"model {src.model_hash[:16]}; {src.qspec.source}; "
                       f"16x8 + float islands {','.join(FLOAT_OPS)}")
    model = tflm_load(flat)          # proves TFLM allocates it; minimum arena
    f, s, _ = representative_inputs(src, calib, 1) if calib else (None, None, None)
    if f is not None:
        model.run(f[:1], s[:1])      # and invokes it
    else:
        model.run(np.zeros((1, N_FRAMES, src.cfg.n_mels), np.float32),
                  np.zeros((1, N_FRAMES, src.cfg.n_mels), np.float32))
    atomic_write_bytes(out, flat, force=force)
    return {"path": str(out), "bytes": len(flat), "ops": op_summary(flat),
            "arena_bytes": model.arena_size, "model_hash": src.model_hash,
            "quantization": src.qspec.source, "representative": info["representative"],
            "scales": info["scales"]}
