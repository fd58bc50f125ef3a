"""Train NanoMamba on keyword clips (CPU), and the ``kws-train`` command.

Recipe (the NanoMamba paper's, restated): AdamW, learning rate 3e-3 for models below 20 K
parameters (1e-3 above), weight decay 0.01, cosine schedule over all steps (per step, to 0),
cross-entropy with label smoothing 0.1; waveform augmentation per clip: time shift
U(-100, +100) ms (zero fill), volume x U(0.8, 1.2), Gaussian noise with probability 0.3
(at an SNR of U(5, 30) dB re the clip's RMS).

Extras for robustness and synthetic-to-real transfer (all off unless asked for; the
project's default model uses them, see docs/DATA.md):

- ``noise_p``: mix a segment of a noise bank (generated white, pink, babble, factory,
  street and, with ``noise_dir``, recorded files) at an SNR of U(``snr_low``, ``snr_high``) dB;
- ``reverb_p``: convolve with a synthetic room impulse response (direct path plus
  exponentially decaying noise, RT60 U(0.1, 0.7) s), wet/dry mixed;
- ``speed_p``: speed perturbation, resampling by U(0.85, 1.15) (tempo, pitch and formants
  move together, like a different vocal tract), centred and cropped/zero-padded to 1 s;
- ``eq_p``: a random microphone-like response (high-pass U(50, 400) Hz, low-pass
  U(2.5, 8) kHz, spectral tilt U(-6, +6) dB per octave... applied as an FFT gain).

Everything is deterministic for a seed on a given machine and thread count
(``torch.set_num_threads(threads)``, default 2).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import CONFIGS, LABELS, N_BINS, N_FFT, N_MELS, SAMPLE_RATE, NanoMambaConfig
from .errors import KwsError
from .model import NanoMamba, count_parameters


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filterbank with FFT-bin corners (the one in the published checkpoints).

    HTK mel scale m = 2595 log10(1 + f / 700); n_mels + 2 points equally spaced in mel
    from fmin to fmax (default sample_rate / 2), converted to bins
    floor((n_fft + 1) f / sample_rate); filter i rises linearly from corner i to corner
    i+1 (value (k - l) / (c - l)) and falls to corner i+2 (value (r - k) / (r - c)), peak 1.
    Reproduces the published ``mel_fb`` to float32 rounding (max abs difference 3e-8).

    Returns:
        float32 (n_mels, n_fft // 2 + 1).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)          # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)          # noqa: E731
    corners = np.floor((n_fft + 1) * hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
                       / sample_rate).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        lo, c, hi = corners[i], corners[i + 1], corners[i + 2]
        for k in range(lo, c):
            fb[i, k] = (k - lo) / (c - lo)
        for k in range(c, hi):
            fb[i, k] = (hi - k) / (hi - c)
    return fb.astype(np.float32)


def new_model(cfg: NanoMambaConfig, seed: int = 0) -> NanoMamba:
    """A freshly initialised NanoMamba (PyTorch default inits, ``mel_fb`` from
    :func:`mel_filterbank`, SSM ``A_log = log(1..N)``), deterministic for ``seed``."""
    torch.manual_seed(seed)
    model = NanoMamba(cfg)
    with torch.no_grad():
        model.frontend.mel_fb.copy_(torch.from_numpy(mel_filterbank(cfg.n_mels)))
    assert model.frontend.mel_fb.shape == (cfg.n_mels, N_BINS)
    return model


@dataclass
class TrainConfig:
    """Training hyper-parameters (see the module docstring for the recipe)."""

    model: str = "tiny"
    epochs: int = 30
    batch_size: int = 64
    lr: float | None = None            # None: 3e-3 below 20 K parameters, else 1e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    shift_ms: float = 100.0
    volume: float = 0.2
    gauss_p: float = 0.3
    gauss_snr: tuple[float, float] = (5.0, 30.0)
    noise_p: float = 0.0
    snr_low: float = -5.0
    snr_high: float = 20.0
    reverb_p: float = 0.0
    eq_p: float = 0.0
    speed_p: float = 0.0
    seed: int = 0
    threads: int = 2
    noise_dir: str | None = None
    cache_dir: str | None = None
    espeak: str | None = None
    extra: dict = field(default_factory=dict)

    def resolved_lr(self, n_params: int) -> float:
        """The learning rate used: ``lr`` or the recipe's default for ``n_params``."""
        return self.lr if self.lr is not None else (3e-3 if n_params < 20_000 else 1e-3)


