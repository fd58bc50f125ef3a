"""The espeak-ng keyword generator (nanomamba.data.synth)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nanomamba.config import LABELS
from nanomamba.data import synth
from nanomamba.data.speech_commands import SpeechCommands

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_variants_partitioned():
    parts = [set(synth.variants_for(s)) for s in synth.SPLITS]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2])
    assert parts[1].isdisjoint(parts[2])
    assert set.union(*parts) == set(synth.VARIANTS)
    for i in range(20):
        spec = synth.clip_spec(0, "test", i, "yes")
        assert spec.voice.partition("+")[2] in synth.variants_for("test")


def test_specs_deterministic_and_varied():
    a = [synth.clip_spec(7, "train", i, "go") for i in range(50)]
    assert a == [synth.clip_spec(7, "train", i, "go") for i in range(50)]
    assert len({s.voice for s in a}) > 20 and len({s.speed for s in a}) > 20
    assert all(s.text.rstrip(".!?") == "go" for s in a)
    unk = {synth.clip_spec(7, "train", i, "unknown").text.rstrip(".!?") for i in range(200)}
    assert not unk & set(LABELS[:10])


def test_missing_espeak_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv(synth.ESPEAK_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(synth.EspeakError) as err:
        synth.find_espeak()
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install espeak-ng" in msg and "espeak-ng" in msg
    with pytest.raises(synth.EspeakError, match="/nope/espeak"):
        synth.espeak_wav("yes", executable="/nope/espeak")


def test_missing_espeak_cli(tmp_path):
    from click.testing import CliRunner

    from nanomamba.train import _cli
    res = CliRunner().invoke(_cli(), [str(tmp_path / "m.pt"), "--espeak", str(tmp_path / "no-espeak"),
                                      "--cache", str(tmp_path / "c"), "--quiet"])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: espeak-ng not found")
    assert "apt-get install espeak-ng" in lines[0]


def test_trim_silence():
    x = np.zeros(16000, np.float32)
    x[4000:6000] = 0.5
    y = synth.trim_silence(x)
    assert 2000 <= len(y) <= 2000 + 2 * 160 and np.abs(y).max() == 0.5


@needs_espeak
def test_espeak_wav_16k():
    x = synth.espeak_wav("yes", "en-us", speed=175, pitch=50)
    assert x.dtype == np.float32 and 3000 < len(x) < 16000 and 0.05 < np.abs(x).max() <= 1.0


@needs_espeak
def test_generate_split_deterministic_cached_and_parallel(tmp_path):
    labels = ("yes", "silence", "unknown")
    a = synth.generate_split(3, seed=5, split="train", labels=labels, workers=1, progress=False)
    b = synth.generate_split(3, seed=5, split="train", labels=labels, workers=2,
                             cache_dir=tmp_path, progress=False)
    assert a.audio.dtype == np.int16 and a.audio.shape == (9, 16000)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.labels, b.labels)
    assert list(a.labels) == [0] * 3 + [10] * 3 + [11] * 3
    assert b.path is not None and (b.path / "audio.npy").exists()
    c = synth.generate_split(3, seed=5, split="train", labels=labels, cache_dir=tmp_path,
                             executable="/nope/espeak", progress=False)  # served from the cache
    assert np.array_equal(c.audio, a.audio)
    d = synth.generate_split(3, seed=6, split="train", labels=labels, workers=1, progress=False)
    assert not np.array_equal(d.audio, a.audio)
    # words are loud, silence is quiet, nothing is digital silence
    level = np.sqrt(np.mean((a.audio.astype(np.float64) / 32768) ** 2, axis=1))
    assert (np.abs(a.audio[:3].astype(np.int32)).max(axis=1) > 800).all()
    assert (level[3:6] < 10 ** (-25 / 20) * 1.05).all()          # silence: -75..-25 dBFS
    assert all(len(np.unique(clip)) > 50 for clip in a.audio)


@needs_espeak
def test_wav_folder_roundtrip(tmp_path):
    ds = synth.generate_split(1, seed=0, split="test", workers=1, progress=False)
    out = synth.write_wav_folder(ds, tmp_path / "gen")
    clips = SpeechCommands(out).load()
    assert np.array_equal(clips.audio, ds.audio) and np.array_equal(clips.labels, ds.labels)
    with pytest.raises(synth.KwsError, match="already exists"):
        synth.write_wav_folder(ds, out)
