"""NanoMamba in PyTorch: the SA-SSM network and the full waveform-to-logits model.

Forward semantics follow ``../shared/fixtures/README.md`` (facts of the authors' reference
code, restated). Shapes use B = batch, T = frames (101 for a 1-s clip), M = n_mels (40),
D = d_model, E = d_inner, N = d_state.

The network can record named intermediate tensors into a ``taps`` dict; the quantizer
(``export/``) uses them for calibration. Tap names are listed in :data:`TAP_NAMES`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import LABELS, NORM_EPS, NanoMambaConfig
from .frontend import FrontEnd

#: Per-block tap names (prefixed "blocks.{i}.") recorded by :meth:`Network.forward`.
BLOCK_TAP_NAMES = (
    "norm", "u", "z", "conv", "u_act", "dt_raw", "B", "C", "dt_shift", "g",
    "dt_in", "delta", "gate", "B_gated", "dA", "h", "y_ssm", "z_act", "y_gated", "out",
)
#: Network-level tap names.
TAP_NAMES = ("features", "snr_mel", "patch", "final_norm", "pooled", "logits")


def _tap(taps: dict | None, name: str, value: torch.Tensor) -> None:
    if taps is not None:
        taps[name] = value.detach()


class _LinearRecurrence(torch.autograd.Function):
    """h_t = a_t * h_{t-1} + x_t over dim 1 (h_0 = 0), with a hand-written backward:
    g_t = dL/dh_t + a_{t+1} g_{t+1}; dL/dx_t = g_t; dL/da_t = g_t h_{t-1}. The same values
    and gradients as autograd through the step-by-step loop, without a T-step autograd graph
    (several times faster to train)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = torch.empty_like(x)
        prev = torch.zeros_like(x[:, 0])
        for t in range(x.shape[1]):
            prev = a[:, t] * prev + x[:, t]
            h[:, t] = prev
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        T = h.shape[1]
        grad_x = torch.empty_like(grad_h)
        g = torch.zeros_like(grad_h[:, 0])
        for t in range(T - 1, -1, -1):
            g = grad_h[:, t] + (a[:, t + 1] * g if t + 1 < T else 0.0)
            grad_x[:, t] = g
        grad_a = torch.zeros_like(a)
        grad_a[:, 1:] = grad_x[:, 1:] * h[:, :-1]
        return grad_a, grad_x


SCAN_MODES = ("loop", "chunked", "recurrence")


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor, mode: str = "chunked",
                   chunk: int = 16, return_h: bool = False):
    """The SA-SSM recurrence h_t = exp(A*delta_t) . h_{t-1} + delta_t * B_t * u_t, h_0 = 0,
    y_t = sum_n C_t[n] h_t[:, n] + D . u_t (Mamba, Gu & Dao 2023, eq. 2a-2b with ZOH A and
    Euler B, as in the reference code).

    Args:
        u: (B, T, E) SSM input.
        delta: (B, T, E) positive step sizes.
        A: (E, N) negative decay rates.
        B: (B, T, N) input matrix per frame (already SNR-gated).
        C: (B, T, N) output matrix per frame.
        D: (E,) skip gain.
        mode: "loop" (step by step, the definition), "chunked" (exact in real arithmetic:
            within chunks of ``chunk`` frames the state is a masked sum of decayed inputs,
            across chunks it is carried) or "recurrence" (the loop's values with a
            hand-written backward, :class:`_LinearRecurrence`; fastest to train).
        return_h: also return the state sequence.
    Returns:
        y (B, T, E), and h (B, T, E, N) when ``return_h``.
    Raises:
        ValueError: unknown mode.
    """
    bsz, T, E = u.shape
    N = A.shape[1]
    log_dA = delta.unsqueeze(-1) * A                                    # (B,T,E,N) <= 0
    x = (delta * u).unsqueeze(-1) * B.unsqueeze(2)                      # (B,T,E,N)
    if mode == "recurrence":
        hseq = _LinearRecurrence.apply(torch.exp(log_dA), x)
    elif mode == "loop":
        h = u.new_zeros(bsz, E, N)
        hs = []
        dA = torch.exp(log_dA)
        for t in range(T):
            h = dA[:, t] * h + x[:, t]
            hs.append(h)
        hseq = torch.stack(hs, dim=1)
    elif mode == "chunked":
        outs = []
        h = u.new_zeros(bsz, E, N)
        for s in range(0, T, chunk):
            la = log_dA[:, s:s + chunk]                                 # (B,L,E,N)
            xs = x[:, s:s + chunk]
            L = la.shape[1]
            cum = torch.cumsum(la, dim=1)                               # (B,L,E,N)
            # decay from frame j (exclusive) to frame i (inclusive): exp(cum_i - cum_j), j <= i
            diff = cum.unsqueeze(2) - cum.unsqueeze(1)                  # (B,L_i,L_j,E,N)
            mask = torch.ones(L, L, dtype=torch.bool, device=u.device).tril()
            diff = diff.masked_fill(~mask[None, :, :, None, None], float("-inf"))
            w = torch.exp(diff)
            hc = torch.einsum("bijen,bjen->bien", w, xs) + torch.exp(cum) * h.unsqueeze(1)
            outs.append(hc)
            h = hc[:, -1]
        hseq = torch.cat(outs, dim=1)
    else:
        raise ValueError(f"unknown scan mode {mode!r} (expected one of {SCAN_MODES})")
    y = torch.einsum("bten,btn->bte", hseq, C) + D * u
    return (y, hseq) if return_h else y


