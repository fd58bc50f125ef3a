"""Load and save NanoMamba checkpoints (the authors' published format and plain state dicts).

Published format: a ``torch.save`` dict with ``model_state_dict`` (keys ``mel_fb``,
``snr_estimator.*``, ``patch_proj.*``, ``blocks.{i}.*``, ``final_norm.*``,
``classifier.*``), ``epoch``, ``val_acc`` and ``model_name``. Files are only ever read
with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import torch

from .config import LABELS, NanoMambaConfig, config_name
from .errors import CheckpointError
from .model import NanoMamba

_FRONTEND_KEYS = ("mel_fb", "snr_estimator.")


def _to_module_key(key: str) -> str:
    return ("frontend." if key.startswith(_FRONTEND_KEYS) else "network.") + key


def published_state_dict(model: NanoMamba) -> dict[str, torch.Tensor]:
    """The model's tensors under the published key names (``mel_fb``, ``blocks.0.norm.weight``...)."""
    out = {}
    for key, val in model.state_dict().items():
        prefix, rest = key.split(".", 1)
        out[rest] = val.detach().clone()
    return out


def infer_config(state: dict[str, torch.Tensor], source: str = "checkpoint") -> NanoMambaConfig:
    """Infer a :class:`NanoMambaConfig` from published-format tensor shapes.

    Raises:
        CheckpointError: a key the inference needs is missing; the classifier's output count
            is not the Speech Commands label count (:data:`nanomamba.config.LABELS`, 12):
            every consumer (info, the bundle's ``model.labels``, the firmware) names the
            outputs with those labels, so another count is refused here, at load time.
    """
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"{source}: not a NanoMamba checkpoint (missing key '{key}')")
        return state[key]

    patch = need("patch_proj.weight")
    n_layers = len({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    if n_layers == 0:
        raise CheckpointError(f"{source}: not a NanoMamba checkpoint (no 'blocks.*' keys)")
    n_classes = int(need("classifier.weight").shape[0])
    if n_classes != len(LABELS):
        raise CheckpointError(f"{source}: classifier has {n_classes} outputs; the Speech Commands "
                              f"label set has {len(LABELS)} ({', '.join(LABELS)})")
    return NanoMambaConfig(
        d_model=int(patch.shape[0]),
        d_inner=int(need("blocks.0.in_proj.weight").shape[0]) // 2,
        d_state=int(need("blocks.0.sa_ssm.A_log").shape[1]),
        d_conv=int(need("blocks.0.conv1d.weight").shape[-1]),
        n_layers=n_layers,
        n_mels=int(patch.shape[1]),
        n_classes=n_classes,
    )


def _sniff(path: Path) -> None:
    """Refuse files that are neither a zip archive (torch >= 1.6 format) nor a pickle
    (legacy format, protocol >= 2 starts with 0x80), naming what they look like instead."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (empty file)")
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (truncated or corrupt "
                                  f"zip archive)") from None
        if "__bundle__.npy" in names:
            raise CheckpointError(f"{path}: is a quantized bundle (.npz), not a checkpoint; "
                                  f"give the .pt it was quantized from") from None
        return
    if head[0] != 0x80:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a "
                              f"pickle)")


def _read(path: Path):
    _sniff(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path}: refused to load: the pickle needs code execution "
                f"(only tensors and plain containers are allowed; weights_only=True)") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, UnicodeDecodeError,
            AttributeError, KeyError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first[:160]})") from None


def load_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file into a published-format state dict and its metadata.

    Args:
        path: ``.pt`` file, published format or a plain state dict.
    Returns:
        (state, meta): tensors by published key; meta holds ``model_name``, ``epoch``,
        ``val_acc`` when present.
    Raises:
        CheckpointError: missing file, not a checkpoint, unsafe pickle, no tensors, NaN/Inf.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    obj = _read(path)
    meta: dict = {}
    if isinstance(obj, dict) and "model_state_dict" in obj:
        meta = {k: v for k, v in obj.items() if k != "model_state_dict"
                and isinstance(v, (str, int, float))}
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a checkpoint (expected a state dict of tensors or a "
                              f"dict with 'model_state_dict')")
    state = {}
    for key, val in obj.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if val.is_floating_point() and not torch.isfinite(val).all():
            bad = int((~torch.isfinite(val)).sum())
            raise CheckpointError(f"{path}: tensor '{key}' has {bad} NaN/Inf value(s)")
        state[key] = val.float() if val.is_floating_point() else val
    return state, meta


def load_checkpoint(path: str | os.PathLike, config: NanoMambaConfig | None = None) -> NanoMamba:
    """Build a float :class:`NanoMamba` from a checkpoint, strictly (every key, every shape).

    Args:
        path: published-format checkpoint or plain state dict (``.pt``).
        config: expected configuration; inferred from tensor shapes when None.
    Returns:
        the model in eval mode, on the CPU, float32; ``model.meta`` holds the checkpoint's
        metadata and ``model.source`` the path.
    Raises:
        CheckpointError: missing file, not a checkpoint, a pickle that needs code
            execution, missing/unexpected keys, a shape mismatch (names the key and both
            shapes), NaN/Inf weights.
    """
    state, meta = load_state(path)
    cfg = config or infer_config(state, str(path))
    model = NanoMamba(cfg)
    expected = {k.split(".", 1)[1]: v for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(f"{path}: missing key '{missing[0]}'"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected key '{unexpected[0]}'"
                              + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: shape mismatch for '{key}': checkpoint "
                                  f"{tuple(state[key].shape)}, model {tuple(ref.shape)}")
    model.load_state_dict({_to_module_key(k): v for k, v in state.items()}, strict=True)
    model.eval()
    model.meta = meta
    model.source = str(path)
    return model


def save_checkpoint(model: NanoMamba, path: str | os.PathLike, *, epoch: int = 0,
                    val_acc: float = 0.0, model_name: str | None = None,
                    extra: dict | None = None) -> Path:
    """Write ``model`` in the published format, atomically (temp file + rename).

    Args:
        model: the model to save.
        path: destination ``.pt``.
        epoch, val_acc, model_name: metadata (model_name defaults to "NanoMamba-<Config>").
        extra: more plain (str/int/float) metadata.
    Returns:
        the path written.
    """
    path = Path(path)
    name = model_name or f"NanoMamba-{config_name(model.cfg).capitalize()}"
    blob = {"model_state_dict": published_state_dict(model), "epoch": int(epoch),
            "val_acc": float(val_acc), "model_name": name, **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(blob, tmp)
        mask = os.umask(0)                       # mkstemp made it 0o600: use the umask
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
