"""C code generation: a quantized bundle -> a self-contained C project for Cortex-M (and the
host) that computes exactly the simulator's integers.

``generate_c(source, out_dir)`` walks the bundle's ``ops`` (docs/QUANTIZATION.md) and renders
the Jinja2 templates of ``firmware_templates/model/`` into ``out_dir``:

============================  ==========================================================
``kws_model.h``               the public API (kws_init/kws_run/kws_reset/kws_push_hop/
                              kws_classify, ...) and the model's macros
``kws_model.c``               the run functions: the front end, then per frame the ops in
                              bundle order over one static arena, then the clip ops
``kws_weights.{h,c}``         weights, biases, requantize multipliers and LUTs as ``const``
                              arrays (flash); identical arrays are stored once
``frontend_params.{h,c}``     the front end's constants (export.frontend_fixed)
``kws_frontend.*``,           the generic kernels and ``cmsis_compiler.h``, copied so the
``kws_nn*.{h,c}``, ...        folder builds on its own
``Makefile``                  ``make host`` (gcc, UBSan), ``make arm CPU=cortex-m4``
``host/kws_host_main.c``      host driver: clips file in, logits and (``-DKWS_TAPS``)
                              every intermediate tensor out (``kws-export verify``)
``kws_model.json``            what verify needs: tensor tap layout, sizes, variant
``bundle.npz``                the bundle the C was generated from (verify runs the
                              simulator on it)
============================  ==========================================================

Decisions (which kernel, which storage type, where each tensor lives in the arena, which
arrays are shared) are made here in Python; the templates only loop over the results.

Memory: the network runs one frame at a time; every per-frame tensor lives in one static
arena whose offsets come from tensor lifetimes (:func:`export.c_emit.plan_arena`, greedy,
TFLM-style); the front end's per-call scratch shares the arena (it is never live while the
network runs). Persistent state (front-end window state, conv histories, SSM states h, the
mean accumulator) is a separate static struct.

Two kernel variants give the same integers: ``"fast"`` (default: int8/int16 tensors stored
as int16_t, int16 weights, SMLAD pairs on DSP cores, ``kws_nn_fast.c``) and ``"reference"``
(every activation int32_t, the reference kernels of ``kws_nn.c``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from export import __version__
from export.bundle import Bundle, bundle_digest, load_bundle, save_bundle
from export.c_emit import Buffer, c_array_body, plan_arena, stamp
from export.fileio import atomic_output_dir
from nanomamba.errors import KwsError

VARIANTS = ("fast", "reference")
#: Files of firmware_templates/kernels copied into every generated folder.
KERNEL_FILES_GLOB = ("*.c", "*.h", "*.S", "*.s")
MODEL_JSON = "kws_model.json"
BUNDLE_COPY = "bundle.npz"

_QRANGE = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-(2 ** 31), 2 ** 31 - 1)}
_CT = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t"}
_NP = {"int8_t": np.int8, "int16_t": np.int16, "int32_t": np.int32, "uint8_t": np.uint8,
       "uint16_t": np.uint16}
_SIZE = {"int8_t": 1, "int16_t": 2, "int32_t": 4}


class CodegenError(KwsError):
    """The bundle (or generator input) cannot be turned into C: an op, kernel or width the
    generator does not support, or an unreadable source."""


# =======================================================================================
# source -> bundle
# =======================================================================================

def _check_source(source) -> None:
    if not isinstance(source, (Bundle, str, os.PathLike)):
        raise TypeError(f"source: expected a bundle path, a float checkpoint path (str or "
                        f"PathLike) or an export.bundle.Bundle, got {type(source).__name__}")


def load_source(source, *, progress: bool = False) -> Bundle:
    """The bundle to generate from.

    Args:
        source: a :class:`Bundle`, a bundle file (``.npz``) or a float checkpoint (``.pt``;
            quantized first with :func:`export.quantize.quantize_model` on the default
            generated calibration set, as ``kws-export quantize`` without ``--calib``).
        progress: show the calibration progress bar (checkpoints only).
    Returns:
        the bundle.
    Raises:
        TypeError: ``source`` is neither a Bundle nor a str/PathLike path.
        BundleError: missing/corrupt bundle, unknown format version.
        CheckpointError, CalibrationError, QuantizationError: checkpoint route.
    """
    _check_source(source)
    if isinstance(source, Bundle):
        return source
    path = Path(source)
    if path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        from export.quantize import generated_calibration_set, quantize_model
        from nanomamba import load_checkpoint
        model = load_checkpoint(path)
        audio, _ = generated_calibration_set()
        return quantize_model(model, audio, progress=progress, calibration={
            "source": "generated (espeak-ng words + noise, tones, chirps; seed 0)"})
    return load_bundle(path)


# =======================================================================================
# the plan: every decision, as plain data for the templates
# =======================================================================================

def frontend_version() -> int:
    """Version of the fixed-point front end (export.frontend_fixed / kws_frontend.c) this tool
    ships: a bundle made for another version has other front-end constants."""
    from export import frontend_fixed as ff
    fb = np.zeros((40, ff.N_BINS), np.float32)
    fb[:, 1] = 1.0
    return int(ff.make_frontend_params(fb, 1.0)["meta"]["version"])


def fe_scratch_words() -> int:
    """KWS_FE_SCRATCH_WORDS of the shipped kws_frontend.h (the front end's per-call scratch,
    int32 words, placed in the arena)."""
    from firmware_templates import template_root
    text = (template_root() / "kernels" / "kws_frontend.h").read_text()
    m = re.search(r"#define\s+KWS_FE_SCRATCH_WORDS\s+(\d+)", text)
    if not m:
        raise CodegenError("kws_frontend.h: no KWS_FE_SCRATCH_WORDS (front-end scratch size)")
    return int(m.group(1))


def interleave_rows4(W: np.ndarray) -> np.ndarray:
    """The interleaved weight layout of the fast kernels ``fc_s16_w16i_*``
    (firmware_templates/kernels/kws_nn_fast.c): for each group of four rows r..r+3, per
    column pair (k, k+1) the eight values W[r][k], W[r][k+1], W[r+1][k], W[r+1][k+1], ...,
    W[r+3][k+1], then (odd cols) W[r][cols-1] .. W[r+3][cols-1]; after the groups, the
    ``rows % 4`` last rows row-major. Same values, another order, so that one pointer walks
    the matrix.

    Args:
        W: (rows, cols) integer weights.
    Returns:
        1-D array of rows * cols values, W's dtype.
    Raises:
        ValueError: W is not 2-D.
    """
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"interleave_rows4: expected a 2-D weight matrix, got shape {W.shape}")
    rows, cols = W.shape
    g, pairs = rows // 4, cols // 2
    parts = []
    for i in range(g):
        blk = W[4 * i:4 * i + 4]
        if pairs:
            parts.append(blk[:, :2 * pairs].reshape(4, pairs, 2).transpose(1, 0, 2).reshape(-1))
        if cols % 2:
            parts.append(blk[:, cols - 1])
    parts.append(W[4 * g:].reshape(-1))
    return np.concatenate(parts).astype(W.dtype)


def _cname(name: str) -> str:
    """C identifier fragment of a tensor/op/array name ("blocks.0.u" -> "b0_u")."""
    s = re.sub(r"^blocks\.(\d+)\.", r"b\1_", name)
    s = s.replace("frontend/", "fe_").replace("/", "_")
    return re.sub(r"[^0-9A-Za-z_]", "_", s)


@dataclass
class ConstArray:
    """One const array of kws_weights.c."""

    name: str
    ctype: str
    values: np.ndarray
    comment: str

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * _SIZE.get(self.ctype, np.dtype(_NP[self.ctype]).itemsize)


@dataclass
class Tap:
    """An intermediate tensor the host driver records (verify): ``n`` int32 values per frame
    (``per_frame``) or per clip, at ``offset`` (int32 words) in the per-clip record."""

    id: int
    name: str
    per_frame: bool
    n: int
    dtype: str
    offset: int = 0


@dataclass
class Plan:
    """Everything the templates need (see :func:`plan_model`)."""

    bundle: Bundle
    variant: str
    consts: list = field(default_factory=list)        # ConstArray
    aliases: list = field(default_factory=list)       # (name, target, ctype, size)
    buffers: list = field(default_factory=list)       # dicts: name, ctype, offset, size
    arena_bytes: int = 0
    state: list = field(default_factory=list)         # dicts: name, ctype, size, init, comment
    state_bytes: int = 0
    frame_ops: list = field(default_factory=list)     # dicts: comment, lines
    clip_ops: list = field(default_factory=list)
    reset_lines: list = field(default_factory=list)
    structs: list = field(default_factory=list)       # C text of const parameter structs
    taps: list = field(default_factory=list)          # Tap
    macros: dict = field(default_factory=dict)
    logits: dict = field(default_factory=dict)
    label: dict = field(default_factory=dict)
    nn_header: str = "kws_nn.h"

    @property
    def const_bytes(self) -> int:
        return sum(c.nbytes for c in self.consts)

    @functools.cached_property
    def bundle_digest(self) -> str:
        """:func:`export.bundle.bundle_digest` of the bundle (hashed once per plan: the
        header and kws_model.json both record it)."""
        return bundle_digest(self.bundle)

    @property
    def tap_words(self) -> int:
        return sum(t.n * (self.macros["KWS_N_FRAMES"] if t.per_frame else 1) for t in self.taps)


class _Planner:
    """Builds a :class:`Plan` from a bundle (one instance per generation)."""

    def __init__(self, bundle: Bundle, variant: str) -> None:
        if variant not in VARIANTS:
            raise CodegenError(f"kernel variant '{variant}': must be one of {', '.join(VARIANTS)}")
        self.b = bundle
        self.meta = bundle.meta
        self.t = bundle.meta["tensors"]
        self.variant = variant
        self.fast = variant == "fast"
        self.plan = Plan(bundle=bundle, variant=variant,
                         nn_header="kws_nn_fast.h" if self.fast else "kws_nn.h")
        self._const_by_key: dict = {}
        self._const_names: dict = {}
        self._bufs: dict = {}          # name -> [ctype, size_bytes, first, last]
        self._step = 0

    # ---- checks ------------------------------------------------------------------
    def check(self) -> None:
        where = f"{self.b.path or 'bundle'}"
        cfg = self.meta["model"]["config"]
        have = self.meta["frontend"]["meta"].get("version")
        want = frontend_version()
        if have != want:
            raise CodegenError(f"{where}: made for front end version {have}, this tool's C front "
                               f"end is version {want}; re-quantize the checkpoint "
                               f"(kws-export quantize)")
        if cfg["n_mels"] != 40:
            raise CodegenError(f"{where}: n_mels {cfg['n_mels']} is not supported by the C "
                               f"front end build (KWS_FE_N_MELS 40)")
        for op in self.meta["ops"]:
            if op["type"] not in ("fully_connected", "conv1d_depthwise", "layer_norm", "lut",
                                  "add", "mul", "sa_ssm", "mean", "argmax"):
                raise CodegenError(f"{where}: op '{op['name']}' of type '{op['type']}' is not "
                                   f"supported by the C generator")
            if op["type"] == "sa_ssm":
                a = {k: self.b.arrays[v] for k, v in op["arrays"].items()}
                pre = op["name"].rsplit(".", 1)[0]
                if (self.t[pre + ".h"]["dtype"] != "int16" or op["params"]["dA_frac_bits"] != 15
                        or np.any(a["x_shift"] != 0) or a["exp_table"].dtype != np.int16):
                    raise CodegenError(f"{where}: op '{op['name']}': the C SA-SSM kernel supports "
                                       f"int16 h with Q15 dA (the default widths); re-quantize "
                                       f"without --width h=32 / dA=32")
            if op["type"] == "mul":
                shapes = [self.t[x]["shape"] for x in op["inputs"]]
                if shapes[0] != shapes[1]:
                    raise CodegenError(f"{where}: op '{op['name']}': broadcasting mul not supported")

    # ---- constants ---------------------------------------------------------------
    def const(self, key: str, ctype: str, values=None, comment: str = "") -> str:
        """Name of the const array holding ``values`` (default: bundle array ``key``) as
        ``ctype``; identical arrays (same type and bytes) are stored once."""
        arr = np.asarray(self.b.arrays[key] if values is None else values)
        if arr.size and np.issubdtype(arr.dtype, np.integer):
            lo, hi = np.iinfo(_NP[ctype]).min, np.iinfo(_NP[ctype]).max
            if int(arr.min()) < lo or int(arr.max()) > hi:
                raise CodegenError(f"array '{key}': values outside {ctype}")
        arr = arr.astype(_NP[ctype]).reshape(-1)
        dk = (ctype, hashlib.sha256(arr.tobytes()).hexdigest(), arr.size)
        name = "kws_" + _cname(key)
        if dk in self._const_by_key:
            target = self._const_by_key[dk]
            if name == target or self._const_names.get(name) not in (None, target):
                return target
            if name not in self._const_names:
                self._const_names[name] = target
                self.plan.aliases.append((name, target, ctype, int(arr.size)))
            return name        # a #define of kws_weights.h naming the shared array
        self._const_by_key[dk] = name
        self._const_names[name] = name
        self.plan.consts.append(ConstArray(name, ctype, arr, comment or key))
        return name

    def rshift_const(self, op: dict, param: str = "shift", mparam: str = "multiplier") -> str:
        """Const array of RIGHT shifts (-shift, checked 0..31, multipliers >= 0) for the fast
        kernels' multiply_by_quantized_multiplier_rshift."""
        sh = self.b.arrays[op["arrays"][param]].astype(np.int64)
        m = self.b.arrays[op["arrays"][mparam]].astype(np.int64)
        self.check_rq(op, m, sh)
        return self.const(op["arrays"][param] + "#right", "int32_t", -sh,
                          f"{op['name']}: right shift (-{param})")

    def rshift(self, op: dict, multiplier, shift) -> int:
        """A scalar right shift (-shift) for the fast kernels, checked like rshift_const."""
        self.check_rq(op, np.array([multiplier]), np.array([shift]))
        return -int(shift)

    @staticmethod
    def check_rq(op: dict, m, sh) -> None:
        if np.any(np.asarray(sh) > 0) or np.any(np.asarray(sh) < -31) or np.any(np.asarray(m) < 0):
            raise CodegenError(f"op '{op['name']}': a requantize with a multiplier above 1 or a "
                               f"negative multiplier is not supported by the fast kernels; use "
                               f"variant 'reference'")

    def op_const(self, op: dict, param: str, ctype: str, comment: str = "") -> str:
        return self.const(op["arrays"][param], ctype, comment=comment or f"{op['name']}: {param}")

    # ---- buffers -----------------------------------------------------------------
    def storage(self, tensor: str) -> str:
        """C storage type of a tensor in the arena (decision: the fast kernels keep int8 and
        int16 tensors in int16_t, the reference kernels everything in int32_t)."""
        if not self.fast:
            return "int32_t"
        return "int32_t" if self.t[tensor]["dtype"] == "int32" else "int16_t"

    def n_elems(self, tensor: str) -> int:
        return int(np.prod(self.t[tensor]["shape"]))

    def buf(self, name: str, ctype: str | None = None, size: int | None = None) -> str:
        """Reference to arena buffer ``name`` (a tensor unless ctype/size given), extending
        its lifetime to the current step."""
        if name not in self._bufs:
            ctype = ctype or self.storage(name)
            n = size if size is not None else self.n_elems(name)
            self._bufs[name] = [ctype, n * _SIZE[ctype], self._step, self._step, n]
        else:
            self._bufs[name][3] = self._step
        return "KWS_BUF_" + _cname(name).upper()

    def next_step(self) -> None:
        self._step += 1

    # ---- taps --------------------------------------------------------------------
    def tap(self, name: str, ref: str, ctype: str, n: int, per_frame: bool = True,
            frame: str = "t") -> str:
        tid = len(self.plan.taps)
        self.plan.taps.append(Tap(tid, name, per_frame, n, self.t[name]["dtype"]))
        fn = {"int8_t": "kws_tap_i8", "int16_t": "kws_tap_i16", "int32_t": "kws_tap_i32"}[ctype]
        return f"KWS_TAP({fn}({tid}, {frame}, {ref}, {n}));"

    # ---- the ops -----------------------------------------------------------------
    def zp(self, name: str) -> int:
        return int(self.t[name]["zero_point"])

    def qr(self, name: str) -> tuple[int, int]:
        return _QRANGE[self.t[name]["dtype"]]

    def build(self) -> Plan:
        self.check()
        P = self.plan
        meta = self.meta
        cfg = meta["model"]["config"]
        M = cfg["n_mels"]
        # step 0: the front end's scratch (live only inside front-end calls)
        self.plan.macros["KWS_FE_SCRATCH_WORDS"] = fe_scratch_words()
        self.buf("fe_scratch", "int32_t", self.plan.macros["KWS_FE_SCRATCH_WORDS"])
        self.next_step()
        # frame step: front-end output row -> network inputs
        lines = []
        if self.fast:
            fref = self.buf("features")
            sref = self.buf("snr_mel")
            if self.storage("snr_mel") != "int16_t" or self.storage("features") != "int16_t":
                raise CodegenError("internal: the fast kernels store features and snr_mel as "
                                   "int16")
            lines.append(f"(void)kws_frontend_output_row_s16(&kws_state.fe, t, {fref}, {sref});")
            lines.append(self.tap("features", fref, "int16_t", M))
            lines.append(self.tap("snr_mel", sref, "int16_t", M))
        else:
            fr16 = self.buf("feat_row", "int16_t", M)
            sr8 = self.buf("snr_row", "int8_t", M)
            fref, sref = self.buf("features"), self.buf("snr_mel")
            lines.append(f"(void)kws_frontend_output_row(&kws_state.fe, t, {fr16}, {sr8});")
            lines.append(f"kws_widen_i16_i32({fr16}, {fref}, {M});")
            lines.append(f"kws_widen_i8_i32({sr8}, {sref}, {M});")
            lines.append(self.tap("features", fref, "int32_t", M))
            lines.append(self.tap("snr_mel", sref, "int32_t", M))
        P.frame_ops.append({"comment": "front-end outputs of frame t (network inputs)",
                            "lines": lines})
        self.next_step()
        clip_ops = [op for op in meta["ops"] if op["stage"] == "clip"]
        for op in meta["ops"]:
            if op["stage"] != "frame":
                continue
            lines = getattr(self, "_op_" + op["type"])(op)
            P.frame_ops.append({"comment": f"{op['name']} ({op['kernel']})", "lines": lines})
            self.next_step()
        # clip stage: mean finalize, then the clip ops (classifier)
        mean_ops = [op for op in meta["ops"] if op["type"] == "mean"]
        for op in mean_ops:
            P.clip_ops.append({"comment": f"{op['name']} ({op['finalize_kernel']})",
                               "lines": self._mean_finalize(op)})
            self.next_step()
        for op in clip_ops:
            lines = getattr(self, "_op_" + op["type"])(op, frame="0")
            P.clip_ops.append({"comment": f"{op['name']} ({op['kernel']})", "lines": lines})
            self.next_step()
        self._finish()
        return P

    # fully connected ------------------------------------------------------------------
    def _op_fully_connected(self, op, frame: str = "t"):
        p = op["params"]
        x, y = op["inputs"][0], op["outputs"][0]
        rows, cols = int(p["rows"]), int(p["cols"])
        single = int(p.get("requantize") == "requantize_single_round")
        qmin, qmax = self.qr(y)
        xr = self.buf(x)
        yr = self.buf(y)
        w_dt = p.get("weight_dtype", "int8")
        mult = self.op_const(op, "multiplier", "int32_t")
        shift = (self.rshift_const(op) if self.fast and not single
                 else self.op_const(op, "shift", "int32_t"))
        if not self.fast:
            wname = self.op_const(op, "weight", _CT[w_dt])
            bias = self.op_const(op, "bias", "int32_t")
            kern = "fully_connected_w16" if w_dt == "int16" else "fully_connected"
            call = (f"{kern}({xr}, {self.zp(x)}, {wname}, {bias}, {mult}, {shift}, {single}, "
                    f"{self.zp(y)}, {qmin}, {qmax}, {rows}, {cols}, {yr});")
        else:
            # int16 weights (int8 weights widened: same integers); the input zero point is
            # folded into the bias when the int32 bound allows (x_zp = 0 for every tensor
            # the quantizer makes today), else passed on
            W = self.b.arrays[op["arrays"]["weight"]].astype(np.int64)
            bias = self.b.arrays[op["arrays"]["bias"]].astype(np.int64)
            x_zp = self.zp(x)
            if x_zp:
                folded = bias - x_zp * W.sum(axis=1)
                xmin, xmax = self.qr(x)
                bound = np.abs(folded) + np.abs(W).sum(axis=1) * max(abs(xmin), abs(xmax))
                if bound.max() < 2 ** 31:
                    bias, x_zp = folded, 0
            # per-frame layers: weights interleaved by groups of four rows (fc_s16_w16i_*,
            # one pointer walks the matrix); the clip-stage layers (classifier) keep the
            # row-major kernels
            inter = frame == "t"
            if inter:
                wname = self.const(op["arrays"]["weight"] + "#interleaved4", "int16_t",
                                   interleave_rows4(W),
                                   f"{op['name']}: weight, interleaved by 4 rows")
            else:
                wname = self.const(op["arrays"]["weight"], "int16_t", W, f"{op['name']}: weight")
            bname = self.const(op["arrays"]["bias"] + ("#folded" if x_zp != self.zp(x) else ""),
                               "int32_t", bias, f"{op['name']}: bias")
            out_t = self.storage(y)
            if single:
                if out_t != "int32_t" or self.zp(y) != 0:
                    raise CodegenError(f"op '{op['name']}': single-rounding requantize needs an "
                                       f"int32 output with zero point 0")
                kern = "fc_s16_w16_out32"
            else:
                kern = "fc_s16_w16_out16" if out_t == "int16_t" else "fc_s16_w16_out32mbqm"
            full = (self.zp(y), qmin, qmax) == (0, -32768, 32767)
            if inter and kern in ("fc_s16_w16_out16", "fc_s16_w16_out32"):
                kern = kern.replace("_w16_", "_w16i_")
                if kern == "fc_s16_w16i_out16" and not full:
                    kern = "fc_s16_w16i_out16_range"
            if kern == "fc_s16_w16_out32mbqm":
                raise CodegenError(f"op '{op['name']}': int32 output with TFLite requantize is "
                                   f"not supported by the fast kernels; use variant 'reference'")
            if x_zp:
                raise CodegenError(f"op '{op['name']}': input zero point {x_zp} cannot be folded "
                                   f"into the bias within int32; use variant 'reference'")
            call = (f"{kern}({xr}, {wname}, {bname}, {mult}, {shift}"
                    + (f", {self.zp(y)}, {qmin}, {qmax}"
                       if kern in ("fc_s16_w16_out16", "fc_s16_w16i_out16_range") else "")
                    + f", {rows}, {cols}, {yr});")
        return [call, self.tap(y, yr, self.storage(y), rows, frame == "t", frame)]

    # conv -------------------------------------------------------------------------------
    def _op_conv1d_depthwise(self, op):
        p = op["params"]
        x, y = op["inputs"][0], op["outputs"][0]
        E, K = int(p["channels"]), int(p["kernel_size"])
        qmin, qmax = self.qr(y)
        xr, yr = self.buf(x), self.buf(y)
        w_dt = p.get("weight_dtype", "int8")
        wname = self.op_const(op, "weight", _CT[w_dt])
        bias = self.op_const(op, "bias", "int32_t")
        mult = self.op_const(op, "multiplier", "int32_t")
        shift = self.rshift_const(op) if self.fast else self.op_const(op, "shift", "int32_t")
        hist_t = "int16_t" if self.fast else "int32_t"
        hist = self.state(f"hist_{_cname(op['name'])}", hist_t, (K - 1) * E,
                          self.zp(x), f"{op['name']}: last {K - 1} inputs, oldest first")
        if self.fast:
            kern = "conv1d_dw_s16_w16" if w_dt == "int16" else "conv1d_dw_s16_w8"
            call = (f"{kern}({hist}, {xr}, {self.zp(x)}, {wname}, {bias}, {mult}, {shift}, "
                    f"{self.zp(y)}, {qmin}, {qmax}, {E}, {K}, {yr});")
        else:
            kern = "conv1d_depthwise_step_w16" if w_dt == "int16" else "conv1d_depthwise_step"
            call = (f"{kern}({hist}, {xr}, {self.zp(x)}, {wname}, {bias}, {mult}, {shift}, "
                    f"{self.zp(y)}, {qmin}, {qmax}, {E}, {K}, {yr});")
        return [call, self.tap(y, yr, self.storage(y), E)]

    # layer norm --------------------------------------------------------------------------
    def _op_layer_norm(self, op):
        p = op["params"]
        x, y = op["inputs"][0], op["outputs"][0]
        D = int(p["channels"])
        qmin, qmax = self.qr(y)
        xr, yr = self.buf(x), self.buf(y)
        gamma = self.op_const(op, "gamma", "int16_t")
        beta = self.op_const(op, "beta", "int32_t")
        eps = f"INT64_C({int(p['eps_q'])})"
        if self.fast:
            kern = "layer_norm_s32"
            if self.storage(x) != "int32_t" or self.storage(y) != "int16_t" or D > 64:
                raise CodegenError(f"op '{op['name']}': the fast LayerNorm takes an int32 input, "
                                   f"gives an int16 output, D <= 64; use variant 'reference'")
        else:
            kern = "layer_norm"
        sh = self.rshift(op, p["multiplier"], p["shift"]) if self.fast else int(p["shift"])
        # fast: the kernel's D int32 of scratch (x') in the arena, live during this op only
        xs = (self.buf(f"ln_xs_{_cname(op['name'])}", "int32_t", D) + ", ") if self.fast else ""
        call = (f"{kern}({xr}, {self.zp(x)}, {eps}, {int(p['z_frac_bits'])}, {gamma}, {beta}, "
                f"{int(p['multiplier'])}, {sh}, {self.zp(y)}, {qmin}, {qmax}, {D}, "
                f"{xs}{yr});")
        return [call, self.tap(y, yr, self.storage(y), D)]

    # LUT -----------------------------------------------------------------------------------
    def _op_lut(self, op):
        p = op["params"]
        x, y = op["inputs"][0], op["outputs"][0]
        n = self.n_elems(y)
        xr, yr = self.buf(x), self.buf(y)
        if p["kind"] == "s8":
            table = self.op_const(op, "table", "int16_t", f"{op['name']}: {p.get('function')}")
            kern = "lut_s8_s16" if self.fast else "lut_s8"
        else:
            tab = self.b.arrays[op["arrays"]["table"]]
            if self.fast:
                # the result is saturated to int16 anyway; a table that fits int16 is stored
                # as int16 (same interpolation integers: every entry and difference is exact)
                if tab.min() < -32768 or tab.max() > 32767:
                    raise CodegenError(f"op '{op['name']}': LUT entries exceed int16; use "
                                       f"variant 'reference'")
                table = self.op_const(op, "table", "int16_t", f"{op['name']}: {p.get('function')}")
                kern = "lut_s16_s16"
            else:
                table = self.op_const(op, "table", "int32_t", f"{op['name']}: {p.get('function')}")
                kern = "lut_s16"
        return [f"{kern}({xr}, {table}, {n}, {yr});", self.tap(y, yr, self.storage(y), n)]

    # add / mul -----------------------------------------------------------------------------
    def _op_add(self, op):
        p = op["params"]
        a, b_ = op["inputs"]
        y = op["outputs"][0]
        n = self.n_elems(y)
        ar, br, yr = self.buf(a), self.buf(b_), self.buf(y)
        if p.get("same_scale"):
            kern = "residual_add"
            if self.fast and not (self.storage(a) == self.storage(b_) == self.storage(y) == "int32_t"):
                raise CodegenError(f"op '{op['name']}': residual add of non-int32 tensors")
            call = f"{kern}({ar}, {br}, {n}, {yr});"
        else:
            qmin, qmax = self.qr(y)
            kern = "elementwise_add_s16" if self.fast else "elementwise_add"
            sh = {k: (self.rshift(op, p[k.replace("shift", "multiplier")], p[k]) if self.fast
                      else int(p[k])) for k in ("a_shift", "b_shift", "out_shift")}
            call = (f"{kern}({ar}, {br}, {self.zp(a)}, {self.zp(b_)}, {int(p['left_shift'])}, "
                    f"{int(p['a_multiplier'])}, {sh['a_shift']}, {int(p['b_multiplier'])}, "
                    f"{sh['b_shift']}, {int(p['out_multiplier'])}, {sh['out_shift']}, "
                    f"{self.zp(y)}, {qmin}, {qmax}, {n}, {yr});")
        return [call, self.tap(y, yr, self.storage(y), n)]

    def _op_mul(self, op):
        p = op["params"]
        a, b_ = op["inputs"]
        y = op["outputs"][0]
        n = self.n_elems(y)
        qmin, qmax = self.qr(y)
        ar, br, yr = self.buf(a), self.buf(b_), self.buf(y)
        kern = "elementwise_mul_s16" if self.fast else "elementwise_mul"
        sh = self.rshift(op, p["multiplier"], p["shift"]) if self.fast else int(p["shift"])
        call = (f"{kern}({ar}, {br}, {self.zp(a)}, {self.zp(b_)}, {int(p['multiplier'])}, "
                f"{sh}, {self.zp(y)}, {qmin}, {qmax}, {n}, {yr});")
        return [call, self.tap(y, yr, self.storage(y), n)]

    # SA-SSM --------------------------------------------------------------------------------
    def _op_sa_ssm(self, op):
        p = op["params"]
        u, delta, bg, C = op["inputs"]
        y = op["outputs"][0]
        pre = op["name"].rsplit(".", 1)[0]
        E, N = int(p["d_inner"]), int(p["d_state"])
        qmin, qmax = self.qr(y)
        refs = [self.buf(n) for n in (u, delta, bg, C)]
        yr = self.buf(y)
        h = self.state(f"h_{_cname(pre)}", "int16_t", E * N, 0, f"{pre}.h: SSM state (d_inner x d_state)")
        # the fast kernel reads the per-channel requantize constants packed (pe_rq below):
        # its struct leaves those five arrays out (NULL), so flash holds them once
        rq_packed = ("du_multiplier", "du_shift", "d_q", "y_multiplier", "y_shift")
        c = lambda k: ("NULL" if self.fast and k in rq_packed  # noqa: E731
                       else self.op_const(op, k, "int32_t"))
        sname = f"kws_ssm_{_cname(pre)}"
        fields = [("d_inner", str(E)), ("d_state", str(N)), ("u_zp", str(self.zp(u))),
                  ("k_a", c("k_a")), ("p_shift", str(int(p["p_shift"]))),
                  ("exp_frac_bits", str(int(p["exp_frac_bits"]))),
                  ("exp_table", self.op_const(op, "exp_table", "int16_t")),
                  ("dA_frac_bits", str(int(p["dA_frac_bits"]))),
                  ("du_multiplier", c("du_multiplier")), ("du_shift", c("du_shift")),
                  ("h_read_shift", c("h_read_shift")), ("d_q", c("d_q")),
                  ("d_shift", str(int(p["d_shift"]))),
                  ("y_multiplier", c("y_multiplier")), ("y_shift", c("y_shift")),
                  ("y_min", str(qmin)), ("y_max", str(qmax))]
        body = "".join(f"    {v},  /* {k} */\n" for k, v in fields)
        self.plan.structs.append(f"static const kws_ssm_params_t {sname} = {{\n{body}}};\n")
        kern = "sa_ssm_step_s16" if self.fast else "sa_ssm_step"
        if self.fast:
            for mk, sk in (("du_multiplier", "du_shift"), ("y_multiplier", "y_shift")):
                self.check_rq(op, self.b.arrays[op["arrays"][mk]], self.b.arrays[op["arrays"][sk]])
        if self.fast and N > 16:
            raise CodegenError(f"op '{op['name']}': the fast SA-SSM kernel takes d_state <= 16; "
                               f"use variant 'reference'")
        st = self.storage(y)
        if self.fast:
            hrs0 = int(not np.any(self.b.arrays[op["arrays"]["h_read_shift"]]))
            # per-channel requantize constants packed 5 per e (one pointer in the kernel)
            A = {k: self.b.arrays[op["arrays"][k]].astype(np.int64).reshape(-1)
                 for k in ("du_multiplier", "du_shift", "d_q", "y_multiplier", "y_shift")}
            packed = np.stack([A["du_multiplier"], -A["du_shift"], A["d_q"], A["y_multiplier"],
                               -A["y_shift"]], axis=1).reshape(-1)
            pk = self.const(op["arrays"]["du_multiplier"] + "#ssm_rq", "int32_t", packed,
                            f"{pre}: per e du_multiplier, -du_shift, d_q, y_multiplier, -y_shift")
            call = (f"{kern}({h}, {', '.join(refs)}, &{sname}, {pk}, {E}, {N}, {int(p['p_shift'])}, "
                    f"{int(p['exp_frac_bits'])}, {int(p['d_shift'])}, {self.zp(u)}, {hrs0}, "
                    f"{qmin}, {qmax}, {yr});")
        else:
            call = f"{kern}({h}, {', '.join(refs)}, &{sname}, {yr});"
        lines = [call,
                 self.tap(pre + ".dA", "kws_tap_dA", "int32_t", E * N),
                 self.tap(pre + ".du", "kws_tap_du", "int32_t", E),
                 self.tap(pre + ".h", h, "int16_t", E * N),
                 self.tap(y, yr, st, E)]
        return lines

    # label -------------------------------------------------------------------------------
    def _op_argmax(self, op, frame: str = "0"):
        """The label op: argmax_s32 (kws_nn.c) over the int32 ``logits_fine``."""
        x, y = op["inputs"][0], op["outputs"][0]
        n = int(op["params"]["n"])
        if self.storage(x) != "int32_t" or self.storage(y) != "int32_t":
            raise CodegenError(f"op '{op['name']}': argmax_s32 takes and gives int32 tensors")
        yr = self.buf(y)
        return [f"{yr}[0] = argmax_s32({self.buf(x)}, {n});",
                self.tap(y, yr, "int32_t", 1, per_frame=False, frame=frame)]

    # mean ----------------------------------------------------------------------------------
    def _op_mean(self, op):
        x = op["inputs"][0]
        n = self.n_elems(x)
        xr = self.buf(x)
        acc = self.state(f"sum_{_cname(op['name'])}", "int32_t", n, 0,
                         f"{op['name']}: running sum over frames")
        kern = "mean_pool_accumulate_s16" if self.fast else "mean_pool_accumulate"
        return [f"{kern}({acc}, {xr}, {self.zp(x)}, {n});"]

    def _mean_finalize(self, op):
        p = op["params"]
        y = op["outputs"][0]
        n = self.n_elems(y)
        qmin, qmax = self.qr(y)
        yr = self.buf(y)
        acc = "KWS_BUF_STATE_" + _cname(f"sum_{_cname(op['name'])}").upper()
        kern = "mean_pool_finalize_s16" if self.fast else "mean_pool_finalize"
        sh = self.rshift(op, p["multiplier"], p["shift"]) if self.fast else int(p["shift"])
        return [f"{kern}({acc}, {int(p['multiplier'])}, {sh}, {self.zp(y)}, "
                f"{qmin}, {qmax}, {n}, {yr});",
                self.tap(y, yr, self.storage(y), n, per_frame=False, frame="0")]

    # state ---------------------------------------------------------------------------------
    def state(self, name: str, ctype: str, size: int, init: int, comment: str) -> str:
        """Reference to the network state array ``name`` (conv history, SSM h, mean sums).

        Decision: the network state lives in the arena, not in ``kws_state``. It is live
        from ``kws_network_reset`` (start of ``kws_run_network``) to the logits, i.e. during
        every network step (1 .. last) and never inside a front-end call, so it may overlay
        the front end's per-call scratch (step 0) but no per-frame tensor; ``_finish`` places
        it with that lifetime."""
        ref = "KWS_BUF_STATE_" + _cname(name).upper()
        if not any(s["name"] == name for s in self.plan.state):
            self.plan.state.append({"name": name, "ctype": ctype, "size": size, "init": init,
                                    "comment": comment, "ref": ref})
        return ref

    # finish --------------------------------------------------------------------------------
    def _finish(self) -> None:
        P = self.plan
        meta = self.meta
        cfg = meta["model"]["config"]
        logits = "logits"
        lt = self.t.get(logits)
        if lt is None or lt["dtype"] != "int8" or self.n_elems(logits) != cfg["n_classes"]:
            raise CodegenError(f"tensor '{logits}': expected int8 logits of {cfg['n_classes']} "
                               f"classes")
        if "label" not in self._bufs or self.t["label"]["dtype"] != "int32":
            raise CodegenError("bundle has no int32 'label' op output (bundle format 2)")
        # read after the last op: these two buffers live to the end of kws_run_network
        P.logits = {"ref": self.buf(logits), "ctype": self.storage(logits),
                    "scale": float(lt["scale"]), "zero_point": int(lt["zero_point"])}
        P.label = {"ref": self.buf("label"), "ctype": self.storage("label")}
        # the network state: live over every network step (1 .. the last), see state()
        for st in P.state:
            self._bufs["state_" + st["name"]] = [st["ctype"], _SIZE[st["ctype"]] * st["size"],
                                                 1, self._step, st["size"]]
        bufs = [Buffer(n, v[1], v[2], v[3], 4) for n, v in self._bufs.items()]
        arena = plan_arena(bufs)
        P.arena_bytes = arena.size
        for n, v in self._bufs.items():
            off = arena.offsets[n]
            if off % _SIZE[v[0]]:
                raise CodegenError(f"internal: misaligned arena buffer {n}")
            P.buffers.append({"name": n, "macro": "KWS_BUF_" + _cname(n).upper(), "ctype": v[0],
                              "offset": off, "bytes": v[1], "n": v[4], "first": v[2],
                              "last": v[3]})
        P.state_bytes = sum(_SIZE[s["ctype"]] * s["size"] for s in P.state)
        off = 0
        for t in P.taps:
            t.offset = off
            off += t.n * (meta["model"]["n_frames"] if t.per_frame else 1)
        for op in meta["ops"]:
            if op["type"] == "sa_ssm":
                E, N = op["params"]["d_inner"], op["params"]["d_state"]
                P.macros["KWS_TAP_SSM_MAX"] = max(P.macros.get("KWS_TAP_SSM_MAX", 0), E * N)
                P.macros["KWS_TAP_SSM_E_MAX"] = max(P.macros.get("KWS_TAP_SSM_E_MAX", 0), E)
        P.macros["KWS_N_FRAMES"] = int(meta["model"]["n_frames"])


