"""Every bad checkpoint gives a one-line CheckpointError naming the file and the problem."""

from __future__ import annotations

import argparse

import pytest
import torch

from nanomamba import CheckpointError, TINY, load_checkpoint
from nanomamba.checkpoint import published_state_dict
from nanomamba.model import NanoMamba


def _state():
    torch.manual_seed(0)
    return published_state_dict(NanoMamba(TINY))


def _err(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _err(tmp_path / "absent.pt")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"this is not a torch file at all")
    assert "not a PyTorch checkpoint" in _err(p)


def test_wrong_container(tmp_path):
    p = tmp_path / "list.pt"
    torch.save([1, 2, 3], p)
    assert "not a checkpoint" in _err(p)


def test_pickle_needing_code_execution(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"model_state_dict": _state(), "args": argparse.Namespace(lr=1)}, p)
    assert "needs code execution" in _err(p)


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    state = _state()
    state["blocks.0.conv1d.bias"] = torch.zeros(23)
    p = tmp_path / "bad_shape.pt"
    torch.save({"model_state_dict": state}, p)
    msg = _err(p)
    assert "blocks.0.conv1d.bias" in msg and "(23,)" in msg and "(24,)" in msg


def test_missing_key(tmp_path):
    state = _state()
    del state["blocks.1.sa_ssm.D"]
    p = tmp_path / "missing_key.pt"
    torch.save(state, p)
    assert "missing key 'blocks.1.sa_ssm.D'" in _err(p)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(tmp_path, bad):
    state = _state()
    state["classifier.weight"][0, 0] = bad
    p = tmp_path / "nan.pt"
    torch.save({"model_state_dict": state}, p)
    assert "classifier.weight" in _err(p) and "NaN/Inf" in _err(p)


def test_plain_state_dict_loads(tmp_path):
    p = tmp_path / "plain.pt"
    torch.save(_state(), p)
    assert load_checkpoint(p).cfg == TINY


def test_directory_instead_of_file(tmp_path):
    assert "is a directory" in _err(tmp_path)


def test_text_empty_truncated_files_say_what_they_are(tmp_path):
    """A text file is not 'a pickle needing code execution'; an empty or cut-off file says so
    instead of torch's internal errors ('EOFError', '[Errno 22] Invalid argument')."""
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    assert "neither a zip archive nor a pickle" in _err(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert "empty file" in _err(empty)
    good = tmp_path / "good.pt"
    torch.save({"model_state_dict": _state()}, good)
    raw = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(raw[: len(raw) // 2])
    assert "truncated or corrupt zip archive" in _err(cut)


def test_bundle_given_as_checkpoint(tmp_path):
    import numpy as np
    p = tmp_path / "model.npz"
    np.savez(p, __bundle__=np.zeros(3, np.uint8))
    assert "is a quantized bundle (.npz), not a checkpoint" in _err(p)


def test_legacy_pickle_format_still_loads(tmp_path):
    p = tmp_path / "legacy.pt"
    torch.save({"model_state_dict": _state()}, p, _use_new_zipfile_serialization=False)
    assert load_checkpoint(p).cfg.d_model == TINY.d_model


def test_classifier_with_another_label_count_is_refused_at_load(tmp_path):
    """A 7-output classifier used to pass info (mislabelled with the first 7 names) and
    quantize (a bundle every later command refused): refused at load time now."""
    import subprocess
    import sys
    from pathlib import Path

    from nanomamba import LABELS
    state = _state()
    state["classifier.weight"] = state["classifier.weight"][:7].clone()
    state["classifier.bias"] = state["classifier.bias"][:7].clone()
    p = tmp_path / "seven.pt"
    torch.save({"model_state_dict": state}, p)
    want = (f"{p}: classifier has 7 outputs; the Speech Commands label set has 12 "
            f"({', '.join(LABELS)})")
    assert _err(p) == want
    root = Path(__file__).resolve().parents[1]
    for cmd in (["info", str(p)], ["quantize", str(p), "-o", str(tmp_path / "b.npz")]):
        r = subprocess.run([sys.executable, "-m", "export", *cmd], cwd=root,
                           capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr == f"error: {want}\n", r.stderr
    assert not (tmp_path / "b.npz").exists()
    # Python callers with an explicit 7-class config: the quantizer refuses before calibrating
    from export.quantize import QuantizationError, quantize_model
    from nanomamba.config import NanoMambaConfig
    cfg = NanoMambaConfig(**{**TINY.to_dict(), "n_classes": 7})
    model = load_checkpoint(p, config=cfg)
    with pytest.raises(QuantizationError, match="classifier has 7 outputs"):
        quantize_model(model, torch.zeros(1, 16000, dtype=torch.int16).numpy())
