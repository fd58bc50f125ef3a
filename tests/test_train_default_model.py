"""The default model and demo clips the project ships (examples/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from click.testing import CliRunner

from export.cli import main
from nanomamba import load_audio, load_checkpoint
from nanomamba.config import TINY

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "default_model" / "nanomamba_tiny_kws.pt"
CLIPS = ROOT / "examples" / "clips"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def test_default_model_is_small_tiny_and_documented():
    assert MODEL.stat().st_size < 100_000
    model = load_checkpoint(MODEL)
    assert model.cfg == TINY and model.meta["model_name"] == "NanoMamba-Tiny"
    assert model.meta["train_command"].startswith("kws-train ")
    assert (MODEL.parent / "README.md").exists()


def test_demo_clips_format():
    for w in WORDS:
        info = sf.info(CLIPS / f"{w}.wav")
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000)


def test_default_model_classifies_demo_clips():
    torch.set_num_threads(1)
    model = load_checkpoint(MODEL)
    x = torch.from_numpy(np.stack([load_audio(CLIPS / f"{w}.wav") for w in WORDS]))
    labels, _, _ = model.classify(x)
    assert labels[0] == "yes"
    assert sum(a == b for a, b in zip(labels, WORDS)) >= 9, labels


def test_main_job_command():
    res = CliRunner().invoke(main, ["info", str(MODEL), "--audio", str(CLIPS / "yes.wav")])
    assert res.exit_code == 0, res.output
    assert "│ yes " in res.output
