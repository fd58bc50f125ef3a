"""export/quantize.py and ``kws-export quantize``: calibration data errors (one line, nothing
written), refusal to overwrite, the report, bit-width overrides, GPTQ rounding, noise
mixing, the calibration split and the generated default set."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from export import quantize as Q
from export.bundle import load_bundle
from export.cli import main
from nanomamba.errors import AudioError, KwsError

from qhelpers import SHARED, fixture_clips, small_bundle

needs_fixtures = pytest.mark.skipif(not (SHARED / "upstream").exists(),
                                    reason="shared fixtures absent (published checkpoints)")


def _wav(path, n=16000, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(str(path), (rng.standard_normal(n) * 3000).astype(np.int16), rate, subtype="PCM_16")
    return path


# ---- calibration data errors ------------------------------------------------------------

def test_calibration_folder_errors(tmp_path):
    with pytest.raises(Q.CalibrationError, match="no such calibration folder"):
        Q.load_clip_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Q.CalibrationError, match="no audio clips") as e:
        Q.load_clip_folder(tmp_path / "empty")
    assert "\n" not in str(e.value)
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "notes.txt").write_text("hello")
    with pytest.raises(Q.CalibrationError, match="no audio clips"):
        Q.load_clip_folder(tmp_path / "txt")
    f = tmp_path / "file.wav"
    _wav(f)
    with pytest.raises(Q.CalibrationError, match="not a folder"):
        Q.load_clip_folder(f)


def test_wrong_rate_and_unreadable_clips(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    _wav(d / "a.wav")
    _wav(d / "b.wav", n=8000, rate=8000)
    with pytest.raises(Q.CalibrationError, match=r"b\.wav: sample rate 8000 Hz") as e:
        Q.load_clip_folder(d)
    assert "\n" not in str(e.value)
    (d / "b.wav").unlink()
    (d / "c.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match=r"c\.wav") as e:
        Q.load_clip_folder(d)
    assert "\n" not in str(e.value)
    (d / "c.wav").unlink()
    audio, names = Q.load_clip_folder(d)
    assert audio.shape == (1, 16000) and audio.dtype == np.int16 and names == ["a.wav"]


@needs_fixtures
def test_cli_errors_write_nothing(tmp_path):
    ckpt = SHARED / "upstream" / "nanomamba_tiny.pt"
    out = tmp_path / "m.npz"
    (tmp_path / "empty").mkdir()
    (tmp_path / "rate").mkdir()
    _wav(tmp_path / "rate" / "a.wav")
    _wav(tmp_path / "rate" / "b8k.wav", n=8000, rate=8000)
    (tmp_path / "bad").mkdir()
    _wav(tmp_path / "bad" / "a.wav")
    (tmp_path / "bad" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    inputs = ["bad", "empty", "rate"]
    runner = CliRunner()
    for args, msg in [
        (["--calib", str(tmp_path / "empty")], "no audio clips"),
        (["--calib", str(tmp_path / "missing")], "no such calibration folder"),
        # widths are checked first (before reading clips or calibrating)
        (["--calib", str(tmp_path / "empty"), "--width", "h=12"],
         "bit width of 'h' must be 8, 16 or 32, not 12"),
        (["--calib", str(tmp_path / "rate")], "b8k.wav: sample rate 8000 Hz"),
        (["--calib", str(tmp_path / "bad")], "broken.wav"),
        (["--calib", str(tmp_path / "bad"), "--report"], "broken.wav"),
    ]:
        r = runner.invoke(main, ["quantize", str(ckpt), "-o", str(out), *args])
        assert r.exit_code == (2 if "--width" in args else 1), r.output   # 2: usage error
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.output
        assert sorted(p.name for p in tmp_path.iterdir()) == inputs
    r = runner.invoke(main, ["quantize", str(tmp_path / "nope.pt"), "-o", str(out)])
    assert r.exit_code == 1 and "error:" in r.output and not out.exists()


@needs_fixtures
def test_cli_quantize_report_and_overwrite(tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for p in sorted((SHARED / "speech_commands_test" / "yes").glob("*.wav"))[:6] + \
            sorted((SHARED / "speech_commands_test" / "no").glob("*.wav"))[:6]:
        shutil.copy(p, calib / f"{p.parent.name}_{p.name}")
    ckpt = SHARED / "upstream" / "nanomamba_tiny.pt"
    out = tmp_path / "tiny.npz"
    runner = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = runner.invoke(main, ["quantize", str(ckpt), "-o", str(out), "--calib", str(calib),
                                 "--report"])
    assert r.exit_code == 0, r.output
    assert out.exists() and "top-1 agreement" in r.output
    rep = tmp_path / "tiny.npz.report"
    assert (rep / "sqnr.png").stat().st_size > 1000
    mask = os.umask(0)
    os.umask(mask)
    assert rep.stat().st_mode & 0o777 == 0o777 & ~mask   # not mkdtemp's 0o700
    md = (rep / "report.md").read_text()
    assert "blocks.0.h" in md and "zero_point" in md and "agreement" in md
    b = load_bundle(out)
    assert b.meta["calibration"]["source"] == str(calib)
    before = out.read_bytes()
    r = runner.invoke(main, ["quantize", str(ckpt), "-o", str(out), "--calib", str(calib)])
    assert r.exit_code == 1 and "already exists" in r.output and "--force" in r.output
    assert out.read_bytes() == before
    # same inputs -> byte-identical bundle
    r = runner.invoke(main, ["quantize", str(ckpt), "-o", str(tmp_path / "again.npz"),
                             "--calib", str(calib)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "again.npz").read_bytes() == before


# ---- widths and options -------------------------------------------------------------------

@needs_fixtures
def test_width_overrides_validated_and_runnable():
    from export.simulator import Simulator
    with pytest.raises(Q.QuantizationError, match="unknown bit-width key 'hh'"):
        small_bundle("tiny", (("hh", 16),))
    with pytest.raises(Q.QuantizationError, match="must be 8, 16 or 32"):
        small_bundle("tiny", (("h", 12),))
    with pytest.raises(Q.QuantizationError, match="must be 8, 16, not 32"):
        small_bundle("tiny", (("w.in_proj", 32),))
    audio, _ = fixture_clips(1)
    for widths in [(("h", 32),), (("dA", 32),), (("h", 8), ("dA", 8)), (("residual", 16),),
                   (("u_act", 8), ("z_act", 8), ("w.in_proj", 8))]:
        b, _, _ = small_bundle("tiny", widths)
        out = Simulator(b).run(audio[:2], keep={"logits", "blocks.0.h"}, frontend_intermediates=False)
        assert out["logits"].shape == (2, 12)
        assert out["blocks.0.h"].dtype == np.dtype(Q._DT[dict(widths).get("h", 16)])


def test_gptq_reduces_layer_output_error():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 24)) @ rng.standard_normal((24, 24))     # correlated inputs
    W = rng.standard_normal((16, 24))
    s = np.abs(W).max(axis=1) / 127
    near = Q.gptq_round(W, s, None)
    gptq = Q.gptq_round(W, s, X.T @ X)
    assert np.abs(gptq).max() <= 127
    err = lambda Wq: np.linalg.norm(X @ (Wq * s[:, None] - W).T)
    assert err(gptq) < 0.8 * err(near)


# ---- data helpers ----------------------------------------------------------------------

def test_mix_at_snr_is_deterministic_and_hits_the_snr():
    rng = np.random.default_rng(1)
    clean = (rng.standard_normal((4, 16000)) * 2000).astype(np.int16)
    names = ["a", "b", "c", "d"]
    noise = {"n1": rng.standard_normal(40000).astype(np.float32),
             "n2": rng.standard_normal(50000).astype(np.float32)}
    m1 = Q.mix_at_snr(clean, names, noise, 0.0, seed=5)
    m2 = Q.mix_at_snr(clean, names, noise, 0.0, seed=5)
    assert np.array_equal(m1, m2)
    assert not np.array_equal(m1, Q.mix_at_snr(clean, names, noise, 0.0, seed=6))
    # order independence: a clip's noise depends on its name, not its position
    assert np.array_equal(Q.mix_at_snr(clean[::-1], names[::-1], noise, 0.0, seed=5), m1[::-1])
    x = clean.astype(np.float64)
    n = m1.astype(np.float64) - x
    snr = 10 * np.log10((x ** 2).sum(1) / (n ** 2).sum(1))
    assert np.all(np.abs(snr) < 0.05)


def test_split_is_deterministic_and_about_a_fifth():
    names = [f"c{i}/clip_{i}.wav" for i in range(2000)]
    m = Q.split_names(names, 0.2)
    assert np.array_equal(m, Q.split_names(list(reversed(names)), 0.2)[::-1])
    assert 0.17 < m.mean() < 0.23


def test_generated_set_is_deterministic():
    a1, n1 = Q.generated_calibration_set(words=("yes", "stop"), voices=("en-us",), n_nonspeech=8)
    a2, n2 = Q.generated_calibration_set(words=("yes", "stop"), voices=("en-us",), n_nonspeech=8)
    assert n1 == n2 and np.array_equal(a1, a2)
    assert a1.dtype == np.int16 and a1.shape[1] == 16000
    if shutil.which("espeak-ng"):
        assert sum(n.startswith("speech/") for n in n1) == 2


def test_errors_are_kws_errors():
    assert issubclass(Q.CalibrationError, KwsError) and issubclass(Q.QuantizationError, KwsError)


def test_progress_bars_only_on_a_terminal(capsys):
    """tqdm bars wrote '\\r'-laden lines into stderr files/pipes (quantize, tflite, compare);
    now they are drawn on a terminal only (tqdm's disable=None)."""
    import numpy as np
    import torch

    from export.quantize import collect_ranges
    from nanomamba import TINY
    from nanomamba.model import NanoMamba
    torch.manual_seed(0)
    collect_ranges(NanoMamba(TINY).eval(), np.zeros((3, 16000), np.int16), batch=1,
                   progress=True)
    err = capsys.readouterr().err
    assert err == "", repr(err[:200])


@needs_fixtures
def test_cli_bad_report_path_refused_before_calibrating(tmp_path):
    """--report equal to the bundle, an existing FILE (even with --force), or a folder that
    contains the bundle: refused in one line before any work (an empty --calib would fail
    later with 'no audio clips'), nothing written. A dangling symlink at -o counts as
    existing."""
    ckpt = SHARED / "upstream" / "nanomamba_tiny.pt"
    (tmp_path / "empty").mkdir()
    (tmp_path / "r.txt").write_text("keep")
    (tmp_path / "sub").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    calib = ["--calib", str(tmp_path / "empty")]
    runner = CliRunner()
    for args, msg in [
        (["-o", str(tmp_path / "b.npz"), "--report", str(tmp_path / "b.npz")],
         "the report folder is the bundle"),
        (["-o", str(tmp_path / "b.npz"), "--report", str(tmp_path / "r.txt"), "--force"],
         "r.txt: is a file, expected a folder"),
        (["-o", str(tmp_path / "sub" / "b.npz"), "--report", str(tmp_path / "sub"), "--force"],
         "the report folder contains the bundle"),
        (["-o", str(tmp_path / "dangling")], "exists (a symlink to a missing target)"),
    ]:
        r = runner.invoke(main, ["quantize", str(ckpt), *calib, *args])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1, r.output
        assert lines[0].startswith("error: ") and msg in lines[0], r.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "empty", "r.txt", "sub"]
        assert (tmp_path / "r.txt").read_text() == "keep" and not any((tmp_path / "sub").iterdir())
    assert os.path.islink(tmp_path / "dangling")


def test_check_widths_non_int_message():
    with pytest.raises(Q.QuantizationError, match=r"must be an int \(8, 16 or 32\), not '32' \(a str\)"):
        Q.check_widths({"h": "32"})
    with pytest.raises(Q.QuantizationError, match=r"not 8\.0 \(a float\)"):
        Q.check_widths({"w.in_proj": 8.0})
    assert Q.check_widths({"h": np.int64(16)})["h"] == 16
