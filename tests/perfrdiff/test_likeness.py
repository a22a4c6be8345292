"""Measures of "like this listener" and the paired bootstrap over listeners."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.likeness import (
    identification,
    level_errors,
    own_reaction_scores,
    paired_bootstrap,
    style_inputs,
)
from perfrdiff.metrics import reference as loop


def reactions(seed: int, n: int = 4, k: int = 2, t: int = 40):
    rng = np.random.default_rng(seed)
    return rng.random((n, k, t, 25)).astype(np.float32), rng.random((n, t, 25)).astype(np.float32)


def test_own_reaction_scores_are_perfect_for_a_copy_of_the_own_reaction():
    _, real = reactions(0)
    copies = np.repeat(real[:, None], 3, axis=1)
    scores = own_reaction_scores(copies, real, n_jobs=1)
    np.testing.assert_allclose(scores["own CCC"], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores["own DTW"], 0.0, atol=1e-6)


def test_own_ccc_is_the_mean_over_samples_of_the_loop_ccc():
    predictions, real = reactions(1)
    got = own_reaction_scores(predictions, real, n_jobs=1)["own CCC"]
    want = [np.mean([loop.ccc_loop(s, real[i]) for s in predictions[i]]) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_level_and_expressivity_errors_by_hand():
    _, real = reactions(2)
    listeners = ["a/s/1", "a/s/1", "b/s/2", "b/s/2"]
    offset = np.linspace(-0.2, 0.3, 25, dtype=np.float32)
    moved = (real + offset)[:, None]  # the same spread, another level
    errors = level_errors(moved, real, listeners)
    assert errors["level error"] == pytest.approx({"a/s/1": np.abs(offset).mean()} | {
        "b/s/2": np.abs(offset).mean()}, rel=1e-5)  # fmt: skip
    assert max(errors["expressivity error"].values()) < 1e-6
    mean = real.mean(axis=1, keepdims=True)
    stretched = (mean + 2 * (real - mean))[:, None]  # the same level, twice the spread
    errors = level_errors(stretched, real, listeners)
    assert max(errors["level error"].values()) < 1e-6
    a = real[:2].std(axis=1).mean(axis=0).mean()
    assert errors["expressivity error"]["a/s/1"] == pytest.approx(a, rel=1e-5)


def mean_embed(x: np.ndarray) -> np.ndarray:
    """A stand-in style encoder: each sequence's mean per channel, centred, unit length."""
    v = x.mean(axis=1) - 0.5
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_identification_recognises_listeners_by_their_other_reactions():
    rng = np.random.default_rng(3)
    listeners = ["a/s/1", "a/s/1", "b/s/2", "b/s/2", "c/s/3"]
    levels = {"a/s/1": 0.1, "b/s/2": 0.9, "c/s/3": 0.5}
    real = np.stack([levels[x] + 0.01 * rng.standard_normal((30, 25)) for x in listeners])
    speaker = rng.random(real.shape)
    like_them = real[[1, 0, 3, 2, 4]][:, None]  # each item: another reaction of its listener
    hits = identification(mean_embed, like_them, real, speaker, listeners, "emotion")
    np.testing.assert_array_equal(hits[:4], 1.0)
    assert np.isnan(hits[4])  # c has no other reaction to be recognised by
    swapped = real[[2, 2, 0, 0, 4]][:, None]  # each item: the other listener's reaction
    hits = identification(mean_embed, swapped, real, speaker, listeners, "emotion")
    np.testing.assert_array_equal(hits[:4], 0.0)


def test_style_inputs_put_the_partner_beside_the_listener_for_a_dyadic_encoder():
    predictions, real = reactions(4)
    dyadic = style_inputs(predictions, real[:, None], "dyadic")
    assert dyadic.shape == (*predictions.shape[:3], 50)
    np.testing.assert_array_equal(dyadic[:, 1, :, 25:], real)
    assert style_inputs(real, real, "emotion") is real
    with pytest.raises(ValueError, match=r"style_input: .*'emotion' or 'dyadic'.*'face'"):
        style_inputs(real, real, "face")


def bootstrap_loop(a, b, groups, rounds, seed, statistic):
    """Float64 reference: resample listeners, concatenate their items, compute the statistic."""
    names = list(dict.fromkeys(groups))
    items = {g: [i for i, x in enumerate(groups) if x == g] for g in names}
    draws = np.random.default_rng(seed).integers(0, len(names), (rounds, len(names)))
    values = []
    for draw in [range(len(names)), *draws]:
        chosen = [i for d in draw for i in items[names[d]] if np.isfinite(a[i] + b[i])]
        if not chosen:  # only listeners without a defined item: no value, left out
            values.append(np.nan)
            continue
        sa, sb = sum(a[i] for i in chosen), sum(b[i] for i in chosen)
        values.append(sa / sb if statistic == "ratio" else (sa - sb) / len(chosen))
    rest = np.array(values[1:])
    return values[0], np.percentile(rest[np.isfinite(rest)], [2.5, 97.5])


@settings(max_examples=25, deadline=None)
@given(
    st.integers(3, 12),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["ratio", "difference"]),
)
def test_paired_bootstrap_equals_the_loop_reference(n, seed, statistic):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.1, rng.random(n) + 0.1
    a[rng.random(n) < 0.2] = np.nan  # undefined items drop out of both
    if not np.isfinite(a).any():
        a[0] = 0.5
    groups = [f"l{int(x)}" for x in rng.integers(0, 4, n)]
    got = paired_bootstrap(a, b, groups, statistic, rounds=200, seed=seed)
    value, (low, high) = bootstrap_loop(a, b, groups, 200, seed, statistic)
    np.testing.assert_allclose([got.value, got.low, got.high], [value, low, high], rtol=1e-9)


def test_paired_bootstrap_of_a_constant_ratio_is_exact():
    b = np.arange(1.0, 9.0)
    interval = paired_bootstrap(1.5 * b, b, list("aabbccdd"))
    assert interval.value == interval.low == interval.high == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones(3), np.ones(2), "abc"), "expected \\(n,\\), \\(n,\\) and n labels"),
        ((np.ones(3), np.ones(3), "abc", "median"), "statistic: expected 'ratio'"),
        ((np.full(2, np.nan), np.ones(2), "ab"), "no item has a value in both"),
    ],
)
def test_paired_bootstrap_names_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(*args)


def test_prior_alone_gives_zero_shifts_and_leaves_the_model_alone():
    from perfrdiff.personalisation import prior_alone_model

    from tests.perfrdiff.test_models_scaler import prior_model

    model = prior_model()
    alone = prior_alone_model(model)
    history = torch.rand(2, 250, 25, dtype=torch.float64)
    for shift in alone.listener_shifts(history).values():
        for field in ("up", "down", "weight", "bias"):
            assert getattr(shift, field, None) is None or not getattr(shift, field).any()
    assert any(p.any() for p in model.generator.parameters())  # the original keeps its weights
    torch.testing.assert_close(alone.listener_centre(history), model.listener_centre(history))


def test_prior_alone_needs_a_prior():
    from perfrdiff.config import load_config
    from perfrdiff.models import build_perfrdiff
    from perfrdiff.personalisation import prior_alone_model

    model = build_perfrdiff(load_config("tiny", ["pwsg.listener_prior=false"]))
    with pytest.raises(ValueError, match="model: has no listener prior"):
        prior_alone_model(model)
