"""The C front end (kws_frontend.c, host gcc, strict flags, UBSan) against its Python twin
(export/frontend_fixed.py): identical bytes for every intermediate, on >= 500 generated
stress inputs (one C process), hypothesis-drawn clips, the real fixture clips and real
Speech Commands clips; batch (kws_frontend_run) and streaming (push_hop) identical."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export import frontend_fixed as ff

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frontend_c_util as fc  # noqa: E402

NOISE_SCALE = 4.203038215637207  # NanoMamba-Tiny's snr_estimator.noise_scale


@pytest.fixture(scope="module")
def synth_params():
    return ff.make_frontend_params(fc.synthetic_mel_fb(), NOISE_SCALE)


@pytest.fixture(scope="module")
def taps_exe(synth_params, tmp_path_factory):
    return fc.build(synth_params, tmp_path_factory.mktemp("fe_taps"), taps=True)


def assert_bit_exact(params, audio, out_dir, names=None, chunk=32):
    """Every C intermediate equals the twin's, byte for byte (compared chunk by chunk)."""
    n = len(audio)
    n_mels, nnz = params["meta"]["n_mels"], params["meta"]["mel_nnz"]
    names = list(ff.INTERMEDIATES) if names is None else names
    c_arrays = {name: fc.load(out_dir, name, n, n_mels, nnz) for name in names}
    for lo in range(0, n, chunk):
        py = ff.run_frontend(params, audio[lo:lo + chunk])
        for name in names:
            c = np.asarray(c_arrays[name][lo:lo + chunk])
            p = py[name]
            assert c.dtype == p.dtype and c.shape == p.shape, name
            if c.tobytes() != p.tobytes():
                bad = np.argwhere(c != p)[0]
                raise AssertionError(f"{name}: C {c[tuple(bad)]} != Python {p[tuple(bad)]} at "
                                     f"clip {lo + bad[0]} index {tuple(bad[1:])}")


def test_generated_inputs_bit_exact(synth_params, taps_exe, tmp_path, speech_commands_test_optional):
    audio, names = fc.generated_inputs(speech_commands_test_optional)
    assert len(audio) >= 500
    out = fc.run(taps_exe, "run", audio, tmp_path)
    assert_bit_exact(synth_params, audio, out)


@pytest.fixture(scope="module")
def speech_commands_test_optional():
    """20 real clips if ../shared/fixtures is present, else None (the corpus then has only
    synthetic clips; still >= 500)."""
    from nanomamba.audio import list_clips, load_audio
    root = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "speech_commands_test"
    if not root.exists():
        return None
    clips = [p for p in list_clips(root)][::60][:20]
    return np.stack([load_audio(p, dtype="int16") for p in clips])


def _clip(spec) -> np.ndarray:
    kind, seed, a, b = spec
    rng = np.random.default_rng(seed)
    t = np.arange(ff.CLIP)
    if kind == "uniform":
        return rng.integers(-32768, 32768, ff.CLIP).astype(np.int16)
    if kind == "gauss":
        x = rng.normal(0, 32768 * 10 ** (-(a % 110) / 20), ff.CLIP)
    elif kind == "impulse":
        x = np.zeros(ff.CLIP)
        x[a % ff.CLIP] = b
    elif kind == "dc":
        x = np.full(ff.CLIP, b)
    elif kind == "square":
        half = max(1, a % 8000)
        x = np.where((t // half) % 2 == 0, abs(b), -abs(b) - 1)
    elif kind == "tone":
        x = b * np.sin(2 * np.pi * (a % 8001) * t / 16000 + seed)
    else:  # "gate": noise with a silent part
        x = rng.normal(0, 30000, ff.CLIP)
        lo, hi = sorted((a % ff.CLIP, (a * 7919 + seed) % ff.CLIP))
        x[lo:hi] = 0
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


CLIP_SPEC = st.tuples(st.sampled_from(["uniform", "gauss", "impulse", "dc", "square", "tone", "gate"]),
                      st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 31 - 1),
                      st.integers(-32768, 32767))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CLIP_SPEC, min_size=24, max_size=24))
