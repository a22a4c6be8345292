"""The listener prior: its centre, its weight fitted per channel, the pairs it is fitted on, and
the personality's part of the centre (pwsg.personality_prior)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import ConfigError, load_config
from perfrdiff.data import (
    ClipStore,
    SplitIndex,
    SyntheticConfig,
    listener_level_pairs,
    write_synthetic_dataset,
)
from perfrdiff.models import ListenerPrior, PersonalityLevel, build_perfrdiff
from perfrdiff.run import Run
from perfrdiff.training import train_run
from safetensors.torch import load_file

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_weight(history: np.ndarray, level: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Per-channel least squares through ``mean`` in float64, one channel at a time."""
    weights = []
    for c in range(history.shape[1]):
        h, y = history[:, c] - mean[c], level[:, c] - mean[c]
        spread = float(h @ h)
        weights.append(0.0 if spread == 0 else min(max(float(h @ y) / spread, 0.0), 1.0))
    return np.array(weights)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_fit_is_the_clipped_float64_least_squares_slope_of_each_channel(pairs, channels, seed):
    rng = np.random.default_rng(seed)
    history = rng.normal(size=(pairs, channels))
    level = rng.normal(size=(pairs, channels)) + rng.uniform(-2, 2, size=channels) * history
    mean = rng.normal(size=channels)
    prior = ListenerPrior(channels, 0.5)
    fitted = prior.fit(torch.from_numpy(history), torch.from_numpy(level), torch.from_numpy(mean))
    expected = reference_weight(history, level, mean)
    np.testing.assert_allclose(fitted.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert fitted is prior.weight and fitted.dtype == torch.float32


def test_fit_recovers_how_much_of_a_history_carries_over():
    g = torch.Generator().manual_seed(0)
    history = torch.randn(4000, 4, generator=g, dtype=torch.float64)
    carry = torch.tensor([0.0, 0.3, 0.8, 1.0], dtype=torch.float64)
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64)
    noise = 0.1 * torch.randn(4000, 4, generator=g, dtype=torch.float64)
    level = mean + carry * history + noise
    fitted = ListenerPrior(4, 1.0).fit(mean + history, level, mean)
    torch.testing.assert_close(fitted, carry.float(), atol=0.01, rtol=0)


def test_fitted_weights_are_clipped_and_a_flat_channel_carries_nothing():
    history = torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0]])
    level = torch.tensor([[3.0, -2.0, 5.0], [-3.0, 2.0, -5.0]])  # slopes 3, -1, undefined
    fitted = ListenerPrior(3, 0.5).fit(history, level, torch.zeros(3))
    torch.testing.assert_close(fitted, torch.tensor([1.0, 0.0, 0.0]))


def test_the_centre_moves_each_channel_by_its_own_weight():
    prior = ListenerPrior(3, 1.0)
    prior.weight.copy_(torch.tensor([0.0, 0.5, 1.0]))
    mean = torch.tensor([1.0, 1.0, 1.0])
    history_mean = torch.tensor([[3.0, 3.0, 3.0], [-1.0, 0.0, 2.0]])
    expected = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.5, 2.0]])
    torch.testing.assert_close(prior.centre(history_mean, mean), expected)


def test_only_a_fitted_weight_is_saved():
    assert "weight" not in ListenerPrior(3, 0.5).state_dict()
    assert "weight" in ListenerPrior(3, 0.5, fitted=True).state_dict()


def test_bad_prior_inputs_are_named():
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\], got 1.5"):
        ListenerPrior(3, 1.5)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        ListenerPrior(0, 0.5)
    prior = ListenerPrior(3, 0.5)
    with pytest.raises(ValueError, match=r"history_means must be \(p, 3\) with p >= 1"):
        prior.fit(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"history_means must be \(p, 3\) with p >= 1"):
        prior.fit(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"clip_means must have history_means' shape \(2, 3\)"):
        prior.fit(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"mean must be \(3,\), got \(25,\)"):
        prior.fit(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(25))
    with pytest.raises(ValueError, match="clip_means must be finite"):
        prior.fit(torch.zeros(2, 3), torch.full((2, 3), float("nan")), torch.zeros(3))
    torch.testing.assert_close(prior.weight, torch.full((3,), 0.5))  # unchanged by a refusal


