"""Noise generation and SNR mixing (nanomamba.data.noise)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from nanomamba.data import noise as nz
from nanomamba.errors import KwsError


def _band_power(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return spec[(f >= lo) & (f < hi)].sum() / spec.sum()


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum", "factory", "street"])
def test_generated_unit_rms_and_deterministic(kind):
    a = nz.generate_noise(kind, 16000, np.random.default_rng(3))
    b = nz.generate_noise(kind, 16000, np.random.default_rng(3))
    c = nz.generate_noise(kind, 16000, np.random.default_rng(4))
    assert a.dtype == np.float32 and a.shape == (16000,)
    assert nz.rms(a) == pytest.approx(1.0, rel=1e-4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_noise_spectra_have_their_shape():
    rng = np.random.default_rng(0)
    white, pink = nz.generate_noise("white", 16000, rng), nz.generate_noise("pink", 16000, rng)
    street = nz.generate_noise("street", 16000, rng)
    assert _band_power(white, 0, 500) < 0.1                 # flat: ~1/16 of the band
    assert _band_power(pink, 0, 500) > 0.4                  # 1/f: low bands dominate
    assert _band_power(street, 0, 500) > 0.5                # traffic rumble
    # factory impulses make it heavy-tailed compared with Gaussian noise (kurtosis 3)
    kurt = [float(np.mean(x ** 4)) for x in
            (nz.generate_noise("factory", 16000, np.random.default_rng(s)) for s in range(8))]
    assert max(kurt) > 5.0


@settings(max_examples=40, deadline=None)
@given(snr=st.floats(-15, 20), level=st.floats(0.001, 0.05), seed=st.integers(0, 1000))
def test_mix_hits_the_snr(snr, level, seed):
    rng = np.random.default_rng(seed)
    clean = rng.standard_normal(16000) * level
    noise = rng.standard_normal(16000) * 3.0
    mix = nz.mix_at_snr(clean, noise, snr).astype(np.float64)
    added = mix - clean
    if np.max(np.abs(mix)) < nz.PEAK_LIMIT:                 # not peak-limited
        got = 20 * np.log10(nz.rms(clean) / nz.rms(added))
        assert got == pytest.approx(snr, abs=1e-3)


def test_mix_batched_and_peak_limited():
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((4, 16000)) * 0.3
    noise = rng.standard_normal((4, 16000))
    mix = nz.mix_at_snr(clean, noise, np.array([-15, -5, 5, 15]))
    assert mix.shape == (4, 16000) and mix.dtype == np.float32
    assert np.max(np.abs(mix)) <= nz.PEAK_LIMIT + 1e-6
    # an all-zero clip still gets noise (at the -80 dBFS floor re the SNR)
    z = nz.mix_at_snr(np.zeros(16000), rng.standard_normal(16000), 0.0)
    assert nz.rms(z) == pytest.approx(1e-4, rel=1e-3)


def test_noise_batch_rows_independent_of_count():
    for kind in ("white", "pink", "factory"):
        a = nz.noise_batch(kind, 5, 16000, seed=2)
        b = nz.noise_batch(kind, 3, 16000, seed=2)
        assert np.array_equal(a[:3], b)
        assert np.allclose(nz.rms(a, axis=1), 1.0, rtol=1e-4)


def test_recorded_noise(fixtures_dir):
    files = nz.load_noise_files(fixtures_dir / "background_noise")
    assert sorted(files) == ["doing_the_dishes", "dude_miaowing", "exercise_bike",
                             "pink_noise", "running_tap", "white_noise"]
    assert all(len(v) >= 60 * 16000 for v in files.values())
    batch = nz.noise_batch("recorded", 4, 16000, seed=0, files=files)
    one = nz.noise_batch("file:running_tap", 2, 16000, seed=0, files=files)
    assert batch.shape == (4, 16000) and one.shape == (2, 16000)
    with pytest.raises(nz.NoiseError, match="no recording named 'nope'"):
        nz.noise_batch("file:nope", 1, 16000, seed=0, files=files)


def test_noise_errors(tmp_path):
    with pytest.raises(nz.NoiseError, match="no such noise folder"):
        nz.load_noise_files(tmp_path / "missing")
    with pytest.raises(nz.NoiseError, match="no .wav/.flac"):
        nz.load_noise_files(tmp_path)
    with pytest.raises(nz.NoiseError, match="unknown noise type 'rain'"):
        nz.noise_batch("rain", 1, 100, seed=0)
    with pytest.raises(nz.NoiseError, match="needs recorded noise files"):
        nz.noise_batch("recorded", 1, 100, seed=0)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(KwsError, match="bad.wav"):
        nz.load_noise_files(tmp_path)
    sf.write(tmp_path / "bad.wav", np.zeros(100), 16000)     # short files are fine
    assert len(nz.load_noise_files(tmp_path)["bad"]) == 100
