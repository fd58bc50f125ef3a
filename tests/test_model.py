"""The float NanoMamba: published checkpoints reproduce the reference logits and
predictions; the vectorised scan equals the step-by-step recurrence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nanomamba import BASE, LABELS, SMALL, TINY, load_audio, load_checkpoint
from nanomamba.checkpoint import published_state_dict, save_checkpoint
from nanomamba.model import NanoMamba, count_parameters, selective_scan


@pytest.mark.parametrize("name,params", [("tiny", 4634), ("small", 12032)])
def test_published_checkpoints_load_strictly(upstream_ckpt, name, params):
    model = load_checkpoint(upstream_ckpt(name))
    assert count_parameters(model) == params
    assert model.cfg == {"tiny": TINY, "small": SMALL}[name]


def test_config_param_counts():
    assert count_parameters(NanoMamba(TINY)) == 4634
    assert count_parameters(NanoMamba(SMALL)) == 12032
    m = NanoMamba(BASE)
    assert (m.cfg.d_model, m.cfg.d_state, m.cfg.d_conv, m.cfg.n_layers) == (40, 8, 4, 4)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_expected_float_logits(upstream_ckpt, expected_logits, fixtures_dir, name):
    model = load_checkpoint(upstream_ckpt(name))
    for clip, ref in expected_logits["float_reference"][name].items():
        x = torch.from_numpy(load_audio(fixtures_dir / "audio" / clip))[None]
        with torch.no_grad():
            logits = model(x)[0].numpy()
        # the reference is rounded to 5 decimals; measured 6.3e-6 (float64 front end)
        assert np.abs(logits - np.array(ref["logits"])).max() < 5e-5, clip
        assert LABELS[int(logits.argmax())] == ref["label"] == clip.split(".")[0]


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_speech_commands_predictions_match_reference(upstream_ckpt, speech_commands_test, name):
    ref = json.loads((speech_commands_test / "float_reference.json").read_text())
    keys = sorted(ref["predictions"][name])
    audio = torch.from_numpy(np.stack([load_audio(speech_commands_test / k) for k in keys]))
    model = load_checkpoint(upstream_ckpt(name))
    with torch.no_grad():
        logits = torch.cat([model(audio[i:i + 300]) for i in range(0, len(audio), 300)])
    pred = [LABELS[i] for i in logits.argmax(1).tolist()]
    top2 = logits.topk(2, dim=1).values
    diffs = [i for i, k in enumerate(keys) if pred[i] != ref["predictions"][name][k]]
    assert not diffs, [(keys[i], float(top2[i, 0] - top2[i, 1])) for i in diffs]
    acc = 100.0 * np.mean([p == k.split("/")[0] for p, k in zip(pred, keys)])
    assert round(acc, 2) == ref["accuracy"][name]


def test_frontend_compute_dtype():
    """float64 arithmetic by default, float32 outputs; float32 selectable; bad value refused."""
    from nanomamba.frontend import FrontEnd
    fe = FrontEnd()
    fe.mel_fb.copy_(torch.rand(fe.mel_fb.shape))
    x = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert fe.compute_dtype == "float64"
    f64, s64 = fe(x)
    assert f64.dtype == s64.dtype == torch.float32 and f64.shape == (2, 101, 40)
    fe.compute_dtype = "float32"
    f32, s32 = fe(x)
    assert 0 < (f32 - f64).abs().max() < 1e-3 and (s32 - s64).abs().max() < 1e-4
    with pytest.raises(ValueError, match="compute_dtype"):
        fe.compute_dtype = "float16"
    with pytest.raises(ValueError, match="compute_dtype"):
        FrontEnd(compute_dtype="half")
    assert "compute_dtype" not in str(fe.state_dict().keys())


def test_chunked_scan_equals_loop():
    g = torch.Generator().manual_seed(0)
    B, T, E, N = 3, 101, 24, 4
    u = torch.randn(B, T, E, generator=g, dtype=torch.float64)
    delta = torch.nn.functional.softplus(torch.randn(B, T, E, generator=g, dtype=torch.float64))
    A = -torch.exp(torch.randn(E, N, generator=g, dtype=torch.float64))
    Bm = torch.randn(B, T, N, generator=g, dtype=torch.float64)
    C = torch.randn(B, T, N, generator=g, dtype=torch.float64)
    D = torch.randn(E, generator=g, dtype=torch.float64)
    y_loop, h_loop = selective_scan(u, delta, A, Bm, C, D, mode="loop", return_h=True)
    for chunk in (1, 7, 16, 101):
        y, h = selective_scan(u, delta, A, Bm, C, D, mode="chunked", chunk=chunk, return_h=True)
        assert torch.allclose(y, y_loop, atol=1e-10) and torch.allclose(h, h_loop, atol=1e-10)
    y, h = selective_scan(u, delta, A, Bm, C, D, mode="recurrence", return_h=True)
    assert torch.equal(y, y_loop) and torch.equal(h, h_loop)


def test_model_scan_modes_agree(upstream_ckpt, fixtures_dir):
    model = load_checkpoint(upstream_ckpt("tiny"))
    x = torch.from_numpy(load_audio(fixtures_dir / "audio" / "yes.f32"))[None]
    with torch.no_grad():
        a = model(x)
        model.network.set_scan_mode("loop")
        b = model(x)
    assert torch.allclose(a, b, atol=1e-5)


def test_taps_cover_every_stage():
    model = NanoMamba(TINY).eval()
    taps: dict = {}
    with torch.no_grad():
        model(torch.zeros(1, 16000), taps=taps)
    assert taps["blocks.0.h"].shape == (1, 101, 24, 4)
    assert taps["logits"].shape == (1, 12) and taps["features"].shape == (1, 101, 40)


def test_save_then_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = NanoMamba(TINY).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", epoch=3, val_acc=50.0)
    back = load_checkpoint(path)
    assert back.meta["model_name"] == "NanoMamba-Tiny" and back.meta["epoch"] == 3
    a, b = published_state_dict(model), published_state_dict(back)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert set(a) >= {"mel_fb", "snr_estimator.noise_scale", "blocks.1.sa_ssm.A_log"}
