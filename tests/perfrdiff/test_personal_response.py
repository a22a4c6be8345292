"""perfrdiff.personal_response: protocol views, lag features and ridge maps against loops and
float64 references; a planted personal mirror is recovered from another conversation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.personal_response import (
    Dyad,
    PersonalResponse,
    lagged_speaker_features,
    ridge_towards,
    visible_spans,
)


def spans_loop(frames, window, context):
    out = []
    for t in range(frames):
        if context is None:
            out.append((0, t + 1))
            continue
        s = (t // window) * window
        seen = [f for f in range(max(s - context[0], 0), s + context[1]) if f <= t]
        out.append((seen[0], seen[-1] + 1) if seen else (0, 0))
    return np.array(out).reshape(frames, 2)


@pytest.mark.parametrize("context", [(4, 0), (4, 4), (8, 0), None])
def test_visible_spans_match_a_loop(context):
    spans = visible_spans(23, 4, context)
    expected = spans_loop(23, 4, context)
    empty = expected[:, 1] == expected[:, 0]
    assert (spans[:, 1] - spans[:, 0] == 0)[empty].all()  # where nothing is seen, nothing is
    np.testing.assert_array_equal(spans[~empty], expected[~empty])


def test_react2024_view_sees_only_the_window_before():
    spans = visible_spans(12, 4, (4, 0))
    assert (spans[:4, 1] == spans[:4, 0]).all()  # the first window sees no speaker
    np.testing.assert_array_equal(spans[4:8], [[0, 4]] * 4)
    np.testing.assert_array_equal(spans[8:], [[4, 8]] * 4)


@settings(max_examples=30, deadline=None)
@given(
    frames=st.integers(1, 30),
    window=st.integers(1, 8),
    block=st.integers(1, 4),
    blocks=st.integers(1, 4),
    view=st.sampled_from(["2024", "2026", "past"]),
    seed=st.integers(0, 2**16),
)
def test_lag_features_match_a_float64_loop(frames, window, block, blocks, view, seed):
    speaker = np.random.default_rng(seed).normal(size=(frames, 3))
    context = {"2024": (window, 0), "2026": (window, window), "past": None}[view]
    spans = visible_spans(frames, window, context)
    features = lagged_speaker_features(speaker, spans, block, blocks)
    for t in range(frames):
        for k in range(blocks):
            lo = max(t - (k + 1) * block + 1, spans[t, 0], 0)
            hi = min(t - k * block + 1, spans[t, 1])
            seen = speaker[lo:hi] if hi > lo else np.zeros((0, 3))
            expected = seen.mean(0) if len(seen) else np.zeros(3)
            np.testing.assert_allclose(features[t, 3 * k : 3 * k + 3], expected, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), f=st.integers(1, 5), d=st.integers(1, 3),
       weight=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))  # fmt: skip
def test_ridge_towards_a_prior_matches_an_augmented_least_squares(n, f, d, weight, seed):
    rng = np.random.default_rng(seed)
    x, y, prior = rng.normal(size=(n, f)), rng.normal(size=(n, d)), rng.normal(size=(f, d))
    # ‖Y − XA‖² + λ‖A − P‖² is the least squares of [X; √λ I] A ≈ [Y; √λ P]
    augmented_x = np.concatenate([x, np.sqrt(weight) * np.eye(f)])
    augmented_y = np.concatenate([y, np.sqrt(weight) * prior])
    expected = np.linalg.lstsq(augmented_x, augmented_y, rcond=None)[0]
    np.testing.assert_allclose(ridge_towards(x, y, weight, prior), expected, atol=1e-8)


def test_ridge_refuses_bad_shapes_and_weights():
    with pytest.raises(ValueError, match="share n"):
        ridge_towards(np.zeros((3, 2)), np.zeros((4, 1)), 1.0)
    with pytest.raises(ValueError, match="weight must be > 0"):
        ridge_towards(np.zeros((3, 2)), np.zeros((3, 1)), 0.0)
    with pytest.raises(ValueError, match=r"prior must be \(2, 1\)"):
        ridge_towards(np.zeros((3, 2)), np.zeros((3, 1)), 1.0, np.zeros((1, 2)))


def test_bad_views_and_features_are_named():
    with pytest.raises(ValueError, match="window >= 1"):
        visible_spans(5, 0, None)
    with pytest.raises(ValueError, match="context"):
        visible_spans(5, 2, (-1, 0))
    with pytest.raises(ValueError, match="speaker must be"):
        lagged_speaker_features(np.zeros(5), visible_spans(5, 2, None))
    with pytest.raises(ValueError, match="spans must be"):
        lagged_speaker_features(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="dyads is empty"):
        PersonalResponse.fit([], 4, None)


def mirroring_listener(rng, mixing, level, frames=400):
    """A dyad whose listener mirrors, through ``mixing``, their partner's mean over the frames
    5-9 before (the second lag block)."""
    speaker = np.zeros((frames, 2))
    for t in range(1, frames):  # a smooth AR(1) speaker
        speaker[t] = 0.9 * speaker[t - 1] + rng.normal(size=2)
    late = np.mean([np.roll(speaker, lag, axis=0) for lag in range(5, 10)], axis=0)
    listener = level + late @ mixing.T
    listener[:9] = level
    return Dyad(listener + 0.05 * rng.normal(size=listener.shape), speaker)


def test_a_personal_mirror_is_read_from_another_conversation():
    """Half the listeners mirror the partner's channels, half swap and negate them: the shared
    map averages them away, each listener's own map (from another conversation) recovers
    theirs and predicts the new conversation."""
    rng = np.random.default_rng(0)
    straight, swapped = np.eye(2), np.array([[0.0, -1.0], [-1.0, 0.0]])
    training = [mirroring_listener(rng, m, 0.0) for m in [straight, swapped] * 6]
    model = PersonalResponse.fit(training, window=8, context=None, weight=10.0)
    for mixing in (straight, swapped):
        history = mirroring_listener(rng, mixing, np.array([0.3, -0.2]))
        new = mirroring_listener(rng, mixing, np.array([0.3, -0.2]))
        personal = model.predict(history, new.speaker)
        shared = model.predict(history, new.speaker, personal=False)
        real = new.listener[10:]
        error = np.mean((personal[10:] - real) ** 2)
        assert error < 0.1 * np.mean((shared[10:] - real) ** 2)
        assert error < 0.05 * real.var()
        # the intercept is the level with the speaker at the training mean, not the history's
        # mean (which its own speaker moved)
        speaker_mean = np.concatenate([d.speaker for d in training]).mean(0)
        intercept, _ = model.listener_fit(history)
        np.testing.assert_allclose(intercept, [0.3, -0.2] + mixing @ speaker_mean, atol=0.1)


def test_the_react2024_view_cannot_use_what_the_window_hides():
    """A listener who mirrors the speaker 5-9 frames late: seen through the window before only,
    the frames late in a window read lags of at least a window, where an AR(1) speaker has
    forgotten; the all-past view predicts much better."""
    rng = np.random.default_rng(1)
    training = [mirroring_listener(rng, np.eye(2), 0.0) for _ in range(8)]
    history, new = (mirroring_listener(rng, np.eye(2), 0.0) for _ in range(2))
    errors = {}
    for name, context in (("2024", (50, 0)), ("past", None)):
        model = PersonalResponse.fit(training, window=50, context=context, weight=10.0)
        errors[name] = np.mean((model.predict(history, new.speaker)[60:] - new.listener[60:]) ** 2)
    assert errors["past"] < 0.2 * errors["2024"]