def test_level_pairs_are_every_ordered_pair_of_one_listeners_clips(synthetic_root):
    index, store = SplitIndex(synthetic_root, "train"), ClipStore(synthetic_root, "train")
    expected_history, expected_level = [], []
    for clips in index.clips_of.values():
        for i in clips:
            for j in clips:
                if i != j:
                    expected_history.append(store.emotion(i)[:40].astype(np.float64).mean(0))
                    expected_level.append(store.emotion(j).astype(np.float64).mean(0))
    assert expected_history, "the fixture's train split must have a listener with two clips"
    history, level = listener_level_pairs(synthetic_root, "train", frames=40)
    assert history.dtype == level.dtype == torch.float64
    np.testing.assert_allclose(history.numpy(), np.stack(expected_history), rtol=1e-12)
    np.testing.assert_allclose(level.numpy(), np.stack(expected_level), rtol=1e-12)


def test_level_pairs_refuse_a_split_without_a_listener_of_two_clips(tmp_path):
    sessions = {"train": 1, "val": 1, "test": 1}
    config = SyntheticConfig(seed=1, sessions=sessions, clips_per_session=(1, 1))
    write_synthetic_dataset(tmp_path, config)
    with pytest.raises(ValueError, match=r"split 'train' of .* has no listener with two clips"):
        listener_level_pairs(tmp_path, "train", frames=250)
    with pytest.raises(ValueError, match="frames must be >= 1, got 0"):
        listener_level_pairs(tmp_path, "train", frames=0)


def test_fitting_the_weight_needs_the_listener_prior():
    with pytest.raises(ConfigError, match=r"pwsg\.fit_prior_weight.*pwsg\.listener_prior"):
        load_config("tiny", ["pwsg.listener_prior=false", "pwsg.fit_prior_weight=true"])


def trained_run(directory, root, *overrides: str) -> tuple[Run, dict]:
    """A run of every stage for one step under ``overrides``, and its saved pwsg weights."""
    quick = [
        f"train.{stage}.{key}={value}"
        for stage in ("emotion-vae", "style", "gafrg", "pwsg")
        for key, value in (("steps", 1), ("batch_size", 2), ("val_batches", 1))
    ]
    run = Run(load_config("tiny", [f"data.root={root}", *overrides, *quick]), directory, "cpu")
    train_run(run)
    return run, load_file(str(directory / "pwsg" / "model.safetensors"))


@pytest.mark.slow
def test_the_pwsg_stage_fits_the_prior_and_a_loaded_run_uses_it(tmp_path, synthetic_root):
    run, saved = trained_run(tmp_path, synthetic_root, "pwsg.fit_prior_weight=true")
    assert "prior.weight" in saved and any(k.startswith("generator.") for k in saved)

    frames = run.config.data.history_frames
    gafrg = run.build("gafrg")
    expected = ListenerPrior(25, 0.0).fit(
        *listener_level_pairs(synthetic_root, "train", frames), gafrg.scaler.mean
    )
    model = Run.load(tmp_path, device="cpu").model("pwsg")
    torch.testing.assert_close(model.prior.weight, expected)
    history = torch.rand(2, frames, model.style_encoder.input_dim)
    mean = gafrg.scaler.mean
    centre = mean + expected * (history[..., :25].mean(1) - mean)
    torch.testing.assert_close(model.listener_centre(history), centre)


@pytest.mark.slow
def test_without_fitting_the_pwsg_stage_saves_only_the_generator(tmp_path, synthetic_root):
    # The layout of runs saved before the prior could be fitted: they load as they were.
    _, saved = trained_run(tmp_path, synthetic_root, "pwsg.prior_weight=0.25")
    assert "prior.weight" not in saved and not any(k.startswith("generator.") for k in saved)
    model = Run.load(tmp_path, device="cpu").model("pwsg")
    torch.testing.assert_close(model.prior.weight, torch.full((25,), 0.25))


