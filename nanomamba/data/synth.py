"""Offline keyword clips from espeak-ng: the project's own training and test data.

Nothing here downloads anything: every clip is synthesised by the ``espeak-ng`` program
(Debian package ``espeak-ng``, called as a subprocess) and post-processed in numpy:

1. one espeak-ng call per clip: an English dialect (``en-us``, ``en-gb``, ``en-gb-scotland``,
   ...) with a voice variant (``+f3``, ``+m7``, ``+klatt2``, ...), a speed in words per
   minute (``-s``), a pitch (``-p``, 0-99) and a prosody mark (``yes``, ``yes.``, ``yes!``,
   ``yes?``);
2. 22,050 Hz -> 16 kHz (``scipy.signal.resample_poly(x, 320, 441)``), leading and trailing
   silence trimmed (below -40 dB of the peak, 10-ms frames);
3. placed at a random offset inside the 1-s window (a time shift around the centre, as in
   Speech Commands where words sit roughly in the middle of the clip) and scaled to a random
   peak level (-30 to -1 dBFS);
4. a low noise floor is added (white or pink, 45-70 dB below the word's RMS, so no
   sample is ever digital silence, which real recordings never are).

``silence`` clips are noise alone (generated or from recorded files) at random levels;
``unknown`` clips are other words (the 25 auxiliary words of Speech Commands V2 and ~50
more). Clip ``i`` of a split depends only on ``(seed, split, i)``, so generation is
deterministic for a seed whatever the number of worker processes. The voice variants are
partitioned between splits (every 10th variant is reserved for ``test``, the next for
``val``), so the ``test`` split is spoken by voices the training split never heard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import CLIP_SAMPLES, LABELS, SAMPLE_RATE
from ..errors import KwsError

#: Bumped whenever the generated audio changes, so stale caches are never reused.
GENERATOR_VERSION = 3
#: espeak-ng executable: the ``KWS_ESPEAK`` environment variable, else ``espeak-ng``.
ESPEAK_ENV = "KWS_ESPEAK"

KEYWORDS: tuple[str, ...] = LABELS[:10]
#: The 25 auxiliary words of Speech Commands V2 (its ``unknown`` class).
SPEECH_COMMANDS_UNKNOWN: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine",
    "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward",
    "follow", "forward", "learn", "visual",
)
#: More ``unknown`` words (everyday words, some sharing sounds with the keywords).
EXTRA_UNKNOWN: tuple[str, ...] = (
    "apple", "water", "music", "hello", "window", "table", "green", "blue", "red", "light",
    "open", "close", "start", "later", "today", "night", "paper", "yellow", "number", "maybe",
    "never", "money", "coffee", "garden", "simple", "little", "river", "mother", "father",
    "kitchen", "phone", "chair", "dinner", "okay", "thanks", "please", "sorry", "again", "forty",
    "yet", "know", "cup", "town", "lift", "write", "own", "of", "top", "goal", "lesson",
)
UNKNOWN_WORDS: tuple[str, ...] = SPEECH_COMMANDS_UNKNOWN + EXTRA_UNKNOWN

#: English dialects of espeak-ng 1.51 (``espeak-ng --voices=en``).
DIALECTS: tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp",
    "en-029", "en-us-nyc",
)
#: Voice variants (files in espeak-ng-data/voices/!v; robots, whispers and effects left out).
VARIANTS: tuple[str, ...] = (
    "", "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "Alex", "Alicia", "Andrea",
    "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Storm", "Tweaky", "adam",
    "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward",
    "edward2", "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john",
    "kaukovalta", "linda", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3",
    "travis", "victor", "zac",
)
SPLITS = ("train", "val", "test")
_SPLIT_SALT = {"train": 0, "val": 1, "test": 2}
_PROSODY = ("", ".", "!", "?")
_ESPEAK_RATE = 22_050


class EspeakError(KwsError):
    """espeak-ng is missing, not executable, or failed on an input."""


def variants_for(split: str) -> tuple[str, ...]:
    """Voice variants a split may use: ``test`` gets every 10th variant (index % 10 == 0),
    ``val`` the next one (index % 10 == 1), ``train`` the remaining 80 %.

    Raises:
        ValueError: unknown split.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
    keep = {"test": (0,), "val": (1,), "train": tuple(range(2, 10))}[split]
    return tuple(v for i, v in enumerate(VARIANTS) if i % 10 in keep)


