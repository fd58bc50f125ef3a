"""Host bit-exactness check of a generated C folder against the simulator (``kws-export
verify``).

:func:`verify_dir` compiles the folder's sources with its host driver
(``host/kws_host_main.c``) using the project's strict flags and UBSan
(:func:`export.hostc.compile_host`), with ``-DKWS_TAPS -DKWS_NN_TAPS
-DKWS_FRONTEND_TAPS`` so the C reports every intermediate tensor; runs it on the clips (many
clips per process); runs :class:`export.simulator.Simulator` on the folder's own
``bundle.npz``; and compares, byte for byte: every front-end intermediate (optional), the
network inputs, every op output of every frame, the SA-SSM's dA, du and h, the pooled
vector, the logits of ``kws_run`` and of the streaming API. A mismatch is reported as the
first one in execution order: tensor, clip, frame, index and both values.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from export.codegen import BUNDLE_COPY, MODEL_JSON
from nanomamba.errors import KwsError, positive_int

CLIP = 16_000


class VerifyError(KwsError):
    """A folder that is not a generated model, an unreadable clip, or a C run that failed."""


# =======================================================================================
# inputs
# =======================================================================================

def _i16(x) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)


def extreme_inputs() -> tuple[np.ndarray, list[str]]:
    """Fixed extreme clips (int16, (n, 16000)): silence, DC at both rails and +-1, full-scale
    square waves (several periods), a run of INT16_MIN in silence, alternating rails,
    impulses at the window edges, clipped full-scale noise, a full-scale tone.

    Returns:
        (clips, names).
    """
    n = CLIP
    t = np.arange(n)
    rng = np.random.default_rng(7)
    out: list[tuple[str, np.ndarray]] = [("silence", np.zeros(n))]
    for v in (32767, -32768, 1, -1):
        out.append((f"dc{v}", np.full(n, v)))
    for period in (2, 8, 160, 512, 4000):
        out.append((f"square{period}", np.where((t // max(period // 2, 1)) % 2 == 0, 32767, -32768)))
    x = np.zeros(n)
    x[6000:7600] = -32768
    out.append(("int16min_run", x))
    x = np.zeros(n)
    x[::2] = -32768
    x[1::2] = 32767
    out.append(("alternating_rails", x))
    for pos in (0, 15999):
        x = np.zeros(n)
        x[pos] = -32768
        out.append((f"impulse{pos}", x))
    out.append(("clipped_noise", rng.normal(0, 40000, n)))
    out.append(("tone1k_fullscale", 32767 * np.sin(2 * np.pi * 1000 * t / 16000)))
    return np.stack([_i16(c) for _, c in out]), [nm for nm, _ in out]


def generated_inputs(count: int = 1000, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A deterministic stress corpus of ``count`` int16 clips: :func:`extreme_inputs` first,
    then random members of these families: white/pink-ish noise at -100..+12 dBFS (clipped
    above 0 dBFS), square waves of random period and amplitude (full scale included), tones
    and chirps, DC offsets with noise, runs of INT16_MIN / INT16_MAX inside quiet or loud
    audio, silence with sparse impulses, bursts with silent gaps, LSB-level noise.

    Args:
        count: number of clips (>= the number of fixed extremes).
        seed: generator seed.
    Returns:
        (clips int16 (count, 16000), names).
    """
    clips, names = extreme_inputs()
    clips, names = list(clips), list(names)
    rng = np.random.default_rng([seed, 20261129])
    n = CLIP
    t = np.arange(n)
    fams = ("noise", "square", "tone", "chirp", "dc", "rail_run", "impulses", "bursts", "lsb")
    i = 0
    while len(clips) < count:
        fam = fams[i % len(fams)]
        i += 1
        if fam == "noise":
            db = rng.uniform(-100, 12)
            x = rng.normal(0, 32768 * 10 ** (db / 20), n)
            if rng.random() < 0.5:
                x = np.cumsum(x) * 0.05
            name = f"noise{db:.0f}dB"
        elif fam == "square":
            period = int(rng.integers(2, 4000))
            amp = 32767 if rng.random() < 0.5 else float(rng.uniform(1, 32767))
            x = np.where(((t + int(rng.integers(period))) // max(period // 2, 1)) % 2 == 0, amp, -amp - (amp == 32767))
            name = f"square{period}"
        elif fam == "tone":
            f = rng.uniform(20, 8000)
            amp = 10 ** rng.uniform(0, np.log10(40000))
            x = amp * np.sin(2 * np.pi * f * t / 16000 + rng.uniform(0, 6.28))
            name = f"tone{f:.0f}"
        elif fam == "chirp":
            f0, f1 = rng.uniform(0, 8000, 2)
            amp = 10 ** rng.uniform(1, np.log10(40000))
            x = amp * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * n)) / 16000)
            name = "chirp"
        elif fam == "dc":
            x = rng.integers(-32768, 32768) + rng.normal(0, 10 ** rng.uniform(0, 3), n)
            name = "dc_noise"
        elif fam == "rail_run":
            x = rng.normal(0, 10 ** rng.uniform(0, 4), n)
            a = int(rng.integers(0, n - 10))
            x[a:a + int(rng.integers(1, 4000))] = rng.choice([-32768, 32767])
            name = "rail_run"
        elif fam == "impulses":
            x = np.zeros(n)
            idx = rng.integers(0, n, int(rng.integers(1, 50)))
            x[idx] = rng.choice([-32768, 32767, 1, -1, 1000], len(idx))
            name = "impulses"
        elif fam == "bursts":
            x = rng.normal(0, 10 ** rng.uniform(2, 4.6), n)
            for _ in range(int(rng.integers(1, 5))):
                a = int(rng.integers(0, n))
                x[a:a + int(rng.integers(100, 5000))] = 0
            name = "bursts"
        else:
            x = rng.integers(-2, 3, n)
            name = "lsb"
        clips.append(_i16(x))
        names.append(f"gen{len(clips)}_{name}")
    return np.stack(clips[:count]), names[:count]