class SASSM(nn.Module):
    """Spectral-Aware SSM: per-band SNR modulates the step delta and gates B.

    Checkpoint keys (prefix ``sa_ssm.``): ``A_log (E, N)``, ``D (E)``, ``alpha ()``,
    ``x_proj.weight (1+2N, E)``, ``snr_proj.{weight (1+N, M), bias}``,
    ``dt_proj.{weight (E, 1), bias (E)}``.
    """

    def __init__(self, cfg: NanoMambaConfig) -> None:
        super().__init__()
        E, N = cfg.d_inner, cfg.d_state
        self.d_state = N
        self.x_proj = nn.Linear(E, 1 + 2 * N, bias=False)
        self.snr_proj = nn.Linear(cfg.n_mels, 1 + N)
        self.dt_proj = nn.Linear(1, E)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.scan_mode = "chunked"

    def forward(self, u: torch.Tensor, snr_mel: torch.Tensor, taps: dict | None = None,
                prefix: str = "") -> torch.Tensor:
        """Args: u (B, T, E), snr_mel (B, T, M). Returns y (B, T, E)."""
        N = self.d_state
        dt_raw, B, C = torch.split(self.x_proj(u), [1, N, N], dim=-1)
        dt_shift, g = torch.split(self.snr_proj(snr_mel), [1, N], dim=-1)
        dt_in = dt_raw + dt_shift
        delta = F.softplus(self.dt_proj(dt_in))
        gate = 1.0 - self.alpha + self.alpha * torch.sigmoid(g)
        B_gated = B * gate
        A = -torch.exp(self.A_log)
        want_h = taps is not None
        out = selective_scan(u, delta, A, B_gated, C, self.D, mode=self.scan_mode, return_h=want_h)
        if want_h:
            y, h = out
            for name, val in (("dt_raw", dt_raw), ("B", B), ("C", C), ("dt_shift", dt_shift),
                              ("g", g), ("dt_in", dt_in), ("delta", delta), ("gate", gate),
                              ("B_gated", B_gated), ("h", h), ("y_ssm", y),
                              ("dA", torch.exp(delta.unsqueeze(-1) * A))):
                _tap(taps, prefix + name, val)
            return y
        return out


class Block(nn.Module):
    """Pre-norm residual block: x + out_proj(SA-SSM(SiLU(conv(u)), snr) * SiLU(z))."""

    def __init__(self, cfg: NanoMambaConfig) -> None:
        super().__init__()
        E = cfg.d_inner
        self.d_inner = E
        self.d_conv = cfg.d_conv
        self.norm = nn.LayerNorm(cfg.d_model, eps=NORM_EPS)
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, padding=cfg.d_conv - 1)
        self.sa_ssm = SASSM(cfg)
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, snr_mel: torch.Tensor, taps: dict | None = None,
                prefix: str = "") -> torch.Tensor:
        """Args: x (B, T, D), snr_mel (B, T, M). Returns (B, T, D)."""
        T = x.shape[1]
        xn = self.norm(x)
        u, z = torch.split(self.in_proj(xn), [self.d_inner, self.d_inner], dim=-1)
        conv = self.conv1d(u.transpose(1, 2))[:, :, :T].transpose(1, 2)   # causal
        u_act = F.silu(conv)
        y = self.sa_ssm(u_act, snr_mel, taps, prefix)
        z_act = F.silu(z)
        y_gated = y * z_act
        out = self.out_proj(y_gated) + x
        if taps is not None:
            for name, val in (("norm", xn), ("u", u), ("z", z), ("conv", conv), ("u_act", u_act),
                              ("z_act", z_act), ("y_gated", y_gated), ("out", out)):
                _tap(taps, prefix + name, val)
        return out


class Network(nn.Module):
    """Features -> logits: patch_proj, SA-SSM blocks, final LayerNorm, mean over time,
    classifier. The part of NanoMamba after the audio front end."""

    def __init__(self, cfg: NanoMambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_proj = nn.Linear(cfg.n_mels, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=NORM_EPS)
        self.classifier = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, features: torch.Tensor, snr_mel: torch.Tensor,
                taps: dict | None = None) -> torch.Tensor:
        """Args:
            features: float (B, T, M) normalised log-mel.
            snr_mel: float (B, T, M) SNR-mel in [0, 1).
            taps: optional dict filled with named intermediates (see TAP_NAMES).
        Returns:
            logits (B, n_classes).
        """
        _tap(taps, "features", features)
        _tap(taps, "snr_mel", snr_mel)
        x = self.patch_proj(features)
        _tap(taps, "patch", x)
        for i, block in enumerate(self.blocks):
            x = block(x, snr_mel, taps, f"blocks.{i}.")
        x = self.final_norm(x)
        _tap(taps, "final_norm", x)
        pooled = x.mean(dim=1)
        _tap(taps, "pooled", pooled)
        logits = self.classifier(pooled)
        _tap(taps, "logits", logits)
        return logits

    def set_scan_mode(self, mode: str) -> None:
        """Select the scan implementation of every block (one of :data:`SCAN_MODES`).

        Raises:
            ValueError: unknown mode.
        """
        if mode not in SCAN_MODES:
            raise ValueError(f"unknown scan mode {mode!r} (expected one of {SCAN_MODES})")
        for block in self.blocks:
            block.sa_ssm.scan_mode = mode