def recipe_json(tc: TrainConfig) -> str:
    """The hyper-parameters stored in a checkpoint's ``recipe`` (JSON, sorted keys; the
    machine-specific cache/espeak paths and the free-form ``extra`` left out)."""
    d = {k: v for k, v in asdict(tc).items() if k not in ("cache_dir", "espeak", "extra")}
    return json.dumps(d, sort_keys=True)


# ----------------------------------------------------------------------------- augmentation

class Augmenter:
    """Batched waveform augmentation in torch (float (B, 16000) in, same out).

    Args:
        tc: the training configuration (probabilities, ranges).
        noise_bank: float32 (K, L) unit-RMS noise streams (L >= 16000) for ``noise_p``.
    """

    def __init__(self, tc: TrainConfig, noise_bank: np.ndarray | None = None):
        self.tc = tc
        self.bank = torch.from_numpy(noise_bank) if noise_bank is not None else None
        g = torch.Generator().manual_seed(tc.seed + 7)
        self.rirs = self._make_rirs(64, g) if tc.reverb_p > 0 else None

    @staticmethod
    def _make_rirs(n: int, g: torch.Generator) -> torch.Tensor:
        length = 6000
        t = torch.arange(length) / SAMPLE_RATE
        rt60 = 0.1 + 0.6 * torch.rand(n, 1, generator=g)
        tail = torch.randn(n, length, generator=g) * torch.exp(-6.9 * t / rt60)
        pre = (torch.rand(n, 1, generator=g) * 80 + 20).long()      # 1-6 ms pre-delay of the tail
        mask = torch.arange(length)[None, :] >= pre
        rir = tail * mask
        rir = rir / rir.norm(dim=1, keepdim=True) * (0.3 + 0.9 * torch.rand(n, 1, generator=g))
        rir[:, 0] = 1.0
        return rir

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        tc = self.tc
        B, n = x.shape

        def coin(p: float) -> torch.Tensor:
            return torch.rand(B, generator=g) < p

        def rms(v: torch.Tensor) -> torch.Tensor:
            return v.pow(2).mean(dim=1).sqrt().clamp_min(1e-5)

        if self.rirs is not None:
            sel = coin(tc.reverb_p)
            if sel.any():
                idx = torch.randint(len(self.rirs), (int(sel.sum()),), generator=g)
                size = 1 << math.ceil(math.log2(n + self.rirs.shape[1]))
                wet = torch.fft.irfft(torch.fft.rfft(x[sel], size) * torch.fft.rfft(self.rirs[idx], size),
                                      size)[:, :n]
                x = x.clone()
                x[sel] = wet * rms(x[sel])[:, None] / rms(wet)[:, None]
        if tc.eq_p > 0:
            sel = coin(tc.eq_p)
            if sel.any():
                k = int(sel.sum())
                f = torch.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
                hp = 50 + 350 * torch.rand(k, 1, generator=g)
                lp = 2500 + 5500 * torch.rand(k, 1, generator=g)
                tilt = (torch.rand(k, 1, generator=g) * 12 - 6) / 20       # dB/octave -> log10 gain
                gain = (1 / torch.sqrt(1 + (hp / f.clamp_min(1.0)) ** 4)) \
                    * (1 / torch.sqrt(1 + (f / lp) ** 4)) \
                    * 10 ** (tilt * torch.log2(f.clamp_min(100.0) / 1000.0))
                y = torch.fft.irfft(torch.fft.rfft(x[sel]) * gain, n)
                x = x.clone()
                x[sel] = y * rms(x[sel])[:, None] / rms(y)[:, None]
        if tc.speed_p > 0:
            sel = torch.nonzero(coin(tc.speed_p)).flatten().tolist()
            if sel:
                x = x.clone()
                rates = 0.85 + 0.3 * torch.rand(len(sel), generator=g)
                for i, r in zip(sel, rates.tolist()):
                    m = max(8, int(round(n / r)))      # r > 1: faster and higher
                    y = F.interpolate(x[i][None, None], size=m, mode="linear", align_corners=False)[0, 0]
                    x[i] = y[:n] if m >= n else F.pad(y, ((n - m) // 2, n - m - (n - m) // 2))
        # time shift, zero fill
        max_shift = int(tc.shift_ms * SAMPLE_RATE / 1000)
        if max_shift > 0:
            s = torch.randint(-max_shift, max_shift + 1, (B, 1), generator=g)
            idx = torch.arange(n)[None, :] - s
            valid = (idx >= 0) & (idx < n)
            x = torch.gather(x, 1, idx.clamp(0, n - 1)) * valid
        # background noise from the bank
        if self.bank is not None and tc.noise_p > 0:
            sel = coin(tc.noise_p)
            k = int(sel.sum())
            if k:
                which = torch.randint(len(self.bank), (k,), generator=g)
                start = (torch.rand(k, generator=g) * (self.bank.shape[1] - n)).long()
                seg = self.bank[which[:, None], start[:, None] + torch.arange(n)[None, :]]
                snr = tc.snr_low + (tc.snr_high - tc.snr_low) * torch.rand(k, generator=g)
                gain = rms(x[sel]) / (rms(seg) * 10 ** (snr / 20))
                x = x.clone()
                x[sel] = x[sel] + gain[:, None] * seg
        # the recipe's Gaussian noise
        sel = coin(tc.gauss_p)
        k = int(sel.sum())
        if k:
            snr = tc.gauss_snr[0] + (tc.gauss_snr[1] - tc.gauss_snr[0]) * torch.rand(k, generator=g)
            x = x.clone()
            x[sel] = x[sel] + torch.randn(k, n, generator=g) * (rms(x[sel]) / 10 ** (snr / 20))[:, None]
        # volume
        x = x * (1 + tc.volume * (2 * torch.rand(B, 1, generator=g) - 1))
        return x.clamp(-1.0, 1.0)


def noise_bank(seed: int, *, seconds: float = 8.0, noise_dir: str | None = None,
               cache_dir: str | None = None, espeak: str | None = None,
               kinds: tuple[str, ...] = ("white", "pink", "babble", "factory", "street"),
               per_kind: int = 4) -> np.ndarray:
    """Noise streams for training-time mixing: ``per_kind`` streams of ``seconds`` for each
    generated kind (babble talkers seeded apart from the evaluation's), plus every recorded
    file of ``noise_dir``, cropped or tiled to the same length.

    Returns:
        float32 (K, seconds * 16000), unit RMS rows.
    Raises:
        EspeakError: "babble" requested without espeak-ng (and no cache).
        NoiseError: bad ``noise_dir``.
    """
    from .data.noise import BabbleBank, generate_noise, load_noise_files, random_segment
    n = int(seconds * SAMPLE_RATE)
    babble = BabbleBank(seed=seed + 50_000, n_talkers=12, seconds=max(seconds, 10.0),
                        cache_dir=cache_dir, executable=espeak) if "babble" in kinds else None
    rows = []
    for kind in kinds:
        for j in range(per_kind):
            rows.append(generate_noise(kind, n, np.random.default_rng([seed, 77, j, len(rows)]),
                                       babble=babble))
    if noise_dir:
        rng = np.random.default_rng([seed, 78])
        for src in load_noise_files(noise_dir).values():
            seg = random_segment(src, n, rng)
            rows.append(seg / max(float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))), 1e-9))
    return np.stack(rows).astype(np.float32)