def macs_per_inference(bundle: Bundle) -> dict:
    """Multiply-accumulates of one 1-s inference from the bundle's op shapes (the same
    counting as :func:`nanomamba.model.macs_per_inference`: every matrix product, the conv,
    the scan 3 E N + E (dA h, du B, C h, D u), the gate product; front end: window, FFT,
    split, |X|^2, SNR divisions, two mel projections).

    Returns:
        {"frontend", "network", "total"} MACs per window.
    """
    T = int(bundle.meta["model"]["n_frames"])
    net = 0
    for op in bundle.meta["ops"]:
        p, k = op["params"], op["type"]
        mult = T if op["stage"] == "frame" else 1
        if k == "fully_connected":
            net += mult * int(p["rows"]) * int(p["cols"])
        elif k == "conv1d_depthwise":
            net += mult * int(p["channels"]) * int(p["kernel_size"])
        elif k == "sa_ssm":
            net += mult * (3 * int(p["d_inner"]) * int(p["d_state"]) + int(p["d_inner"]))
        elif k == "mul" and op["name"].endswith("gate_mul"):
            net += mult * int(np.prod(bundle.meta["tensors"][op["outputs"][0]]["shape"]))
    fe = bundle.meta["frontend"]["meta"]
    fft = 256 // 2 * 8 * 4 + 256 * 4
    fe_frame = 512 + fft + 2 * 257 + 257 + 2 * int(fe["mel_nnz"])
    front = fe_frame * T
    return {"frontend": front, "network": net, "total": front + net}