def load_clips(paths: Sequence[Path]) -> tuple[np.ndarray, list[str]]:
    """int16 (n, 16000) clips from audio files (via :func:`nanomamba.audio.load_audio`;
    padding/trimming warnings are silenced)."""
    from nanomamba.audio import load_audio
    from nanomamba.errors import AudioWarning
    clips = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        for p in paths:
            clips.append(load_audio(p, dtype="int16"))
    return np.stack(clips), [str(p) for p in paths]


def default_clips() -> tuple[np.ndarray, list[str]]:
    """What ``verify`` checks without ``--audio``: the clips the project ships
    (examples/clips/*.wav) and :func:`extreme_inputs`."""
    root = Path(__file__).resolve().parents[1] / "examples" / "clips"
    paths = sorted(root.glob("*.wav")) if root.is_dir() else []
    ex, exn = extreme_inputs()
    if not paths:
        return ex, exn
    c, n = load_clips(paths)
    return np.concatenate([c, ex]), n + exn


# =======================================================================================
# build and run
# =======================================================================================

@dataclass
class HostBuild:
    """A compiled host driver of a generated folder."""

    folder: Path
    exe: Path
    info: dict
    taps: bool


def read_folder(folder) -> tuple[dict, "object"]:
    """(kws_model.json, bundle) of a generated folder.

    Raises:
        VerifyError: not a folder made by ``kws-export generate``, or one of the C files
            its ``kws_model.json`` lists (or ``host/kws_host_main.c``) is missing (all
            named, before anything is compiled).
        CodegenError: ``kws_model.json`` has no valid ``c_sources`` list.
        BundleError: its bundle copy is corrupt.
        CodegenError: its bundle copy is another model's than the generated code's
            (:func:`export.codegen.load_folder_bundle`).
    """
    from export.codegen import (incomplete_folder_message, load_folder_bundle,
                                missing_c_sources)
    folder = Path(folder)
    if folder.is_file():
        raise VerifyError(f"{folder}: is a file, expected a folder made by kws-export generate")
    if not folder.is_dir():
        raise VerifyError(f"{folder}: no such folder (expected one made by kws-export generate)")
    mj = folder / MODEL_JSON
    if not mj.is_file() or not (folder / BUNDLE_COPY).is_file():
        raise VerifyError(f"{folder}: not a generated model folder (no {MODEL_JSON} / "
                          f"{BUNDLE_COPY}); make one with kws-export generate")
    try:
        info = json.loads(mj.read_text())
    except ValueError:
        raise VerifyError(f"{mj}: corrupt JSON; regenerate the folder") from None
    if not isinstance(info, dict):
        raise VerifyError(f"{mj}: not a kws_model.json object; regenerate the folder")
    missing = missing_c_sources(folder, info, host=True)
    if missing:
        raise VerifyError(incomplete_folder_message(folder, missing))
    return info, load_folder_bundle(folder)


