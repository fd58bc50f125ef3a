"""The float32 C build (export/codegen_float.py, firmware_templates/float_model/): host C
against the PyTorch float model on the real clips, strict arm-none-eabi compiles for the
Cortex-M4 (hard float, FPv4-SP) and Cortex-M0+ (soft float), determinism, the bundle route,
errors, and the firmware flow (`build --precision float32`, run and bench on QEMU)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from export.boards import load_board
from export.bundle import Bundle, model_hash
from export.codegen_float import (FloatCodegenError, float_macs, generate_float_c,
                                  layer_norm_logit_range, load_float_source)
from export.fileio import OutputExistsError
from export.hostc import STRICT_CFLAGS, compile_host
from tests._fw_util import needs_gcc, needs_qemu
from tests.frontend_c_util import synthetic_mel_fb

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "c" / "float_model_driver.c"
CLIP_NAMES = ("yes", "no", "down")


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory) -> Path:
    """A randomly initialised Tiny checkpoint with a synthetic mel filterbank (no fixtures)."""
    import torch

    from nanomamba import NanoMamba, TINY, save_checkpoint
    torch.manual_seed(3)
    model = NanoMamba(TINY)
    with torch.no_grad():
        model.frontend.mel_fb.copy_(torch.from_numpy(synthetic_mel_fb()))
    path = tmp_path_factory.mktemp("fc_ckpt") / "random_tiny.pt"
    save_checkpoint(model, path, model_name="random-tiny")
    return path


def _model_c(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.c"))


def _run_driver(folder: Path, audio: np.ndarray, tmp: Path) -> list[dict]:
    exe = compile_host([*_model_c(folder), DRIVER], tmp / "float_driver",
                       include_dirs=[folder])
    clips = tmp / "clips.bin"
    audio.astype("<i2").tofile(clips)
    out = subprocess.run([str(exe), str(clips)], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        head, fl, stream = line.split("|")
        h = [int(v) for v in head.split()]
        rows.append({"label": h[0], "stream_label": h[1], "int8": h[2:],
                     "float": np.array([float(v) for v in fl.split()]),
                     "stream_int8": [int(v) for v in stream.split()]})
    return rows


def _fixture_audio(fixtures_dir: Path) -> np.ndarray:
    from nanomamba.audio import load_audio
    return np.stack([load_audio(fixtures_dir / "audio" / f"{n}.f32", dtype="int16")
                     for n in CLIP_NAMES])


def _quantize(logits: np.ndarray, scale: float, zp: int) -> list[int]:
    from export.intmath import round_half_away
    r = np.asarray(logits, np.float32) * np.float32(1.0 / scale)   # as kws_model.c, float32
    q = round_half_away(r.astype(np.float64))
    return np.clip(q + zp, -128, 127).astype(int).tolist()


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_host_float_c_matches_pytorch(name, upstream_ckpt, fixtures_dir, tmp_path):
    import torch

    from nanomamba import load_checkpoint
    ckpt = upstream_ckpt(name)
    res = generate_float_c(ckpt, tmp_path / "model")
    audio = _fixture_audio(fixtures_dir)
    rows = _run_driver(res.out_dir, audio, tmp_path)
    model = load_checkpoint(ckpt)
    with torch.no_grad():
        ref = model(torch.from_numpy(audio.astype(np.float32) / 32768.0)).numpy()
    src = load_float_source(ckpt)
    for clip, row, r in zip(CLIP_NAMES, rows, ref):
        assert row["label"] == int(np.argmax(r)) == ["yes", "no", "up", "down"].index(clip)
        np.testing.assert_allclose(row["float"], r, rtol=1e-3, atol=1e-3 * np.abs(r).max())
        # streaming (reset, 100 hops, classify) gives exactly kws_run's logits
        assert row["stream_label"] == row["label"] and row["stream_int8"] == row["int8"]
        # int8 logits: roundf(float logit / scale) + zero_point (%.9g reads back exactly)
        assert _quantize(row["float"], src.logit_scale, src.logit_zero_point) == row["int8"]
    lo, hi = layer_norm_logit_range(src.state)
    assert lo <= ref.min() and ref.max() <= hi


def test_random_model_host_run_is_ubsan_clean_and_streams_exactly(random_ckpt, tmp_path):
    import torch

    from nanomamba import load_checkpoint
    from tests._fw_util import synthetic_clips
    res = generate_float_c(random_ckpt, tmp_path / "model")
    audio = np.stack(synthetic_clips(3))          # silence and two tones over noise
    rows = _run_driver(res.out_dir, audio, tmp_path)
    model = load_checkpoint(random_ckpt)
    with torch.no_grad():
        ref = model(torch.from_numpy(audio.astype(np.float32) / 32768.0)).numpy()
    for i, (row, r) in enumerate(zip(rows, ref)):
        assert row["stream_int8"] == row["int8"]
        if i == 0:   # silence: features are float rounding noise (0 / sqrt(1e-5)) in both
            continue
        np.testing.assert_allclose(row["float"], r, rtol=1e-3, atol=1e-3 * np.abs(r).max())


def test_byte_identical_reruns_and_no_overwrite(random_ckpt, tmp_path):
    a = generate_float_c(random_ckpt, tmp_path / "a")
    generate_float_c(random_ckpt, tmp_path / "b")
    assert a.files == ["kws_float.h", "kws_float_weights.c", "kws_model.c", "kws_model.h"]
    for f in a.files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    text = (tmp_path / "a" / "kws_model.c").read_text()
    assert "Generated by kws-export" in text and "Model: sha256 " in text
    with pytest.raises(OutputExistsError, match="--force"):
        generate_float_c(random_ckpt, tmp_path / "a")
    generate_float_c(random_ckpt, tmp_path / "a", force=True, argv=["kws-export", "x"])
    assert "Command: kws-export x" in (tmp_path / "a" / "kws_model.h").read_text()


def test_bundle_route_uses_the_bundles_logit_scale(random_ckpt, tmp_path):
    src = load_float_source(random_ckpt)
    keys = sorted(src.state)
    bundle = Bundle(meta={
        "float": keys, "model": {"name": "random-tiny", "sha256": model_hash(src.state),
                                 "labels": src.labels},
        "tensors": {"logits": {"scale": 0.0625, "zero_point": -7}}},
        arrays={f"float/{k}": v for k, v in src.state.items()})
    generate_float_c(bundle, tmp_path / "b")
    generate_float_c(random_ckpt, tmp_path / "c")
    hb = (tmp_path / "b" / "kws_model.h").read_text()
    assert "#define KWS_LOGIT_SCALE 0.0625" in hb and "#define KWS_LOGIT_ZERO_POINT (-7)" in hb
    # same weights, same model hash: only the logit scale differs
    wb = (tmp_path / "b" / "kws_float_weights.c").read_text().splitlines()
    wc = (tmp_path / "c" / "kws_float_weights.c").read_text().splitlines()
    diff = [(x, y) for x, y in zip(wb, wc) if x != y]
    assert len(wb) == len(wc) and len(diff) == 1 and "kwsf_logit_inv_scale" in diff[0][0]


def test_bad_sources_are_clear_errors(random_ckpt, tmp_path):
    src = load_float_source(random_ckpt)
    with pytest.raises(FloatCodegenError, match="no float weights"):
        generate_float_c(Bundle(meta={"float": []}, arrays={}), tmp_path / "x")
    state = dict(src.state)
    state["blocks.1.sa_ssm.D"] = state["blocks.1.sa_ssm.D"].copy()
    state["blocks.1.sa_ssm.D"][3] = np.nan
    bad = Bundle(meta={"float": sorted(state), "tensors": {"logits": {"scale": 0.1}}},
                 arrays={f"float/{k}": v for k, v in state.items()})
    with pytest.raises(FloatCodegenError, match="blocks.1.sa_ssm.D.*NaN"):
        generate_float_c(bad, tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_mac_count_matches_the_model(random_ckpt):
    from nanomamba import SMALL, TINY, macs_per_inference
    for cfg in (TINY, SMALL):
        ref = macs_per_inference(cfg, 454)
        got = float_macs(cfg.to_dict(), 454)
        assert (got["frontend"], got["network"]) == (ref["frontend"], ref["network"])


@needs_gcc
@pytest.mark.parametrize("board", ["mps2-an386", "cortex-m0plus"])
def test_arm_strict_compile(board, random_ckpt, tmp_path):
    """Every model file compiles warning-free for the board (M4: hard float, FPv4-SP, so
    the float math is FPU instructions; M0+: soft float, library calls)."""
    res = generate_float_c(random_ckpt, tmp_path / "model")
    b = load_board(board)
    flags = b.cflags()
    if board == "mps2-an386":
        assert "-mfpu=fpv4-sp-d16" in flags and "-mfloat-abi=hard" in flags
    objs = []
    for c in _model_c(res.out_dir):
        obj = tmp_path / (c.stem + ".o")
        proc = subprocess.run(["arm-none-eabi-gcc", *flags, *STRICT_CFLAGS, "-O2", "-c",
                               str(c), "-o", str(obj)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        objs.append(obj)
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / "kws_model.o")],
                         capture_output=True, text=True, check=True).stdout
    if board == "mps2-an386":
        assert "vmul.f32" in dis and "vsqrt.f32" in dis and "__aeabi_fmul" not in dis
    else:
        assert "__aeabi_fmul" in dis and "vmul" not in dis


@needs_qemu
def test_firmware_build_run_bench_float32(upstream_ckpt, fixtures_dir, tmp_path):
    from export.firmware import FirmwareError, bench_firmware, build_firmware, run_firmware
    ckpt = upstream_ckpt("tiny")
    out = tmp_path / "fw"
    res = build_firmware(ckpt, "mps2-an386", out, precision="float32")
    m = res.manifest["model"]
    assert m["precision"] == "float32" and m["name"] == "NanoMamba-Tiny float32"
    assert "-lm" in res.manifest["ldflags"]
    clips = [fixtures_dir / "audio" / f"{n}.f32" for n in CLIP_NAMES]
    run = run_firmware(out, clips)
    assert [c.label for c in run.clips] == list(CLIP_NAMES)
    # the same float C on the host: int8 logits within one step (newlib vs glibc libm)
    rows = _run_driver(out / "src" / "model", _fixture_audio(fixtures_dir), tmp_path)
    for c, row in zip(run.clips, rows):
        assert np.abs(np.array(c.logits) - row["int8"]).max() <= 1
    col = bench_firmware(out).int8
    assert col.precision == "float32" and col.stream_matches
    assert col.instructions_frontend > 0 and col.instructions_network > 0
    assert bench_firmware(out).int8.instructions_total == col.instructions_total  # deterministic
    with pytest.raises(FirmwareError, match="is a float32 build; --float-build compares"):
        bench_firmware(out, float_build=out)            # not a float-vs-int8 comparison


def test_unknown_precision_is_an_error(tmp_path, random_ckpt):
    from export.firmware import FirmwareError, resolve_model_source
    with pytest.raises(FirmwareError, match="--precision int4"):
        resolve_model_source(random_ckpt, tmp_path, precision="int4")


def test_float32_resolves_a_checkpoint_to_the_float_folder(tmp_path, random_ckpt):
    from export.firmware import resolve_model_source
    ms = resolve_model_source(random_ckpt, tmp_path, precision="float32")
    assert ms.macros["KWS_PRECISION"] == "float32"
    assert ms.macros["KWS_MACS_PER_INFERENCE"] > 0
    assert [p.name for p in ms.c_files] == ["kws_float_weights.c", "kws_model.c"]


def test_float32_c_folder_is_accepted_and_records_the_model_hash(tmp_path, random_ckpt):
    """A float32 C folder (generate_float_c) builds with --precision float32 and records the
    float model's hash (KWS_MODEL_SHA256), which bench --float-build compares with the int8
    build's; an int8 C folder is refused (test_firmware_boardfile.py)."""
    from export.bundle import model_hash
    from export.codegen import recorded_model_hash
    from export.codegen_float import generate_float_c, load_float_source
    from export.firmware import resolve_model_source
    folder = tmp_path / "fc"
    generate_float_c(random_ckpt, folder)
    ms = resolve_model_source(folder, tmp_path / "w", precision="float32")
    want = model_hash(load_float_source(random_ckpt).state)
    assert ms.macros["KWS_PRECISION"] == "float32"
    assert recorded_model_hash(folder) == want