def plan_model(bundle: Bundle, variant: str = "fast") -> Plan:
    """Make every generation decision for ``bundle``: storage types, kernels, const arrays
    (deduplicated), the arena plan, persistent state and the tap layout.

    Args:
        bundle: the quantized model.
        variant: "fast" (typed storage, DSP kernels) or "reference" (int32 storage,
            kws_nn.c).
    Returns:
        the :class:`Plan`.
    Raises:
        CodegenError: an op/width the generator does not support (names the op).
    """
    return _Planner(bundle, variant).build()


# =======================================================================================
# rendering
# =======================================================================================

def _env():
    import jinja2

    from firmware_templates import template_root
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_root() / "model")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(plan: Plan, argv: Sequence[str] | None = None) -> dict[str, str]:
    """Render the model files of a plan.

    Args:
        plan: from :func:`plan_model`.
        argv: the command line stamped into every file (None: "(library call)").
    Returns:
        file name (relative to the output folder) -> text. Deterministic.
    """
    from export import frontend_fixed as ff
    b = plan.bundle
    meta = b.meta
    mh = meta["model"]["sha256"]
    cfg = meta["model"]["config"]
    env = _env()
    macs = macs_per_inference(b)
    ctx = {
        "stamp": stamp(mh, argv), "stamp_hash": stamp(mh, argv, comment="hash"),
        "plan": plan, "cfg": cfg, "labels": meta["model"]["labels"],
        "labels_c": [_c_string(s) for s in meta["model"]["labels"]],
        "model_name": meta["model"].get("name") or "nanomamba",
        "model_hash": mh, "bundle_hash": plan.bundle_digest, "macs": macs,
        "n_frames": int(meta["model"]["n_frames"]),
        "consts": [{"name": c.name, "ctype": c.ctype, "size": int(c.values.size),
                    "comment": c.comment.replace("*/", "* /"),
                    "body": c_array_body(c.values, per_line=12)} for c in plan.consts],
        "arena_words": plan.arena_bytes // 4,
        "logit_scale": repr(float(plan.logits["scale"])),
    }
    ctx["c_sources"] = c_sources()
    files = {}
    for name in ("kws_model.h", "kws_model.c", "kws_weights.h", "kws_weights.c", "Makefile",
                 "host/kws_host_main.c"):
        files[name] = env.get_template(Path(name).name + ".j2").render(**ctx)
    cmd = " ".join(argv) if argv else "(library call)"
    fe_params = {"meta": meta["frontend"]["meta"],
                 "arrays": {k: b.arrays[f"frontend/{k}"] for k in meta["frontend"]["arrays"]}}
    files.update(ff.render_frontend_params_c(
        fe_params, {"tool": f"kws-export {__version__}", "command": cmd, "model_hash": mh}))
    return files