class NanoMamba(nn.Module):
    """The whole float model: waveform (B, 16000) in [-1, 1] -> logits (B, 12).

    ``frontend`` (:class:`FrontEnd`) and ``network`` (:class:`Network`) are separate modules
    so later stages can quantize each. Use :func:`nanomamba.load_checkpoint` to build one
    from a published checkpoint and :func:`nanomamba.checkpoint.published_state_dict` to
    get the published key layout back.
    """

    def __init__(self, cfg: NanoMambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = FrontEnd(cfg.n_mels)
        self.network = Network(cfg)

    def forward(self, audio: torch.Tensor, taps: dict | None = None) -> torch.Tensor:
        """Args: audio float (B, 16000) or (16000,). Returns logits (B, n_classes)."""
        features, snr_mel = self.frontend(audio)
        return self.network(features, snr_mel, taps)

    @torch.no_grad()
    def classify(self, audio) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Labels, softmax confidences (B,) and logits (B, 12) for a batch of clips.

        Args:
            audio: float samples in [-1, 1], (B, 16000) or one clip (16000,): a
                torch.Tensor or a numpy array (what :func:`nanomamba.audio.load_audio`
                returns; converted with ``torch.as_tensor``, no copy for float32).
        Returns:
            (labels: B label strings, confidences float (B,), logits float (B, 12)).
        Raises:
            TypeError: ``audio`` not a torch.Tensor or numpy array, or not floating point
                (int16 PCM: divide by 32768, or use ``load_audio(path)``'s float32).
            ValueError: ``audio`` not 1-D or 2-D, or empty.
        """
        if isinstance(audio, np.ndarray):
            audio = torch.as_tensor(audio)
        if not isinstance(audio, torch.Tensor):
            raise TypeError(f"audio: expected a torch.Tensor or numpy array of float samples "
                            f"in [-1, 1], got {type(audio).__name__}")
        if not audio.is_floating_point():
            raise TypeError(f"audio: expected float samples in [-1, 1], got {audio.dtype} "
                            f"(int16 PCM: divide by 32768)")
        if audio.dim() not in (1, 2) or audio.numel() == 0:
            raise ValueError(f"audio: expected shape (B, 16000) or (16000,), got "
                             f"{tuple(audio.shape)}")
        logits = self(audio)
        prob = torch.softmax(logits, dim=-1)
        conf, idx = prob.max(dim=-1)
        return [LABELS[i] for i in idx.tolist()], conf, logits


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count (the mel_fb buffer is not a parameter)."""
    return sum(p.numel() for p in model.parameters())


def macs_per_inference(cfg: NanoMambaConfig, mel_nonzero: int, n_frames: int = 101) -> dict:
    """Multiply-accumulates of one 1-s inference, front end and network separately.

    Args:
        cfg: network configuration.
        mel_nonzero: non-zero entries of mel_fb (each costs one MAC per frame for the
            log-mel and one for the SNR-mel projection).
        n_frames: frames per window (101).
    Returns:
        dict with ``frontend``, ``network`` and per-part entries (MACs per window).
        Front end counts: Hann window 512, a 512-point real FFT as a 256-point complex
        radix-2 FFT (1,024 butterflies x 4 real multiplies) plus 256 x 4 for the real-FFT
        split, 2 x 257 for |X|^2, 257 SNR divisions, 2 x mel_nonzero for the two mel
        projections. Network counts every matrix product, the conv, the scan
        (dA*h, delta*B*u, C*h: 3 E N per frame) and D*u.
    """
    E, N, D, M = cfg.d_inner, cfg.d_state, cfg.d_model, cfg.n_mels
    fft = 256 // 2 * int(math.log2(256)) * 4 + 256 * 4
    fe_frame = 512 + fft + 2 * 257 + 257 + 2 * mel_nonzero
    parts = {
        "patch_proj": M * D,
        "in_proj": cfg.n_layers * D * 2 * E,
        "conv1d": cfg.n_layers * E * cfg.d_conv,
        "x_proj": cfg.n_layers * E * (1 + 2 * N),
        "snr_proj": cfg.n_layers * M * (1 + N),
        "dt_proj": cfg.n_layers * E,
        "scan": cfg.n_layers * (3 * E * N + E),
        "gate": cfg.n_layers * E,
        "out_proj": cfg.n_layers * E * D,
    }
    net = {k: v * n_frames for k, v in parts.items()}
    net["classifier"] = D * cfg.n_classes
    return {"frontend": fe_frame * n_frames, "network": sum(net.values()), "network_parts": net}
