"""Helpers shared by the firmware tests: tool checks, synthetic clips, model-folder variants
and the host-C reference of the stand-in model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cmsis_stub import stub_root
from export.firmware import standin_model_dir
from firmware_templates import template_root

HAVE_GCC = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="arm-none-eabi-gcc is absent "
                               "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(not (HAVE_GCC and HAVE_QEMU), reason="arm-none-eabi-gcc or "
                                "qemu-system-arm is absent (apt-get install qemu-system-arm)")

QEMU_BOARDS = ("mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547")
REAL_BOARDS = ("b-l475e-iot01a", "nucleo-l4r5zi", "arduino-nano33-ble-sense")


def one_line_error(result) -> str:
    """The CLI's error line of a click ``CliRunner`` result: asserts exit code 1 and exactly
    one ``error: ...`` line, the last one, and returns it."""
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and len([ln for ln in lines if "error" in ln]) == 1
    return lines[-1]


def synthetic_clips(n: int = 4, seed: int = 7) -> list[np.ndarray]:
    """``n`` deterministic int16 clips of 16,000 samples: tones of different pitch and
    loudness over noise (clip 0 is silence)."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000.0
    clips = [np.zeros(16000, dtype=np.int16)]
    for k in range(1, n):
        x = (3000 * k) * np.sin(2 * np.pi * (150 * k) * t) + rng.normal(0, 300 * k, 16000)
        clips.append(np.clip(np.round(x), -32768, 32767).astype(np.int16))
    return clips


def write_f32(path: Path, clip: np.ndarray) -> Path:
    """Write an int16 clip as a raw .f32 file (exact: int16 / 32768)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    (clip.astype(np.float32) / np.float32(32768.0)).astype("<f4").tofile(path)
    return path


def model_variant(dest: Path, kws_run_body: str) -> Path:
    """A copy of the stand-in model whose kws_run is replaced by ``kws_run_body`` (C
    statements; ``kws_run_real(audio, logits)`` is the stand-in's own kws_run)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(standin_model_dir() / "kws_model.h", dest / "kws_model.h")
    src = (standin_model_dir() / "standin_model.c").read_text()
    sig = "int kws_run(const int16_t *audio, int8_t *logits)\n"
    assert sig in src
    src = src.replace(sig, "int kws_run_real(const int16_t *audio, int8_t *logits);\n"
                           "int kws_run_real(const int16_t *audio, int8_t *logits)\n")
    src += "\n" + sig + "{\n" + kws_run_body + "\n}\n"
    (dest / "standin_model.c").write_text(src)
    return dest


def host_reference(clips: list[np.ndarray], workdir: Path, model: Path | None = None,
                   stream: bool = True) -> list[tuple[int, list[int]]]:
    """(label, logits) of the stand-in (or a variant folder ``model``) compiled for the
    host (strict flags + UBSan); ``stream`` also checks the streaming API agrees."""
    from export.hostc import compile_host
    model = model or standin_model_dir()
    exe = compile_host([model / "standin_model.c",
                        Path(__file__).parent / "c" / "standin_host.c"],
                       workdir / "standin_host",
                       include_dirs=[model, template_root() / "kernels", stub_root()])
    data = workdir / "clips.bin"
    data.write_bytes(b"".join(np.asarray(c, dtype="<i2").tobytes() for c in clips))
    args = [str(exe), str(data)] + ([] if stream else ["--no-stream"])
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        label, logits = line.split()
        rows.append((int(label), [int(v) for v in logits.split(",")]))
    return rows
