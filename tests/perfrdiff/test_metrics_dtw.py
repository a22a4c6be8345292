"""DTW: agreement with tslearn, hand-computed value, and exactness of the pruned minimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.metrics import dtw_distance, min_cost
from perfrdiff.metrics.dtw import cost
from tslearn.metrics import dtw as tslearn_dtw


def test_dtw_hand_computed():
    x = np.array([[0.0], [1.0], [2.0]])
    y = np.array([[0.0], [2.0]])
    # accumulated squared costs: (0,0)=0, (1,1)=1, (2,1)=0+1 -> sqrt(1)
    assert dtw_distance(x, y) == 1.0


@pytest.mark.parametrize("channels", [15, 2, 8])
def test_dtaidistance_equals_tslearn_bit_for_bit(channels):
    rng = np.random.default_rng(channels)
    x = rng.random((120, channels)).astype(np.float32)
    y = rng.random((120, channels)).astype(np.float32)
    ours = dtw_distance(x.astype(np.float64), y.astype(np.float64))
    assert ours == tslearn_dtw(x, y)


def test_abandoned_dtw_returns_inf_and_kept_dtw_is_exact():
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 4)), rng.random((50, 4))
    exact = dtw_distance(x, y)
    assert dtw_distance(x, y, max_dist=exact * 0.9) == np.inf
    assert dtw_distance(x, y, max_dist=exact * 1.1) == exact


def test_zero_threshold_is_rejected_since_the_library_reads_it_as_no_limit():
    with pytest.raises(ValueError, match="max_dist: expected > 0"):
        dtw_distance(np.zeros((3, 1)), np.zeros((3, 1)), max_dist=0.0)
    with pytest.raises(ValueError, match="window: expected >= 1"):
        dtw_distance(np.zeros((3, 1)), np.zeros((3, 1)), window=0)


def test_banded_dtw_hand_computed():
    # the best unconstrained path waits two frames on y[0]; a band of one frame forbids that
    x = np.array([[0.0], [0.0], [0.0], [5.0]])
    y = np.array([[0.0], [5.0], [5.0], [5.0]])
    assert dtw_distance(x, y) == 0.0
    assert dtw_distance(x, y, window=2) == 5.0  # (2, 1) is outside: one zero frame meets 5
    assert dtw_distance(x, y, window=4) == 0.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 30), window=st.integers(1, 35))
def test_banded_dtw_is_an_upper_bound_and_exact_when_the_band_covers_all(seed, frames, window):
    rng = np.random.default_rng(seed)
    x, y = rng.random((frames, 3)), rng.random((frames, 3))
    exact = dtw_distance(x, y)
    assert dtw_distance(x, y, window=window) >= exact
    assert dtw_distance(x, y, window=frames) == exact


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    frames=st.integers(1, 25),
    candidates=st.integers(1, 6),
    duplicate=st.booleans(),
)
def test_pruned_minimum_equals_exhaustive_minimum(seed, frames, candidates, duplicate):
    rng = np.random.default_rng(seed)
    x = rng.random((frames, 25)).astype(np.float32)
    ys = rng.random((candidates, frames, 25)).astype(np.float32)
    if duplicate:  # exact ties and a zero distance are the hardest cases for thresholds
        ys[-1] = x
        ys[0] = x
    pruned, _ = min_cost(x, ys, prune=True)
    exhaustive, _ = min_cost(x, ys, prune=False)
    assert pruned == exhaustive == min(cost(x, y) for y in ys)


def test_pruning_skips_work_when_one_candidate_is_much_closer():
    rng = np.random.default_rng(1)
    x = rng.random((60, 25)).astype(np.float32)
    ys = rng.random((8, 60, 25)).astype(np.float32) + 3
    ys[5] = x + 0.01
    value, started = min_cost(x, ys)
    assert value == min_cost(x, ys, prune=False)[0]
    assert started == 3  # only the close candidate is computed


def test_banded_upper_bound_prunes_a_delayed_copy_among_similar_candidates():
    # every candidate is as far as x in lock-step, but ys[2] is x delayed by 3 frames: the banded
    # bound finds it, so the others are abandoned in their first (valence/arousal) DTW
    rng = np.random.default_rng(2)
    frames = 80
    walk = np.cumsum(rng.normal(0, 0.3, (6, frames + 3, 25)), axis=1).astype(np.float32)
    x = walk[0, 3:]
    ys = walk[:, :frames].copy()
    ys[2] = walk[0, :frames]
    ys[0] = walk[5, :frames]
    value, started = min_cost(x, ys)
    assert value == min_cost(x, ys, prune=False)[0] == cost(x, ys[2])
    assert started <= 3 + (len(ys) - 1)
