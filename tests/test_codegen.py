"""C code generation (export/codegen.py) and host verification (export/verify.py): the
generated C computes the simulator's integers for every tensor (host gcc, strict flags,
UBSan), for Tiny and Small, both kernel variants; deterministic stamped output; strict
cross-compiles for Cortex-M4 and M0+; the Makefile; bad input. The full 1,200-clip sets
(clean and 0 dB noise) and 1,000 generated inputs run in benchmarks/codegen_bitexact.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from export import codegen, verify
from export.bundle import BundleError, load_bundle, save_bundle
from export.fileio import OutputExistsError
from export.hostc import STRICT_CFLAGS, ToolError
from export.simulator import Simulator

from qhelpers import SHARED, fixture_clips, small_bundle

needs_fixtures = pytest.mark.skipif(not (SHARED / "upstream").is_dir(),
                                    reason="../shared/fixtures absent (published checkpoints)")
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                               reason="arm-none-eabi-gcc not installed")
ARGV = ["kws-export", "generate", "model.npz", "-o", "out"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    bundle = small_bundle("tiny")[0]
    out = tmp_path_factory.mktemp("cg") / "tiny"
    codegen.generate_c(bundle, out, argv=ARGV)
    return out


def _clips(n_gen: int, per_class: int = 2, noisy: bool = True):
    """Real clips (clean + 0 dB noise), extreme and generated inputs."""
    from export.quantize import load_noise_bank, mix_at_snr
    real, names = fixture_clips(per_class)
    parts, nm = [real], list(names)
    if noisy and (SHARED / "background_noise").is_dir():
        parts.append(mix_at_snr(real, names, load_noise_bank(SHARED / "background_noise"), 0.0, seed=2))
        nm += [n + "@0dB" for n in names]
    g, gn = verify.generated_inputs(n_gen)
    return np.concatenate(parts + [g]), nm + gn


# ---------------------------------------------------------------------------------------
# bit-exactness
# ---------------------------------------------------------------------------------------

@needs_fixtures
@pytest.mark.parametrize("name", ["tiny", "small"])
def test_fast_kernels_bit_exact_every_tensor(tmp_path, name):
    """Every intermediate of every frame, logits of kws_run and of the streaming API, on
    real clips (clean, 0 dB noise), the extreme inputs and generated stress inputs (UBSan)."""
    bundle = small_bundle(name)[0]
    out = tmp_path / name
    codegen.generate_c(bundle, out)
    clips, names = _clips(60)
    res = verify.verify_dir(out, clips, names, frontend=False, chunk=200, build_dir=tmp_path / "b")
    assert res.ok, res.summary()
    assert res.n_clips == len(clips) >= 100
    assert res.tensors == len(res_taps(out)) + 2
    # a few clips with the front end's internal intermediates too
    res = verify.verify_dir(out, clips[:3], names[:3], frontend=True, build_dir=tmp_path / "b")
    assert res.ok and res.frontend_checked, res.summary()


def res_taps(folder: Path) -> list:
    import json
    return json.loads((folder / codegen.MODEL_JSON).read_text())["taps"]["tensors"]


@needs_fixtures
def test_reference_kernels_bit_exact(tmp_path):
    bundle = small_bundle("tiny")[0]
    out = tmp_path / "ref"
    r = codegen.generate_c(bundle, out, variant="reference")
    assert r.plan.variant == "reference"
    clips, names = verify.extreme_inputs()
    real, rn = fixture_clips(1)
    res = verify.verify_dir(out, np.concatenate([real[:4], clips]), rn[:4] + names, frontend=False,
                            build_dir=tmp_path / "b")
    assert res.ok, res.summary()


@needs_fixtures
def test_verify_names_first_mismatch(tmp_path, tiny_folder):
    """A corrupted weight is found: the first differing tensor, frame, index and values."""
    bad = tmp_path / "bad"
    shutil.copytree(tiny_folder, bad)
    w = bad / "kws_weights.c"
    text = w.read_text()
    # (per-frame layers store W interleaved by four rows: element 0 is still W[0][0])
    m = re.search(r"(kws_op_blocks_1_in_proj_z_weight(?:_interleaved4)?\[\d+\]"
                  r"(?: KWS_WEIGHTS_ALIGN)? = \{\n\s+)(-?\d+)", text)
    assert m
    text = text[:m.start(2)] + str(int(m.group(2)) + 1) + text[m.end(2):]
    w.write_text(text)
    clips, names = fixture_clips(1)
    res = verify.verify_dir(bad, clips[:2], names[:2], frontend=False, build_dir=tmp_path / "b")
    assert not res.ok
    mm = res.mismatch
    assert mm.tensor == "blocks.1.z" and mm.clip == 0 and mm.frame is not None
    assert mm.c_value != mm.sim_value
    assert "tensor 'blocks.1.z'" in str(mm) and f"frame {mm.frame}" in str(mm)


# ---------------------------------------------------------------------------------------
# files, determinism, memory
# ---------------------------------------------------------------------------------------

@needs_fixtures
def test_deterministic_stamped_files(tmp_path, tiny_folder):
    bundle = small_bundle("tiny")[0]
    again = tmp_path / "again"
    codegen.generate_c(bundle, again, argv=ARGV)
    files = sorted(p.relative_to(tiny_folder) for p in tiny_folder.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (tiny_folder / f).read_bytes() == (again / f).read_bytes(), f
    mh = bundle.meta["model"]["sha256"]
    from export import __version__
    generated = ["kws_model.h", "kws_model.c", "kws_weights.h", "kws_weights.c", "Makefile",
                 "host/kws_host_main.c", "frontend_params.c", "frontend_params.h"]
    for f in generated:
        text = (tiny_folder / f).read_text()
        assert mh in text, f
        assert __version__ in text, f
        if f not in ("frontend_params.c", "frontend_params.h"):
            assert "Command: kws-export generate model.npz -o out" in text, f
        assert not re.search(r"20\d\d-\d\d-\d\d|\d\d:\d\d:\d\d", text), f
    # the kernels are copied: the folder is self-contained
    for f in ("kws_nn.c", "kws_nn_fast.c", "kws_frontend.c", "kws_intmath.h", "cmsis_compiler.h"):
        assert (tiny_folder / f).is_file()
    # the firmware's model API is there
    from export.firmware import model_source_from_folder
    src = model_source_from_folder(tiny_folder)
    assert src.macros["KWS_N_CLASSES"] == 12 and src.macros["KWS_LOGIT_SCALE"] > 0
    assert all(p.name != "kws_host_main.c" for p in src.c_files)


@needs_fixtures
def test_memory_plan(tmp_path):
    """Tiny: arena (per-frame tensors + front-end scratch) <= 12 KB; buffers that are live
    at the same time never overlap."""
    for name in ("tiny", "small"):
        plan = codegen.plan_model(small_bundle(name)[0])
        assert plan.arena_bytes <= 12 * 1024
        for a in plan.buffers:
            for b in plan.buffers:
                if a is b or a["last"] < b["first"] or b["last"] < a["first"]:
                    continue
                assert a["offset"] + a["bytes"] <= b["offset"] or b["offset"] + b["bytes"] <= a["offset"]
    ref = codegen.plan_model(small_bundle("tiny")[0], "reference")
    fast = codegen.plan_model(small_bundle("tiny")[0], "fast")
    assert fast.state_bytes < ref.state_bytes and fast.const_bytes < ref.const_bytes


# ---------------------------------------------------------------------------------------
# builds
# ---------------------------------------------------------------------------------------

@needs_fixtures
@needs_arm
@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m0plus"])
def test_strict_cross_compile(tmp_path, tiny_folder, cpu):
    import json
    info = json.loads((tiny_folder / codegen.MODEL_JSON).read_text())
    for src in info["c_sources"]:
        cmd = ["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", *STRICT_CFLAGS, "-O2",
               f"-I{tiny_folder}", "-c", str(tiny_folder / src), "-o", str(tmp_path / "x.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, (src, proc.stderr[-2000:])


@needs_fixtures
@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                    reason="make/gcc not installed")
def test_makefile_host_build(tmp_path, tiny_folder):
    work = tmp_path / "m"
    shutil.copytree(tiny_folder, work)
    proc = subprocess.run(["make", "-s", "host"], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clips, _ = fixture_clips(1)
    clips[:3].astype("<i2").tofile(work / "c.bin")
    proc = subprocess.run([str(work / "build" / "kws_host"), str(work / "c.bin"), str(work)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = np.fromfile(work / "logits.bin", np.int8).reshape(3, 12)
    want = Simulator(load_bundle(work / codegen.BUNDLE_COPY)).run(clips[:3], keep=["logits"])["logits"]
    assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------
# sources and bad input
# ---------------------------------------------------------------------------------------

@needs_fixtures
def test_checkpoint_source_is_quantized(tmp_path, monkeypatch):
    """A checkpoint is quantized with the default (generated) calibration first; here the
    calibration set is cut to a few clips to keep the test fast."""
    from export import quantize as Q
    real, names = fixture_clips(1)
    monkeypatch.setattr(Q, "generated_calibration_set", lambda *a, **k: (real, names))
    out = tmp_path / "from_pt"
    r = codegen.generate_c(SHARED / "upstream" / "nanomamba_tiny.pt", out)
    assert (out / "kws_model.c").is_file()
    assert r.plan.bundle.meta["model"]["sha256"] == load_bundle(out / codegen.BUNDLE_COPY).meta["model"]["sha256"]
    assert "generated" in load_bundle(out / codegen.BUNDLE_COPY).meta["calibration"]["source"]


@needs_fixtures
def test_bad_input_one_line_nothing_written(tmp_path, tiny_folder, monkeypatch):
    from export.cli import main
    bundle = small_bundle("tiny")[0]
    # existing output folder without --force: refused before any work, untouched
    before = {p: p.read_bytes() for p in tiny_folder.rglob("*") if p.is_file()}
    with pytest.raises(OutputExistsError, match="--force"):
        codegen.generate_c(bundle, tiny_folder)
    assert before == {p: p.read_bytes() for p in tiny_folder.rglob("*") if p.is_file()}
    # a bundle of an unknown (newer) format version
    meta = dict(bundle.meta)
    meta["format_version"] = 99
    from export.bundle import Bundle
    newer = tmp_path / "newer.npz"
    save_bundle(Bundle(meta=meta, arrays=bundle.arrays), newer)
    out = tmp_path / "never"
    with pytest.raises(BundleError, match="version 99 is newer.*upgrade"):
        codegen.generate_c(newer, out)
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    runner = CliRunner()
    res = runner.invoke(main, ["generate", str(newer), "-o", str(out)])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and res.output.startswith("error:")
    res = runner.invoke(main, ["generate", str(newer), "-o", str(tiny_folder)])
    assert res.exit_code == 1 and "--force" in res.output
    # a missing host compiler: verify names the fix
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError, match="apt-get install gcc"):
        verify.verify_dir(tiny_folder, *verify.extreme_inputs())
    res = runner.invoke(main, ["verify", str(tiny_folder)])
    assert res.exit_code == 1 and res.output.startswith("error:") and "apt-get install gcc" in res.output
    # not a generated folder; a file where the folder belongs
    with pytest.raises(verify.VerifyError, match="kws-export generate"):
        verify.verify_dir(tmp_path)
    with pytest.raises(verify.VerifyError, match="is a file"):
        verify.verify_dir(newer)
    # -o naming an existing file: refused even with --force, the file untouched
    keep = newer.read_bytes()
    with pytest.raises(OutputExistsError):
        codegen.generate_c(bundle, newer, force=True)
    assert newer.read_bytes() == keep


@needs_fixtures
def test_cli_generate_and_verify(tmp_path):
    from export.cli import main
    path = tmp_path / "tiny.npz"
    save_bundle(small_bundle("tiny")[0], path)
    out = tmp_path / "c"
    runner = CliRunner()
    res = runner.invoke(main, ["generate", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "arena" in res.output
    clip = SHARED / "audio" / "yes.f32"
    res = runner.invoke(main, ["verify", str(out), "--audio", str(clip)])
    assert res.exit_code == 0, res.output
    assert "bit-exact on 1 clips" in res.output


@needs_fixtures
@needs_arm
def test_swapped_bundle_is_refused_by_verify_and_build(tmp_path, tiny_folder):
    """A generated folder whose bundle.npz is another model's: verify and build say so in
    one line before any work (export.codegen.load_folder_bundle), nothing is written."""
    import copy

    from export.cli import main
    folder = tmp_path / "c"
    shutil.copytree(tiny_folder, folder)
    bundle = load_bundle(folder / codegen.BUNDLE_COPY)
    code_hash = codegen.recorded_model_hash(folder)
    assert code_hash == bundle.meta["model"]["sha256"]
    assert codegen.load_folder_bundle(folder).meta == bundle.meta
    meta = copy.deepcopy(bundle.meta)
    other = "0123456789ab" + "f" * 52
    meta["model"]["sha256"] = other
    (folder / codegen.BUNDLE_COPY).unlink()
    save_bundle(type(bundle)(meta=meta, arrays=bundle.arrays), folder / codegen.BUNDLE_COPY)
    want = (f"error: {folder / codegen.BUNDLE_COPY}: model 0123456789ab does not match the "
            f"generated code's {code_hash[:12]} (re-run kws-export generate)")
    runner = CliRunner()
    clip = SHARED / "audio" / "yes.f32"
    out = tmp_path / "fw"
    for args in (["verify", str(folder), "--audio", str(clip)],
                 ["build", str(folder), "--board", "mps2-an386", "-o", str(out)]):
        res = runner.invoke(main, args)
        assert res.exit_code == 1, (args, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert lines == [want], (args, res.output)
    assert not out.exists()
    with pytest.raises(codegen.CodegenError, match="does not match the generated code's"):
        verify.read_folder(folder)


@needs_fixtures
def test_requantized_bundle_of_the_same_model_is_refused(tmp_path, tiny_folder):
    """The same checkpoint quantized differently has the same model hash: the bundle digest
    the C records (KWS_BUNDLE_SHA256, kws_model.json) tells them apart."""
    from export.bundle import bundle_digest
    folder = tmp_path / "c"
    shutil.copytree(tiny_folder, folder)
    bundle = load_bundle(folder / codegen.BUNDLE_COPY)
    digest = codegen.recorded_bundle_digest(folder)
    assert digest == bundle_digest(bundle) == json.loads(
        (folder / codegen.MODEL_JSON).read_text())["bundle"]["sha256"]
    assert codegen.load_folder_bundle(folder).meta == bundle.meta
    arrays = dict(bundle.arrays)
    key = next(k for k in sorted(arrays) if not k.startswith(("float/", "frontend/")))
    arrays[key] = arrays[key].copy()
    arrays[key].flat[0] += 1                       # one weight of one op, same model hash
    (folder / codegen.BUNDLE_COPY).unlink()
    save_bundle(type(bundle)(meta=bundle.meta, arrays=arrays), folder / codegen.BUNDLE_COPY)
    with pytest.raises(codegen.CodegenError,
                       match=rf"bundle [0-9a-f]{{12}} is another quantization of this model "
                             rf"than the generated code's {digest[:12]}"):
        codegen.load_folder_bundle(folder)


@needs_fixtures
def test_missing_listed_c_file_is_named_before_any_compile(tmp_path, tiny_folder):
    """verify with kws_nn.c or host/kws_host_main.c deleted: FileNotFoundError traceback;
    build with kws_nn.c deleted: only 'collect2: error: ld returned 1 exit status'. The
    files kws_model.json lists (c_sources) are now checked first, all missing ones named."""
    from export.cli import main as cli
    from export.firmware import FirmwareError, model_source_from_folder
    for gone in (["kws_nn.c"], ["host/kws_host_main.c"], ["kws_nn.c", "kws_weights.c"]):
        folder = tmp_path / "-".join(g.replace("/", "_") for g in gone)
        shutil.copytree(tiny_folder, folder)
        for g in gone:
            (folder / g).unlink()
        r = CliRunner().invoke(cli, ["verify", str(folder)])
        assert r.exit_code == 1, r.output
        assert r.output == (f"error: {folder}: incomplete generated folder: {', '.join(gone)} "
                            f"missing (listed in kws_model.json); regenerate it with "
                            f"kws-export generate\n"), r.output
        fw_gone = [g for g in gone if "/" not in g]   # the host driver is not firmware
        if fw_gone:
            with pytest.raises(FirmwareError, match=re.escape(
                    f"{folder}: incomplete generated folder: {', '.join(fw_gone)} missing")):
                model_source_from_folder(folder)
            r = CliRunner().invoke(cli, ["build", str(folder), "-b", "mps2-an386",
                                         "-o", str(tmp_path / "fw")])
            assert r.exit_code == 1 and r.output.startswith(f"error: {folder}: incomplete "
                                                            f"generated folder: "), r.output
        else:
            model_source_from_folder(folder)
    assert not (tmp_path / "fw").exists()
    mj = tmp_path / "kws_nn.c" / codegen.MODEL_JSON
    info = json.loads(mj.read_text())
    for bad in (None, [], "kws_nn.c", [1]):
        info["c_sources"] = bad
        mj.write_text(json.dumps(info))
        with pytest.raises(codegen.CodegenError, match="missing or invalid 'c_sources'"):
            verify.read_folder(mj.parent)
    assert codegen.missing_c_sources(tmp_path) == []          # not a generated folder
