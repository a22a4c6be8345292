"""Motion statistics: known values on hand-built sequences (a step, white noise, a sine)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.metrics import BANDS, band_power, frame_steps, join_frames, motion_report, step_sizes


def test_join_frames_start_each_generated_stretch_after_the_first():
    assert join_frames(200, 50).tolist() == [50, 100, 150]
    assert join_frames(150, 50, stride=25).tolist() == [50, 75, 100, 125]
    with pytest.raises(ValueError, match="stride"):
        join_frames(100, 50, stride=0)


def test_a_step_function_moves_only_at_its_join():
    x = np.zeros((1, 1, 100, 25))
    x[..., 50:, :] = 2.0
    at_join, inside = step_sizes(x, join_frames(100, 50))
    assert (at_join, inside) == (2.0, 0.0)
    steps = frame_steps(x)
    assert np.isnan(steps[..., 0]).all() and steps[..., 50] == 2.0 and steps[..., 1:].sum() == 2.0


def test_white_noise_steps_are_alike_at_joins_and_inside_and_its_power_is_flat():
    sigma = 0.5
    x = np.random.default_rng(0).normal(0, sigma, (400, 750, 25))
    at_join, inside = step_sizes(x, join_frames(750, 50))
    expected = 2 * sigma / math.sqrt(math.pi)  # E|a - b| for a, b ~ N(0, σ²) independent
    assert inside == pytest.approx(expected, rel=0.005)
    assert at_join == pytest.approx(expected, rel=0.02)
    nyquist = 12.5
    widths = np.array([hi - lo for lo, hi in BANDS])
    widths[0] -= 25 / 750  # removing the mean empties the DC bin (one bin of fps / t Hz)
    np.testing.assert_allclose(band_power(x), sigma**2 * widths / nyquist, rtol=0.02)


def sine(frequency, amplitude=1.5, fps=25.0, t=750):
    """``(1, t, 25)``: 30 s, a whole number of periods for the tested frequencies."""
    wave = amplitude * np.sin(2 * np.pi * frequency * np.arange(t) / fps)
    return np.broadcast_to(wave[:, None], (1, t, 25))


@pytest.mark.parametrize("frequency", [0.2, 1.5, 3.0, 10.0])
def test_a_sine_puts_half_its_squared_amplitude_in_the_band_of_its_frequency(frequency):
    power = band_power(sine(frequency))
    band = next(i for i, (lo, hi) in enumerate(BANDS) if lo <= frequency < hi)
    assert power[band] == pytest.approx(1.5**2 / 2, rel=1e-9)
    assert np.delete(power, band).max() < 1e-12


@pytest.mark.parametrize("frequency", [0.2, 1.5, 3.0])
def test_a_sine_steps_by_its_mean_slope(frequency):
    # x_t - x_{t-1} = 2A sin(π f / fps) cos(·); the mean |cos| of whole periods is 2 / π (to
    # 0.2% at these frequencies, where a period spans 8 or more frames).
    slope = 2 * 1.5 * math.sin(math.pi * frequency / 25) * 2 / math.pi
    assert np.nanmean(frame_steps(sine(frequency))) == pytest.approx(slope, rel=5e-3)


def test_the_nyquist_bin_counts_once_in_the_last_band():
    x = np.tile([1.0, -1.0], 375)[None, :, None]  # the fastest sine: power 1, at 12.5 Hz
    assert band_power(x)[-1] == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 40), st.integers(0, 2**31 - 1))
def test_the_bands_sum_to_the_variance_over_time(frames, seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, frames, 4))
    bands = ((0.0, 12.5),)
    expected = x.var(axis=-2).mean()  # population variance, averaged over sequences, channels
    assert band_power(x, bands)[0] == pytest.approx(expected, rel=1e-9)


def test_the_report_compares_seamed_smooth_windows_with_real_noise():
    rng = np.random.default_rng(1)
    real = rng.normal(0, 0.1, (4, 200, 25))
    levels = np.repeat(rng.normal(0, 1, (4, 3, 4, 1, 25)), 50, axis=3).reshape(4, 3, 200, 25)
    report = motion_report(levels + 0.01 * rng.normal(size=levels.shape), real, window=50)
    assert report["join_ratio"] > 10
    assert report["real_join_ratio"] == pytest.approx(1.0, abs=0.15)
    assert report["inside_vs_real"] == pytest.approx(0.1, rel=0.05)
    seamless = motion_report(real[:, None], real, window=50)
    assert seamless["inside_vs_real"] == 1.0 and seamless["power 8-12.5Hz"] == 1.0


def test_the_report_names_mismatched_real_reactions():
    with pytest.raises(ValueError, match="listener_emotion"):
        motion_report(np.zeros((2, 1, 100, 25)), np.zeros((2, 90, 25)))
