"""Continuity of overlapping windows: the prediction continues the frames generated before."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.generation.sampler import continue_from


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 49), st.integers(0, 2**31 - 1))
def test_a_continued_window_starts_with_the_known_frames_and_steps_as_predicted(o, seed):
    g = torch.Generator().manual_seed(seed)
    known = torch.randn(3, o, 25, generator=g, dtype=torch.float64)
    x0 = torch.randn(3, 50, 25, generator=g, dtype=torch.float64) + 5.0  # another level
    out = continue_from(known, x0)
    assert out.shape == x0.shape
    torch.testing.assert_close(out[:, :o], known, rtol=0, atol=0)
    # The join's step is the prediction's own step from its frame o - 1 to its frame o.
    torch.testing.assert_close(out[:, o] - out[:, o - 1], x0[:, o] - x0[:, o - 1])
    # Later the shift fades linearly: at the last frame 1 / (w - o) of the gap is left.
    gap = known[:, -1] - x0[:, o - 1]
    torch.testing.assert_close(out[:, -1] - x0[:, -1], gap / (50 - o))


def test_a_prediction_that_already_continues_the_known_frames_is_kept():
    x0 = torch.randn(2, 50, 25)
    torch.testing.assert_close(continue_from(x0[:, :20], x0), x0, rtol=0, atol=0)
