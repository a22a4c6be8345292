"""DTW: agreement with tslearn, hand-computed value, and exactness of the pruned minimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.metrics import dtw_distance, min_cost
from perfrdiff.metrics.dtw import _bounds, _components, _starting_bound, cost
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
    # the best unconstrained path matches x[0..2] to y[0]; |i - j| < 2 forbids cell (2, 0)
    x = np.array([[0.0], [0.0], [0.0], [5.0]])
    y = np.array([[0.0], [5.0], [5.0], [5.0]])
    assert dtw_distance(x, y) == 0.0
    assert dtw_distance(x, y, window=2) == 5.0  # so x[2] = 0 must meet a 5
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


def smooth_sequences(rng: np.random.Generator, rows: int, frames: int) -> np.ndarray:
    """``(rows, frames, 25)`` AR(1) sequences (coefficient 0.9): slowly varying, like emotions."""
    out = np.empty((rows, frames, 25), dtype=np.float32)
    state = rng.normal(0, 1, (rows, 25))
    for t in range(frames):
        state = 0.9 * state + np.sqrt(1 - 0.9**2) * rng.normal(0, 1, (rows, 25))
        out[:, t] = state
    return out


def test_starting_bound_of_a_delayed_copy_is_its_exact_cost_where_lock_step_is_loose():
    # ys[2] is x delayed by 10 frames: the closest candidate, also in lock-step, where it is still
    # several times its DTW; the DTW within the band finds the delay, so pruning starts tight
    rng = np.random.default_rng(0)
    walks = smooth_sequences(rng, 6, 130)
    x, ys = walks[0, 10:], walks[1:, :120].copy()
    ys[2] = walks[0, :120]
    parts = _components(x, ys)
    lock_step = sum(w * _bounds(xc, yc)[1] for xc, yc, w in parts)
    exact = min_cost(x, ys, prune=False)[0]
    assert np.argmin(lock_step) == 2 and exact == cost(x, ys[2])
    assert lock_step[2] > 2 * exact
    bound = _starting_bound(parts, 2, float(lock_step[2]))
    assert exact <= bound <= exact * (1 + 1e-12)
    assert min_cost(x, ys)[0] == exact
