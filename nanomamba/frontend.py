"""The float audio front end of NanoMamba: waveform -> (normalised log-mel, SNR-mel).

Semantics follow ``../shared/fixtures/README.md`` (the forward pass the published weights
were trained with):

1. STFT: n_fft 512, hop 160, periodic Hann window, centred frames with reflect padding
   (``torch.stft(center=True)``) -> 101 frames x 257 bins; magnitude |X|.
2. SNR estimate: noise_k = mean of |X| over the first 5 frames per bin;
   snr = |X| / (|noise_scale| * noise + 1e-8); snr_mel = tanh((mel_fb @ snr) / 10).
3. Features: log(mel_fb @ |X| + 1e-8), instance norm per mel band over the 101 frames
   (biased variance, eps 1e-5, no affine).

Arithmetic: :class:`FrontEnd` computes all of it in float64 by default
(``nanomamba.config.FRONTEND_DTYPE``) and returns float32 (the parameters' dtype). In float32
the result is ill-conditioned on real clips: the FFT's rounding is ~1e-7 of the frame's
energy in every bin, so the top mel band (7-8 kHz), often 35+ dB below the frame's peak,
gets a relative mel error of up to ~8e-4; log turns that into the same absolute error of the
log-mel, the instance norm multiplies it by 1/std of the band over time (~5-7), and logits
move by up to 3.4e-4 between two float32 FFTs (PyTorch's and an exact one). In float64 that
noise is ~1e-12, so two correct implementations (PyTorch, onnxruntime, numpy) agree to float32
rounding of the outputs. ``compute_dtype="float32"`` gives the original float32 arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import (FRONTEND_DTYPE, FRONTEND_DTYPES, HOP, LOG_EPS, N_BINS, N_FFT, N_MELS,
                     NOISE_FRAMES, NORM_EPS, SNR_EPS, SNR_TANH_SCALE)


def stft_magnitude(audio: torch.Tensor) -> torch.Tensor:
    """|STFT| of 1-s clips.

    Args:
        audio: float32 or float64 tensor (batch, 16000), samples in [-1, 1].
    Returns:
        tensor (batch, 101, 257) of audio's dtype: magnitude per frame and bin (frames on
        dim 1), computed in audio's dtype.
    Source: ``torch.stft(n_fft=512, hop_length=160, window=hann(512, periodic),
    center=True, pad_mode='reflect')``; magnitude ``abs`` (float32) or sqrt(re^2 + im^2)
    (float64).
    """
    window = torch.hann_window(N_FFT, periodic=True, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, n_fft=N_FFT, hop_length=HOP, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    if audio.dtype == torch.float64:
        # sqrt(re^2 + im^2): 2-3x faster than the complex abs (hypot) in double, same value
        # to 1 ulp (|X| <= 512 for samples in [-1, 1]: no overflow to guard against)
        ri = torch.view_as_real(spec)
        return torch.sqrt(ri[..., 0] * ri[..., 0] + ri[..., 1] * ri[..., 1]).transpose(1, 2)
    return spec.abs().transpose(1, 2)


class SNREstimator(nn.Module):
    """Per-bin SNR from the leading frames, projected to mel bands and squashed by tanh.

    Parameters (checkpoint keys ``snr_estimator.*``): ``noise_scale`` (scalar, used as
    |noise_scale|) and ``floor`` (scalar, stored by the reference code but unused in its
    forward pass; kept so checkpoints load strictly).
    """

    def __init__(self) -> None:
        super().__init__()
        self.noise_scale = nn.Parameter(torch.tensor(1.0))
        self.floor = nn.Parameter(torch.tensor(0.02))

    def forward(self, mag: torch.Tensor, mel_fb: torch.Tensor) -> torch.Tensor:
        """SNR-mel.

        Args:
            mag: (batch, frames, 257) STFT magnitude.
            mel_fb: (40, 257) mel filterbank, same dtype as ``mag``.
        Returns:
            (batch, frames, 40) snr_mel in (-1, 1) (in practice [0, 1)), dtype of ``mag``
            (``noise_scale`` is a 0-d tensor: it does not change the computation dtype).
        """
        noise = mag[:, :NOISE_FRAMES, :].mean(dim=1, keepdim=True)
        snr = mag / (self.noise_scale.abs() * noise + SNR_EPS)
        return torch.tanh(torch.matmul(snr, mel_fb.t()) / SNR_TANH_SCALE)


def instance_norm_time(x: torch.Tensor) -> torch.Tensor:
    """Normalise each band over time: (x - mean_t) / sqrt(var_t + 1e-5), biased variance.

    Args:
        x: (batch, frames, bands).
    Returns:
        same shape.
    """
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + NORM_EPS)


class FrontEnd(nn.Module):
    """Waveform -> (features, snr_mel), the float reference of the audio front end.

    Buffers: ``mel_fb`` (40, 257) mel filterbank, taken from the checkpoint.

    Args:
        n_mels: mel bands (40).
        compute_dtype: arithmetic of every step, "float64" (default,
            ``nanomamba.config.FRONTEND_DTYPE``: see the module docstring) or "float32".
            Not part of the state dict; settable later (``model.frontend.compute_dtype``).
    Raises:
        ValueError: unknown ``compute_dtype``.
    """

    def __init__(self, n_mels: int = N_MELS, compute_dtype: str = FRONTEND_DTYPE) -> None:
        super().__init__()
        self.register_buffer("mel_fb", torch.zeros(n_mels, N_BINS))
        self.snr_estimator = SNREstimator()
        self.compute_dtype = compute_dtype

    @property
    def compute_dtype(self) -> str:
        """"float64" or "float32": the arithmetic of :meth:`forward`."""
        return self._compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, value: str) -> None:
        if value not in FRONTEND_DTYPES:
            raise ValueError(f"front end compute_dtype: {value!r} (expected one of "
                             f"{', '.join(FRONTEND_DTYPES)})")
        self._compute_dtype = value

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the front end.

        Args:
            audio: float (batch, 16000) or (16000,), samples in [-1, 1].
        Returns:
            features: (batch, 101, 40), log-mel after per-band instance norm.
            snr_mel: (batch, 101, 40), tanh-squashed mel-projected SNR in [0, 1).
            Both in ``mel_fb``'s dtype (float32 unless the module was converted), computed
            in :attr:`compute_dtype` (float64 if the module itself is float64).
        """
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        out_dtype = self.mel_fb.dtype
        work = torch.float64 if (self.compute_dtype == "float64"
                                 or out_dtype == torch.float64) else torch.float32
        mel_fb = self.mel_fb.to(work)
        mag = stft_magnitude(audio.to(work))
        snr_mel = self.snr_estimator(mag, mel_fb)
        logmel = torch.log(torch.matmul(mag, mel_fb.t()) + LOG_EPS)
        return instance_norm_time(logmel).to(out_dtype), snr_mel.to(out_dtype)
