"""How synthetic training transfers to real speech: clean accuracy on the 1,200 real clips.

For each checkpoint: accuracy on all clips, on a *selection* half (the first 50 clips per
label in name order: use it to choose between training variants) and on the *report* half
(the other 50 per label: quote it for the chosen variant), and per-label accuracy.

    python benchmarks/real_transfer.py CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def main() -> None:
    import torch

    from export.evaluate import float_route
    from nanomamba import load_checkpoint
    from nanomamba.config import LABELS
    from nanomamba.data.speech_commands import SpeechCommands

    torch.set_num_threads(1)
    clips = SpeechCommands(ROOT.parent / "shared" / "fixtures" / "speech_commands_test").load()
    rank = np.zeros(len(clips.labels), dtype=int)
    for lab in range(len(LABELS)):
        idx = np.nonzero(clips.labels == lab)[0]
        rank[idx] = np.arange(len(idx))
    sel, rep = rank < 50, rank >= 50
    table = Table("checkpoint", "all", "selection half", "report half", *LABELS,
                  title="clean accuracy (%) on 1,200 real Speech Commands clips")
    for ckpt in sys.argv[1:]:
        pred = float_route(load_checkpoint(ckpt))(clips.audio).argmax(1)
        ok = pred == clips.labels
        table.add_row(Path(ckpt).name, f"{100 * ok.mean():.1f}", f"{100 * ok[sel].mean():.1f}",
                      f"{100 * ok[rep].mean():.1f}",
                      *[f"{100 * ok[clips.labels == i].mean():.0f}" for i in range(len(LABELS))])
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