def c_sources() -> list[str]:
    """The .c files at the top of a generated folder (kernels + rendered), sorted."""
    from firmware_templates import template_root
    kernel_c = [q.name for q in (template_root() / "kernels").glob("*.c")]
    return sorted(kernel_c + ["frontend_params.c", "kws_model.c", "kws_weights.c"])


def model_json(plan: Plan) -> dict:
    """The machine-readable facts of a generated folder (``kws_model.json``)."""
    meta = plan.bundle.meta
    return {
        "tool": f"kws-export {__version__}",
        "model": {"name": meta["model"].get("name"), "sha256": meta["model"]["sha256"],
                  "config": meta["model"]["config"], "labels": meta["model"]["labels"]},
        "bundle": {"sha256": plan.bundle_digest},
        "variant": plan.variant,
        "c_sources": c_sources(),
        "n_frames": int(meta["model"]["n_frames"]),
        "memory": {"arena_bytes": plan.arena_bytes, "network_state_bytes": plan.state_bytes,
                   "const_bytes": plan.const_bytes,
                   "buffers": [{k: v for k, v in bf.items() if k != "macro"} for bf in plan.buffers]},
        "macs": macs_per_inference(plan.bundle),
        "taps": {"words_per_clip": plan.tap_words,
                 "tensors": [{"id": t.id, "name": t.name, "per_frame": t.per_frame, "n": t.n,
                              "dtype": t.dtype, "offset": t.offset} for t in plan.taps]},
        "logits": {"scale": plan.logits["scale"], "zero_point": plan.logits["zero_point"]},
    }


