"""FRCorr's CCC split into correlation, scale and location factors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.metrics import ccc_matrix, frcorr_per_speaker
from perfrdiff.metrics.ccc_factors import (
    CHANNEL_GROUPS,
    FACTORS,
    best_matches,
    ccc_factors,
    frcorr_factors,
)
from perfrdiff.metrics.reference import ccc_loop


def pairs(seed: int, p: int = 3, t: int = 30, d: int = 25):
    rng = np.random.default_rng(seed)
    return rng.random((p, t, d)), rng.random((p, t, d))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 5.0), st.floats(-2.0, 2.0))
def test_the_product_of_the_factors_is_the_ccc_of_the_float64_loop(seed, stretch, shift):
    x, y = pairs(seed)
    x = x * stretch + shift  # another spread and level
    got = ccc_factors(x, y)
    product = got["correlation"] * got["scale"] * got["location"]
    np.testing.assert_allclose(product, got["ccc"], rtol=1e-6, atol=1e-9)
    for i in range(len(x)):  # the channel mean is the challenge's CCC of the pair
        assert got["ccc"][i].mean() == pytest.approx(ccc_loop(x[i], y[i]), rel=1e-9)


def test_each_factor_reads_one_kind_of_disagreement():
    x, _ = pairs(0)
    same = ccc_factors(x, x)
    for name in ("ccc", "correlation", "scale", "location", "sd_ratio"):
        np.testing.assert_allclose(same[name], 1.0, rtol=1e-6)  # ccc: the 1e-8 in its denominator
    mean = x.mean(axis=1, keepdims=True)
    stretched = ccc_factors(mean + 2 * (x - mean), x)  # twice the spread, same level, r = 1
    np.testing.assert_allclose(stretched["correlation"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(stretched["scale"], 2 * 2 / (1 + 4), rtol=1e-9)
    np.testing.assert_allclose(stretched["location"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(stretched["sd_ratio"], 2.0, rtol=1e-9)
    moved = ccc_factors(x + 0.5, x)  # another level only
    np.testing.assert_allclose(moved["scale"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(moved["mean_gap"], 0.5, rtol=1e-9)
    assert (moved["location"] < 1).all()


def test_shapes_that_disagree_are_refused():
    x, y = pairs(1)
    with pytest.raises(ValueError, match="x, y"):
        ccc_factors(x, y[:, :-1])


def test_best_matches_are_the_pairs_frcorr_scores():
    rng = np.random.default_rng(3)
    predictions, reals = rng.random((4, 3, 30, 25)), rng.random((4, 30, 25))
    neighbours = rng.random((4, 4)) < 0.6
    np.fill_diagonal(neighbours, True)
    matches = best_matches(predictions, reals, neighbours)
    assert all(neighbours[i, matches[i]].all() for i in range(4))
    best = [
        sum(ccc_matrix(predictions[i, s : s + 1], reals[[matches[i, s]]])[0, 0] for s in range(3))
        for i in range(4)
    ]
    np.testing.assert_allclose(best, frcorr_per_speaker(predictions, reals, neighbours))


def test_group_ccc_weighted_by_channels_is_frcorr_per_sample():
    rng = np.random.default_rng(4)
    predictions = rng.normal(0.3, 0.4, (4, 3, 30, 25))  # partly out of range
    reals = rng.random((4, 30, 25))
    neighbours = np.ones((4, 4), dtype=bool)
    got = frcorr_factors(predictions, reals, neighbours)
    assert set(got) == {*CHANNEL_GROUPS, "all"}
    assert all(set(row) == set(FACTORS) for row in got.values())
    share = sum(got[g]["ccc"] * (c.stop - c.start) for g, (c, _) in CHANNEL_GROUPS.items())
    frcorr = frcorr_per_speaker(predictions, reals, neighbours).mean() / 3
    assert share / 25 == pytest.approx(frcorr, rel=1e-9)
    assert got["all"]["ccc"] == pytest.approx(frcorr, rel=1e-9)
    aus = predictions[..., :15]
    assert got["AUs"]["out_of_range"] == pytest.approx(((aus < 0) | (aus > 1)).mean())
    in_range = frcorr_factors(np.clip(predictions, 0, 1), reals, neighbours)
    assert in_range["all"]["out_of_range"] == 0.0
