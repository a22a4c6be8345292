"""The held-out synthetic family: valid channels, determinism, persistent style, reactions that
follow the partner at the person's delay, and a per-person model that beats a shared one."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from perfrdiff.data.synthetic_heldout import AUS, LATENT, HeldOutFamily, Person, ar1, ema

DELAYS = (2, 12)
LAGS = np.arange(0, 29, 4)  # partner frames back that the ridge regressions see
PENALTY = 10.0  # ridge penalty per frame, relative to the features' variance


def population(seed: int, people: int, noise: float = 0.05) -> tuple[HeldOutFamily, list[Person]]:
    rng = np.random.default_rng(seed)
    family = HeldOutFamily(rng, DELAYS, noise)
    return family, [family.draw_person(f"site/s{i}/P{i}", rng) for i in range(people)]


def conversations(family, people, pairs: int, frames: int, seed: int):
    """``pairs`` random dyads; returns (a, b, z_a, z_b, emotion_a, emotion_b) per pair."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(pairs):
        # every person gets a share of the pairs: person k % n meets a random other
        i = k % len(people)
        j = (i + 1 + rng.integers(len(people) - 1)) % len(people)
        za, zb = family.simulate_pair(people[i], people[j], frames, 100, rng)
        ea, eb = family.emotion(people[i], za, rng), family.emotion(people[j], zb, rng)
        out.append((i, j, za, zb, ea, eb))
    return out


def lagged(partner: np.ndarray) -> np.ndarray:
    """``(t, lags * c + 1)`` partner channels at each of ``LAGS`` frames back, then a constant."""
    start = LAGS.max()
    cols = [partner[start - lag : len(partner) - lag] for lag in LAGS]
    return np.concatenate([*cols, np.ones((len(partner) - start, 1))], 1)


def ridge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge weights ``(features, channels)`` with an unpenalised last (constant) feature; the
    penalty is ``PENALTY`` times the features' mean variance, per frame."""
    scale = PENALTY * len(x) * x[:, :-1].var(0).mean()
    penalty = np.diag(np.r_[np.full(x.shape[1] - 1, scale), 0.0])
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def prediction_mse(seed: int = 0, people: int = 60, pairs: int = 300, frames: int = 750) -> dict:
    """Held-out MSE of predicting a person's emotion from their partner's lagged emotion.

    Every pair gives two samples (each person with the other as partner); the last 30% of pairs
    are held out. Models: one ridge shared by everyone (``shared``); one fitted to targets less
    the person's mean, plus that mean (``shared_offset``: identity as a constant offset only);
    that plus a per-person ridge on its residuals (``person``: shrunk towards the shared one, as
    a person has few clips); the person's mean (``person_mean``) and the population's. ``*_gain``:
    the per-person ridge's MSE relative to the person's mean, minus 1, for (low-)reactive people.
    """
    family, persons = population(seed, people)
    train, test = [], []  # (person, partner's lagged emotion, person's emotion)
    for pair, (i, j, _, _, ea, eb) in enumerate(
        conversations(family, persons, pairs, frames, seed + 1)
    ):
        # pairs cycle through people, so everyone has clips on both sides of the cut
        (test if pair >= 0.7 * pairs else train).extend(
            [(i, lagged(eb), ea[LAGS.max() :]), (j, lagged(ea), eb[LAGS.max() :])]
        )

    def stack(rows, person=None):
        rows = [r for r in rows if person in (None, r[0])]
        return np.concatenate([r[1] for r in rows]), np.concatenate([r[2] for r in rows])

    means = [stack(train, p)[1].mean(0) for p in range(people)]
    x, y = stack(train)
    shared = ridge(x, y)
    centred = ridge(
        x, y - np.concatenate([np.broadcast_to(means[r[0]], r[2].shape) for r in train])
    )
    errors = {
        k: [] for k in ("shared", "shared_offset", "person", "person_mean", "population_mean")
    }
    gain = {True: [], False: []}
    for p in range(people):
        (xtr, ytr), (xte, yte) = stack(train, p), stack(test, p)
        predictions = {
            "shared": xte @ shared,
            "shared_offset": xte @ centred + means[p],
            "person": xte @ (centred + ridge(xtr, ytr - xtr @ centred)),
            "person_mean": means[p],
            "population_mean": y.mean(0),
        }
        mse = {k: float(((yte - v) ** 2).mean()) for k, v in predictions.items()}
        for k in errors:
            errors[k].append(mse[k])
        gain[persons[p].low_reactive].append(mse["person"] / mse["person_mean"] - 1)
    result = {k: float(np.mean(v)) for k, v in errors.items()}
    result["reactive_gain"], result["low_reactive_gain"] = np.mean(gain[False]), np.mean(gain[True])
    return result


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 3)), elements=st.floats(-5, 5)),
    st.floats(0.0, 0.99),
    st.booleans(),
)
def test_ema_matches_the_recursion(x, alpha, settled):
    start = x[0] if settled else np.zeros(x.shape[1])
    expected, previous = np.empty_like(x), start
    for t in range(len(x)):
        previous = expected[t] = alpha * previous + (1 - alpha) * x[t]
    np.testing.assert_allclose(ema(x, alpha, start), expected, rtol=1e-12, atol=1e-12)