def find_espeak(executable: str | os.PathLike | None = None) -> str:
    """Path of the espeak-ng program.

    Args:
        executable: a program name or path; default ``$KWS_ESPEAK`` or ``espeak-ng``.
    Returns:
        the absolute path.
    Raises:
        EspeakError: not found on PATH / not an executable file (the message names the fix).
    """
    exe = str(executable or os.environ.get(ESPEAK_ENV) or "espeak-ng")
    found = shutil.which(exe)
    if found is None:
        raise EspeakError(f"espeak-ng not found (looked for '{exe}'): install it with "
                          f"'apt-get install espeak-ng' or point {ESPEAK_ENV} / --espeak at it")
    return found


def espeak_wav(text: str, voice: str = "en-us", *, speed: int = 175, pitch: int = 50,
               executable: str | None = None) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng and return it at 16 kHz.

    Args:
        text: words to speak.
        voice: ``dialect`` or ``dialect+variant`` (e.g. ``en-gb+f3``).
        speed: words per minute (espeak-ng ``-s``, 80-450).
        pitch: 0-99 (espeak-ng ``-p``).
        executable: espeak-ng program (see :func:`find_espeak`).
    Returns:
        float32 (n,) samples in [-1, 1] at 16 kHz (resampled from espeak-ng's 22,050 Hz with
        ``resample_poly(x, 320, 441)``).
    Raises:
        EspeakError: espeak-ng missing or failing.
    """
    from scipy.signal import resample_poly

    exe = find_espeak(executable)
    cmd = [exe, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout", text]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except OSError as err:
        raise EspeakError(f"espeak-ng at '{exe}' could not run ({err.strerror or err}): "
                          f"reinstall it with 'apt-get install espeak-ng'") from None
    if proc.returncode != 0 or len(proc.stdout) < 44:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise EspeakError(f"espeak-ng failed on {text!r} with voice '{voice}' "
                          f"({msg[0] if msg else f'exit {proc.returncode}'}): "
                          f"check the installation with 'espeak-ng --voices=en'")
    # The streamed header carries placeholder sizes; read the PCM after it ourselves.
    raw = proc.stdout
    data = raw.find(b"data", 12)
    body = raw[data + 8:]
    pcm = np.frombuffer(body[:len(body) - len(body) % 2], dtype="<i2")
    x = pcm.astype(np.float64) / 32768.0
    return resample_poly(x, SAMPLE_RATE // 50, _ESPEAK_RATE // 50).astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Cut leading and trailing 10-ms frames whose peak is below ``threshold_db`` re the clip
    peak. Args: x float (n,). Returns: float (m,), m <= n (``x`` itself if all quiet)."""
    if len(x) == 0:
        return x
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return x
    n = len(x) // frame
    frames = np.abs(x[:n * frame]).reshape(n, frame).max(axis=1) if n else np.abs(x)[None]
    loud = np.nonzero(frames > peak * 10 ** (threshold_db / 20))[0]
    if len(loud) == 0:
        return x
    return x[loud[0] * frame:min(len(x), (loud[-1] + 1) * frame)]


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one generated clip (JSON-serialisable).

    Attributes:
        label: class name (one of LABELS).
        text: words spoken ("" for silence).
        voice: espeak-ng voice ("en-gb+f3"), "" for silence.
        speed: words per minute; pitch: 0-99.
        peak_db: peak level of the word, dBFS (silence: RMS level of the noise, dBFS).
        offset: start sample of the word inside the window (silence: unused).
        floor_db: noise floor re the word's RMS, dB (negative).
        floor_kind: "white" or "pink" (silence: the noise type of the clip).
        seed: seed of the clip's random numbers (offset jitter, noise).
    """

    label: str
    text: str
    voice: str
    speed: int
    pitch: int
    peak_db: float
    offset: float
    floor_db: float
    floor_kind: str
    seed: int


def clip_spec(seed: int, split: str, index: int, label: str) -> ClipSpec:
    """Draw the parameters of clip ``index`` of ``split`` for ``label`` (pure function).

    Args:
        seed: dataset seed. split: "train" | "val" | "test". index: clip number >= 0.
        label: class name.
    Returns:
        the :class:`ClipSpec`.
    """
    rng = np.random.default_rng([seed, _SPLIT_SALT[split], index, LABELS.index(label)])
    s = int(rng.integers(0, 2**31 - 1))
    if label == "silence":
        kinds = ("white", "pink", "brown", "hum", "file")
        return ClipSpec(label, "", "", 0, 0, float(rng.uniform(-75, -25)), 0.0, 0.0,
                        str(rng.choice(kinds)), s)
    if label == "unknown":
        text = str(rng.choice(UNKNOWN_WORDS))
    else:
        text = label
    variant = str(rng.choice(variants_for(split)))
    dialect = str(rng.choice(DIALECTS))
    voice = dialect + (f"+{variant}" if variant else "")
    speed = int(np.clip(rng.normal(165, 35), 95, 280))
    pitch = int(rng.integers(15, 90))
    text = text + str(rng.choice(_PROSODY))
    return ClipSpec(label, text, voice, speed, pitch, float(rng.uniform(-30, -1)),
                    float(rng.uniform(0.0, 1.0)), float(rng.uniform(-70, -45)),
                    str(rng.choice(("white", "pink"))), s)


def render_clip(spec: ClipSpec, *, executable: str | None = None,
                noise_files: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """Render a :class:`ClipSpec` to the model's input.

    Args:
        spec: the clip's parameters.
        executable: espeak-ng program.
        noise_files: recorded noise signals (float32, 16 kHz) for ``silence`` clips of kind
            "file" (generated pink noise is used when empty).
    Returns:
        int16 (16000,) PCM at 16 kHz.
    Raises:
        EspeakError: espeak-ng missing or failing.
    """
    from . import noise as nz

    rng = np.random.default_rng(spec.seed)
    if spec.label == "silence":
        kind = spec.floor_kind
        if kind == "file" and noise_files:
            src = noise_files[int(rng.integers(len(noise_files)))]
            seg = nz.random_segment(src, CLIP_SAMPLES, rng)
            seg = seg / max(nz.rms(seg), 1e-9)
        else:
            seg = nz.generate_noise("pink" if kind == "file" else kind, CLIP_SAMPLES, rng)
        x = seg * 10 ** (spec.peak_db / 20)
    else:
        word = trim_silence(espeak_wav(spec.text, spec.voice, speed=spec.speed, pitch=spec.pitch,
                                       executable=executable))
        if len(word) > CLIP_SAMPLES - 800:          # very slow speech: keep the middle
            cut = (len(word) - (CLIP_SAMPLES - 800)) // 2
            word = word[cut:cut + CLIP_SAMPLES - 800]
        room = CLIP_SAMPLES - len(word)
        # offset spec in [0, 1] -> triangular around the centre over the free room
        centre = room / 2
        off = int(round(centre + (spec.offset - 0.5) * room * 0.9))
        off = int(np.clip(off, 0, room))
        x = np.zeros(CLIP_SAMPLES, dtype=np.float64)
        word = word / max(float(np.max(np.abs(word))), 1e-9) * 10 ** (spec.peak_db / 20)
        x[off:off + len(word)] = word
        floor = nz.generate_noise(spec.floor_kind, CLIP_SAMPLES, rng)
        x = x + floor * nz.rms(word) * 10 ** (spec.floor_db / 20)
    from ..audio import float_to_int16
    return float_to_int16(np.clip(x, -1.0, 32767 / 32768))


@dataclass
class SynthDataset:
    """A generated split.

    Attributes:
        audio: int16 (N, 16000) PCM at 16 kHz.
        labels: int64 (N,) indices into LABELS.
        specs: the N :class:`ClipSpec` dicts.
        path: cache folder it was read from / written to (None when uncached).
    """

    audio: np.ndarray
    labels: np.ndarray
    specs: list[dict]
    path: Path | None = None

    def float_audio(self) -> np.ndarray:
        """float32 (N, 16000) in [-1, 1) (int16 / 32768)."""
        return self.audio.astype(np.float32) / np.float32(32768.0)


def _render_many(args) -> list[np.ndarray]:
    specs, executable, noise_files = args
    return [render_clip(s, executable=executable, noise_files=noise_files) for s in specs]


def dataset_key(n_per_class: int, seed: int, split: str, labels: tuple[str, ...],
                noise_sig: str = "") -> str:
    """Hex key naming a cached split (changes with every generation parameter)."""
    blob = json.dumps([GENERATOR_VERSION, n_per_class, seed, split, list(labels), noise_sig])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def generate_split(n_per_class: int, *, seed: int = 0, split: str = "train",
                   labels: tuple[str, ...] = LABELS, cache_dir: str | os.PathLike | None = None,
                   workers: int = 2, executable: str | None = None,
                   noise_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> SynthDataset:
    """Generate (or read from the cache) ``n_per_class`` clips for each label.

    Args:
        n_per_class: clips per label (>= 1).
        seed: dataset seed; the same (seed, split, n_per_class, labels) gives identical
            int16 audio.
        split: "train" | "val" | "test" (disjoint voice variants, see :func:`variants_for`).
        labels: labels to generate (subset of LABELS, in any order).
        cache_dir: folder for cached splits (``synth-<key>/`` with ``audio.npy``,
            ``labels.npy``, ``specs.json``, written atomically); None = no caching.
        workers: processes calling espeak-ng in parallel (1 = in this process).
        executable: espeak-ng program (see :func:`find_espeak`).
        noise_dir: folder of recorded noise WAVs (e.g. Speech Commands'
            ``_background_noise_``) for ``silence`` clips; generated noise otherwise.
        progress: show a tqdm progress bar.
    Returns:
        :class:`SynthDataset`, clips in label-major order.
    Raises:
        EspeakError: espeak-ng missing or failing (checked before any work).
        ValueError: n_per_class < 1, unknown label or split.
    """
    if n_per_class < 1:
        raise ValueError("n_per_class must be >= 1")
    bad = [lab for lab in labels if lab not in LABELS]
    if bad:
        raise ValueError(f"unknown label {bad[0]!r} (expected one of {', '.join(LABELS)})")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
    noise_files: tuple[np.ndarray, ...] = ()
    noise_sig = ""
    if noise_dir is not None:
        from .noise import load_noise_files
        named = load_noise_files(noise_dir)
        noise_files = tuple(named.values())
        noise_sig = ",".join(f"{k}:{len(v)}" for k, v in named.items())
    key = dataset_key(n_per_class, seed, split, tuple(labels), noise_sig)
    folder = Path(cache_dir) / f"synth-{key}" if cache_dir is not None else None
    if folder is not None and (folder / "specs.json").exists():
        audio = np.load(folder / "audio.npy")
        lab = np.load(folder / "labels.npy")
        specs = json.loads((folder / "specs.json").read_text())["specs"]
        return SynthDataset(audio, lab, specs, folder)

    exe = find_espeak(executable) if any(lab != "silence" for lab in labels) else None
    specs = [clip_spec(seed, split, i, lab) for lab in labels for i in range(n_per_class)]
    chunk = 32
    jobs = [(specs[i:i + chunk], exe, noise_files) for i in range(0, len(specs), chunk)]
    from tqdm import tqdm
    bar = tqdm(total=len(specs), desc=f"espeak-ng {split}", unit="clip", disable=None if progress else True,
               leave=False)
    out: list[np.ndarray] = []
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
        with ctx.Pool(workers) as pool:
            for part in pool.imap(_render_many, jobs):
                out.extend(part)
                bar.update(len(part))
    else:
        for job in jobs:
            part = _render_many(job)
            out.extend(part)
            bar.update(len(part))
    bar.close()
    audio = np.stack(out).astype(np.int16)
    lab = np.array([LABELS.index(s.label) for s in specs], dtype=np.int64)
    spec_dicts = [asdict(s) for s in specs]
    ds = SynthDataset(audio, lab, spec_dicts, None)
    if folder is not None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            np.save(tmp / "audio.npy", audio)
            np.save(tmp / "labels.npy", lab)
            meta = {"generator_version": GENERATOR_VERSION, "n_per_class": n_per_class,
                    "seed": seed, "split": split, "labels": list(labels), "specs": spec_dicts}
            (tmp / "specs.json").write_text(json.dumps(meta))
            try:
                os.replace(tmp, folder)
            except OSError:          # another process cached it first: keep theirs
                pass
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        ds.path = folder
    return ds


def speech_stream(n_samples: int, rng: np.random.Generator, *, executable: str | None = None,
                  words_per_call: int = 12) -> np.ndarray:
    """Continuous speech of one talker (random voice, random words) for babble noise.

    Args:
        n_samples: length in samples (16 kHz).
        rng: random generator (determines voice and words).
        executable: espeak-ng program.
        words_per_call: words per espeak-ng sentence.
    Returns:
        float32 (n_samples,) speech, peak-normalised sentences back to back.
    Raises:
        EspeakError: espeak-ng missing or failing.
    """
    vocab = UNKNOWN_WORDS + KEYWORDS
    voice = str(rng.choice(DIALECTS))
    variant = str(rng.choice(VARIANTS))
    voice += f"+{variant}" if variant else ""
    pieces, total = [], 0
    while total < n_samples:
        words = " ".join(str(w) for w in rng.choice(vocab, size=words_per_call))
        x = espeak_wav(words, voice, speed=int(rng.integers(130, 230)),
                       pitch=int(rng.integers(20, 80)), executable=executable)
        x = x / max(float(np.max(np.abs(x))), 1e-9)
        pieces.append(x)
        total += len(x)
    return np.concatenate(pieces)[:n_samples].astype(np.float32)


def write_wav_folder(ds: SynthDataset, out: str | os.PathLike) -> Path:
    """Write a split as one folder per label of 16-bit 16 kHz WAVs (``<label>/<i>.wav``),
    the layout :class:`nanomamba.data.speech_commands.SpeechCommands` reads.

    Args:
        ds: the split. out: destination folder (must not exist; written atomically).
    Returns:
        the folder.
    Raises:
        KwsError: ``out`` exists.
    """
    import soundfile as sf

    out = Path(out)
    if out.exists():
        raise KwsError(f"{out}: already exists (choose a new folder or delete it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        counts: dict[str, int] = {}
        for clip, lab in zip(ds.audio, ds.labels):
            name = LABELS[int(lab)]
            (tmp / name).mkdir(exist_ok=True)
            i = counts.get(name, 0)
            counts[name] = i + 1
            sf.write(tmp / name / f"{name}_{i:05d}.wav", clip, SAMPLE_RATE, subtype="PCM_16")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


#: Voices of the demo clips (one per keyword, cycling): plain, clear espeak-ng voices.
DEMO_VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb-x-rp+f2")


def demo_spec(word: str, index: int = 0) -> ClipSpec:
    """Fixed, clearly spoken parameters for a demo clip of ``word`` (centred, -6 dBFS peak,
    noise floor 55 dB below the word)."""
    label = word if word in LABELS else "unknown"
    return ClipSpec(label, word, DEMO_VOICES[index % len(DEMO_VOICES)], 150, 50, -6.0, 0.5,
                    -55.0, "pink", 1000 + index)


def write_demo_clips(out: str | os.PathLike, words: tuple[str, ...] = KEYWORDS, *,
                     executable: str | None = None, force: bool = False) -> list[Path]:
    """Write ``<word>.wav`` demo clips (16 kHz mono PCM16, 1 s) into ``out``.

    Returns:
        the files written.
    Raises:
        KwsError: a file exists and not ``force``. EspeakError: espeak-ng missing.
    """
    import soundfile as sf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, word in enumerate(words):
        path = out / f"{word}.wav"
        if path.exists() and not force:
            raise KwsError(f"{path}: already exists (pass --force to overwrite)")
        clip = render_clip(demo_spec(word, i), executable=executable)
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, clip, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None):
    """``python -m nanomamba.data.synth``: write a generated split as label folders, or demo clips."""
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("out", type=click.Path(path_type=Path))
    @click.option("--per-class", type=int, default=100, show_default=True)
    @click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
    @click.option("--seed", type=int, default=1, show_default=True)
    @click.option("--demo", is_flag=True, help="Write one clearly spoken <keyword>.wav per keyword instead.")
    @click.option("--espeak", default=None, help="espeak-ng executable.")
    @click.option("--force", is_flag=True)
    def cli(out, per_class, split, seed, demo, espeak, force):
        """Generate keyword clips with espeak-ng into OUT (one folder per label)."""
        try:
            if demo:
                for p in write_demo_clips(out, executable=espeak, force=force):
                    click.echo(f"wrote {p}")
                return
            if out.exists() and force:
                shutil.rmtree(out)
            ds = generate_split(per_class, seed=seed, split=split, executable=espeak)
            write_wav_folder(ds, out)
            click.echo(f"wrote {len(ds.labels)} clips to {out}")
        except KwsError as err:
            click.echo(f"error: {err}", err=True)
            raise SystemExit(1)

    return cli(args=argv, prog_name="python -m nanomamba.data.synth")


if __name__ == "__main__":
    main()
