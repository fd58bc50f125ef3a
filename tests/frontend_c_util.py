"""Build and run the C front end on the host (tests and benchmarks share this).

The C is kws_frontend.c + frontend_params.c rendered from the template for the given params
+ tests/c/frontend_driver.c, compiled with the project's strict flags (UBSan by default).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from cmsis_stub import stub_root
from export import frontend_fixed as ff
from export.hostc import compile_host
from firmware_templates import template_root

DRIVER = Path(__file__).resolve().parent / "c" / "frontend_driver.c"
PROVENANCE = {"tool": "nanomamba-kws tests", "command": "tests/frontend_c_util.py",
              "model_hash": "test"}


def synthetic_mel_fb(n_mels: int = 40) -> np.ndarray:
    """An HTK-style triangular mel filterbank (40, 257), peak 1, for tests without the
    checkpoints (same shape of weights as NanoMamba's, not the same values)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    pts = imel(np.linspace(mel(0), mel(8000), n_mels + 2)) / 8000 * 256
    k = np.arange(ff.N_BINS)
    fb = np.zeros((n_mels, ff.N_BINS), np.float32)
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (k - lo) / max(c - lo, 1e-9)
        down = (hi - k) / max(hi - c, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0, 1)
        if not fb[m].any():
            fb[m, int(round(c))] = 1.0
    return fb


def build(params: dict, out_dir: Path, *, taps: bool = True, sanitize: bool = True,
          opt: str = "-O2", name: str = "frontend_driver") -> Path:
    """Render the params, compile the driver; returns the executable path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in ff.render_frontend_params_c(params, PROVENANCE).items():
        (out_dir / fname).write_text(text)
    kernels = template_root() / "kernels"
    return compile_host([DRIVER, kernels / "kws_frontend.c", out_dir / "frontend_params.c"],
                        out_dir / name, include_dirs=[out_dir, kernels, stub_root()],
                        defines=["KWS_FRONTEND_TAPS"] if taps else (), sanitize=sanitize, opt=opt)


def run(exe: Path, mode: str, audio: np.ndarray, out_dir: Path) -> Path:
    """Run the driver on int16 clips (B, 16000); returns the folder with its .bin outputs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inp = out_dir / "audio.bin"
    np.ascontiguousarray(audio, dtype=np.int16).tofile(inp)
    proc = subprocess.run([str(exe), mode, str(inp), str(out_dir)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"C front end failed ({proc.returncode}): {proc.stderr.strip()[:2000]}")
    return out_dir


def load(out_dir: Path, name: str, n_clips: int, n_mels: int = 40) -> np.ndarray:
    """One output of the driver as (n_clips, *shape) in its C dtype (memory-mapped)."""
    dtype, shape = ff.INTERMEDIATES[name]
    shape = tuple(n_mels if s is None else s for s in shape)
    path = Path(out_dir) / f"{name}.bin"
    want = n_clips * int(np.prod(shape)) * np.dtype(dtype).itemsize
    got = path.stat().st_size if path.exists() else -1
    if got != want:
        raise AssertionError(f"{name}: C wrote {got} bytes, expected {want}")
    return np.memmap(path, dtype=dtype, mode="r", shape=(n_clips, *shape))