def test_hypothesis_clips_bit_exact(synth_params, taps_exe, tmp_path_factory, specs):
    audio = np.stack([_clip(s) for s in specs])
    out = fc.run(taps_exe, "run", audio, tmp_path_factory.mktemp("hyp"))
    assert_bit_exact(synth_params, audio, out)


def test_fixture_clips_bit_exact_with_checkpoint_params(fixtures_dir, upstream_ckpt, tmp_path):
    import nanomamba
    from nanomamba.audio import load_audio
    for name in ("tiny", "small"):
        model = nanomamba.load_checkpoint(upstream_ckpt(name))
        params = ff.make_frontend_params(model.frontend.mel_fb.numpy(),
                                         float(model.frontend.snr_estimator.noise_scale.detach()))
        exe = fc.build(params, tmp_path / name, taps=True)
        audio = np.stack([load_audio(fixtures_dir / "audio" / f"{w}.f32", dtype="int16")
                          for w in ("yes", "no", "down")])
        out = fc.run(exe, "run", audio, tmp_path / name / "out")
        assert_bit_exact(params, audio, out)


def test_streaming_equals_batch_without_taps(synth_params, tmp_path):
    """The production build (no taps): push_hop with a hop buffer and scratch clobbered
    between calls gives the same bytes as kws_frontend_run and as the Python twin."""
    exe = fc.build(synth_params, tmp_path / "b", taps=False)
    audio, _ = fc.generated_inputs()
    audio = audio[::4]
    run = fc.run(exe, "run", audio, tmp_path / "run")
    stream = fc.run(exe, "stream", audio, tmp_path / "stream")
    for name in ("features", "snr_mel"):
        assert (run / f"{name}.bin").read_bytes() == (stream / f"{name}.bin").read_bytes()
    assert_bit_exact(synth_params, audio, run, names=["features", "snr_mel"])


