"""Noise-robustness evaluation: accuracy of each inference route over noise types x SNR.

A *route* is anything that maps a batch of int16 clips to logits: the float PyTorch model
(:func:`float_route`), the int8 simulator (:func:`int8_route`, reading only the quantized
bundle), and later the firmware. Every route sees the very same int16 samples: each
condition's mixture is computed once in float64 (:func:`nanomamba.data.noise.mix_at_snr`,
RMS scaling over the 1-s window) and converted with :func:`nanomamba.audio.float_to_int16`;
the float route divides by 32768 as :func:`nanomamba.audio.load_audio` does.

Conditions: ``clean`` plus every (noise type, SNR) pair; noise segment ``i`` of a type is a
pure function of (seed, type, i), so results are reproducible and the same noise is used at
every SNR (only its gain changes).
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nanomamba.config import CLIP_SAMPLES, LABELS
from nanomamba.errors import KwsError

#: SNRs of the grid, dB.
DEFAULT_SNRS: tuple[float, ...] = (-15, -10, -5, 0, 5, 10, 15)
#: Generated noise types of the grid (see nanomamba.data.noise).
DEFAULT_NOISES: tuple[str, ...] = ("white", "pink", "babble", "factory", "street")

Route = Callable[[np.ndarray], "np.ndarray | tuple[np.ndarray, np.ndarray]"]
"""int16 (B, 16000) PCM -> float (B, 12) logits, or (logits, labels (B,) int) for a route
whose label is not the argmax of the logits it returns (the int8 route: the label comes from
the classifier's fine int32 grid, docs/QUANTIZATION.md "The label")."""


def route_output(out) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of a route's output: a ``(logits, labels)`` pair as is, plain logits
    with labels = their argmax (the first maximum).

    Args: out: float (B, C) logits or a pair (logits (B, C), labels (B,)).
    Returns: (logits float (B, C), labels int64 (B,)).
    """
    if isinstance(out, tuple):
        logits, labels = out
        return np.asarray(logits), np.asarray(labels, dtype=np.int64).reshape(-1)
    logits = np.asarray(out)
    return logits, logits.argmax(axis=1)


class EvaluateError(KwsError):
    """Bad evaluation input (route, noise type, data source)."""


# ----------------------------------------------------------------------------- routes

def float_route(model, batch_size: int = 256, threads: int | None = None) -> Route:
    """The float PyTorch model as a route.

    Args:
        model: a :class:`nanomamba.NanoMamba`; it is put in eval mode with the "loop" scan
            (same values as "chunked" to float rounding, faster at these batch sizes).
        batch_size: clips per forward pass.
        threads: ``torch.set_num_threads`` value (None: leave as is).
    Returns:
        route: int16 (B, 16000) -> float32 (B, 12) logits, computed on ``int16 / 32768``.
    """
    import torch

    from nanomamba.train import predict
    if threads:
        torch.set_num_threads(threads)
    model.eval()
    model.network.set_scan_mode("loop")     # fastest at batch sizes used here

    def run(audio: np.ndarray) -> np.ndarray:
        return predict(model, np.asarray(audio, dtype=np.int16), batch_size)
    return run


def int8_route(bundle, batch_size: int = 128, threads: int | None = None) -> Route:
    """The integer pipeline as a route: :class:`export.simulator.Simulator` on a bundle
    (fixed-point front end + integer network, int16 audio in, int8 logits out).

    Args:
        bundle: a quantized :class:`export.bundle.Bundle` (:func:`quantize_for_route`,
            ``export.quantize.quantize_model``) or the path of a bundle file
            (:func:`export.bundle.load_bundle`).
        batch_size: clips per simulator call (memory ~ 1 MB per clip).
        threads: simulator threads per call (None: min(2, CPU count)); the integers do not
            depend on it.
    Returns:
        route: int16 (B, 16000) -> (logits float64 (B, 12), labels int64 (B,)): the int8
        logits dequantized with the bundle's ``logits`` scale and zero point, and the
        model's label (the simulator's ``label``: argmax of the fine int32 ``logits_fine``,
        as the C runtime's kws_run returns it; it breaks ties of the int8 logits).
    Raises:
        EvaluateError: the simulator is not part of this build.
        BundleError: ``bundle`` is a path that is not a readable bundle.
    """
    try:
        from export.bundle import load_bundle
        from export.simulator import Simulator
    except ImportError:
        raise EvaluateError("route 'int8': export/simulator.py is not part of this build "
                            "(use --route float)") from None
    if isinstance(bundle, (str, os.PathLike)):
        bundle = load_bundle(bundle)
    sim = Simulator(bundle)
    threads = threads or max(1, min(2, os.cpu_count() or 1))

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, lab = [], []
        for s in range(0, len(audio), batch_size):
            r = sim.run(np.asarray(audio[s:s + batch_size], np.int16), keep={"logits", "label"},
                        frontend_intermediates=False, threads=threads)
            out.append(sim.dequantize("logits", r["logits"]))
            lab.append(r["label"].reshape(-1).astype(np.int64))
        if not out:
            return np.zeros((0, len(LABELS))), np.zeros(0, np.int64)
        return np.concatenate(out), np.concatenate(lab)
    return run


# ----------------------------------------------------------------------------- grid

@dataclass
class GridResult:
    """Accuracy (%) per route and condition, and top-1 agreement between routes.

    Attributes:
        routes: route names. noises: noise types. snrs: SNRs (dB).
        n_clips: clips per condition. source: description of the clips.
        accuracy: route -> condition -> accuracy in %; conditions are "clean" and
            "<noise>@<snr>" (e.g. "babble@-5").
        agreement: "<route>~<reference route>" -> condition -> % of clips where the two
            routes predict the same label.
        seconds: route -> inference seconds.
    """

    routes: list[str]
    noises: list[str]
    snrs: list[float]
    n_clips: int
    source: str = ""
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def conditions(self) -> list[str]:
        """"clean" then "<noise>@<snr>" in grid order."""
        return ["clean"] + [cond_name(n, s) for n in self.noises for s in self.snrs]

    def to_json(self) -> str:
        """Stable JSON text (sorted keys, 3-decimal percentages)."""
        d = asdict(self)
        for key in ("accuracy", "agreement"):
            d[key] = {r: {c: round(v, 3) for c, v in row.items()} for r, row in d[key].items()}
        d["seconds"] = {r: round(v, 1) for r, v in d["seconds"].items()}
        return json.dumps(d, indent=1, sort_keys=True) + "\n"

    def max_gap(self, route: str, reference: str = "float") -> tuple[float, str]:
        """Largest |accuracy(route) - accuracy(reference)| in percentage points, and where."""
        gaps = [(abs(self.accuracy[route][c] - self.accuracy[reference][c]), c)
                for c in self.conditions()]
        return max(gaps)


def cond_name(noise: str | None, snr: float | None) -> str:
    """Condition key: "clean" or "<noise>@<snr>" (SNR without a trailing .0)."""
    if noise is None:
        return "clean"
    return f"{noise}@{snr:g}"


def mixtures(audio: np.ndarray, noise: np.ndarray, snrs) -> dict[float, np.ndarray]:
    """int16 mixtures of clips and noise at each SNR.

    Args:
        audio: int16 (N, 16000) clean clips. noise: float32 (N, 16000) noise segments.
        snrs: SNRs in dB.
    Returns:
        SNR -> int16 (N, 16000) (float mix by :func:`nanomamba.data.noise.mix_at_snr`,
        then ``float_to_int16``).
    """
    from nanomamba.audio import float_to_int16
    from nanomamba.data.noise import mix_at_snr
    clean = audio.astype(np.float64) / 32768.0
    return {s: float_to_int16(mix_at_snr(clean, noise, s)) for s in snrs}


def evaluate_grid(routes: dict[str, Route], audio: np.ndarray, labels: np.ndarray, *,
                  noises=DEFAULT_NOISES, snrs=DEFAULT_SNRS, seed: int = 0,
                  noise_files: dict[str, np.ndarray] | None = None, babble=None,
                  reference: str | None = None, source: str = "",
                  progress: bool = True) -> GridResult:
    """Accuracy of every route on clean clips and on each (noise, SNR) mixture.

    Args:
        routes: name -> route (int16 (B, 16000) -> logits (B, 12)); order kept.
        audio: int16 (N, 16000) clean clips. labels: int64 (N,) indices into LABELS.
        noises: noise types (generated kinds, "recorded", "file:<stem>").
        snrs: SNRs in dB.
        seed: noise seed (segment i of a type depends only on (seed, type, i)).
        noise_files: recorded noise for "recorded"/"file:" types.
        babble: :class:`nanomamba.data.noise.BabbleBank` for "babble" (default bank when None).
        reference: route the others are compared with for agreement (default the first).
        source: description of the clips (kept in the result).
        progress: rich progress bar.
    Returns:
        :class:`GridResult`.
    Raises:
        EvaluateError: no routes or no clips. NoiseError: unknown noise type.
    """
    from rich.progress import Progress

    from nanomamba.data.noise import noise_batch

    if not routes:
        raise EvaluateError("no routes to evaluate")
    if len(audio) == 0:
        raise EvaluateError("no clips to evaluate")
    audio = np.asarray(audio, dtype=np.int16)
    labels = np.asarray(labels)
    names = list(routes)
    reference = reference or names[0]
    res = GridResult(names, list(noises), [float(s) for s in snrs], len(audio), source)
    for r in names:
        res.accuracy[r] = {}
        res.seconds[r] = 0.0
    for r in names:
        if r != reference:
            res.agreement[f"{r}~{reference}"] = {}

    def score(cond: str, x: np.ndarray) -> None:
        preds = {}
        for r in names:
            t0 = time.time()
            preds[r] = route_output(routes[r](x))[1]
            res.seconds[r] += time.time() - t0
            res.accuracy[r][cond] = 100.0 * float((preds[r] == labels).mean())
        for r in names:
            if r != reference:
                res.agreement[f"{r}~{reference}"][cond] = 100.0 * float((preds[r] == preds[reference]).mean())

    from rich import get_console
    # a bar on a terminal only (off one, rich would still write a stray line)
    with Progress(disable=not progress or not get_console().is_terminal,
                  transient=True) as bar:
        task = bar.add_task("evaluating", total=1 + len(noises) * len(snrs))
        score("clean", audio)
        bar.advance(task)
        for kind in noises:
            noise = noise_batch(kind, len(audio), CLIP_SAMPLES, seed, files=noise_files, babble=babble)
            for snr, mixed in mixtures(audio, noise, snrs).items():
                bar.update(task, description=f"{kind} {snr:+g} dB")
                score(cond_name(kind, snr), mixed)
                bar.advance(task)
    return res


# ----------------------------------------------------------------------------- reports

def grid_table(res: GridResult, title: str = ""):
    """A rich Table: one row per (noise type, route), columns clean and each SNR (%).
    Agreement rows follow each noise type's route rows."""
    from rich.table import Table
    t = Table(title=title or f"accuracy (%) on {res.n_clips} clips: {res.source}")
    t.add_column("noise")
    t.add_column("route")
    t.add_column("clean", justify="right")
    for s in res.snrs:
        t.add_column(f"{s:+g} dB", justify="right")
    for i, kind in enumerate(res.noises or [None]):     # None: clean only (no noise types)
        for r in res.routes:
            t.add_row(kind or "-", r, f"{res.accuracy[r]['clean']:.1f}",
                      *[_cell(res.accuracy[r], kind, s) for s in res.snrs])
        for a, row in res.agreement.items():
            t.add_row(kind or "-", f"agree {a}", f"{row['clean']:.1f}",
                      *[_cell(row, kind, s) for s in res.snrs], style="dim")
        if i < len(res.noises) - 1:
            t.add_section()
    return t


def _cell(row: dict, kind: str | None, snr: float) -> str:
    """One SNR cell of a grid row ("-" when there is no noise type: clean only)."""
    return "-" if kind is None else f"{row[cond_name(kind, snr)]:.1f}"


def markdown_table(res: GridResult) -> str:
    """The grid as a Markdown table (for docs)."""
    head = "| noise | route | clean | " + " | ".join(f"{s:+g} dB" for s in res.snrs) + " |"
    lines = [head, "|" + "---|" * (3 + len(res.snrs))]
    for kind in res.noises or [None]:                   # None: clean only (no noise types)
        for r in res.routes:
            lines.append(f"| {kind or '-'} | {r} | {res.accuracy[r]['clean']:.1f} | "
                         + " | ".join(_cell(res.accuracy[r], kind, s) for s in res.snrs) + " |")
    return "\n".join(lines) + "\n"


def plot_grid(res: GridResult, title: str = "") -> bytes:
    """PNG of accuracy vs SNR, one panel per noise type, one line per route (clean accuracy
    as a dashed line). Deterministic bytes (no timestamp/software metadata).

    Returns:
        PNG file content.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(res.noises)
    cols = min(k, 3) or 1
    rows = max(1, int(np.ceil(k / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False,
                             sharey=True)
    styles = ["-o", "--s", ":^", "-.d"]
    for i, kind in enumerate(res.noises):
        ax = axes[i // cols][i % cols]
        for j, r in enumerate(res.routes):
            ys = [res.accuracy[r][cond_name(kind, s)] for s in res.snrs]
            line, = ax.plot(res.snrs, ys, styles[j % len(styles)], label=r, markersize=4)
            ax.axhline(res.accuracy[r]["clean"], color=line.get_color(), linestyle=":",
                       linewidth=0.8)
        ax.set_title(kind)
        ax.set_xlabel("SNR (dB)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("accuracy (%)")
    for i in range(k, rows * cols):
        axes[i // cols][i % cols].axis("off")
    if k:
        axes[0][0].legend(loc="lower right", fontsize=8)
    else:                                    # clean only: say so rather than an empty plot
        axes[0][0].text(0.5, 0.5, "clean only: " + ", ".join(
            f"{r} {res.accuracy[r]['clean']:.1f} %" for r in res.routes),
            ha="center", va="center", fontsize=9, transform=axes[0][0].transAxes)
    fig.suptitle(title or f"{res.source} ({res.n_clips} clips; dotted: clean)", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ----------------------------------------------------------------------------- the command

def load_eval_clips(data: str | os.PathLike | None, *, generated: int | None = None,
                    data_seed: int = 1, limit_per_class: int | None = None,
                    cache_dir: str | None = None, espeak: str | None = None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """Clips to evaluate: a dataset folder's test split, or a generated test split.

    Args:
        data: Speech Commands V2 folder (its ``testing`` split) or label-folder layout.
        generated: when ``data`` is None: clips per label of the generated ``test`` split
            (held-out voices), seed ``data_seed``.
        limit_per_class: keep at most this many clips per label.
    Returns:
        (int16 (N, 16000), int64 (N,), description).
    Raises:
        EvaluateError: neither or both sources given; DatasetError/AudioError/EspeakError
            from the loaders.
    """
    if data is not None and generated:
        raise EvaluateError("give either --data or --generated, not both")
    if data is not None:
        from nanomamba.data.speech_commands import SpeechCommands
        sc = SpeechCommands(data)
        clips = sc.load(limit_per_class=limit_per_class, progress=progress)
        return clips.audio, clips.labels, f"{data} ({sc.splits[-1]})"
    if generated:
        from nanomamba.data.synth import generate_split
        n = generated if limit_per_class is None else min(generated, limit_per_class)
        ds = generate_split(n, seed=data_seed, split="test", cache_dir=cache_dir,
                            executable=espeak, progress=progress)
        return ds.audio, ds.labels, f"generated test split ({n}/label, seed {data_seed})"
    raise EvaluateError("give a dataset folder (--data) or a generated test split (--generated N)")


def is_recorded_kind(kind: str) -> bool:
    """True for the noise types read from a ``--noise-dir`` of recordings: ``recorded``
    (all files) and ``file:NAME`` (one file); the other types are generated."""
    return kind == "recorded" or kind.startswith("file:")


def run_evaluate(checkpoint: str | os.PathLike, *, data=None, generated: int | None = None,
                 data_seed: int = 1, routes=("float",), noises=DEFAULT_NOISES,
                 snrs=DEFAULT_SNRS, seed: int = 0, noise_dir=None,
                 limit_per_class: int | None = None, out: str | os.PathLike | None = None,
                 force: bool = False, cache_dir: str | None = None, espeak: str | None = None,
                 calib=None, bundle=None, console=None, progress: bool = True) -> GridResult:
    """``kws-export evaluate``: load the model and clips, run the grid, print the table, and
    write ``grid.json``, ``grid.md`` and ``grid.png`` into ``out``.

    Args:
        checkpoint: float checkpoint (``nanomamba.load_checkpoint``).
        data / generated / data_seed / limit_per_class: see :func:`load_eval_clips`.
        routes: any of "float", "int8" (quantized with ``calib``: a folder of clips or int16
            (N, 16000) clips; default the generated calibration set), or the saved
            ``bundle`` (a bundle file made from this checkpoint) when given.
        noises, snrs, seed, noise_dir: the grid (noise_dir feeds "recorded"/"file:" types).
        out: output folder (refused if it exists unless ``force``; written atomically).
    Returns:
        :class:`GridResult`.
    Raises:
        EvaluateError (also: ``bundle`` without route int8, or made from another model),
        BundleError, OutputExistsError, CheckpointError, DatasetError, AudioError,
        EspeakError, NoiseError, CalibrationError.
    """
    from nanomamba import load_checkpoint
    from nanomamba.data.noise import BabbleBank, GENERATED_KINDS, load_noise_files

    from export.report import output_console
    console = console or output_console()
    for r in routes:
        if r not in ("float", "int8"):
            raise EvaluateError(f"--route: unknown route '{r}' (expected float or int8)")
    for kind in noises:
        if kind not in GENERATED_KINDS and not is_recorded_kind(kind):
            raise EvaluateError(f"--noise: unknown noise type '{kind}' (expected "
                                f"{', '.join(GENERATED_KINDS)}, recorded or file:<name>)")
        if is_recorded_kind(kind) and noise_dir is None:
            raise EvaluateError(f"--noise {kind} needs --noise-dir (a folder of noise recordings)")
    if "int8" in routes:                       # fail before any slow work
        try:
            import export.quantize  # noqa: F401
            import export.simulator  # noqa: F401
        except ImportError as err:
            raise EvaluateError(f"route 'int8': export/{err.name.split('.')[-1] if err.name else 'simulator'}.py "
                                f"is not part of this build (use --route float)") from None
    if out is not None:
        from export.fileio import check_output
        check_output(out, force, expect="folder",
                     inputs=[x for x in (checkpoint, data, noise_dir, calib, bundle, cache_dir)
                             if x is not None])
    if data is not None and generated:
        raise EvaluateError("give either --data or --generated, not both")
    model = load_checkpoint(checkpoint)
    if bundle is not None:
        bundle = _bundle_for(model, checkpoint, bundle, routes)
    files = load_noise_files(noise_dir) if noise_dir is not None else None
    audio, labels, desc = load_eval_clips(data, generated=generated, data_seed=data_seed,
                                          limit_per_class=limit_per_class, cache_dir=cache_dir,
                                          espeak=espeak, progress=progress)
    route_fns: dict[str, Route] = {}
    for r in routes:
        if r == "float":
            route_fns["float"] = float_route(model)
        else:
            route_fns["int8"] = int8_route(bundle if bundle is not None else
                                           quantize_for_route(model, calib, progress=progress))
    babble = BabbleBank(cache_dir=cache_dir, executable=espeak) if "babble" in noises else None
    res = evaluate_grid(route_fns, audio, labels, noises=noises, snrs=snrs, seed=seed,
                        noise_files=files, babble=babble, source=f"{Path(checkpoint).name} on {desc}",
                        progress=progress)
    console.print(grid_table(res))
    for r in res.routes:
        if r != "float" and "float" in res.routes:
            gap, where = res.max_gap(r)
            console.print(f"{r} vs float: largest accuracy gap {gap:.2f} pp ({where})")
    if out is not None:
        from export.fileio import atomic_output_dir
        with atomic_output_dir(out, force=force) as tmp:
            (tmp / "grid.json").write_text(res.to_json())
            (tmp / "grid.md").write_text(markdown_table(res))
            (tmp / "grid.png").write_bytes(plot_grid(res))
        console.print(f"wrote {out}/grid.json, grid.md, grid.png")
    return res


def quantize_for_route(model, calib=None, *, progress: bool = False):
    """Quantize ``model`` in memory for the int8 route (``export.quantize.quantize_model``,
    default widths and options, as ``kws-export quantize`` does).

    Args:
        model: the float :class:`nanomamba.NanoMamba`.
        calib: int16 (N, 16000) calibration clips, or a folder of clips
            (``export.quantize.load_clip_folder``), or None for the quantizer's default
            generated calibration set (``export.quantize.generated_calibration_set``: espeak-ng
            words with noise, tones, chirps; disjoint from any evaluation data).
        progress: progress bar during calibration.
    Returns:
        the quantized :class:`export.bundle.Bundle`.
    Raises:
        EvaluateError: the quantizer is not part of this build.
        CalibrationError, AudioError, QuantizationError: from the quantizer.
    """
    try:
        from export.quantize import generated_calibration_set, load_clip_folder, quantize_model
    except ImportError:
        raise EvaluateError("route 'int8': export/quantize.py is not part of this build "
                            "(use --route float)") from None
    if calib is None:
        audio, _ = generated_calibration_set()
        desc = "generated (espeak-ng words + noise, tones, chirps; seed 0)"
    elif isinstance(calib, (str, os.PathLike)):
        audio, _ = load_clip_folder(calib)
        desc = str(calib)
    else:
        audio = np.asarray(calib, dtype=np.int16)
        desc = f"{len(audio)} clips given in memory"
    return quantize_model(model, audio, calibration={"source": desc}, progress=progress)


def _bundle_for(model, checkpoint, path, routes):
    """Load the bundle file ``path`` for the int8 route and check it was made from the
    model of ``checkpoint`` (same ``export.bundle.model_hash``).

    Raises: EvaluateError (no int8 route, other model), BundleError (unreadable bundle).
    """
    if "int8" not in routes:
        raise EvaluateError(f"--bundle {path}: only used by the int8 route (add --route int8)")
    from export.bundle import load_bundle, model_hash
    from nanomamba.checkpoint import published_state_dict
    b = load_bundle(path)
    want = model_hash({k: v.numpy() for k, v in published_state_dict(model).items()})
    if b.meta["model"]["sha256"] != want:
        raise EvaluateError(f"{path}: bundle was made from another model than {Path(checkpoint).name} "
                            f"(model sha256 {b.meta['model']['sha256'][:12]}... vs {want[:12]}...)")
    return b