def build_host(folder, build_dir, *, taps: bool = True, sanitize: bool = True,
               opt: str = "-O2") -> HostBuild:
    """Compile a generated folder and its host driver for the host (strict flags; UBSan
    unless ``sanitize`` is False).

    Args:
        folder: the generated folder (not modified).
        build_dir: where the executable goes.
        taps: record every intermediate (-DKWS_TAPS -DKWS_NN_TAPS -DKWS_FRONTEND_TAPS).
    Raises:
        ToolError: no host compiler (names the package) or a compile error.
        VerifyError: not a generated folder.
    """
    import hashlib
    import os
    from concurrent.futures import ThreadPoolExecutor

    from export.hostc import compile_host, host_compiler
    folder = Path(folder)
    info, _ = read_folder(folder)
    srcs = [folder / s for s in info["c_sources"]] + [folder / "host" / "kws_host_main.c"]
    defines = ["KWS_TAPS", "KWS_NN_TAPS", "KWS_FRONTEND_TAPS"] if taps else []
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    cc = host_compiler()
    # one object per source, compiled in parallel; objects are cached by the hash of the
    # source, every header of the folder, the compiler and the flags (the kernels are the
    # same in every generated folder)
    cache = Path(tempfile.gettempdir()) / "kws-verify-objcache"
    cache.mkdir(exist_ok=True)
    generated_h = {"kws_model.h", "kws_weights.h", "frontend_params.h"}
    flags = f"{cc}|{sanitize}|{opt}|{defines}".encode()
    kernel_h = b"".join(h.name.encode() + h.read_bytes() for h in sorted(folder.glob("*.h"))
                        if h.name not in generated_h)
    all_h = kernel_h + b"".join(h.name.encode() + h.read_bytes()
                                for h in sorted(folder.glob("*.h")) if h.name in generated_h)
    kernel_c = set(info["c_sources"]) - {"kws_model.c", "kws_weights.c", "frontend_params.c"}

    def obj(src: Path) -> Path:
        key = flags + (kernel_h if src.name in kernel_c else all_h) + src.read_bytes()
        digest = hashlib.sha256(key).hexdigest()[:32]
        out = cache / f"{src.stem}-{digest}.o"
        if not out.exists():
            tmp = build_dir / f"{src.stem}.o"
            compile_host([src], tmp, include_dirs=[folder], defines=defines,
                         sanitize=sanitize, opt=opt, extra=["-c"])
            os.replace(tmp, out)
        return out

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        objs = list(pool.map(obj, srcs))
    exe = compile_host(objs, build_dir / ("kws_host_taps" if taps else "kws_host"),
                       sanitize=sanitize, opt=opt)
    return HostBuild(folder, exe, info, taps)


