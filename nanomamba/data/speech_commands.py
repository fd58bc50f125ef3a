"""Google Speech Commands V2 as the 12-class keyword task (and a simpler folder layout).

Two layouts are read:

* **Speech Commands V2** (Warden 2018, ``speech_commands_v0.02``): one folder per spoken
  word, ``validation_list.txt`` and ``testing_list.txt`` at the root (paths relative to the
  root, one a line) and ``_background_noise_/`` with long noise recordings. The 10 keywords
  map to their own class, every other word folder to ``unknown``; ``silence`` clips are cut
  from ``_background_noise_`` (1-s segments at a random gain). A clip is in ``testing`` if
  listed in testing_list.txt, in ``validation`` if listed in validation_list.txt, else in
  ``training``. As in the reference 12-class task, ``unknown`` is subsampled and
  ``silence`` generated so each is about as frequent as one keyword (both configurable).
  The noise recordings are split by time (first 80 % training, next 10 % validation, last
  10 % testing) so silence clips do not leak between splits.
* **Label folders**: one folder per label, named exactly as the 12 labels (``yes`` ...
  ``go``, ``silence``, ``unknown``), every clip in a folder has that label and all clips
  form the single split ``all`` (the layout of the 12-class test set and of
  :func:`nanomamba.data.synth.write_wav_folder`).

Labels are indices into :data:`nanomamba.config.LABELS`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AUDIO_SUFFIXES, load_audio
from ..config import CLIP_SAMPLES, LABELS
from ..errors import AudioError, KwsError

KEYWORDS = LABELS[:10]
SILENCE, UNKNOWN = LABELS.index("silence"), LABELS.index("unknown")
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
NOISE_FOLDER = "_background_noise_"
V2_SPLITS = ("training", "validation", "testing")
#: Fraction of each noise recording used by each split's silence clips.
_NOISE_SPAN = {"training": (0.0, 0.8), "validation": (0.8, 0.9), "testing": (0.9, 1.0)}


class DatasetError(KwsError):
    """A dataset folder is missing, incomplete or in an unknown layout."""


@dataclass
class ClipSet:
    """Clips of one split.

    Attributes:
        audio: int16 (N, 16000) PCM at 16 kHz.
        labels: int64 (N,) indices into LABELS.
        names: N strings: the clip's path relative to the root, or ``silence:<noise>@<start>``.
    """

    audio: np.ndarray
    labels: np.ndarray
    names: list[str]

    def float_audio(self) -> np.ndarray:
        """float32 (N, 16000) samples in [-1, 1) (int16 / 32768)."""
        return self.audio.astype(np.float32) / np.float32(32768.0)

    def counts(self) -> dict[str, int]:
        """Clips per label."""
        return {lab: int((self.labels == i).sum()) for i, lab in enumerate(LABELS)}


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


class SpeechCommands:
    """A Speech Commands V2 folder, or a one-folder-per-label folder.

    Args:
        root: the dataset folder.
    Raises:
        DatasetError: the folder is missing, is neither layout, or is incomplete (a list
            file, a keyword folder or a label folder missing): the message names what is
            missing and how to fix it.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root}: is a file, expected a dataset folder (the extracted "
                               f"speech_commands_v0.02 folder or one sub-folder per label)")
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset folder (give the extracted "
                               f"speech_commands_v0.02 folder or a folder with one sub-folder per label)")
        entries = {p.name for p in self.root.iterdir()}
        v2_marks = [n for n in (*LIST_FILES.values(), NOISE_FOLDER) if n in entries]
        if v2_marks:
            self.layout = "v2"
            for split, name in LIST_FILES.items():
                if name not in entries:
                    raise DatasetError(
                        f"{self.root}: missing {name} (a Speech Commands V2 folder has "
                        f"validation_list.txt and testing_list.txt at its root; re-extract "
                        f"speech_commands_v0.02.tar.gz)")
            missing = [k for k in KEYWORDS if not (self.root / k).is_dir()]
            if missing:
                raise DatasetError(f"{self.root}: missing keyword folder(s) {', '.join(missing)} "
                                   f"(a Speech Commands V2 folder has one folder per word; "
                                   f"re-extract speech_commands_v0.02.tar.gz)")
            if not (self.root / NOISE_FOLDER).is_dir():
                raise DatasetError(f"{self.root}: missing {NOISE_FOLDER}/ (needed to cut silence "
                                   f"clips; re-extract speech_commands_v0.02.tar.gz)")
            self.words = sorted(p.name for p in self.root.iterdir()
                                if p.is_dir() and not p.name.startswith(("_", ".")))
        elif entries & set(LABELS):
            self.layout = "labels"
            missing = [lab for lab in LABELS if not (self.root / lab).is_dir()]
            if missing:
                raise DatasetError(f"{self.root}: missing label folder(s) {', '.join(missing)} "
                                   f"(one folder per label is expected: {', '.join(LABELS)})")
            self.words = list(LABELS)
        else:
            raise DatasetError(f"{self.root}: not a Speech Commands folder (expected "
                               f"validation_list.txt, testing_list.txt and word folders, or one "
                               f"folder per label: {', '.join(LABELS)})")

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names: ("training", "validation", "testing") or ("all",)."""
        return V2_SPLITS if self.layout == "v2" else ("all",)

    def _read_list(self, split: str) -> set[str]:
        path = self.root / LIST_FILES[split]
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetError(f"{path}: unreadable list file ({err}); re-extract the dataset") from None
        return {ln.strip() for ln in lines if ln.strip()}

    def files(self, split: str) -> list[tuple[str, int]]:
        """(relative path, label index) of the recorded clips of a split (silence excluded
        in the V2 layout, where it is cut from noise; every ``unknown`` word included).

        Raises:
            ValueError: unknown split for this layout.
        """
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}, not {split!r}")
        out: list[tuple[str, int]] = []
        if self.layout == "labels":
            for i, lab in enumerate(LABELS):
                out += [(f"{lab}/{p.name}", i) for p in _audio_files(self.root / lab)]
            return out
        val, test = self._read_list("validation"), self._read_list("testing")
        for word in self.words:
            label = LABELS.index(word) if word in KEYWORDS else UNKNOWN
            for p in _audio_files(self.root / word):
                rel = f"{word}/{p.name}"
                in_split = ("testing" if rel in test else "validation" if rel in val else "training")
                if in_split == split:
                    out.append((rel, label))
        return out

    def load(self, split: str | None = None, *, unknown_ratio: float | None = 1.0,
             silence_ratio: float = 1.0, seed: int = 0, limit_per_class: int | None = None,
             progress: bool = False) -> ClipSet:
        """Read a split into memory.

        Args:
            split: "training" | "validation" | "testing" (V2) or "all" (label folders);
                default the test split ("testing" or "all").
            unknown_ratio: V2 only: keep ``unknown_ratio`` x (mean clips per keyword)
                unknown clips, drawn with ``seed``; None keeps all.
            silence_ratio: V2 only: cut ``silence_ratio`` x (mean clips per keyword) silence
                clips from ``_background_noise_`` (random segment, gain 10^U(-2, 0)).
            seed: seed of the unknown subsampling and of the silence cuts.
            limit_per_class: keep at most this many clips per label (first in name order).
            progress: tqdm progress bar while reading.
        Returns:
            :class:`ClipSet`, clips sorted by label then name.
        Raises:
            AudioError: an unreadable clip (names the file and the fix).
            DatasetError: an unreadable list file; no clips in the split.
        """
        split = split or self.splits[-1]
        files = self.files(split)
        rng = np.random.default_rng(seed)
        if self.layout == "v2":
            kw = [f for f in files if f[1] != UNKNOWN]
            unk = [f for f in files if f[1] == UNKNOWN]
            per_kw = len(kw) / len(KEYWORDS)
            if unknown_ratio is not None and len(unk) > unknown_ratio * per_kw:
                keep = rng.choice(len(unk), size=int(round(unknown_ratio * per_kw)), replace=False)
                unk = [unk[i] for i in sorted(keep)]
            files = kw + unk
            n_silence = int(round(silence_ratio * per_kw))
        else:
            n_silence = 0
        files.sort(key=lambda f: (f[1], f[0]))
        if limit_per_class is not None:
            seen: dict[int, int] = {}
            kept = []
            for f in files:
                if seen.get(f[1], 0) < limit_per_class:
                    kept.append(f)
                    seen[f[1]] = seen.get(f[1], 0) + 1
            files = kept
            n_silence = min(n_silence, limit_per_class)
        from tqdm import tqdm
        audio = np.empty((len(files) + n_silence, CLIP_SAMPLES), dtype=np.int16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # short clips are padded to 1 s, as in the dataset's use
            for i, (rel, _) in enumerate(tqdm(files, desc=f"reading {split}", unit="clip",
                                              disable=None if progress else True,
                                              leave=False)):
                try:
                    audio[i] = load_audio(self.root / rel, dtype="int16")
                except AudioError as err:
                    raise AudioError(f"{err} (delete or replace this clip, or re-extract the dataset)") from None
        labels = [f[1] for f in files]
        names = [f[0] for f in files]
        if n_silence:
            sil, sil_names = self._silence(split, n_silence, rng)
            audio[len(files):] = sil
            labels += [SILENCE] * n_silence
            names += sil_names
        if len(labels) == 0:
            raise DatasetError(f"{self.root}: split '{split}' has no clips")
        order = sorted(range(len(labels)), key=lambda i: (labels[i], names[i]))
        return ClipSet(audio[order], np.array(labels, dtype=np.int64)[order], [names[i] for i in order])

    def _silence(self, split: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        from .noise import load_noise_files
        from ..audio import float_to_int16
        noises = load_noise_files(self.root / NOISE_FOLDER)
        names = list(noises)
        lo, hi = _NOISE_SPAN[split]
        out = np.empty((n, CLIP_SAMPLES), dtype=np.int16)
        tags = []
        for i in range(n):
            name = names[int(rng.integers(len(names)))]
            src = noises[name]
            a, b = int(lo * len(src)), int(hi * len(src))
            start = a + int(rng.integers(0, max(b - a - CLIP_SAMPLES, 0) + 1))
            seg = src[start:start + CLIP_SAMPLES]
            seg = np.pad(seg, (0, CLIP_SAMPLES - len(seg)))
            out[i] = float_to_int16(np.clip(seg * 10 ** rng.uniform(-2, 0), -1, 1))
            tags.append(f"silence:{name}@{start}")
        return out, tags


def load_folder(root: str | os.PathLike, split: str | None = None, **kwargs) -> ClipSet:
    """Shortcut: ``SpeechCommands(root).load(split, **kwargs)`` (see :meth:`SpeechCommands.load`)."""
    return SpeechCommands(root).load(split, **kwargs)
