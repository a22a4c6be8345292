"""The REACT 2026 evaluation: the seeded appropriate-set draw, each metric against a case
computed by hand, and `perfrdiff evaluate --protocol react2026` on the synthetic MARS twin."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import DataError
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.metrics.react2026 import aligned, appropriate_sets, item_metrics
from perfrdiff.metrics.report import EvaluateConfig, evaluate_saved_predictions
from perfrdiff.metrics.report_react2026 import item_key

SESSIONS = ["a"] * 11 + ["b"] * 3 + ["c"]  # >= 9 others, fewer, none


def test_the_draw_is_own_listener_then_nine_of_its_session():
    sets = appropriate_sets(SESSIONS, others=9, seed=1234)
    assert all(len(s) == 10 and s[0] == k for k, s in enumerate(sets))
    for k, s in enumerate(sets):
        assert {SESSIONS[j] for j in s} == {SESSIONS[k]}
    assert all(len(set(s[1:])) == 9 and k not in s[1:] for k, s in enumerate(sets[:11]))
    assert all(set(s[1:]) <= {11, 12, 13} - {k} for k, s in enumerate(sets[11:14], 11))
    assert sets[14] == [14] * 10  # alone in its session


def test_the_draw_is_the_challenges_sequence_of_calls():
    rng = random.Random(7)
    expected = []
    for k, session in enumerate(SESSIONS):  # items in order, candidates in order
        candidates = [j for j, s in enumerate(SESSIONS) if s == session and j != k]
        if len(candidates) >= 9:
            expected.append([k, *rng.sample(candidates, 9)])
        elif candidates:
            expected.append([k, *rng.choices(candidates, k=9)])
        else:
            expected.append([k] * 10)
    assert appropriate_sets(SESSIONS, seed=7) == expected


def test_the_draw_is_deterministic_and_follows_the_seed():
    assert appropriate_sets(SESSIONS, seed=3) == appropriate_sets(SESSIONS, seed=3)
    assert appropriate_sets(SESSIONS, seed=3) != appropriate_sets(SESSIONS, seed=4)
    assert appropriate_sets(SESSIONS, others=0) == [[k] for k in range(len(SESSIONS))]


def test_alignment_cuts_or_zero_pads():
    x = np.arange(6, dtype=float).reshape(3, 2)
    np.testing.assert_array_equal(aligned(x, 2), x[:2])
    np.testing.assert_array_equal(aligned(x, 4), np.r_[x, np.zeros((1, 2))])


def _real(t=6, seed=0):
    return np.random.default_rng(seed).random((t, 25))


def test_frdiv_and_frvar_by_hand():
    t = 4
    zeros, alternating = np.zeros((t, 25)), np.tile([[0.0], [1.0]], (2, 25))
    m = item_metrics(np.stack([zeros, np.ones((t, 25))]), [_real(t)], _real(t), max_lag=2)
    assert m["FRDiv"] == pytest.approx(1.0)  # 2 * 4 * 25 / (2 * 1 * 4 * 25)
    m = item_metrics(np.stack([zeros, alternating]), [_real(t)], _real(t), max_lag=2)
    assert m["FRVar"] == pytest.approx((1 / 3) / 2)  # var of 0,1,0,1 is 1/3; of 0s, 0


def test_frcorr_and_frdist_by_hand():
    real, other = -_real(6, 1), -_real(6, 2)  # <= 0: the zeros are the closest to the ones
    predictions = np.stack([real, np.ones((6, 25))])
    m = item_metrics(predictions, [np.zeros((6, 25)), real, other], _real(6), max_lag=2)
    # sample 0 matches `real` (CCC 1 up to the 1e-8 in the denominator); a constant sample has
    # no correlation (CCC 0 on every channel)
    assert m["FRCorr"] == pytest.approx(1.0, abs=1e-6)
    # sample 0: DTW 0 to `real`; the ones: constant 1 from the zeros, sqrt(T c) per component
    by_hand = np.sqrt(6 * 15) / 15 + np.sqrt(6 * 2) + np.sqrt(6 * 8) / 8
    assert m["FRdist"] == pytest.approx(by_hand)


def test_an_appropriate_sequence_of_another_length_is_aligned():
    real = _real(8, 3)
    m = item_metrics(np.stack([real[:6], real[:6]]), [real], _real(6), max_lag=2)
    assert m["FRdist"] == pytest.approx(0.0) and m["FRCorr"] == pytest.approx(2.0, abs=1e-6)


def test_tlcc_of_sample_zero_or_of_all_samples_by_hand():
    speaker = _real(60, 4)
    late = np.zeros_like(speaker)
    late[3:] = speaker[:-3]  # sample 0 follows the speaker 3 frames late
    predictions = np.stack([late, speaker])  # sample 1 in step: offset 0
    first = item_metrics(predictions, [speaker], speaker, max_lag=49)
    every = item_metrics(predictions, [speaker], speaker, max_lag=49, first_sample_only=False)
    assert first["FRSyn"] == 3.0 and every["FRSyn"] == 1.5


def test_item_metrics_refuse_too_few_samples_or_frames():
    with pytest.raises(ValueError, match=r"expected \(K >= 2, T > 49, 25\)"):
        item_metrics(np.zeros((1, 60, 25)), [_real()], _real(60))
    with pytest.raises(ValueError, match=r"T > 49"):
        item_metrics(np.zeros((2, 40, 25)), [_real()], _real(40))


@pytest.fixture(scope="module")
def mars(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars_eval")
    config = MarsSyntheticConfig(seed=2, sessions={"test": 2}, lengths=(58, 120, 90), eeg=False)
    write_mars_dataset(root, config)
    return root


def _own_listeners(root, path, samples=2):
    store = MarsStore(root, "test", audio="none", personality=False)
    arrays = {
        item_key(d): np.repeat(
            np.load(store.path("facial-attributes", d.listener))[None], samples, 0
        )
        for d in store.dyads
    }
    np.savez(path, **arrays)
    return store


def test_evaluate_react2026_scores_own_listeners_as_perfect(mars, tmp_path, capsys):
    path = tmp_path / "predictions.npz"
    store = _own_listeners(mars, path)
    args = ["evaluate", str(path), "--protocol", "react2026", "--data-root", str(mars),
            "--split", "test"]  # fmt: skip
    assert main([*args, "--no-au-rounding"]) == 0
    exact = json.loads((tmp_path / "metrics.json").read_text())["predictions"]
    # Each sample's best match is its own reaction: CCC 1 per channel, except where the
    # challenge's 1e-8 in the denominator is not small against a near-constant channel's variance.
    own = [
        store.read("emotion", d.listener, 0, store.frames(d)).astype(np.float64)
        for d in store.dyads
    ]
    self_ccc = [np.mean(2 * x.var(0) / (2 * x.var(0) + 1e-8)) for x in own]
    assert exact["FRCorr"] == pytest.approx(2 * np.mean(self_ccc), abs=1e-6)
    assert exact["FRCorr"] > 1.9 and exact["FRdist"] == 0.0
    assert exact["FRDiv"] == 0.0 and exact["FRSyn"] >= 0 and len(store.dyads) >= 6
    assert main(args) == 0  # the challenge rounds the AUs: no longer the real reactions
    rounded = json.loads((tmp_path / "metrics.json").read_text())["predictions"]
    assert rounded["FRCorr"] < exact["FRCorr"] and rounded["FRdist"] > 0
    assert "FRCorr" in capsys.readouterr().out


def test_evaluate_react2026_names_a_missing_item(mars, tmp_path):
    path = tmp_path / "predictions.npz"
    _own_listeners(mars, path)
    with np.load(path) as archive:
        kept = dict(list(archive.items())[1:])
    np.savez(path, **kept)
    config = EvaluateConfig(path, root=mars, split="test", protocol="react2026")
    with pytest.raises(DataError, match=r"predictions\.npz: .*session\d+/session\d+_00"):
        evaluate_saved_predictions(config)