@dataclass
class GenerateResult:
    """What :func:`generate_c` wrote."""

    out_dir: Path
    files: list
    plan: Plan

    def summary(self) -> str:
        p = self.plan
        return (f"{self.out_dir}: {len(self.files)} files, variant {p.variant}; arena "
                f"{p.arena_bytes} B, network state {p.state_bytes} B, weights+LUTs "
                f"{p.const_bytes} B")


def generate_c(source, out_dir, *, force: bool = False, argv: Sequence[str] | None = None,
               variant: str = "fast", progress: bool = False) -> GenerateResult:
    """Generate the C project of a model (``kws-export generate``).

    Args:
        source: bundle path, :class:`Bundle` or float checkpoint (see :func:`load_source`).
        out_dir: output folder, written atomically (built in a temp sibling, then renamed).
        force: replace an existing ``out_dir``.
        argv: command line stamped into the files (no timestamps: same inputs, same bytes).
        variant: kernel variant, "fast" or "reference" (same integers).
        progress: progress bar while quantizing a checkpoint.
    Returns:
        :class:`GenerateResult`.
    Raises:
        TypeError: ``source`` not a Bundle or str/PathLike, ``out_dir`` not a str/PathLike.
        CodegenError: unknown ``variant`` (these three checked before any work), an
            unsupported op or width.
        OutputExistsError: ``out_dir`` exists and not ``force`` (checked before any work).
        BundleError, CheckpointError, ...: see :func:`load_source`.
    """
    from cmsis_stub import stub_root
    from export.fileio import check_output
    from firmware_templates import template_root
    _check_source(source)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path (str or PathLike), got "
                        f"{type(out_dir).__name__}")
    if variant not in VARIANTS:
        raise CodegenError(f"kernel variant '{variant}': must be one of {', '.join(VARIANTS)}")
    out_dir = Path(out_dir)
    check_output(out_dir, force, expect="folder", inputs=[source])
    bundle = load_source(source, progress=progress)
    plan = plan_model(bundle, variant)
    files = render(plan, argv)
    with atomic_output_dir(out_dir, force=force) as tmp:
        for name, text in sorted(files.items()):
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(text.encode("utf-8"))
        kernels = template_root() / "kernels"
        for pat in KERNEL_FILES_GLOB:
            for p in sorted(kernels.glob(pat)):
                shutil.copyfile(p, tmp / p.name)
        for p in sorted(stub_root().glob("*.h")):
            shutil.copyfile(p, tmp / p.name)
        save_bundle(Bundle(meta=bundle.meta, arrays=bundle.arrays), tmp / BUNDLE_COPY)
        (tmp / MODEL_JSON).write_text(json.dumps(model_json(plan), indent=1) + "\n")
        written = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return GenerateResult(out_dir, written, plan)


