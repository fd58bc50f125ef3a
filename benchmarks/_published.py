"""Shared by the benchmark scripts: the published checkpoints' default-calibration bundles.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import it as ``from _published import SHARED, published_bundle``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the read-only test data beside the project (../shared/fixtures)
SHARED = ROOT.parent / "shared" / "fixtures"


def published_bundle(name: str, cache: Path) -> Path:
    """Path of the bundle of ``../shared/fixtures/upstream/nanomamba_{name}.pt`` quantized
    with the default generated calibration set, made once and cached as ``cache/{name}.npz``.

    Raises:
        nanomamba.errors.KwsError subclasses from the checkpoint loader or the quantizer.
    """
    from export import quantize as Q
    path = Path(cache) / f"{name}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        Q.quantize_checkpoint(SHARED / "upstream" / f"nanomamba_{name}.pt", path, progress=False)
    return path