def test_api_order_errors(synth_params, taps_exe, tmp_path):
    import subprocess
    inp = tmp_path / "a.bin"
    np.zeros((1, ff.CLIP), np.int16).tofile(inp)
    proc = subprocess.run([str(taps_exe), "errors", str(inp), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


STATE_BYTES_MAX = 9_900   # sizeof(kws_frontend_state_t) with 40 mel bands on Cortex-M (docs/FRONTEND.md)


ASM_TARGETS = [("cortex-m4", "-mfpu=fpv4-sp-d16 -mfloat-abi=hard"), ("cortex-m4", "-mfloat-abi=soft"),
               ("cortex-m7", "-mfpu=fpv5-d16 -mfloat-abi=hard"), ("cortex-m33", "-mfloat-abi=hard"),
               ("cortex-m55", "-mfloat-abi=hard"), ("cortex-m0plus", "-mfloat-abi=soft")]


@pytest.mark.parametrize("opt", ["-O2", "-Os", "-O3", "-O1"])
def test_kernel_compiles_for_every_core_and_optimisation(synth_params, tmp_path, opt):
    """The assembly loops' register needs fit every DSP core's allocator at every
    optimisation level (gcc fails such asm with 'impossible constraints' otherwise), strict
    flags, no warnings (-O0 builds use the C loops: KWS_FE_ASM needs __OPTIMIZE__)."""
    import shutil
    import subprocess
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    from cmsis_stub import stub_root
    from firmware_templates import template_root
    for fname, text in ff.render_frontend_params_c(synth_params, fc.PROVENANCE).items():
        (tmp_path / fname).write_text(text)
    kernels = template_root() / "kernels"
    for cpu, fl in ASM_TARGETS:
        proc = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", opt,
                               f"-mcpu={cpu}", "-mthumb", *fl.split(), f"-I{kernels}", f"-I{stub_root()}",
                               f"-I{tmp_path}", "-c", str(kernels / "kws_frontend.c"),
                               "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), (cpu, fl, proc.stderr[:500])


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus"])
def test_cross_compiles_warning_free_and_state_size(synth_params, tmp_path, cpu):
    """kws_frontend.c and the rendered params build with -Werror for Cortex-M4 and M0+
    (soft-float ABI); the state is <= 9,900 bytes there (deterministic, read from the ELF)."""
    import shutil
    import subprocess
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    from cmsis_stub import stub_root
    from elftools.elf.elffile import ELFFile
    from firmware_templates import template_root
    for fname, text in ff.render_frontend_params_c(synth_params, fc.PROVENANCE).items():
        (tmp_path / fname).write_text(text)
    (tmp_path / "size.c").write_text('#include "kws_frontend.h"\n'
                                     "const uint32_t kws_fe_state_bytes = (uint32_t)sizeof(kws_frontend_state_t);\n")
    kernels = template_root() / "kernels"
    for src in (kernels / "kws_frontend.c", tmp_path / "frontend_params.c", tmp_path / "size.c"):
        proc = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-O2",
                               f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft", f"-I{kernels}",
                               f"-I{stub_root()}", f"-I{tmp_path}", "-c", str(src),
                               "-o", str(tmp_path / (src.stem + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    with open(tmp_path / "size.o", "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name("kws_fe_state_bytes")[0]
        data = elf.get_section(sym["st_shndx"]).data()
        size = int.from_bytes(data[sym["st_value"]: sym["st_value"] + 4], "little")
    assert size <= STATE_BYTES_MAX


FIRMWARE_BOARDS = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"]


@pytest.fixture(scope="module")
def firmware_clips(tmp_path_factory, speech_commands_test_optional):
    """24 stress clips + (if present) 6 real speech clips, as .f32 files and int16."""
    from _fw_util import write_f32
    audio, names = fc.generated_inputs(speech_commands_test_optional)
    pick = [names.index(n) for n in ("zeros", "dc32767", "dc-32768", "square2_0", "square512_170",
                                     "impulse0_-32768", "impulse15999_32767", "impulse8000_1",
                                     "white-60dB_0", "white0dB_0", "white-90dB_0", "uniform_0",
                                     "uniform_1", "tone440.0_32767", "tone8000.0_32767",
                                     "chirp_up_32767", "lsb_0", "one_lsb_0", "silent_start_0",
                                     "silent_end_0", "signcos1", "signcos256", "steps_0", "brown_0")]
    pick += [i for i, n in enumerate(names) if n.startswith("speech")][:6]
    root = tmp_path_factory.mktemp("fw_clips")
    files = [write_f32(root / f"c{i:03d}.f32", audio[i]) for i in pick]
    return audio[pick], files


@pytest.mark.parametrize("board", FIRMWARE_BOARDS)
def test_firmware_front_end_bit_exact_on_qemu(board, firmware_clips, tmp_path):
    """The front end built for the emulated Cortex-M4 / M7 / M33 / M55 boards (DSP code paths:
    cmsis_compiler.h instructions and the assembly loops) gives the twin's features and
    snr_mel bit for bit on stress and speech clips (hashed into the check model's logits),
    and streaming (push_hop) equals the whole-clip call."""
    import shutil
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("arm-none-eabi-gcc or qemu-system-arm absent (apt-get install gcc-arm-none-eabi qemu-system-arm)")
    from export.firmware import bench_column, build_firmware, run_firmware
    audio, files = firmware_clips
    params = ff.make_frontend_params(fc.synthetic_mel_fb(), NOISE_SCALE)
    src = fc.firmware_model_folder(params, tmp_path / "model")
    out = build_firmware(src, board, tmp_path / "fw").out
    got = [c.logits for c in run_firmware(out, files).clips]
    py = ff.run_frontend(params, audio, intermediates=False)
    want = fc.hash_logits(py["features"], py["snr_mel"])
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{board}: clips {bad} differ from the twin"
    if board == "mps2-an386":
        assert bench_column(out, clip=files[-1]).stream_matches