# =======================================================================================
# reading a generated folder back (verify, build, firmware checks)
# =======================================================================================

_HASH_MACRO_RE = re.compile(r'#define\s+KWS_MODEL_SHA256\s+"([0-9a-fA-F]+)"')
_BUNDLE_MACRO_RE = re.compile(r'#define\s+KWS_BUNDLE_SHA256\s+"([0-9a-fA-F]+)"')


def _recorded_sha256(folder, macro: re.Pattern, section: str) -> str | None:
    """A hash a generated folder records: ``macro`` in ``kws_model.h`` (what the compiled
    code says), else ``SECTION.sha256`` of ``kws_model.json``; lower-case hex or None."""
    folder = Path(folder)
    header = folder / "kws_model.h"
    if header.is_file():
        m = macro.search(header.read_text(errors="replace"))
        if m:
            return m.group(1).lower()
    mj = folder / MODEL_JSON
    if mj.is_file():
        try:
            h = json.loads(mj.read_text()).get(section, {}).get("sha256")
        except (ValueError, AttributeError):
            return None
        return h.lower() if isinstance(h, str) and h else None
    return None


def recorded_bundle_digest(folder) -> str | None:
    """The :func:`export.bundle.bundle_digest` of the bundle a generated folder's C code
    was made from: ``KWS_BUNDLE_SHA256`` in ``kws_model.h``, else ``bundle.sha256`` of
    ``kws_model.json``; None when neither records one (older or hand-written folders).

    Args:
        folder: a ``kws-export generate`` folder.
    Returns:
        lower-case hex sha256, or None.
    """
    return _recorded_sha256(folder, _BUNDLE_MACRO_RE, "bundle")