def reference_ridge(scores: np.ndarray, residual: np.ndarray, ridge: float) -> np.ndarray:
    """``argmin ‖(P - p̄) B - R‖² + λ n ‖B‖²`` in float64 as an augmented least squares."""
    x = scores - scores.mean(0)
    n, k = x.shape
    augmented = np.vstack([x, np.sqrt(ridge * n) * np.eye(k)])
    target = np.vstack([residual, np.zeros((k, residual.shape[1]))])
    return np.linalg.lstsq(augmented, target, rcond=None)[0]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 4),
    st.sampled_from([1e-3, 0.1, 1.0]),
    st.integers(0, 2**31 - 1),
)
def test_personality_fit_is_the_float64_ridge_solution(rows, channels, ridge, seed):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, size=(rows, 5))
    residual = rng.normal(size=(rows, channels))
    level = PersonalityLevel(channels, ridge=ridge)
    coef = level.fit(torch.from_numpy(scores), torch.from_numpy(residual))
    expected = reference_ridge(scores, residual, ridge)
    np.testing.assert_allclose(coef.double().numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(level.scores_mean.double().numpy(), scores.mean(0), rtol=1e-6)
    offset = level(torch.from_numpy(scores)).double().numpy()
    np.testing.assert_allclose(offset, (scores - scores.mean(0)) @ expected, rtol=1e-4, atol=1e-5)


def test_personality_fit_recovers_a_planted_linear_level():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(5000, 5, generator=g, dtype=torch.float64)
    planted = torch.randn(5, 3, generator=g, dtype=torch.float64)
    residual = (scores - 0.5) @ planted + 0.05 * torch.randn(
        5000, 3, generator=g, dtype=torch.float64
    )
    coef = PersonalityLevel(3, ridge=0.0).fit(scores, residual)
    torch.testing.assert_close(coef, planted.float(), atol=0.02, rtol=0)


def test_scores_that_never_vary_give_no_offset():
    level = PersonalityLevel(4)  # a split without a personality table: every score 0
    coef = level.fit(torch.zeros(6, 5), torch.randn(6, 4))
    assert torch.equal(coef, torch.zeros(5, 4))
    assert torch.equal(level(torch.rand(3, 5)), torch.zeros(3, 4))
    assert torch.equal(PersonalityLevel(4, ridge=0.0).fit(torch.zeros(6, 5), torch.randn(6, 4)),
                       torch.zeros(5, 4))  # fmt: skip


def test_the_personality_level_is_saved_and_starts_at_zero():
    level = PersonalityLevel(25)
    assert set(level.state_dict()) == {"scores_mean", "coef"}
    assert torch.equal(level(torch.rand(2, 5)), torch.zeros(2, 25))


def test_bad_personality_level_inputs_are_named():
    with pytest.raises(ValueError, match="channels and scores must be >= 1, got 0 and 5"):
        PersonalityLevel(0)
    with pytest.raises(ValueError, match="ridge must be >= 0, got -1"):
        PersonalityLevel(3, ridge=-1.0)
    level = PersonalityLevel(3)
    with pytest.raises(ValueError, match=r"personality must be \(n, 5\) with n >= 1, got \(2, 4\)"):
        level.fit(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"residual must be \(2, 3\), got \(2, 25\)"):
        level.fit(torch.zeros(2, 5), torch.zeros(2, 25))
    with pytest.raises(ValueError, match="residual must be finite"):
        level.fit(torch.zeros(2, 5), torch.full((2, 3), float("inf")))
    with pytest.raises(ValueError, match=r"personality must be \(l, 5\), got \(5,\)"):
        level(torch.zeros(5))
    assert torch.equal(level.coef, torch.zeros(5, 3))  # unchanged by a refusal


def test_the_personality_prior_needs_a_condition_that_reads_the_personality():
    with pytest.raises(ConfigError, match=r"pwsg\.personality_prior: reads each listener's"):
        load_config("tiny", ["protocol=react2026", "pwsg.personality_prior=true"])
    with pytest.raises(ConfigError, match=r"pwsg\.personality_prior: needs denoiser\.standardise"):
        load_config("tiny", ["protocol=react2026", "pwsg.condition=personality",
                             "pwsg.listener_prior=false", "pwsg.personality_prior=true",
                             "denoiser.standardise=false"])  # fmt: skip


@pytest.mark.parametrize("history_prior", [False, True])
def test_the_centre_adds_the_personality_level_to_the_history_part(history_prior):
    overrides = ["protocol=react2026", "pwsg.condition=both", "pwsg.personality_prior=true",
                 f"pwsg.listener_prior={str(history_prior).lower()}"]  # fmt: skip
    model = build_perfrdiff(load_config("tiny", overrides))
    g = torch.Generator().manual_seed(0)
    model.gafrg.scaler.mean.copy_(torch.randn(25, generator=g))
    model.personality_level.fit(torch.rand(20, 5, generator=g), torch.randn(20, 25, generator=g))
    history = torch.randn(3, 40, model.style_encoder.input_dim, generator=g)
    personality = torch.rand(3, 5, generator=g)
    offset = model.personality_level(personality)
    base = model.prior.centre(history[..., :25].mean(1), model.gafrg.scaler.mean) if history_prior \
        else model.gafrg.scaler.mean.expand(3, 25)  # fmt: skip
    torch.testing.assert_close(model.listener_centre(history, personality), base + offset)
    with pytest.raises(ValueError, match=r"personality is required: pwsg\.personality_prior"):
        model.listener_centre(history, None)
    assert {"personality_level.coef", "personality_level.scores_mean"} <= set(
        model.exported.state_dict()
    )
