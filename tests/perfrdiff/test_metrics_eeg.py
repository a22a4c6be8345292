"""The REACT 2026 EEG scores: each against a case computed by hand, the masked CCC against a
per-channel float64 loop over the counted frames, the DTW against tslearn's, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from perfrdiff.metrics.eeg import (
    EEG_METRICS,
    eeg_item_scores,
    evaluate_eeg,
    masked_ccc,
    masked_dtw,
)


def test_masked_ccc_of_a_hand_case_skips_the_masked_frame():
    # counted frames: x = (2, 2, 4), y = (1, 2, 3): means 8/3 and 2, variances 8/9 and 2/3,
    # covariance 2/3; CCC = 2 cov / (vx + vy + (mx - my)^2) = (4/3) / 2
    x = np.array([[[2.0], [2.0], [4.0], [100.0]]])
    y = np.array([[1.0], [2.0], [3.0], [-50.0]])
    valid = np.array([[True], [True], [True], [False]])
    assert masked_ccc(x, y, valid)[0, 0] == pytest.approx(2 / 3, abs=1e-8)


def test_masked_ccc_is_zero_for_a_flat_channel_and_undefined_below_two_frames():
    x = np.array([[[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]]])
    y = np.array([[0.0, 5.0], [1.0, 6.0], [2.0, 7.0]])
    valid = np.array([[True, True], [True, False], [True, False]])
    ccc = masked_ccc(x, y, valid)
    assert ccc[0, 0] == 0.0  # the prediction's std is below 1e-8
    assert np.isnan(ccc[0, 1])  # one counted frame: the channel is not scored


def _loop_ccc(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> float:
    """One channel, from the definition: the counted frames compressed, float64."""
    if valid.sum() < 2:
        return np.nan
    a, b = x[valid], y[valid]
    if a.std() < 1e-8 or b.std() < 1e-8:
        return 0.0
    r = np.corrcoef(b, a)[0, 1]
    return 2 * r * a.std() * b.std() / (a.var() + b.var() + (a.mean() - b.mean()) ** 2 + 1e-8)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (2, 9, 3), elements=st.floats(-5, 5)),
    hnp.arrays(np.float64, (9, 3), elements=st.floats(-5, 5)),
    hnp.arrays(np.bool_, (9, 3)),
)
def test_masked_ccc_equals_a_per_channel_loop(x, y, valid):
    expected = np.array(
        [[_loop_ccc(x[i, :, c], y[:, c], valid[:, c]) for c in range(3)] for i in range(2)]
    )
    np.testing.assert_allclose(masked_ccc(x, y, valid), expected, rtol=1e-9, atol=1e-9)


def test_masked_dtw_of_a_hand_case():
    # counted frames (0, 2) against (1,): the only path pairs both with 1, cost (1 + 1) -> sqrt 2
    x = np.array([[0.0], [7.0], [2.0]])
    y = np.array([[1.0], [9.0], [9.0]])
    valid = np.array([[True], [False], [False]])
    valid_x = np.array([[True], [False], [True]])
    assert masked_dtw(x[[0, 2]], y[[0, 0]], np.ones((2, 1), bool))[0] == pytest.approx(np.sqrt(2))
    assert masked_dtw(x, y, valid)[0] == pytest.approx(1.0)  # frame 0 alone: |0 - 1|
    assert masked_dtw(x, y, valid_x)[0] == pytest.approx(np.sqrt(1 + 49))  # (0,1) and (2,9)
    assert np.isnan(masked_dtw(x, y, np.zeros((3, 1), bool))[0])


def test_masked_dtw_equals_tslearns_on_the_counted_frames():
    tslearn = pytest.importorskip("tslearn.metrics")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(40, 2)).astype(np.float32)
    valid = rng.random((40, 2)) > 0.3
    expected = [tslearn.dtw(x[valid[:, c], c], y[valid[:, c], c]) for c in range(2)]
    np.testing.assert_allclose(masked_dtw(x, y, valid), expected, rtol=1e-12)


def test_item_scores_of_a_hand_case():
    # two samples of 4 frames, 2 channels; channel 1 of the target is never counted
    target = np.array([[0.0, 9.0], [1.0, 9.0], [0.0, 9.0], [2.0, 9.0]])
    mask = np.array([[1.0, 0.0]] * 4)
    same = target.copy()
    later = np.array([[5.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # target one frame later
    scores = eeg_item_scores(np.stack([same, later]), target, mask)
    ccc_later = masked_ccc(later[None], target, mask > 0.5)[0, 0]
    assert scores["EEG_FRCorr"] == pytest.approx(1.0 + ccc_later, abs=1e-7)
    dtw_later = masked_dtw(later, target, mask > 0.5)[0]
    assert scores["EEG_FRdist"] == pytest.approx(0.0 + dtw_later)
    assert scores["EEG_FRSyn"] == pytest.approx((0 + 1) / 2)  # lag 0 for one, +1 for the other
    # pairs (i, i') both ways: 2 |same - later|^2 / (K (K - 1) T c) with K = 2, T c = 8
    assert scores["EEG_FRDiv"] == pytest.approx(2 * ((same - later) ** 2).sum() / (2 * 1 * 8))
    # population variance over time of channel 0 only (channel 1 has no counted cell)
    assert scores["EEG_FRVar"] == pytest.approx((same[:, 0].var() + later[:, 0].var()) / 2)


def test_item_scores_cut_to_the_shorter_sequence_and_frvar_is_population():
    target, mask = np.array([[0.0], [2.0]]), np.ones((2, 1))
    predictions = np.array([[[0.0], [2.0], [50.0]]])  # one frame longer than the target
    scores = eeg_item_scores(predictions, target, mask)
    assert scores["EEG_FRCorr"] == pytest.approx(1.0, abs=1e-8)
    assert scores["EEG_FRdist"] == 0.0
    assert scores["EEG_FRVar"] == pytest.approx(1.0)  # var(0, 2) with ddof 0
    assert scores["EEG_FRDiv"] == 0.0  # one sample


def test_an_item_without_counted_cells_only_has_frdiv():
    predictions = np.random.default_rng(1).normal(size=(2, 5, 3))
    scores = eeg_item_scores(predictions, np.zeros((5, 3)), np.zeros((5, 3)))
    assert all(np.isnan(scores[m]) for m in EEG_METRICS if m != "EEG_FRDiv")
    assert scores["EEG_FRDiv"] > 0


def test_evaluate_averages_over_the_items_that_have_each_score():
    rng = np.random.default_rng(2)
    p = [rng.normal(size=(2, 6, 2)) for _ in range(2)]
    targets = [rng.normal(size=(6, 2)) for _ in range(2)]
    masks = [np.ones((6, 2)), np.zeros((6, 2))]
    out = evaluate_eeg(p, targets, masks)
    first, second = (eeg_item_scores(p[k], targets[k], masks[k]) for k in range(2))
    assert out["EEG_FRCorr"] == pytest.approx(first["EEG_FRCorr"])
    assert out["EEG_FRDiv"] == pytest.approx((first["EEG_FRDiv"] + second["EEG_FRDiv"]) / 2)
    assert out["EEG_items"] == 1


@pytest.mark.parametrize(
    ("predictions", "target", "mask", "named"),
    [
        (np.zeros((5, 14)), np.zeros((5, 14)), np.ones((5, 14)), "predictions"),
        (np.full((1, 5, 14), np.nan), np.zeros((5, 14)), np.ones((5, 14)), "predictions"),
        (np.zeros((1, 5, 14)), np.zeros((5, 13)), np.ones((5, 13)), "target"),
        (np.zeros((1, 5, 14)), np.zeros((5, 14)), np.ones((4, 14)), "mask"),
    ],
)
def test_bad_input_is_named(predictions, target, mask, named):
    with pytest.raises(ValueError, match=named):
        eeg_item_scores(predictions, target, mask)


def test_evaluate_names_a_count_mismatch_and_the_bad_item():
    with pytest.raises(ValueError, match="one per item"):
        evaluate_eeg([np.zeros((1, 2, 14))], [], [])
    with pytest.raises(ValueError, match="item 1: mask"):
        good = (np.zeros((1, 2, 14)), np.zeros((2, 14)), np.ones((2, 14)))
        evaluate_eeg([good[0]] * 2, [good[1]] * 2, [good[2], np.ones((3, 14))])
