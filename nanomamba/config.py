"""NanoMamba model configurations and the constants of its audio front end.

The three published sizes (Tiny, Small, Base) differ only in width and depth; the front
end (16 kHz, 512-point STFT, hop 160, 40 mel bands) is shared by all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Class labels in the order of the classifier's outputs (Speech Commands 12-class task).
LABELS: tuple[str, ...] = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "silence", "unknown",
)

SAMPLE_RATE = 16_000   #: Hz
CLIP_SAMPLES = 16_000  #: samples in one 1-s inference window
N_FFT = 512            #: STFT size, samples
HOP = 160              #: STFT hop, samples (10 ms)
N_BINS = N_FFT // 2 + 1          #: 257 one-sided frequency bins
N_FRAMES = CLIP_SAMPLES // HOP + 1  #: 101 centred frames per window
N_MELS = 40            #: mel bands
NOISE_FRAMES = 5       #: leading frames averaged for the per-bin noise estimate
LOG_EPS = 1e-8         #: added before log(mel energy)
SNR_EPS = 1e-8         #: added to the noise estimate before the SNR division
NORM_EPS = 1e-5        #: instance-norm and LayerNorm epsilon
SNR_TANH_SCALE = 10.0  #: snr_mel = tanh(mel_fb @ snr / SNR_TANH_SCALE)
#: Arithmetic of the float front end (STFT, |X|, SNR, mel, log, instance norm): "float64" or
#: "float32". float64 by default: in float32 the log-mel of a band 35+ dB below its frame's
#: peak carries the FFT's rounding (relative error ~1e-7 of the frame's energy) as an
#: absolute error of up to ~1e-3, which the instance norm multiplies by 1/std of the band;
#: float64 makes the front end a well-defined function of the audio (docs/FRONTEND.md).
FRONTEND_DTYPE = "float64"
FRONTEND_DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class NanoMambaConfig:
    """Width and depth of a NanoMamba network.

    Attributes:
        d_model: residual stream width.
        d_inner: SSM channel count (in_proj produces 2 * d_inner: u and the gate z).
        d_state: SSM state size N per channel.
        d_conv: causal depthwise conv1d kernel length (left padding d_conv - 1).
        n_layers: number of SA-SSM blocks.
        n_mels: mel bands of the front end (network input width).
        n_classes: classifier outputs.
    """

    d_model: int
    d_inner: int
    d_state: int
    d_conv: int
    n_layers: int
    n_mels: int = N_MELS
    n_classes: int = len(LABELS)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable)."""
        return asdict(self)


TINY = NanoMambaConfig(d_model=16, d_inner=24, d_state=4, d_conv=3, n_layers=2)
SMALL = NanoMambaConfig(d_model=24, d_inner=36, d_state=4, d_conv=3, n_layers=3)
BASE = NanoMambaConfig(d_model=40, d_inner=60, d_state=8, d_conv=4, n_layers=4)

CONFIGS: dict[str, NanoMambaConfig] = {"tiny": TINY, "small": SMALL, "base": BASE}


def config_name(cfg: NanoMambaConfig) -> str:
    """Name of a known configuration ("tiny", "small", "base") or "custom"."""
    for name, known in CONFIGS.items():
        if known == cfg:
            return name
    return "custom"