def recorded_model_hash(folder) -> str | None:
    """The model hash a generated folder's C code was made from.

    Args:
        folder: a ``kws-export generate`` folder (or any model C folder).
    Returns:
        the hex sha256 of ``KWS_MODEL_SHA256`` in ``kws_model.h`` (what the compiled code
        says), else ``model.sha256`` of ``kws_model.json``; None when neither records one
        (hand-written C, the stand-in model).
    """
    return _recorded_sha256(folder, _HASH_MACRO_RE, "model")


def load_folder_bundle(folder) -> Bundle:
    """The bundle copy (``bundle.npz``) of a generated folder, checked to be the model its
    C code was made from: the one check shared by ``kws-export verify`` and ``build``
    (and the firmware-vs-simulator checks), so a ``bundle.npz`` swapped for another model's
    is refused up front instead of showing up as a mismatching intermediate.

    Args:
        folder: a folder holding ``bundle.npz`` (and ``kws_model.h``/``kws_model.json``).
    Returns:
        the loaded :class:`Bundle`.
    Raises:
        BundleError: ``bundle.npz`` missing or corrupt (see :func:`load_bundle`).
        CodegenError: its ``model.sha256`` differs from :func:`recorded_model_hash`, or
            its :func:`export.bundle.bundle_digest` from :func:`recorded_bundle_digest`
            (the same model quantized differently); one line naming ``bundle.npz`` and
            both hashes' first 12 hex digits.
    """
    path = Path(folder) / BUNDLE_COPY
    bundle = load_bundle(path)
    want = recorded_model_hash(folder)
    have = str(bundle.meta["model"]["sha256"]).lower()
    if want is not None and have != want:
        raise CodegenError(f"{path}: model {have[:12]} does not match the generated code's "
                           f"{want[:12]} (re-run kws-export generate)")
    want = recorded_bundle_digest(folder)
    have = bundle_digest(bundle)
    if want is not None and have != want:
        raise CodegenError(f"{path}: bundle {have[:12]} is another quantization of this model "
                           f"than the generated code's {want[:12]} (re-run kws-export "
                           "generate)")
    return bundle


