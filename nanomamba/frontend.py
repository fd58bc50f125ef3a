"""The float audio front end of NanoMamba: waveform -> (normalised log-mel, SNR-mel).

Semantics follow ``../shared/fixtures/README.md`` (the forward pass the published weights
were trained with):

1. STFT: n_fft 512, hop 160, periodic Hann window, centred frames with reflect padding
   (``torch.stft(center=True)``) -> 101 frames x 257 bins; magnitude |X|.
2. SNR estimate: noise_k = mean of |X| over the first 5 frames per bin;
   snr = |X| / (|noise_scale| * noise + 1e-8); snr_mel = tanh((mel_fb @ snr) / 10).
3. Features: log(mel_fb @ |X| + 1e-8), instance norm per mel band over the 101 frames
   (biased variance, eps 1e-5, no affine).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import (HOP, LOG_EPS, N_BINS, N_FFT, N_MELS, NOISE_FRAMES, NORM_EPS,
                     SNR_EPS, SNR_TANH_SCALE)


def stft_magnitude(audio: torch.Tensor) -> torch.Tensor:
    """|STFT| of 1-s clips.

    Args:
        audio: float tensor (batch, 16000), samples in [-1, 1].
    Returns:
        float tensor (batch, 101, 257): magnitude per frame and bin (frames on dim 1).
    Source: ``torch.stft(n_fft=512, hop_length=160, window=hann(512, periodic),
    center=True, pad_mode='reflect')``.
    """
    window = torch.hann_window(N_FFT, periodic=True, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, n_fft=N_FFT, hop_length=HOP, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
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
            mel_fb: (40, 257) mel filterbank.
        Returns:
            (batch, frames, 40) snr_mel in (-1, 1) (in practice [0, 1)).
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
    """

    def __init__(self, n_mels: int = N_MELS) -> None:
        super().__init__()
        self.register_buffer("mel_fb", torch.zeros(n_mels, N_BINS))
        self.snr_estimator = SNREstimator()

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the front end.

        Args:
            audio: float (batch, 16000) or (16000,), samples in [-1, 1].
        Returns:
            features: float (batch, 101, 40), log-mel after per-band instance norm.
            snr_mel: float (batch, 101, 40), tanh-squashed mel-projected SNR in [0, 1).
        """
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        mag = stft_magnitude(audio)
        snr_mel = self.snr_estimator(mag, self.mel_fb)
        logmel = torch.log(torch.matmul(mag, self.mel_fb.t()) + LOG_EPS)
        return instance_norm_time(logmel), snr_mel
