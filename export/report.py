"""Human-readable reports for the CLI (rich tables)."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

UNWRAPPED_WIDTH = 100_000
"""Console width (characters) used when stdout is not a terminal: nothing wraps."""


class _ReportConsole(Console):
    """rich Console whose closed-pipe handling is left to the caller: rich's own
    ``on_broken_pipe`` exits with status 1 (an error); this raises ``BrokenPipeError`` so the
    CLI can stop quietly with its pipe-closed status (``export.cli.PIPE_CLOSED_EXIT``)."""

    def on_broken_pipe(self) -> None:
        if not self.quiet:
            raise BrokenPipeError("stdout closed by its reader")


def output_console(**kwargs) -> Console:
    """The rich Console every CLI report prints on (stdout).

    On a terminal it has the terminal's width. Otherwise (a pipe, a file, a CI log) rich
    would assume 80 columns and wrap long lines and squeeze tables; here it gets
    :data:`UNWRAPPED_WIDTH` so each line comes out whole, as on a wide terminal. An explicit
    ``width=`` or a ``COLUMNS`` environment variable still wins. A closed stdout pipe raises
    ``BrokenPipeError`` (rich alone would exit with status 1).

    Args:
        **kwargs: passed to ``rich.console.Console``.
    """
    console = _ReportConsole(**kwargs)
    if "width" not in kwargs and "COLUMNS" not in os.environ and not console.is_terminal:
        console.width = UNWRAPPED_WIDTH
    return console


def module_parameter_table(model) -> list[tuple[str, int]]:
    """(module name, parameter count) rows: front end, patch_proj, each block's parts,
    final_norm, classifier. Args: model: a float NanoMamba."""
    rows: dict[str, int] = {}
    for name, p in model.named_parameters():
        parts = name.split(".")[1:]          # drop "frontend." / "network."
        if parts[0] == "blocks":
            depth = 4 if parts[2] == "sa_ssm" else 3
            key = ".".join(parts[:depth])
        else:
            key = parts[0]
        rows[key] = rows.get(key, 0) + p.numel()
    return list(rows.items())


def print_info(checkpoint: Path, clips: list[Path], console: Console | None = None) -> dict:
    """Print config, parameter table, MACs and (with clips) float predictions.

    Returns:
        dict with ``config``, ``params``, ``macs`` and ``predictions`` (label, confidence,
        logits per clip).
    Raises:
        CheckpointError, AudioError: bad checkpoint or clip.
    """
    import numpy as np
    import torch

    from nanomamba import LABELS, load_audio, load_checkpoint
    from nanomamba.config import config_name
    from nanomamba.model import count_parameters, macs_per_inference

    console = console or output_console()
    model = load_checkpoint(checkpoint)
    audio = [load_audio(c) for c in clips]   # read all clips before printing anything
    cfg = model.cfg
    n_params = count_parameters(model)
    mel_nz = int((model.frontend.mel_fb != 0).sum())
    macs = macs_per_inference(cfg, mel_nz)

    console.print(f"[bold]{checkpoint}[/bold]: {model.meta.get('model_name', 'NanoMamba')} "
                  f"({config_name(cfg)})")
    cfg_table = Table("setting", "value", title="configuration")
    for k, v in cfg.to_dict().items():
        cfg_table.add_row(k, str(v))
    cfg_table.add_row("mel_fb non-zeros", f"{mel_nz} of {model.frontend.mel_fb.numel()}")
    for k in ("epoch", "val_acc"):
        if k in model.meta:
            cfg_table.add_row(k, f"{model.meta[k]:.2f}" if isinstance(model.meta[k], float) else str(model.meta[k]))
    console.print(cfg_table)

    p_table = Table("module", "parameters", title=f"parameters: {n_params:,}")
    for name, n in module_parameter_table(model):
        p_table.add_row(name, f"{n:,}")
    p_table.add_row("[bold]total[/bold]", f"[bold]{n_params:,}[/bold]")
    console.print(p_table)

    m_table = Table("part", "MACs per 1-s inference", title="compute")
    m_table.add_row("front end (STFT, |X|, SNR, mel)", f"{macs['frontend']:,}")
    for name, n in macs["network_parts"].items():
        m_table.add_row(f"  network: {name}", f"{n:,}")
    m_table.add_row("network", f"{macs['network']:,}")
    m_table.add_row("[bold]total[/bold]", f"[bold]{macs['frontend'] + macs['network']:,}[/bold]")
    console.print(m_table)

    preds = []
    if audio:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.stack(audio))).numpy()
        r_table = Table("clip", "label", "confidence", "logits", title="float model")
        for clip, lg in zip(clips, logits):
            prob = np.exp(lg - lg.max())
            prob /= prob.sum()
            idx = int(lg.argmax())
            preds.append({"clip": str(clip), "label": LABELS[idx],
                          "confidence": float(prob[idx]), "logits": lg.tolist()})
            r_table.add_row(str(clip), LABELS[idx], f"{prob[idx]:.3f}",
                            " ".join(f"{v:+.3f}" for v in lg))
        console.print(r_table)
    return {"config": cfg.to_dict(), "params": n_params, "macs": macs, "predictions": preds}