def test_ar1_is_stationary_with_unit_variance_from_the_first_frame():
    draws = ar1(np.random.default_rng(0), (200, 4000), 0.95)
    assert np.allclose(draws[[0, 10, 199]].var(1), 1.0, atol=0.1)
    np.testing.assert_allclose(np.corrcoef(draws[100], draws[101])[0, 1], 0.95, atol=0.02)


def test_shapes_ranges_and_finiteness():
    family, (a, b) = population(0, 2)
    rng = np.random.default_rng(1)
    za, zb = family.simulate_pair(a, b, 751, 50, rng)
    assert za.shape == zb.shape == (751, len(LATENT)) and len(LATENT) >= 3
    emotion = family.emotion(a, za, rng)
    face = family.face(a, emotion, rng)
    assert emotion.shape == (751, 25) and face.shape == (751, 58)
    assert np.isfinite(za).all() and np.isfinite(emotion).all() and np.isfinite(face).all()
    assert emotion[:, : len(AUS)].min() >= 0 and emotion[:, : len(AUS)].max() <= 1
    assert np.abs(emotion[:, 15:17]).max() <= 1
    assert emotion[:, 17:].min() >= 0 and np.allclose(emotion[:, 17:].sum(1), 1)
    assert 90 <= a.f0 <= 250
    assert json.loads(json.dumps(a.style()))["identity"] == a.identity


def test_emotion_reads_the_latent_valence_and_arousal():
    """Valence and arousal columns follow z channels 1 and 0, which drive the writer's audio."""
    family, (a, b) = population(0, 2)
    rng = np.random.default_rng(2)
    za, _ = family.simulate_pair(a, b, 751, 50, rng)
    emotion = family.emotion(a, za, rng)
    assert np.corrcoef(emotion[:, 15], za[:, 1])[0, 1] > 0.9
    assert np.corrcoef(emotion[:, 16], za[:, 0])[0, 1] > 0.9


def test_a_response_starts_at_the_delay_and_gated_people_ignore_weak_expressions():
    _, persons = population(0, 40)
    gated = next(p for p in persons if p.threshold > 0 and not p.low_reactive)
    listening = np.ones(200)
    for size, reacts in ((0.5, False), (2.0, True)):
        partner = np.zeros((200, len(LATENT)))
        partner[50:] = size * gated.threshold  # every channel steps at frame 50
        response = HeldOutFamily._response(gated, partner, listening)
        assert np.abs(response[: 50 + gated.delay]).max() == 0
        assert (np.abs(response[50 + gated.delay :]).max() > 0.05) == reacts


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="rng"):
        HeldOutFamily(0, DELAYS, 0.05)
    with pytest.raises(ValueError, match="delay_range"):
        HeldOutFamily(rng, (5, 2), 0.05)
    with pytest.raises(ValueError, match="noise"):
        HeldOutFamily(rng, DELAYS, -1.0)
    family, (a, b) = population(0, 2)
    with pytest.raises(ValueError, match="frames"):
        family.simulate_pair(a, b, 0, 10, rng)
    with pytest.raises(ValueError, match="z"):
        family.emotion(a, np.zeros((10, 3)), rng)
    with pytest.raises(ValueError, match="emotion"):
        family.face(a, np.zeros((10, 17)), rng)


