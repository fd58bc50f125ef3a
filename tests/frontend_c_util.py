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


def load(out_dir: Path, name: str, n_clips: int, n_mels: int = 40, nnz: int = 0) -> np.ndarray:
    """One output of the driver as (n_clips, *shape) in its C dtype (memory-mapped); None in
    a shape is n_mels, "nnz" the number of stored mel weights."""
    dtype, shape = ff.INTERMEDIATES[name]
    shape = tuple(n_mels if s is None else (nnz if s == "nnz" else s) for s in shape)
    path = Path(out_dir) / f"{name}.bin"
    want = n_clips * int(np.prod(shape)) * np.dtype(dtype).itemsize
    got = path.stat().st_size if path.exists() else -1
    if got != want:
        raise AssertionError(f"{name}: C wrote {got} bytes, expected {want}")
    return np.memmap(path, dtype=dtype, mode="r", shape=(n_clips, *shape))


def _i16(x) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)


def generated_inputs(speech: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The deterministic stress corpus of the bit-exactness test: >= 500 int16 clips
    (16,000 samples) with their names. Includes all-zero, +32767 / -32768 / +-1 DC,
    full-scale square waves, single impulses (both extremes, at frame and window edges),
    white noise at -90..0 dBFS (0 dBFS clips), uniform random int16, tones, chirps,
    LSB-level noise, silent-then-loud (noise estimate exactly 0), sign-of-cosine inputs that
    maximise one FFT bin, steps, spikes, bursts, brown noise; plus (if given) real speech
    clips at unit gain, -60 dB, +18 dB (clipped) and with a silent start.
    """
    n = ff.CLIP
    rng = np.random.default_rng(20240603)
    t = np.arange(n)
    clips: list[np.ndarray] = []
    names: list[str] = []

    def add(name, x):
        clips.append(_i16(x))
        names.append(name)

    add("zeros", np.zeros(n))
    for v in (32767, -32768, 1, -1, 16384):
        add(f"dc{v}", np.full(n, v))
    for period in (2, 4, 8, 10, 32, 100, 160, 320, 512, 1000, 4000, 16000):
        for phase in (0, max(period // 3, 1)):
            add(f"square{period}_{phase}", np.where(((t + phase) // max(period // 2, 1)) % 2 == 0, 32767, -32768))
    for pos in (0, 1, 2, 159, 160, 255, 256, 257, 511, 512, 8000, 15743, 15744, 15838, 15839, 15998, 15999):
        for amp in (32767, -32768, 1, -1):
            x = np.zeros(n)
            x[pos] = amp
            add(f"impulse{pos}_{amp}", x)
    for db, count in ((-60, 40), (0, 40), (-90, 10), (-40, 10), (-20, 10), (-80, 10)):
        for i in range(count):
            add(f"white{db}dB_{i}", rng.normal(0, 32768 * 10 ** (db / 20), n))
    for i in range(60):
        add(f"uniform_{i}", rng.integers(-32768, 32768, n))
    for i, f in enumerate([31.25, 62.5, 2015.625, 4000.0, 6259.4, 7968.75, 8000.0, 100.0, 440.0, 1000.0]):
        for amp in (32767, 1000, 10, 1):
            add(f"tone{f}_{amp}", amp * np.sin(2 * np.pi * f * t / 16000 + 0.3 * i))
    for amp in (32767, 300):
        add(f"chirp_up_{amp}", amp * np.sin(2 * np.pi * (8000 / 2) * (t / n) * t / 16000))
        add(f"chirp_down_{amp}", amp * np.cos(2 * np.pi * (8000 * t / 16000 - 4000 * (t / n) * t / 16000)))
    for i in range(10):
        add(f"lsb_{i}", rng.integers(-1, 2, n))
        x = np.zeros(n)
        x[rng.integers(0, n)] = rng.choice([-1, 1])
        add(f"one_lsb_{i}", x)
    for i in range(10):
        x = rng.normal(0, 32768 * 10 ** (-(i * 6) / 20), n)
        x[: 800 + 40 * i] = 0
        add(f"silent_start_{i}", x)
        y = rng.normal(0, 20000, n)
        y[4000 + 1000 * i:] = 0
        add(f"silent_end_{i}", y)
    for k in (1, 2, 37, 128, 200, 255, 256):
        sign = np.cos(2 * np.pi * k * (t % 512) / 512) >= 0
        add(f"signcos{k}", np.where(sign, 32767, -32768))
    for i in range(40):
        edges = np.sort(rng.integers(0, n, 6))
        levels = rng.integers(-32768, 32768, 7)
        add(f"steps_{i}", levels[np.searchsorted(edges, t, side="right")])
        x = np.zeros(n)
        idx = rng.integers(0, n, 20)
        x[idx] = rng.integers(-32768, 32768, 20)
        add(f"spikes_{i}", x)
        x = np.zeros(n)
        a = rng.integers(0, n - 2000)
        x[a:a + 1500] = rng.normal(0, 32768 * 10 ** (rng.uniform(-80, 0) / 20), 1500)
        add(f"burst_{i}", x)
    for i in range(30):
        w = np.cumsum(rng.normal(0, 200, n))
        add(f"brown_{i}", w - w.mean())
    if speech is not None:
        for i, s in enumerate(np.asarray(speech)[:20].astype(np.float64)):
            add(f"speech{i}", s)
            add(f"speech{i}_-60dB", s * 1e-3)
            add(f"speech{i}_+18dB", s * 8)
            z = s.copy()
            z[:1200] = 0
            add(f"speech{i}_silent_start", z)
    return np.stack(clips), names


# ---------------------------------------------------------------------------------------
# Firmware check: the front end on the emulated boards (the DSP code paths) against the twin
# ---------------------------------------------------------------------------------------

FW_MODEL_H = """/* kws_model.h - FRONT-END CHECK model (tests/frontend_c_util.py): the kws_model.h
 * contract around kws_frontend.c; its "network" hashes the 101 output rows into the 12
 * int8 logits, so the firmware's features and snr_mel can be compared with the twin. */
#ifndef KWS_MODEL_H
#define KWS_MODEL_H
#include <stdint.h>
#define KWS_SAMPLES 16000
#define KWS_HOP 160
#define KWS_N_CLASSES 12
#define KWS_MODEL_NAME "frontend_check"
void kws_init(void);
int kws_run(const int16_t *audio, int8_t *logits);
int kws_run_frontend(const int16_t *audio);
int kws_run_network(int8_t *logits);
void kws_reset(void);
void kws_push_hop(const int16_t *hop);
int kws_classify(int8_t *logits);
extern const char *const kws_labels[KWS_N_CLASSES];
#endif
"""

FW_GLUE_C = """/* fe_check.c - FRONT-END CHECK model: kws_model.h over kws_frontend.c. */
#include "kws_model.h"
#include "kws_frontend.h"
#include "frontend_params.h"

static kws_frontend_state_t fe_state;
static int32_t fe_scratch[KWS_FE_SCRATCH_WORDS];

const char *const kws_labels[KWS_N_CLASSES] = {"h0", "h1", "h2", "h3", "h4", "h5",
                                               "h6", "h7", "h8", "h9", "h10", "h11"};

void kws_init(void) { }

/* Three 32-bit hashes of every (feature, snr_mel) cell, as 12 int8 "logits". */
static int fe_hash(int8_t *logits)
{
    int16_t f[KWS_FE_N_MELS];
    int8_t s[KWS_FE_N_MELS];
    uint32_t h0 = 2166136261u, h1 = 0x9747B28Cu, h2 = 0x12345678u;
    for (int32_t t = 0; t < KWS_FE_N_FRAMES; t++) {
        if (kws_frontend_output_row(&fe_state, t, f, s) != KWS_FE_OK) { return -1; }
        for (int32_t m = 0; m < KWS_FE_N_MELS; m++) {
            const uint32_t v = (uint32_t)(uint16_t)f[m] | ((uint32_t)(uint8_t)s[m] << 16);
            h0 = (h0 ^ v) * 16777619u;
            h1 = (h1 ^ (v * 2654435761u)) * 16777619u;
            h2 = (h2 + v) * 2246822519u;
        }
    }
    for (int k = 0; k < KWS_N_CLASSES; k++) {
        const uint32_t h = (k < 4) ? h0 : ((k < 8) ? h1 : h2);
        logits[k] = (int8_t)(int32_t)((h >> (uint32_t)(8 * (k % 4))) & 0x7Fu);
    }
    return 0;
}

int kws_run_frontend(const int16_t *audio)
{
    return kws_frontend_run(&fe_state, fe_scratch, &kws_frontend_params, audio, 0, 0) == KWS_FE_OK ? 0 : -1;
}
int kws_run_network(int8_t *logits) { return fe_hash(logits); }
int kws_run(const int16_t *audio, int8_t *logits)
{
    (void)kws_run_frontend(audio);
    return kws_run_network(logits);
}
void kws_reset(void) { (void)kws_frontend_reset(&fe_state, &kws_frontend_params); }
void kws_push_hop(const int16_t *hop) { (void)kws_frontend_push_hop(&fe_state, fe_scratch, hop); }
int kws_classify(int8_t *logits)
{
    (void)kws_frontend_finish(&fe_state, fe_scratch);
    return fe_hash(logits);
}
"""


def firmware_model_folder(params: dict, dest: Path) -> Path:
    """A model folder (kws_model.h contract) of the front end whose logits hash its outputs."""
    import shutil
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "kws_model.h").write_text(FW_MODEL_H)
    (dest / "fe_check.c").write_text(FW_GLUE_C)
    shutil.copy(template_root() / "kernels" / "kws_frontend.c", dest / "kws_frontend.c")
    for name, text in ff.render_frontend_params_c(params, PROVENANCE).items():
        (dest / name).write_text(text)
    return dest


def hash_logits(features: np.ndarray, snr_mel: np.ndarray) -> list[list[int]]:
    """The check model's 12 logits per clip from (B, 101, M) int16 features and int8 snr_mel."""
    out = []
    mask = 0xFFFFFFFF
    for f, s in zip(features, snr_mel):
        v = (f.astype(np.int64).ravel() & 0xFFFF) | ((s.astype(np.int64).ravel() & 0xFF) << 16)
        h0, h1, h2 = 2166136261, 0x9747B28C, 0x12345678
        for x in v.tolist():
            h0 = ((h0 ^ x) * 16777619) & mask
            h1 = ((h1 ^ ((x * 2654435761) & mask)) * 16777619) & mask
            h2 = ((h2 + x) * 2246822519) & mask
        out.append([((h0, h1, h2)[k // 4] >> (8 * (k % 4))) & 0x7F for k in range(12)])
    return out
