"""The one audio loader: formats, resampling, downmix, pad/trim, and one-line errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from nanomamba import AudioError, AudioWarning, load_audio
from nanomamba.audio import float_to_int16


def _tone(n=16000, rate=16000):
    t = np.arange(n) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_pcm16_exact(tmp_path):
    pcm = (np.arange(16000) % 2000 - 1000).astype(np.int16)
    sf.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    assert np.array_equal(load_audio(tmp_path / "a.wav", dtype="int16"), pcm)
    assert np.array_equal(load_audio(tmp_path / "a.wav"), pcm.astype(np.float32) / 32768)


def test_float_and_u8_wav(tmp_path):
    x = _tone()
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    assert np.allclose(load_audio(tmp_path / "f.wav"), x)
    sf.write(tmp_path / "u8.wav", x, 16000, subtype="PCM_U8")
    assert np.abs(load_audio(tmp_path / "u8.wav") - x).max() < 1 / 64


def test_f32_raw(tmp_path):
    x = _tone()
    x.astype("<f4").tofile(tmp_path / "x.f32")
    assert np.array_equal(load_audio(tmp_path / "x.f32"), x)
    assert np.array_equal(load_audio(tmp_path / "x.f32", dtype="int16"), float_to_int16(x))


def test_float_to_int16_rounds_half_away_and_saturates():
    x = np.array([0.5 / 32768, -0.5 / 32768, 1.5 / 32768, 1.0, -1.0, 2.0, -2.0])
    assert float_to_int16(x).tolist() == [1, -1, 2, 32767, -32768, 32767, -32768]


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampled_with_warning(tmp_path, rate):
    sf.write(tmp_path / "r.wav", _tone(rate, rate), rate)
    with pytest.warns(AudioWarning, match=f"resampled from {rate} Hz"):
        x = load_audio(tmp_path / "r.wav")
    assert x.shape == (16000,)


def test_rate_refused(tmp_path):
    sf.write(tmp_path / "low.wav", _tone(4000, 4000), 4000)
    with pytest.raises(AudioError, match="sample rate 4000 Hz is not supported"):
        load_audio(tmp_path / "low.wav")


def test_stereo_downmixed(tmp_path):
    x = _tone()
    sf.write(tmp_path / "s.wav", np.stack([x, -x * 0], axis=1), 16000, subtype="PCM_16")
    with pytest.warns(AudioWarning, match="downmixed"):
        y = load_audio(tmp_path / "s.wav")
    assert np.abs(y - x / 2).max() < 1e-4
    # the int16 read (PCM_16 read exactly, then downmixed) gives the same samples
    with pytest.warns(AudioWarning, match="downmixed") as caught:
        z = load_audio(tmp_path / "s.wav", dtype="int16")
    assert not any("clipped" in str(w.message) for w in caught)
    assert z.dtype == np.int16 and np.array_equal(z, float_to_int16(y))


@pytest.mark.parametrize("n,word", [(8000, "zero-padded"), (20000, "trimmed")])
def test_pad_and_trim(tmp_path, n, word):
    sf.write(tmp_path / "l.wav", _tone(n), 16000, subtype="PCM_16")
    with pytest.warns(AudioWarning, match=word):
        assert load_audio(tmp_path / "l.wav").shape == (16000,)


def test_exact_length_gives_no_warning(tmp_path):
    sf.write(tmp_path / "ok.wav", _tone(), 16000, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(tmp_path / "ok.wav")


def test_out_of_range_float_wav_warns_once_when_clipped(tmp_path):
    x = _tone()
    x[:160] = 50.0
    x[160:320] = -50.0
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="FLOAT")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = load_audio(tmp_path / "clip.wav", dtype="int16")
    assert [w.category for w in caught] == [AudioWarning]
    msg = str(caught[0].message)
    assert "\n" not in msg and str(tmp_path / "clip.wav") in msg
    assert "outside [-1, 1]" in msg and "peak 50.0," in msg and "320 of 16000" in msg
    assert "clipped" in msg
    assert y[:160].tolist() == [32767] * 160 and y[160:320].tolist() == [-32768] * 160
    assert np.array_equal(y[320:], float_to_int16(x[320:]))
    # the float route sees the same clip, with the same one warning
    x.astype("<f4").tofile(tmp_path / "clip.f32")
    for path in (tmp_path / "clip.wav", tmp_path / "clip.f32"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = load_audio(path, dtype="float32")
        assert [w.category for w in caught] == [AudioWarning] and "clipped" in str(caught[0].message)
        assert f.dtype == np.float32 and f[:160].tolist() == [1.0] * 160
        assert f[160:320].tolist() == [-1.0] * 160 and np.array_equal(f[320:], x[320:])


def test_in_range_float_wav_gives_no_clip_warning(tmp_path):
    x = _tone()
    x[0], x[1] = 1.0, -1.0                  # full scale is in range (1.0 saturates one LSB)
    sf.write(tmp_path / "ok.wav", x, 16000, subtype="FLOAT")
    x.astype("<f4").tofile(tmp_path / "ok.f32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(tmp_path / "ok.wav", dtype="int16")
        load_audio(tmp_path / "ok.f32", dtype="int16")
        load_audio(tmp_path / "ok.wav", dtype="float32")
        load_audio(tmp_path / "ok.f32", dtype="float32")


def _err(path, match):
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_errors(tmp_path):
    _err(tmp_path / "none.wav", "no such file")
    (tmp_path / "empty.f32").write_bytes(b"")
    _err(tmp_path / "empty.f32", "empty file")
    (tmp_path / "odd.f32").write_bytes(b"\0" * 7)
    _err(tmp_path / "odd.f32", "not a whole number of float32 samples")
    np.array([np.nan] * 10, dtype="<f4").tofile(tmp_path / "nan.f32")
    _err(tmp_path / "nan.f32", "NaN or Inf")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    _err(tmp_path / "corrupt.wav", "not a readable audio file")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    _err(tmp_path / "empty.wav", "empty file")
    (tmp_path / "clip.mp3").write_bytes(b"ID3")
    _err(tmp_path / "clip.mp3", "unsupported audio format")


def test_list_clips_names_a_file_given_for_a_folder(tmp_path):
    """kws-export compare/run with a clip where a folder is expected said 'no such folder'."""
    from nanomamba.audio import list_clips
    f = tmp_path / "clip.wav"
    f.write_bytes(b"")
    with pytest.raises(AudioError, match="clip.wav: is a file, expected a folder of clips"):
        list_clips(f)
    with pytest.raises(AudioError, match="no such folder"):
        list_clips(tmp_path / "absent")