def test_deterministic_under_a_seed_and_different_under_another():
    def run(seed):
        family, (a, b) = population(seed, 2)
        rng = np.random.default_rng(seed)
        za, _ = family.simulate_pair(a, b, 300, 50, rng)
        emotion = family.emotion(a, za, rng)
        return za, emotion, family.face(a, emotion, rng)

    for first, second in zip(run(3), run(3), strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.allclose(run(3)[0], run(4)[0])


def test_a_pair_simulates_fast():
    family, (a, b) = population(0, 2)
    rng = np.random.default_rng(0)
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        family.simulate_pair(a, b, 751, 100, rng)
        best = min(best, time.perf_counter() - start)
    assert best < 0.05


def test_style_persists_across_clips_but_is_no_fingerprint():
    """A person's mean emotion in one clip predicts it in another (other partner, other role)
    better than another person's does; yet a clip's mean identifies its person only sometimes
    (per-clip mood and detector offsets), so identity is more than a constant offset."""
    family, persons = population(0, 40)
    means = {}
    for i, j, _, _, ea, eb in conversations(family, persons, 160, 750, 1):
        means.setdefault(i, []).append(ea.mean(0))
        means.setdefault(j, []).append(eb.mean(0))
    first = np.stack([means[p][0] for p in range(40)])
    second = np.stack([means[p][1] for p in range(40)])
    same = np.mean([np.corrcoef(first[:, c], second[:, c])[0, 1] for c in range(25)])
    other = np.mean([np.corrcoef(first[:, c], np.roll(second[:, c], 1))[0, 1] for c in range(25)])
    assert same > 0.5 and same > other + 0.3
    centroids = np.stack([np.mean(means[p][:-1], 0) for p in range(40)])
    last = np.stack([means[p][-1] for p in range(40)])
    nearest = ((last[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert 0.1 < (nearest == np.arange(40)).mean() < 0.85


def reaction_strength(family, person, partner, seed: int) -> tuple[float, float]:
    """(R^2 of the person's latent on the partner's at the person's delay, mean over lags of 6
    to 16 s). The partner is made unreactive and their affect independent of turns, so the only
    link between the two is the person's reaction (turn-taking alone correlates them too)."""
    partner = replace(partner, gain=0.0, speak_profile=np.zeros(len(LATENT)))
    rng = np.random.default_rng(seed)
    scores = {}
    for _ in range(4):
        z, zp = family.simulate_pair(person, partner, 1500, 100, rng)
        for lag in [person.delay, *range(150, 400, 25)]:
            x, y = np.c_[zp[: len(zp) - lag], np.ones(len(zp) - lag)], z[lag:]
            residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
            scores.setdefault(lag, []).append(1 - residual.var(0).sum() / y.var(0).sum())
    at_delay = float(np.mean(scores.pop(person.delay)))
    return at_delay, float(np.mean([np.mean(v) for v in scores.values()]))


def test_listeners_react_at_their_delay_and_low_reactive_ones_weakly():
    family, persons = population(0, 40)
    reactive = [p for p in persons if not p.low_reactive][:8]
    low = [p for p in persons if p.low_reactive][:6]
    assert len(low) == 6
    strengths = {}
    for group, members in (("reactive", reactive), ("low", low)):
        rows = [reaction_strength(family, p, persons[-1 - k], k) for k, p in enumerate(members)]
        strengths[group] = np.array(rows)
    excess = {group: rows[:, 0] - rows[:, 1] for group, rows in strengths.items()}
    # most react clearly; one with a high threshold may see few strong enough expressions
    assert (excess["reactive"] > 0.02).mean() >= 0.75 and np.median(excess["reactive"]) > 0.05
    assert np.median(excess["low"]) < 0.25 * np.median(excess["reactive"])


def test_per_person_prediction_beats_pooled():
    """Knowing who reacts beats a shared model, and beats knowing only their resting level."""
    result = prediction_mse(seed=0, people=16, pairs=96, frames=500)
    assert result["person"] < 0.85 * result["shared"]
    assert result["person"] < 0.98 * result["shared_offset"]
    assert result["person"] < result["person_mean"] < result["population_mean"]
    # for low-reactive people the partner says little beyond their resting level
    assert result["reactive_gain"] < result["low_reactive_gain"] - 0.05
