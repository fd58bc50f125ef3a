"""Speech Commands V2 and label-folder loading (nanomamba.data.speech_commands)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from nanomamba.config import LABELS
from nanomamba.data.speech_commands import DatasetError, SpeechCommands, load_folder
from nanomamba.errors import AudioError

WORDS = list(LABELS[:10]) + ["bed", "marvin"]


def _wav(path, value, n=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, value, np.int16), 16000, subtype="PCM_16")


@pytest.fixture
def v2(tmp_path):
    """A miniature Speech Commands V2: 4 clips per word (1 val, 1 test), two noise files."""
    root = tmp_path / "sc"
    val, test = [], []
    for w, word in enumerate(WORDS):
        for i in range(4):
            _wav(root / word / f"spk{i}_nohash_0.wav", 100 * w + i, n=15000 if i == 3 else 16000)
        val.append(f"{word}/spk1_nohash_0.wav")
        test.append(f"{word}/spk2_nohash_0.wav")
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    rng = np.random.default_rng(0)
    for name in ("white_noise", "running_tap"):
        (root / "_background_noise_").mkdir(exist_ok=True)
        sf.write(root / "_background_noise_" / f"{name}.wav",
                 (rng.standard_normal(16000 * 5) * 3000).astype(np.int16), 16000, subtype="PCM_16")
    return root


def test_v2_splits(v2):
    sc = SpeechCommands(v2)
    assert sc.layout == "v2" and sc.splits == ("training", "validation", "testing")
    tr = sc.load("training", unknown_ratio=None)
    # 2 train clips per word; 'bed' and 'marvin' are unknown; silence ~ one keyword's count
    c = tr.counts()
    assert all(c[k] == 2 for k in LABELS[:10]) and c["unknown"] == 4 and c["silence"] == 2
    assert tr.audio.dtype == np.int16 and tr.audio.shape == (len(tr.labels), 16000)
    te = sc.load("testing")
    assert te.counts()["unknown"] == 1                   # subsampled to ~ one keyword
    assert all(n.startswith("silence:") for n, l in zip(te.names, te.labels) if l == 10)
    yes = te.audio[te.labels == 0]
    assert (yes == 2).all()                              # 'yes' is word 0, clip 2 (value 0*100+2)
    # short clip padded to 1 s
    va = sc.load("validation")
    assert va.audio.shape[1] == 16000
    with pytest.raises(ValueError):
        sc.load("all")


@pytest.mark.parametrize("missing,needle", [
    ("testing_list.txt", "missing testing_list.txt"),
    ("validation_list.txt", "missing validation_list.txt"),
    ("go", "missing keyword folder(s) go"),
    ("_background_noise_", "missing _background_noise_"),
])
def test_v2_incomplete(v2, missing, needle):
    import shutil
    target = v2 / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError) as err:
        SpeechCommands(v2)
    msg = str(err.value)
    assert needle in msg and str(v2) in msg and "re-extract" in msg and "\n" not in msg


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        SpeechCommands(tmp_path / "nope")
    (tmp_path / "clip.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="clip.wav: is a file, expected a dataset folder"):
        SpeechCommands(tmp_path / "clip.wav")          # was "no such dataset folder"
    (tmp_path / "clip.wav").unlink()
    (tmp_path / "cats").mkdir()
    with pytest.raises(DatasetError, match="not a Speech Commands folder"):
        SpeechCommands(tmp_path)


def test_label_folders_missing(tmp_path):
    for lab in LABELS[:-2]:
        _wav(tmp_path / lab / "a.wav", 1)
    with pytest.raises(DatasetError, match="missing label folder[(]s[)] silence, unknown"):
        SpeechCommands(tmp_path)


def test_unreadable_clip(tmp_path):
    for i, lab in enumerate(LABELS):
        _wav(tmp_path / lab / "a.wav", i)
    (tmp_path / "go" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert "broken.wav" in msg and "delete or replace" in msg and "\n" not in msg


def test_label_folders_and_limit(tmp_path):
    for i, lab in enumerate(LABELS):
        for j in range(3):
            _wav(tmp_path / lab / f"{j}.wav", i)
    clips = load_folder(tmp_path, limit_per_class=2)
    assert len(clips.labels) == 24 and (clips.audio[clips.labels == 5] == 5).all()


def test_real_test_set(speech_commands_test):
    clips = SpeechCommands(speech_commands_test).load()
    assert clips.audio.shape == (1200, 16000)
    assert all(v == 100 for v in clips.counts().values())