# ----------------------------------------------------------------------------- training

@torch.no_grad()
def predict(model: NanoMamba, audio: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float logits of clips.

    Args:
        model: the float model.
        audio: int16 (N, 16000) PCM or float32 (N, 16000) in [-1, 1].
        batch_size: clips per forward pass.
    Returns:
        float32 (N, n_classes) logits.
    """
    model.eval()
    out = []
    for s in range(0, len(audio), batch_size):
        chunk = audio[s:s + batch_size]
        x = torch.from_numpy(chunk.astype(np.float32) / (32768.0 if chunk.dtype == np.int16 else 1.0))
        out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)), np.float32)


def train(train_audio: np.ndarray, train_labels: np.ndarray, val_audio: np.ndarray,
          val_labels: np.ndarray, tc: TrainConfig, out: str | os.PathLike | None = None, *,
          progress: bool = True, log=print, noise: np.ndarray | None = None) -> dict:
    """Train a NanoMamba from scratch and keep the epoch with the best validation accuracy.

    Args:
        train_audio: int16 (N, 16000) PCM clips; train_labels: int64 (N,) label indices.
        val_audio, val_labels: the validation split, same types.
        tc: hyper-parameters.
        out: checkpoint path (published format, written atomically after each improving
            epoch); None = do not save.
        progress: tqdm progress bar per epoch.
        log: called with one summary line per epoch.
        noise: float32 (K, L) noise bank for ``tc.noise_p`` (built with :func:`noise_bank`
            when None and ``tc.noise_p > 0``).
    Returns:
        dict: ``model`` (best, eval mode), ``best_val_acc`` (%), ``best_epoch``,
        ``history`` (per-epoch loss, train acc, val acc, seconds), ``n_params``, ``lr``.
    Raises:
        KwsError: empty data or an unknown model size.
    """
    from tqdm import tqdm

    from .checkpoint import save_checkpoint

    if tc.model not in CONFIGS:
        raise KwsError(f"--model: unknown model size '{tc.model}' (expected {', '.join(CONFIGS)})")
    if len(train_audio) == 0 or len(val_audio) == 0:
        raise KwsError("training needs at least one training and one validation clip")
    torch.set_num_threads(tc.threads)
    model = new_model(CONFIGS[tc.model], tc.seed)
    model.network.set_scan_mode("recurrence")   # loop values, hand-written backward: fastest
    n_params = count_parameters(model)
    lr = tc.resolved_lr(n_params)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(train_audio) / tc.batch_size)
    total = steps_per_epoch * tc.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if noise is None and tc.noise_p > 0:
        noise = noise_bank(tc.seed, noise_dir=tc.noise_dir, cache_dir=tc.cache_dir, espeak=tc.espeak)
    aug = Augmenter(tc, noise)
    g = torch.Generator().manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    y_all = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    best = {"acc": -1.0, "epoch": 0, "state": None}
    history = []
    for epoch in range(1, tc.epochs + 1):
        t0 = time.time()
        model.train()
        order = rng.permutation(len(train_audio))
        tot_loss, tot_ok, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{tc.epochs}", unit="batch",
                   disable=None if progress else True, leave=False)
        for step in bar:
            idx = order[step * tc.batch_size:(step + 1) * tc.batch_size]
            x = torch.from_numpy(train_audio[idx].astype(np.float32) / 32768.0)
            y = y_all[idx]
            x = aug(x, g)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_ok += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{100 * tot_ok / seen:.1f}")
        bar.close()
        val_logits = predict(model, val_audio)
        val_acc = 100.0 * float((val_logits.argmax(1) == np.asarray(val_labels)).mean())
        rec = {"epoch": epoch, "loss": tot_loss / seen, "train_acc": 100.0 * tot_ok / seen,
               "val_acc": val_acc, "seconds": time.time() - t0}
        history.append(rec)
        improved = val_acc > best["acc"]
        if improved:
            best = {"acc": val_acc, "epoch": epoch,
                    "state": {k: v.clone() for k, v in model.state_dict().items()}}
            if out is not None:
                save_checkpoint(model, out, epoch=epoch, val_acc=val_acc,
                                extra={"recipe": recipe_json(tc), **tc.extra})
        log(f"epoch {epoch:3d}: loss {rec['loss']:.4f}  train {rec['train_acc']:5.1f} %  "
            f"val {val_acc:5.2f} %{'  *' if improved else ''}  ({rec['seconds']:.0f} s)")
    model.load_state_dict(best["state"])
    model.eval()
    return {"model": model, "best_val_acc": best["acc"], "best_epoch": best["epoch"],
            "history": history, "n_params": n_params, "lr": lr}


# ----------------------------------------------------------------------------- command line

def load_training_data(data: str, *, per_class: int, data_seed: int, cache_dir: str | None,
                       workers: int, espeak: str | None, noise_dir: str | None,
                       progress: bool) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    """Training and validation clips for ``kws-train``.

    Args:
        data: "generated" (espeak-ng clips: ``per_class`` per label for training, a tenth
            of that for validation, seed ``data_seed``) or a dataset folder (Speech
            Commands V2: its training and validation splits; label folders: a
            deterministic 90/10 split).
    Returns:
        ((train int16 (N, 16000), labels int64 (N,)), (val audio, val labels), description).
    Raises:
        EspeakError, DatasetError, AudioError.
    """
    if data == "generated":
        from .data.synth import generate_split
        kw = dict(seed=data_seed, cache_dir=cache_dir, workers=workers, executable=espeak,
                  noise_dir=noise_dir, progress=progress)
        tr = generate_split(per_class, split="train", **kw)
        va = generate_split(max(per_class // 10, 1), split="val", **kw)
        desc = (f"generated (espeak-ng): {per_class} train + {max(per_class // 10, 1)} val clips "
                f"per label, data seed {data_seed}")
        return (tr.audio, tr.labels), (va.audio, va.labels), desc
    from .data.speech_commands import SpeechCommands
    sc = SpeechCommands(data)
    if sc.layout == "v2":
        tr = sc.load("training", seed=data_seed, progress=progress)
        va = sc.load("validation", seed=data_seed, progress=progress)
        return (tr.audio, tr.labels), (va.audio, va.labels), f"Speech Commands V2 at {data}"
    allc = sc.load("all", progress=progress)
    rng = np.random.default_rng(data_seed)
    is_val = rng.random(len(allc.labels)) < 0.1
    return ((allc.audio[~is_val], allc.labels[~is_val]), (allc.audio[is_val], allc.labels[is_val]),
            f"label folders at {data} (90/10 split, seed {data_seed})")


def _canonical_command(ctx) -> str:
    """The full ``kws-train`` command line of this run, every option spelled out (machine
    specific ones, --cache/--workers/--espeak/--quiet/--force, left out)."""
    import shlex
    parts = ["kws-train", shlex.quote(str(ctx.params["out"]))]
    for p in ctx.command.params:
        if p.name in ("out", "cache", "workers", "espeak", "quiet", "force", "threads"):
            continue
        v = ctx.params[p.name]
        if v is None:
            continue
        flag = p.opts[0]
        if isinstance(v, tuple):
            parts += [flag, *(f"{x:g}" for x in v)]
        else:
            parts += [flag, shlex.quote(f"{v:g}" if isinstance(v, float) else str(v))]
    return " ".join(parts)


def _cli():
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("out", type=click.Path(path_type=Path))
    @click.option("--model", type=click.Choice(sorted(CONFIGS)), default="tiny", show_default=True)
    @click.option("--data", default="generated", show_default=True,
                  help="'generated' (espeak-ng clips) or a Speech Commands V2 / label-folder dataset.")
    @click.option("--per-class", type=int, default=1500, show_default=True,
                  help="Generated training clips per label (validation: a tenth).")
    @click.option("--data-seed", type=int, default=0, show_default=True)
    @click.option("--epochs", type=int, default=30, show_default=True)
    @click.option("--batch-size", type=int, default=64, show_default=True)
    @click.option("--lr", type=float, default=None, help="Default: 3e-3 below 20 K parameters, else 1e-3.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Initialisation/augmentation seed.")
    @click.option("--noise-p", type=float, default=0.0, show_default=True,
                  help="Probability of mixing background noise (generated types + --noise-dir files).")
    @click.option("--snr", "snr", type=(float, float), default=(-5.0, 20.0), show_default=True,
                  help="SNR range (dB) of the background noise.")
    @click.option("--reverb-p", type=float, default=0.0, show_default=True)
    @click.option("--eq-p", type=float, default=0.0, show_default=True)
    @click.option("--speed-p", type=float, default=0.0, show_default=True,
                  help="Probability of speed perturbation (x0.85-1.15).")
    @click.option("--noise-dir", type=click.Path(path_type=Path), default=None,
                  help="Recorded noise (e.g. Speech Commands' _background_noise_).")
    @click.option("--cache", "cache", type=click.Path(path_type=Path),
                  default=Path.home() / ".cache" / "nanomamba-kws", show_default=True,
                  help="Cache of generated clips and babble.")
    @click.option("--workers", type=int, default=2, show_default=True, help="espeak-ng processes.")
    @click.option("--threads", type=int, default=2, show_default=True, help="torch CPU threads.")
    @click.option("--espeak", default=None, help="espeak-ng executable (default $KWS_ESPEAK or espeak-ng).")
    @click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
    @click.option("--quiet", is_flag=True, help="No progress bars.")
    def main(out, model, data, per_class, data_seed, epochs, batch_size, lr, seed, noise_p, snr,
             reverb_p, eq_p, speed_p, noise_dir, cache, workers, threads, espeak, force, quiet):
        """Train a NanoMamba keyword spotter (CPU) and write OUT in the published checkpoint
        format (best validation epoch)."""
        try:
            if out.exists() and not force:
                raise KwsError(f"{out}: already exists (pass --force to overwrite)")
            if epochs < 1 or batch_size < 1 or per_class < 1:
                raise KwsError("--epochs, --batch-size and --per-class must be >= 1")
            torch.set_num_threads(threads)
            t0 = time.time()
            (xa, ya), (xv, yv), desc = load_training_data(
                data, per_class=per_class, data_seed=data_seed, cache_dir=str(cache),
                workers=workers, espeak=espeak, noise_dir=str(noise_dir) if noise_dir else None,
                progress=not quiet)
            click.echo(f"data: {desc}: {len(xa)} training, {len(xv)} validation clips "
                       f"({time.time() - t0:.0f} s)")
            command = _canonical_command(click.get_current_context())
            tc = TrainConfig(model=model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             noise_p=noise_p, snr_low=snr[0], snr_high=snr[1], reverb_p=reverb_p,
                             eq_p=eq_p, speed_p=speed_p, threads=threads,
                             noise_dir=str(noise_dir) if noise_dir else None,
                             cache_dir=str(cache), espeak=espeak,
                             extra={"train_command": command, "data": desc})
            res = train(xa, ya, xv, yv, tc, out, progress=not quiet, log=click.echo)
            click.echo(f"wrote {out}: {tc.model}, {res['n_params']:,} parameters, best val "
                       f"{res['best_val_acc']:.2f} % at epoch {res['best_epoch']} "
                       f"({time.time() - t0:.0f} s in all)")
        except KwsError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    return main


def main(argv: list[str] | None = None):
    """Entry point of ``kws-train`` (see ``kws-train --help``)."""
    return _cli()(args=argv, prog_name="kws-train")


if __name__ == "__main__":
    main()
