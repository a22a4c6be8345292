"""The seven metrics: hand-computed cases, invariances, agreement with the loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from perfrdiff.metrics import (
    ccc_matrix,
    evaluate_all,
    frcorr,
    frdist,
    frdist_per_speaker,
    frdiv,
    frdvs,
    frrea,
    frsyn,
    frsyn_offsets,
    frvar,
)
from perfrdiff.metrics import reference as loop


def random_inputs(seed: int, n: int = 4, k: int = 3, t: int = 60):
    rng = np.random.default_rng(seed)
    predictions = rng.random((n, k, t, 25)).astype(np.float32)
    listener = rng.random((n, t, 25)).astype(np.float32)
    speaker = rng.random((n, t, 25)).astype(np.float32)
    neighbours = rng.random((n, n)) < 0.5
    np.fill_diagonal(neighbours, True)
    return predictions, listener, speaker, neighbours


# --- CCC / FRCorr -------------------------------------------------------------------------------


def test_ccc_hand_computed():
    x = np.array([[[1.0], [2.0], [3.0]]])
    y = np.array([[[2.0], [4.0], [6.0]]])
    # means 2, 4; variances 2/3, 8/3; r = 1: 2 * (4/3) / (2/3 + 8/3 + 4)
    assert ccc_matrix(x, y)[0, 0] == pytest.approx(8 / 22, rel=1e-7)


def test_ccc_of_constant_channel_is_zero():
    x = np.ones((1, 10, 1))
    y = np.arange(10.0).reshape(1, 10, 1)
    assert ccc_matrix(x, y)[0, 0] == 0.0


def test_frcorr_of_reactions_against_themselves_is_one():
    _, listener, _, _ = random_inputs(0)
    value = frcorr(listener[:, None], listener, np.eye(4, dtype=bool))
    assert value == pytest.approx(1.0, abs=1e-6)


def test_frcorr_takes_the_best_appropriate_reaction_and_sums_samples():
    _, listener, _, _ = random_inputs(1)
    predictions = np.stack([listener[[1, 2]], listener[[0, 3]]] * 2)  # speaker k: 2 samples
    neighbours = np.ones((4, 4), dtype=bool)
    assert frcorr(predictions, listener, neighbours) == pytest.approx(2.0, abs=1e-6)


def test_frcorr_matches_the_loop_reference():
    p, g, _, m = random_inputs(2)
    expected = loop.frcorr_loop(p, g, m).mean()
    assert frcorr(p, g, m) == pytest.approx(expected, rel=1e-12)


# --- FRdist -------------------------------------------------------------------------------------


def test_frdist_hand_computed_constant_offsets():
    real = np.zeros((1, 3, 25), dtype=np.float32)
    real[..., 0], real[..., 15], real[..., 17] = 3, 1, 2
    predictions = np.zeros((1, 2, 3, 25), dtype=np.float32)  # two identical samples
    per_sample = math.sqrt(27) / 15 + math.sqrt(3) + math.sqrt(12) / 8
    value = frdist(predictions, real, np.ones((1, 1), dtype=bool), n_jobs=1)
    assert value == pytest.approx(2 * per_sample, rel=1e-12)


def test_frdist_of_reactions_against_themselves_is_zero():
    _, listener, _, _ = random_inputs(3)
    assert frdist(listener[:, None], listener, np.eye(4, dtype=bool), n_jobs=1) == 0.0


def test_frdist_equals_tslearn_loop_exactly():
    p, g, _, m = random_inputs(4)
    fast, _ = frdist_per_speaker(p, g, m, n_jobs=1)
    np.testing.assert_array_equal(fast, loop.frdist_loop(p, g, m))


def test_frdist_in_worker_processes_equals_in_process():
    p, g, _, m = random_inputs(5)
    one, _ = frdist_per_speaker(p, g, m, n_jobs=1)
    two, _ = frdist_per_speaker(p, g, m, n_jobs=2)
    np.testing.assert_array_equal(one, two)


# --- FRDiv / FRDvs / FRVar ----------------------------------------------------------------------


def test_diversity_hand_computed():
    predictions = np.array([[0.0, 2.0], [1.0, 1.0]]).reshape(2, 2, 1, 1)
    assert frdiv(predictions) == pytest.approx(2.0)  # speaker 0: 2 * 4 / 2; speaker 1: 0
    assert frdvs(predictions) == pytest.approx(1.0)  # per sample 2 * 1, over k n (n - 1) = 4


def test_frvar_hand_computed():
    assert frvar(np.array([0.0, 1.0, 2.0]).reshape(1, 1, 3, 1)) == pytest.approx(1.0)


def test_uniform_random_predictions_give_one_sixth_and_one_twelfth():
    predictions = np.random.default_rng(0).random((20, 10, 200, 25))
    assert frdiv(predictions) == pytest.approx(1 / 6, rel=0.01)
    assert frdvs(predictions) == pytest.approx(1 / 6, rel=0.01)
    assert frvar(predictions) == pytest.approx(1 / 12, rel=0.01)


def test_constant_predictions_have_no_diversity():
    predictions = np.full((3, 4, 20, 25), 0.3)
    for metric in (frdiv, frdvs, frvar):
        assert metric(predictions) == pytest.approx(0.0, abs=1e-20)


def test_identical_samples_have_zero_frdiv_but_not_frdvs():
    predictions = np.repeat(np.random.default_rng(1).random((3, 1, 20, 25)), 5, axis=1)
    assert frdiv(predictions) == pytest.approx(0.0, abs=1e-15)
    assert frdvs(predictions) > 0


def test_diversity_matches_the_loop_reference():
    p = random_inputs(6)[0]
    assert frdiv(p) == pytest.approx(loop.frdiv_loop(p), rel=1e-12)
    assert frdvs(p) == pytest.approx(loop.frdvs_loop(p), rel=1e-12)
    assert frvar(p) == pytest.approx(loop.frvar_loop(p), rel=1e-12)


# --- FRSyn --------------------------------------------------------------------------------------


def smooth(seed: int, t: int = 200, d: int = 3) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(t + 20, d))
    return np.stack([np.convolve(noise[:, c], np.ones(8) / 8, "valid")[:t] for c in range(d)], 1)


@pytest.mark.parametrize("delay", [5, -7, 0, 49])
def test_frsyn_recovers_a_known_delay(delay):
    speaker = smooth(0, t=300)
    prediction = np.roll(speaker, delay, axis=0)  # prediction[t] = speaker[t - delay]
    assert frsyn(prediction[None, None], speaker[None]) == abs(delay)


def test_frsyn_ignores_a_constant_channel_but_challenge_policy_gives_49():
    speaker = smooth(1, t=300)
    speaker[:, 1] = 0.5  # an AU that never fires
    prediction = np.roll(speaker, 6, axis=0)
    assert frsyn(prediction[None, None], speaker[None]) == 6
    assert frsyn(prediction[None, None], speaker[None], nan_policy="challenge") == 49


def test_frsyn_of_constant_prediction_is_the_worst_offset():
    speaker = smooth(2)
    assert frsyn(np.zeros((1, 2, 200, 3)), speaker[None]) == 49


def test_frsyn_scores_every_sample_not_only_the_first():
    speaker = smooth(3, t=300)
    predictions = np.stack([np.roll(speaker, 4, axis=0), np.roll(speaker, 10, axis=0)])[None]
    np.testing.assert_array_equal(frsyn_offsets(predictions, speaker[None]), [[4, 10]])


def test_frsyn_matches_the_loop_reference():
    p, _, s, _ = random_inputs(7, t=120)
    np.testing.assert_array_equal(frsyn_offsets(p, s), loop.frsyn_loop(p, s))


# --- FRRea --------------------------------------------------------------------------------------


def test_frrea_of_real_reactions_against_themselves_is_zero():
    listener = random_inputs(8)[1]
    assert frrea(listener[:, None], listener) == pytest.approx(0.0, abs=1e-6)


def test_frrea_of_a_shifted_copy_is_the_squared_shift():
    listener = random_inputs(9)[1]
    shifted = listener[:, None] + np.float32(0.2)  # values move, frame-to-frame changes do not
    assert frrea(shifted, listener) == pytest.approx(25 * 0.2**2, rel=1e-4)


# --- evaluate_all and bad inputs ----------------------------------------------------------------


def test_evaluate_all_returns_the_seven_metrics_from_torch_tensors():
    p, g, s, m = (torch.from_numpy(a) for a in random_inputs(10))
    results = evaluate_all(p, g, s, m, n_jobs=1)
    assert list(results) == ["FRCorr", "FRdist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRRea"]
    assert all(math.isfinite(v) for v in results.values())


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda p, g, s, m: (p[0], g, s, m), ValueError, r"predictions: expected shape \(n, k,"),
        (lambda p, g, s, m: (p, g[:3], s, m), ValueError, r"listener_emotion .*: n = 3 vs 4"),
        (lambda p, g, s, m: (p, g, s[:, :10], m), ValueError, r"speaker_emotion .*: t = 10 vs 60"),
        (lambda p, g, s, m: (p.tolist(), g, s, m), TypeError, "predictions: expected a numpy"),
        (lambda p, g, s, m: (p.astype(complex), g, s, m), TypeError, "real numeric dtype"),
        (lambda p, g, s, m: (np.where(p > 0.99, np.nan, p), g, s, m), ValueError, "NaN"),
        (lambda p, g, s, m: (p, g, s, m[:3]), ValueError, r"neighbours: expected shape \(n, n\)"),
        (lambda p, g, s, m: (p, g, s, np.zeros_like(m)), ValueError, "row 0 has no appropriate"),
        (lambda p, g, s, m: (p, g, s, m * 2), ValueError, "boolean or 0/1"),
    ],
)  # fmt: skip
def test_bad_inputs_are_rejected_naming_the_argument(change, error, message):
    with pytest.raises(error, match=message):
        evaluate_all(*change(*random_inputs(11)), n_jobs=1)


def test_metric_specific_size_requirements():
    with pytest.raises(ValueError, match="FRDiv needs k >= 2"):
        frdiv(np.zeros((2, 1, 5, 25)))
    with pytest.raises(ValueError, match="FRDvs needs n >= 2"):
        frdvs(np.zeros((1, 2, 5, 25)))
    with pytest.raises(ValueError, match="FRSyn needs t > 49"):
        frsyn(np.zeros((1, 1, 40, 25)), np.zeros((1, 40, 25)))
    with pytest.raises(ValueError, match="FRdist needs d = 25"):
        frdist(np.zeros((1, 1, 5, 3)), np.zeros((1, 5, 3)), np.ones((1, 1), bool), n_jobs=1)
