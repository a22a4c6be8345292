"""Audio features: 78-d MFCC layout, any sample rate, mono/stereo, and the on-disk cache."""

from __future__ import annotations

import os

import librosa
import numpy as np
import pytest
import soundfile
from perfrdiff.data import (
    AUDIO_DIM,
    CLIP_FRAMES,
    audio_features,
    mfcc_features,
    read_split_csv,
    read_wave,
    warm_audio_cache,
)
from perfrdiff.data.audio import min_samples


@pytest.fixture(scope="module")
def wave16k() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(min_samples(16000)).astype(np.float32) * 0.1


def test_features_are_750_by_78_float32(wave16k):
    features = mfcc_features(wave16k, 16000)
    assert features.shape == (CLIP_FRAMES, AUDIO_DIM) and features.dtype == np.float32


def test_frame_holds_two_20ms_hops_of_mfcc_delta_delta2(wave16k):
    features = mfcc_features(wave16k, 16000)
    mfcc = librosa.feature.mfcc(
        y=wave16k, sr=16000, n_mfcc=13, n_fft=1024, hop_length=320, win_length=640
    )
    delta = librosa.feature.delta(mfcc)
    np.testing.assert_allclose(features[5, :13], mfcc[:, 10], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(features[5, 13:26], delta[:, 10], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(features[5, 39:52], mfcc[:, 11], rtol=1e-5, atol=1e-4)


def test_react_sample_rate_44100_is_accepted():
    wave = np.random.default_rng(1).standard_normal(min_samples(44100)).astype(np.float32)
    assert mfcc_features(wave, 44100).shape == (CLIP_FRAMES, AUDIO_DIM)


def test_too_short_wave_is_rejected_naming_the_argument():
    with pytest.raises(ValueError, match="wave: expected at least"):
        mfcc_features(np.zeros(16000, dtype=np.float32), 16000)


def test_sample_rate_that_does_not_split_frames_is_rejected(wave16k):
    with pytest.raises(ValueError, match="sample_rate: expected a multiple of 50"):
        mfcc_features(wave16k, 16001)


def test_stereo_file_is_read_as_channel_mean(tmp_path):
    left = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    soundfile.write(tmp_path / "s.wav", np.stack([left, -left / 2], axis=1), 16000, "FLOAT")
    wave, rate = read_wave(tmp_path / "s.wav")
    assert rate == 16000
    np.testing.assert_allclose(wave, left / 4, atol=1e-7)


def test_cache_is_reused_and_invalidated_when_source_changes(tmp_path, wave16k):
    source, cache = tmp_path / "a.wav", tmp_path / "cache" / "a.npz"
    soundfile.write(source, wave16k, 16000, "FLOAT")
    first = audio_features(source, cache)
    assert cache.is_file()
    np.savez(cache, features=np.zeros_like(first), key=np.load(cache)["key"])  # mark the cache
    assert not audio_features(source, cache).any()  # served from the cache
    soundfile.write(source, wave16k[::-1].copy(), 16000, "FLOAT")
    os.utime(source, ns=(0, source.stat().st_mtime_ns + 10**9))
    np.testing.assert_array_equal(
        audio_features(source, cache), mfcc_features(wave16k[::-1], 16000)
    )


def test_warm_audio_cache_writes_one_file_per_clip(synthetic_root):
    count = warm_audio_cache(synthetic_root, "val", progress=False)
    cached = list((synthetic_root / "val" / "Audio_features").rglob("*.npz"))
    assert count == len(cached) == len(read_split_csv(synthetic_root, "val"))  # 2 clips a row
