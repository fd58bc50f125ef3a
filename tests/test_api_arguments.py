"""Public Python functions refuse bad arguments with one clear line before doing any work
(a new-user break-it pass found them failing deep in numpy/torch/queue, or silently doing
the wrong thing): firmware runs and checks, verify_dir, generate_c, quantize_model's
calibration audio and options, load_audio's n_samples, NanoMamba.classify's input.

The simulator's own argument checks are in tests/test_simulator.py. None of these needs a
build, a bundle or real data: every check fires before the first file is read (a path
that does not exist would otherwise give a different error)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from export import quantize as Q
from export.codegen import CodegenError, generate_c, load_source
from export.fileio import path_list
from export.firmware import check_timeout, collect_clips, run_firmware, run_qemu
from export.firmware_check import check_firmware
from export.verify import VerifyError, verify_dir
from nanomamba.audio import load_audio
from nanomamba.errors import KwsError

NOWHERE = Path("/nonexistent/kws-api-arguments")
YES = str(NOWHERE / "yes.wav")
Z1 = np.zeros((1, 16000), np.int16)


def _one_line(ei) -> str:
    msg = str(ei.value)
    assert msg and "\n" not in msg
    return msg


# ---- firmware runs and checks, verify_dir, generate_c ---------------------------------------

@pytest.mark.parametrize("call, err, match", [
    (lambda: run_firmware(NOWHERE, YES), TypeError,
     r"inputs must be a list of paths, got a single str '.*yes.wav'; pass \[path\]"),
    (lambda: run_firmware(NOWHERE, Path(YES)), TypeError, "inputs must be a list of paths"),
    (lambda: run_firmware(NOWHERE, None), TypeError, "inputs must be a list of paths, got NoneType"),
    (lambda: run_firmware(NOWHERE, [YES, 3]), TypeError, "an item of type int"),
    (lambda: run_firmware(NOWHERE, [YES], timeout=-1), ValueError, "timeout: expected seconds > 0"),
    (lambda: run_firmware(NOWHERE, [YES], timeout=0), ValueError, "timeout"),
    (lambda: run_firmware(NOWHERE, [YES], timeout=math.inf), ValueError, r"timeout.*\(finite\)"),
    (lambda: run_firmware(NOWHERE, [YES], timeout="5"), TypeError, "timeout: expected seconds"),
    (lambda: run_qemu(NOWHERE, None, [], timeout=-1.0), ValueError, "timeout"),
    (lambda: check_firmware(NOWHERE, YES), TypeError, "inputs must be a list of paths"),
    (lambda: check_firmware(NOWHERE, [YES], timeout=-1), ValueError, "timeout"),
    (lambda: collect_clips("/"), TypeError, "inputs must be a list of paths"),
    (lambda: verify_dir(NOWHERE, audio=YES), TypeError, "audio must be a list of paths"),
    (lambda: verify_dir(NOWHERE, chunk=0), ValueError, "chunk: expected an int >= 1, got 0"),
    (lambda: verify_dir(NOWHERE, chunk=2.5), TypeError, "chunk: expected an int"),
    (lambda: verify_dir(NOWHERE, np.zeros((0, 16000), np.int16)), VerifyError, "no clips to verify"),
    (lambda: verify_dir(NOWHERE, np.zeros((2, 16000), np.int16), names=["a"]), ValueError,
     "names: 1 names for 2 clips"),
    (lambda: verify_dir(NOWHERE, Z1, names="a"), TypeError, "names: expected a list"),
    (lambda: verify_dir(NOWHERE, names=["a"]), ValueError, "names: only used with clips"),
    (lambda: verify_dir(NOWHERE, Z1, audio=[YES]), ValueError, "clips or audio, not both"),
    (lambda: verify_dir(NOWHERE, np.zeros((1, 16000), np.float32)), VerifyError, "clips: expected int16"),
    (lambda: generate_c(None, NOWHERE), TypeError, "source: expected a bundle path"),
    (lambda: generate_c(str(NOWHERE / "b.npz"), None), TypeError, "out_dir: expected a folder path"),
    (lambda: generate_c(str(NOWHERE / "b.npz"), NOWHERE / "o", variant="turbo"), CodegenError,
     "kernel variant 'turbo'"),
    (lambda: load_source(3), TypeError, "source: expected"),
])
def test_export_functions_check_arguments_first(call, err, match):
    with pytest.raises(err, match=match) as ei:
        call()
    _one_line(ei)


def test_path_list_and_check_timeout_accept_what_they_should():
    assert path_list([YES, Path("b")]) == [Path(YES), Path("b")]
    assert path_list(p for p in ("a",)) == [Path("a")]
    assert path_list(()) == []
    assert check_timeout(2) == 2.0 and check_timeout(np.float32(0.5)) == 0.5


# ---- quantize_model: calibration audio and options ------------------------------------------

@pytest.fixture(scope="module")
def model():
    from nanomamba import TINY
    from nanomamba.model import NanoMamba
    return NanoMamba(TINY).eval()


_A = np.zeros((2, 16000), np.int16)


@pytest.mark.parametrize("audio, options, err, match", [
    (_A[0], None, Q.CalibrationError, r"expected shape \(n, 16000\).*got \(16000,\)"),
    (_A[None], None, Q.CalibrationError, r"got \(1, 2, 16000\)"),
    (_A.astype(np.float32), None, Q.CalibrationError, "expected int16 PCM .* got float32"),
    (_A.astype(np.int32), None, Q.CalibrationError, "got int32"),
    (np.zeros((2, 8000), np.int16), None, Q.CalibrationError, r"got \(2, 8000\)"),
    (np.zeros((2, 32000), np.int16), None, Q.CalibrationError, r"got \(2, 32000\)"),
    (np.zeros((0, 16000), np.int16), None, Q.CalibrationError, "no calibration clips"),
    ([], None, Q.CalibrationError, "no calibration clips"),
    (_A, {"range": "percentile", "percentile": 150}, Q.QuantizationError,
     r"option 'percentile' must be a number in \(50, 100\], not 150"),
    (_A, {"percentile": 10}, Q.QuantizationError, "'percentile'"),
    (_A, {"rnage": "minmax"}, Q.QuantizationError,
     "unknown quantizer option 'rnage' .known: exp_table_bits, range, percentile"),
    (_A, {"range": "max"}, Q.QuantizationError, "option 'range' must be one of 'minmax', 'percentile', not 'max'"),
    (_A, {"weight_rounding": None}, Q.QuantizationError, "'gptq', 'nearest'"),
    (_A, {"logits_range": "top3"}, Q.QuantizationError, "'full', 'top2', 'runnerup'"),
    (_A, {"exp_table_bits": 2.5}, Q.QuantizationError, r"'exp_table_bits' must be an int in \[1, 16\]"),
    (_A, {"exp_table_bits": 0}, Q.QuantizationError, "'exp_table_bits'"),
    (_A, {"exp_table_bits": True}, Q.QuantizationError, "'exp_table_bits'"),
    (_A, {"headroom": 0}, Q.QuantizationError, r"option 'headroom' must be a number > 0 \(finite\), not 0"),
    (_A, {"headroom_wide": math.nan}, Q.QuantizationError, "'headroom_wide'"),
    (_A, {"headroom_state": math.inf}, Q.QuantizationError, "'headroom_state'"),
    (_A, "minmax", Q.QuantizationError, "options: expected a dict"),
])
def test_quantize_model_checks_audio_and_options_before_calibrating(model, audio, options, err,
                                                                   match):
    with pytest.raises(err, match=match) as ei:
        Q.quantize_model(model, audio, options=options, progress=False)
    _one_line(ei)


def test_check_options_merges_valid_overrides_and_quantize_checkpoint_checks_first(tmp_path):
    assert Q.check_options(None) == Q.DEFAULT_OPTIONS
    ok = {"range": "percentile", "percentile": 99.9, "exp_table_bits": np.int64(10),
          "headroom": 1, "weight_rounding": "nearest", "logits_range": "top2"}
    assert Q.check_options(ok) == {**Q.DEFAULT_OPTIONS, **ok}
    assert set(Q.OPTION_RULES) == set(Q.DEFAULT_OPTIONS)
    # refused before the (missing) checkpoint is read
    with pytest.raises(Q.QuantizationError, match="unknown quantizer option 'x'"):
        Q.quantize_checkpoint(tmp_path / "missing.pt", tmp_path / "b.npz", options={"x": 1},
                              progress=False)
    assert not list(tmp_path.iterdir())


# ---- load_audio, NanoMamba.classify ---------------------------------------------------------

@pytest.mark.parametrize("kwargs, err, match", [
    ({"n_samples": -5}, ValueError, "n_samples: expected an int >= 1 .samples per clip., got -5"),
    ({"n_samples": 0}, ValueError, "got 0"),
    ({"n_samples": 1.5}, TypeError, "n_samples: expected an int >= 1, got 1.5"),
    ({"n_samples": True}, TypeError, "n_samples"),
    ({"path": None}, TypeError, "path: expected a file path"),
])
def test_load_audio_checks_arguments_before_reading(kwargs, err, match):
    args = {"path": YES, **kwargs}
    with pytest.raises(err, match=match) as ei:
        load_audio(args.pop("path"), **args)
    _one_line(ei)


def test_load_audio_numpy_int_n_samples(tmp_path):
    import soundfile as sf
    p = tmp_path / "c.wav"
    sf.write(p, np.full(16000, 1000, np.int16), 16000, subtype="PCM_16")
    with pytest.warns(Warning, match="trimmed"):
        x = load_audio(p, dtype="int16", n_samples=np.int64(8000))
    assert x.shape == (8000,) and x.dtype == np.int16 and (x == 1000).all()


def test_classify_accepts_numpy_and_refuses_other_inputs(model):
    import torch
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 16000)) * 0.1).astype(np.float32)
    lab_t, conf_t, log_t = model.classify(torch.from_numpy(x))
    lab_n, conf_n, log_n = model.classify(x)
    assert lab_n == lab_t and torch.equal(log_n, log_t) and torch.equal(conf_n, conf_t)
    assert model.classify(x[0])[0] == lab_t[:1]
    for bad, err, match in [(x.tolist(), TypeError, "torch.Tensor or numpy array.*got list"),
                            ((x * 32768).astype(np.int16), TypeError, "got torch.int16 .int16 PCM: divide by 32768"),
                            (x[None], ValueError, r"got \(1, 2, 16000\)"),
                            (np.zeros((0,), np.float32), ValueError, r"got \(0,\)")]:
        with pytest.raises(err, match=match) as ei:
            model.classify(bad)
        _one_line(ei)


def test_kws_errors_stay_kws_errors():
    """Bad data (not programming errors) keeps the project's KwsError, so the CLI prints it
    as one ``error:`` line."""
    assert issubclass(Q.CalibrationError, KwsError) and issubclass(VerifyError, KwsError)


def test_collect_clips_empty_folder_message_names_the_folder_first(tmp_path):
    """'no audio clips in fwA' did not follow the 'FILE: problem' form."""
    from export.firmware import FirmwareError
    (tmp_path / "fwA").mkdir()
    (tmp_path / "fwA" / "notes.txt").write_text("x")
    with pytest.raises(FirmwareError) as e:
        collect_clips([tmp_path / "fwA"])
    assert str(e.value) == f"{tmp_path / 'fwA'}: no audio clips (.wav, .f32, .flac)"
