"""Whisper's log-mel features, written out, against transformers' WhisperFeatureExtractor."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import WhisperFeatureExtractor
from transformers.audio_utils import mel_filter_bank as hf_mel_filter_bank

from roadmap_lib.audio import (
    SOUND_CLASSES,
    frames,
    hz_to_mel,
    log_mel,
    make_sounds,
    mel_filter_bank,
    mel_to_hz,
    power_spectrogram,
    sound,
)

#: the stated tolerance: float32 features, values of order 1
TOL = 1e-5


@pytest.mark.parametrize("n_mels", [32, 80])
def test_log_mel_equals_whisper_feature_extractor(n_mels):
    waves, _ = make_sounds(3, seed=0)
    fe = WhisperFeatureExtractor(feature_size=n_mels)
    theirs = fe(waves.numpy(), sampling_rate=16_000, padding="longest", return_tensors="np").input_features
    ours = log_mel(waves, n_mels=n_mels)
    assert ours.shape == theirs.shape == (3, n_mels, 48)
    assert np.abs(ours.numpy() - theirs).max() < TOL


def test_one_waveform_and_its_batch_agree():
    waves, _ = make_sounds(2, seed=1)
    torch.testing.assert_close(log_mel(waves[1]), log_mel(waves)[1])


def test_filter_bank_equals_transformers():
    theirs = hf_mel_filter_bank(num_frequency_bins=201, num_mel_filters=40, min_frequency=0.0,
                                max_frequency=8000.0, sampling_rate=16_000, norm="slaney", mel_scale="slaney")
    assert np.abs(mel_filter_bank(201, 40).numpy() - theirs).max() < 1e-12


@settings(max_examples=30, deadline=None)
@given(f=st.floats(1.0, 8000.0))
def test_mel_scale_round_trip_and_monotone(f):
    assert float(mel_to_hz(hz_to_mel(f))) == pytest.approx(f, rel=1e-9)
    assert float(hz_to_mel(f * 1.01)) > float(hz_to_mel(f))


def test_power_spectrogram_equals_torch_stft():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = torch.stft(x, 400, 160, window=torch.hann_window(400, dtype=torch.float64), return_complex=True).abs() ** 2
    torch.testing.assert_close(power_spectrogram(x, 400, 160), ref)
    assert frames(x, 400, 160).shape == (1000 // 160 + 1, 400)


def test_a_tone_lands_in_its_mel_band():
    t = torch.arange(8000) / 16_000
    feats = log_mel(torch.sin(2 * torch.pi * 1000 * t), n_mels=40)
    centres = mel_to_hz(torch.linspace(float(hz_to_mel(0.0)), float(hz_to_mel(8000.0)), 42))[1:-1]
    assert feats.mean(-1).argmax().item() == (centres - 1000).abs().argmin().item()


def test_sounds_are_seeded_and_chirps_move():
    a, la = make_sounds(5, seed=3)
    b, lb = make_sounds(5, seed=3)
    assert torch.equal(a, b) and torch.equal(la, lb) and a.shape == (5, 7680)
    gen = torch.Generator().manual_seed(0)
    up = log_mel(sound("chirp up", 16000, gen, noise=0.0), n_mels=40)
    peak = up.argmax(0).float()  # the loudest band of each frame
    active = up.amax(0) > up.amax() - 0.5
    band = peak[active]
    assert band[-5:].mean() > band[:5].mean() + 5  # the loudest band climbs
    assert set(SOUND_CLASSES) == {"tone", "chord", "chirp up", "chirp down", "noise burst"}


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="waveform"):
        log_mel(torch.zeros(2, 2, 100))
    with pytest.raises(ValueError, match="waveform"):
        log_mel(torch.zeros(100))
    with pytest.raises(ValueError, match="n_mels"):
        mel_filter_bank(201, 0)
    with pytest.raises(ValueError, match="kind"):
        sound("bark", 100, torch.Generator())
    with pytest.raises(ValueError, match="f_min"):
        mel_filter_bank(201, 10, f_min=9000.0)
