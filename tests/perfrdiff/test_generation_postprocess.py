"""Generated clips clamped to the features' ranges and smoothed over time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff import Run
from perfrdiff.generation.postprocess import (
    clamp_ranges,
    gaussian_kernel,
    postprocess,
    smooth_time,
)


def smooth_loop(x: np.ndarray, sigma: float) -> np.ndarray:
    """float64 reference: every channel of ``(t, d)`` reflected at both ends and convolved with
    the Gaussian of ``sigma``, frame by frame."""
    radius = math.ceil(4 * sigma)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    weights /= weights.sum()
    padded = np.pad(x, ((radius, radius), (0, 0)), mode="reflect")
    return np.stack([weights @ padded[i : i + 2 * radius + 1] for i in range(len(x))])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.3, 4.0))
def test_smoothing_matches_the_float64_loop(seed, sigma):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 3, 40, 25)))
    got = smooth_time(x, sigma)
    assert got.shape == x.shape
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[i, j].numpy(), smooth_loop(x[i, j].numpy(), sigma),
                                       rtol=1e-9, atol=1e-12)  # fmt: skip


def test_smoothing_keeps_a_constant_and_removes_jitter():
    flat = torch.full((1, 60, 25), 0.3)
    torch.testing.assert_close(smooth_time(flat, 2.0), flat)
    jitter = torch.tensor([1.0, -1.0]).repeat(30)[None, :, None].expand(1, 60, 25)
    assert smooth_time(jitter, 2.0).abs().max() < 0.01  # 12.5 Hz at 25 fps
    assert gaussian_kernel(2.0).sum().item() == pytest.approx(1.0)


def test_bad_smoothing_arguments_are_named():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(0.0)
    with pytest.raises(ValueError, match="reactions"):
        smooth_time(torch.zeros(1, 8, 25), 2.0)  # radius 8 needs 9 frames


def test_clamp_puts_each_channel_group_in_its_range():
    x = torch.linspace(-3, 3, 50 * 25).reshape(2, 25, 25)
    low = torch.tensor([0.0] * 15 + [-1.0] * 2 + [0.0] * 8)  # AUs, valence/arousal, expressions
    torch.testing.assert_close(
        clamp_ranges(x), torch.minimum(torch.maximum(x, low), torch.ones(25))
    )
    assert x.min() == -3  # the input is not changed


def test_a_run_post_processes_what_it_generates(quick_run):
    raw = Run.load(quick_run, device="cpu").generate("test", ["generic"], samples=2, limit=2)
    run = Run.load(
        quick_run, device="cpu", overrides=["generate.clamp=true", "generate.smooth_sigma=1.5"]
    )
    got = run.generate("test", ["generic"], samples=2, limit=2)["generic"]
    want = clamp_ranges(smooth_time(torch.from_numpy(raw["generic"]), 1.5)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_postprocess_without_settings_is_the_identity():
    x = torch.randn(2, 30, 25)
    assert postprocess(x, False, 0.0) is x
    torch.testing.assert_close(postprocess(x, True, 1.0), clamp_ranges(smooth_time(x, 1.0)))
