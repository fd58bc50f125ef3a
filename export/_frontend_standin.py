"""TEMPORARY stand-in for export/frontend_fixed.py (the fixed-point front end being written on
branch ``fe``), with the same interface. Delete this file once frontend_fixed.py lands.

It is NOT integer: it runs the float front end in numpy (float64) and quantizes its two
outputs with fixed scales, so the quantizer, bundle and simulator can be built and measured
before the real front end exists.
"""

from __future__ import annotations

import numpy as np

from export.intmath import round_half_away
from nanomamba.config import HOP, LOG_EPS, N_FFT, NOISE_FRAMES, NORM_EPS, SNR_EPS, SNR_TANH_SCALE

#: Output formats of the stand-in: features int16 Q11 (range +-16), snr_mel int16 Q15.
OUTPUTS = {"features": {"dtype": "int16", "scale": 2.0 ** -11, "zero_point": 0},
           "snr_mel": {"dtype": "int16", "scale": 2.0 ** -15, "zero_point": 0}}
_RANGE = {"int8": (-128, 127), "int16": (-32768, 32767)}


def make_frontend_params(mel_fb: np.ndarray, noise_scale: float, outputs: dict | None = None) -> dict:
    """Front-end parameters: {"meta": {...}, "arrays": {"mel_fb": float32 (40, 257)}}.

    (The real front end stores integer arrays only; the stand-in keeps the float filterbank.)
    """
    outs = outputs or OUTPUTS
    return {"meta": {"kind": "float-standin", "noise_scale": float(noise_scale),
                     "outputs": {k: dict(v) for k, v in outs.items()}},
            "arrays": {"mel_fb": np.asarray(mel_fb, dtype=np.float32)}}


def _quant(x, spec):
    lo, hi = _RANGE[spec["dtype"]]
    q = round_half_away(x / spec["scale"]) + spec["zero_point"]
    return np.clip(q, lo, hi).astype(np.int8 if spec["dtype"] == "int8" else np.int16)


def run_frontend(params: dict, audio_int16: np.ndarray) -> dict:
    """int16 (B, 16000) -> {"features": (B, 101, 40), "snr_mel": (B, 101, 40), "mag": float}."""
    x = np.asarray(audio_int16, dtype=np.float64) / 32768.0
    pad = N_FFT // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = 1 + (xp.shape[1] - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    mag = np.abs(np.fft.rfft(xp[:, idx] * win, axis=-1))                 # (B, T, 257)
    fb = params["arrays"]["mel_fb"].astype(np.float64)
    noise = mag[:, :NOISE_FRAMES].mean(axis=1, keepdims=True)
    snr = mag / (abs(params["meta"]["noise_scale"]) * noise + SNR_EPS)
    snr_mel = np.tanh(snr @ fb.T / SNR_TANH_SCALE)
    logmel = np.log(mag @ fb.T + LOG_EPS)
    mean = logmel.mean(axis=1, keepdims=True)
    var = logmel.var(axis=1, keepdims=True)
    feats = (logmel - mean) / np.sqrt(var + NORM_EPS)
    outs = params["meta"]["outputs"]
    return {"features": _quant(feats, outs["features"]), "snr_mel": _quant(snr_mel, outs["snr_mel"])}