#: the host driver of a generated folder (``kws-export verify`` compiles it; the firmware
#: does not).
HOST_MAIN = "host/kws_host_main.c"


def missing_c_sources(folder, info: dict | None = None, *, host: bool = False) -> list[str]:
    """The C files a generated folder's ``kws_model.json`` lists (``c_sources``) that are
    not in the folder, checked before anything is compiled so a deleted file is named
    instead of showing up as a link error or a traceback.

    Args:
        folder: a ``kws-export generate`` folder; any other folder (no ``kws_model.json``:
            the stand-in model, hand-written C) has no list and gives ``[]``.
        info: its ``kws_model.json`` when already read.
        host: also require :data:`HOST_MAIN` (what ``kws-export verify`` compiles).
    Returns:
        folder-relative names of the missing files, in list order ([] when complete).
    Raises:
        CodegenError: ``kws_model.json`` is corrupt or has no list of file names under
            ``c_sources``.
    """
    folder = Path(folder)
    mj = folder / MODEL_JSON
    if info is None:
        if not mj.is_file():
            return []
        try:
            info = json.loads(mj.read_text())
        except (ValueError, UnicodeDecodeError):
            raise CodegenError(f"{mj}: corrupt JSON; regenerate the folder") from None
    names = info.get("c_sources") if isinstance(info, dict) else None
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) and n and not Path(n).is_absolute()
                       for n in names)):
        raise CodegenError(f"{mj}: missing or invalid 'c_sources' (a list of the folder's "
                           f".c files); regenerate the folder with kws-export generate")
    return [n for n in names + ([HOST_MAIN] if host else []) if not (folder / n).is_file()]


def incomplete_folder_message(folder, missing: list[str]) -> str:
    """The one-line message for a generated folder missing the files ``missing`` (from
    :func:`missing_c_sources`), raised by ``verify`` and ``build`` in their own error class."""
    return (f"{folder}: incomplete generated folder: {', '.join(missing)} missing (listed in "
            f"{MODEL_JSON}); regenerate it with kws-export generate")
