"""Training: mel filterbank, fast scan, augmentation, determinism, and a 1-epoch kws-train run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from nanomamba import load_checkpoint
from nanomamba import train as T
from nanomamba.config import TINY
from nanomamba.errors import KwsError


def test_mel_filterbank_matches_published(upstream_ckpt):
    model = load_checkpoint(upstream_ckpt("tiny"))
    fb = T.mel_filterbank()
    assert fb.shape == (40, 257) and fb.dtype == np.float32
    assert np.abs(fb - model.frontend.mel_fb.numpy()).max() < 1e-6


def test_recurrence_scan_gradients_match_autograd_loop():
    torch.manual_seed(0)
    model = T.new_model(TINY, seed=1)
    model.train()
    model.network.set_scan_mode("loop")
    x = torch.randn(3, 16000) * 0.1
    model(x).pow(2).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.network.set_scan_mode("recurrence")
    model(x).pow(2).sum().backward()
    for n, p in model.named_parameters():
        if n in ref:
            assert torch.allclose(p.grad, ref[n], rtol=1e-4, atol=1e-7), n


def test_augmenter_deterministic_and_bounded():
    tc = T.TrainConfig(noise_p=1.0, reverb_p=0.5, eq_p=0.5)
    bank = np.random.default_rng(0).standard_normal((3, 20000)).astype(np.float32)
    aug = T.Augmenter(tc, bank)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((16, 16000)).astype(np.float32) * 0.1)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b) and a.abs().max() <= 1.0
    assert not torch.equal(a, x)


def _random_data(n, seed):
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((n, 16000)) * 2000).astype(np.int16)
    return audio, rng.integers(0, 12, n)


def test_train_deterministic_and_saves(tmp_path):
    xa, ya = _random_data(48, 0)
    xv, yv = _random_data(12, 1)
    tc = T.TrainConfig(epochs=1, batch_size=16, seed=3, threads=1)
    r1 = T.train(xa, ya, xv, yv, tc, tmp_path / "a.pt", progress=False, log=lambda s: None)
    r2 = T.train(xa, ya, xv, yv, tc, None, progress=False, log=lambda s: None)
    s1, s2 = r1["model"].state_dict(), r2["model"].state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1["lr"] == 3e-3 and r1["n_params"] < 20_000
    m = load_checkpoint(tmp_path / "a.pt")
    assert m.meta["model_name"] == "NanoMamba-Tiny" and m.meta["epoch"] == 1
    with pytest.raises(KwsError, match="unknown model size"):
        T.train(xa, ya, xv, yv, T.TrainConfig(model="huge"), None, progress=False)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_kws_train_one_epoch_generated(tmp_path):
    from click.testing import CliRunner
    out = tmp_path / "tiny.pt"
    args = [str(out), "--per-class", "6", "--epochs", "1", "--batch-size", "24",
            "--reverb-p", "0.3", "--eq-p", "0.3", "--cache", str(tmp_path / "cache"),
            "--threads", "1", "--quiet"]
    res = CliRunner().invoke(T._cli(), args)
    assert res.exit_code == 0, res.output
    assert "72 training, 12 validation clips" in res.output and "wrote" in res.output
    model = load_checkpoint(out)
    assert model.cfg == TINY and "kws-train" in model.meta["train_command"]
    res = CliRunner().invoke(T._cli(), args)
    assert res.exit_code == 1 and "already exists (pass --force" in res.output