def run_host(build: HostBuild, clips: np.ndarray, work, *, frontend: bool = False) -> dict:
    """Run the host driver on int16 clips (n, 16000) in one process.

    Returns:
        {"logits" (n, C) int8, "labels" (n,), "stream_logits", "stream_labels", and with
        taps "taps" (n, words) int32; with ``frontend`` "fe" {name: raw bytes array}}.
    Raises:
        VerifyError: the driver failed (UBSan report or crash: first stderr line).
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.bin"):
        old.unlink()
    inp = work / "clips.in"
    np.ascontiguousarray(clips, dtype="<i2").tofile(inp)
    cmd = [str(build.exe), str(inp), str(work)] + (["fe"] if frontend else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
        raise VerifyError(f"{build.folder}: host run failed: {msg[:300]}")
    n = len(clips)
    C = len(build.info["model"]["labels"])
    out = {"logits": np.fromfile(work / "logits.bin", np.int8).reshape(n, C),
           "labels": np.fromfile(work / "labels.bin", "<i4"),
           "stream_logits": np.fromfile(work / "stream_logits.bin", np.int8).reshape(n, C),
           "stream_labels": np.fromfile(work / "stream_labels.bin", "<i4")}
    if build.taps:
        w = build.info["taps"]["words_per_clip"]
        out["taps"] = np.fromfile(work / "taps.bin", "<i4").reshape(n, w)
    if frontend:
        out["fe"] = {p.stem[3:]: p for p in work.glob("fe_*.bin")}
    return out


# =======================================================================================
# comparison
# =======================================================================================

@dataclass
class Mismatch:
    """The first differing value: tensor, clip, frame (None for per-clip tensors), flat
    index within the frame's tensor, and both values."""

    tensor: str
    clip: int
    clip_name: str
    frame: int | None
    index: int
    c_value: int
    sim_value: int

    def __str__(self) -> str:
        fr = f", frame {self.frame}" if self.frame is not None else ""
        return (f"first mismatch: tensor '{self.tensor}', clip {self.clip} ({self.clip_name})"
                f"{fr}, index {self.index}: C {self.c_value} != simulator {self.sim_value}")


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_dir`."""

    folder: Path
    n_clips: int = 0
    tensors: int = 0
    values: int = 0
    frontend_checked: bool = False
    mismatch: Mismatch | None = None
    label_agreement: int = 0
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def summary(self) -> str:
        fe = " (front-end intermediates included)" if self.frontend_checked else ""
        if self.ok:
            return (f"{self.folder}: bit-exact on {self.n_clips} clips: {self.tensors} tensors, "
                    f"{self.values:,} values{fe}, logits and labels of kws_run and of the "
                    f"streaming API equal the simulator's")
        return f"{self.folder}: NOT bit-exact: {self.mismatch}"


def _first(mask: np.ndarray) -> tuple | None:
    idx = np.argwhere(mask)
    return tuple(int(v) for v in idx[0]) if len(idx) else None


def compare_chunk(info: dict, sim_out: dict, c_out: dict, names: list[str], base: int = 0,
                  fe_sim: dict | None = None) -> tuple[int, int, Mismatch | None]:
    """Compare one chunk of clips. Returns (tensors compared, values compared, first
    mismatch or None). Order: front-end intermediates, then per clip the network tensors in
    execution order (frame by frame, op by op), then the per-clip tensors and the logits."""
    T = info["n_frames"]
    n = len(names)
    values = 0
    ntens = 0
    # front end (checked first: it runs first)
    if fe_sim is not None and "fe" in c_out:
        from export import frontend_fixed as ff
        for name, (dt, _) in ff.INTERMEDIATES.items():
            key = "frontend." + name
            path = c_out["fe"].get(name)
            if key not in fe_sim or path is None:
                continue        # features / snr_mel: compared below as network inputs
            ref = np.ascontiguousarray(fe_sim[key])
            got = np.fromfile(path, dtype=ref.dtype)
            ntens += 1
            if got.size != ref.size:
                return ntens, values, Mismatch("frontend." + name, base, names[0], None, 0,
                                               int(got.size), int(ref.size))
            got = got.reshape(ref.shape)
            values += ref.size
            bad = _first(got != ref)
            if bad is not None:
                i = bad[0]
                flat = np.ravel_multi_index(bad[1:], ref.shape[1:]) if ref.ndim > 1 else 0
                fr = bad[1] if ref.ndim > 2 else None
                return ntens, values, Mismatch("frontend." + name, base + i, names[i], fr,
                                               int(flat), int(got[bad]), int(ref[bad]))
    # network taps: per clip, earliest (frame, tap id)
    taps = info["taps"]["tensors"]
    rec = c_out["taps"]
    best = None
    for tp in taps:
        ref = np.asarray(sim_out[tp["name"]]).astype(np.int64)
        if tp["per_frame"]:
            ref = ref.reshape(n, T, tp["n"])
            got = rec[:, tp["offset"]:tp["offset"] + T * tp["n"]].reshape(n, T, tp["n"])
        else:
            ref = ref.reshape(n, 1, tp["n"])
            got = rec[:, tp["offset"]:tp["offset"] + tp["n"]].reshape(n, 1, tp["n"])
        ntens += 1
        values += ref.size
        bad = got != ref
        if bad.any():
            for c in range(n):
                hit = _first(bad[c])
                if hit is None:
                    continue
                fr = hit[0] if tp["per_frame"] else T
                key = (c, fr, tp["id"])
                if best is None or key < best[0]:
                    best = (key, Mismatch(tp["name"], base + c, names[c],
                                          hit[0] if tp["per_frame"] else None, hit[1],
                                          int(got[c][hit]), int(ref[c][hit])))
                break
    if best is not None:
        return ntens, values, best[1]
    ref = np.asarray(sim_out["logits"]).astype(np.int64)
    for key in ("logits", "stream_logits"):
        ntens += 1
        values += ref.size
        hit = _first(c_out[key] != ref)
        if hit is not None:
            what = "logits (kws_run)" if key == "logits" else "logits (streaming API)"
            return ntens, values, Mismatch(what, base + hit[0], names[hit[0]], None, hit[1],
                                           int(c_out[key][hit]), int(ref[hit]))
    am = np.asarray(sim_out["label"]).reshape(-1)    # the simulator's label (argmax_s32)
    for key in ("labels", "stream_labels"):
        bad = np.nonzero(c_out[key] != am)[0]
        if len(bad):
            i = int(bad[0])
            return ntens, values, Mismatch(key, base + i, names[i], None, 0, int(c_out[key][i]),
                                           int(am[i]))
    return ntens, values, None


def _check_clips(clips, names) -> np.ndarray:
    """clips as an int16 (n >= 1, 16000) array, names (if given) one per clip."""
    clips = np.asarray(clips)
    if clips.ndim != 2 or clips.shape[1] != CLIP or clips.dtype != np.int16:
        raise VerifyError(f"clips: expected int16 (n, {CLIP}), got {clips.dtype} {clips.shape}")
    if len(clips) == 0:
        raise VerifyError(f"no clips to verify (clips has shape {clips.shape})")
    if names is not None:
        if isinstance(names, (str, bytes)):
            raise TypeError("names: expected a list of clip names, got a single str")
        if len(names) != len(clips):
            raise ValueError(f"names: {len(names)} names for {len(clips)} clips "
                             f"(one name per clip)")
    return clips


def verify_dir(folder, clips: np.ndarray | None = None, names: list[str] | None = None, *,
               audio: Sequence[Path] = (), frontend: bool = True, sanitize: bool = True,
               chunk: int = 50, build_dir=None,
               progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Build a generated folder for the host and compare every intermediate with the
    simulator.

    Args:
        folder: made by :func:`export.codegen.generate_c`.
        clips: int16 (n, 16000) clips, n >= 1; else ``audio`` files; else
            :func:`default_clips`.
        names: names of ``clips`` (for the report), one per clip; only with ``clips``.
        audio: a list of clip files (used when ``clips`` is None; not with ``clips``); a
            single str/Path is refused (write ``[path]``).
        frontend: also compare the front end's intermediates (about 1 MB per clip; use
            False for large sets: features and snr_mel are still compared).
        sanitize: UBSan build (any undefined behaviour fails the run).
        chunk: clips per host process / simulator batch, an int >= 1.
        build_dir: where to compile (default: a temp folder).
        progress: called with (clips done, total).
    Returns:
        :class:`VerifyResult` (``ok``, counts, the first mismatch).
    Raises:
        VerifyError: clips not int16 (n, 16000), or no clips (n = 0: nothing verified).
        TypeError: ``audio`` not a list of paths, ``chunk`` not an int.
        ValueError: ``chunk`` < 1; ``names`` not one per clip, or given without ``clips``;
            both ``clips`` and ``audio``. These argument checks come before any work.
        ToolError (no host compiler: names the package), AudioError, BundleError.
    """
    from export.fileio import path_list
    from export.simulator import Simulator
    audio = path_list(audio, "audio")
    chunk = positive_int(chunk, "chunk")
    if clips is not None and audio:
        raise ValueError("give clips or audio, not both")
    if names is not None and clips is None:
        raise ValueError("names: only used with clips (audio files are named by their paths)")
    if clips is not None:
        clips = _check_clips(clips, names)
    folder = Path(folder)
    info, bundle = read_folder(folder)
    if clips is None:
        if audio:
            clips, names = load_clips(audio)
        else:
            clips, names = default_clips()
    clips = _check_clips(clips, names)
    names = list(names) if names is not None else [f"clip{i}" for i in range(len(clips))]
    res = VerifyResult(folder)
    sim = Simulator(bundle)
    keep = {t["name"] for t in info["taps"]["tensors"]} | {"logits", "label"}
    with tempfile.TemporaryDirectory(prefix="kws-verify-") as tmp:
        tmp = Path(tmp)
        bld = build_host(folder, Path(build_dir) if build_dir else tmp, taps=True,
                         sanitize=sanitize)
        for s in range(0, len(clips), chunk):
            part = clips[s:s + chunk]
            c_out = run_host(bld, part, tmp / "run", frontend=frontend)
            out = sim.run(part, frontend_intermediates=frontend)
            fe_sim = {k: v for k, v in out.items() if k.startswith("frontend.")} if frontend else None
            sim_out = {k: out[k] for k in keep}
            nt, nv, mm = compare_chunk(info, sim_out, c_out, names[s:s + chunk], s, fe_sim)
            res.tensors = nt
            res.values += nv
            res.n_clips += len(part)
            res.frontend_checked = frontend
            res.label_agreement += int((c_out["labels"] == out["label"].reshape(-1)).sum())
            if progress:
                progress(res.n_clips, len(clips))
            if mm is not None:
                res.mismatch = mm
                break
    return res
