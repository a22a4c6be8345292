"""Cosine schedule and DDIM sampler (no network involved)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.models.schedule import DDIMSchedule, cosine_alphas_cumprod


def test_cosine_alphas_decrease_from_one_to_near_zero():
    a = cosine_alphas_cumprod(1000)
    assert a.shape == (1000,)
    assert bool((a[1:] < a[:-1]).all())
    assert a[0] > 0.999 and a[-1] < 1e-4


def test_cosine_alpha_matches_closed_form_in_the_middle():
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert cosine_alphas_cumprod(1000)[499].item() == pytest.approx(f(500) / f(0), rel=1e-9)


def test_add_noise_has_unit_variance_for_unit_variance_data():
    torch.manual_seed(0)
    schedule = DDIMSchedule(1000)
    x0, noise = torch.randn(20000, 4), torch.randn(20000, 4)
    x_t = schedule.add_noise(x0, noise, torch.full((20000,), 600))
    a = schedule.alphas_cumprod[600].item()
    assert x_t.var().item() == pytest.approx(1.0, abs=0.03)
    assert torch.allclose(x_t, math.sqrt(a) * x0 + math.sqrt(1 - a) * noise, atol=1e-6)


def test_set_timesteps_is_descending_and_evenly_spaced():
    schedule = DDIMSchedule(1000)
    steps = schedule.set_timesteps(50)
    assert steps[0] == 980 and steps[-1] == 0
    assert bool((steps[:-1] - steps[1:] == 20).all())


def test_ddim_with_an_oracle_recovers_x0_from_noise():
    torch.manual_seed(0)
    schedule = DDIMSchedule(1000)
    timesteps = schedule.set_timesteps(10)
    x0 = torch.randn(3, 50, 25)
    x = schedule.add_noise(x0, torch.randn_like(x0), torch.full((3,), int(timesteps[0])))
    for t in timesteps.tolist():
        x = schedule.step(x0, t, x)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)


def test_ddim_inversion_matches_forward_noising_and_samples_back():
    # With an oracle x0 the implied noise is the same at every step, so inverting from the
    # smallest noisy step must land exactly on the forward-noised sample at the largest step,
    # and DDIM sampling from there must return x0.
    torch.manual_seed(0)
    schedule = DDIMSchedule(1000)
    timesteps = schedule.set_timesteps(20)
    x0, noise = (
        torch.randn(2, 50, 25, dtype=torch.float64),
        torch.randn(2, 50, 25, dtype=torch.float64),
    )
    at = lambda t: schedule.add_noise(x0, noise, torch.full((2,), t))  # noqa: E731
    x = at(int(timesteps[-1]))
    for t in reversed(timesteps[:-1].tolist()):
        x = schedule.inverse_step(x0, t, x)
    torch.testing.assert_close(x, at(int(timesteps[0])))
    for t in timesteps.tolist():
        x = schedule.step(x0, t, x)
    torch.testing.assert_close(x, x0)


def test_inverse_step_rejects_the_clean_end():
    schedule = DDIMSchedule(1000)
    schedule.set_timesteps(10)
    with pytest.raises(ValueError, match="clean end"):
        schedule.inverse_step(torch.zeros(1, 2), 0, torch.zeros(1, 2))


def test_add_noise_names_the_bad_argument():
    schedule = DDIMSchedule(1000)
    with pytest.raises(ValueError, match="noise"):
        schedule.add_noise(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="t must"):
        schedule.add_noise(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("steps", [1, 2, 10, 50, 999, 1000])
def test_quadratic_timesteps_are_distinct_descending_and_dense_near_the_clean_end(steps):
    schedule = DDIMSchedule(1000)
    grid = schedule.set_timesteps(steps, "quadratic")
    assert grid.shape == (steps,) and grid[-1] == 0
    assert bool((grid[:-1] > grid[1:]).all())
    if 2 < steps < 1000:
        gaps = grid[:-1] - grid[1:]
        assert grid[0] == 999 and gaps[-1] < gaps[0]  # small steps where the noise is small
    assert schedule.set_timesteps(10, "quadratic").tolist() == [
        999, 789, 604, 444, 308, 197, 111, 49, 12, 0
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ("uniform", [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
        ("linspace", [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
        ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),  # diffusers' grid
    ],
)
def test_the_even_grids_at_ten_steps(spacing, expected):
    assert DDIMSchedule(1000).set_timesteps(10, spacing).tolist() == expected


@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
@pytest.mark.parametrize("train_steps", [2, 7, 1000])
def test_the_even_grids_start_from_pure_noise_with_distinct_steps(spacing, train_steps):
    schedule = DDIMSchedule(train_steps)
    for steps in range(1, train_steps + 1):
        grid = schedule.set_timesteps(steps, spacing)
        assert grid.shape == (steps,) and grid[0] == train_steps - 1 and grid[-1] >= 0
        assert bool((grid[:-1] > grid[1:]).all())
        gaps = (grid[:-1] - grid[1:]).tolist()
        assert max(gaps, default=0) - min(gaps, default=0) <= 1  # even, up to rounding
    assert schedule.set_timesteps(train_steps, spacing).tolist() == list(range(train_steps))[::-1]


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "linspace", "trailing"])
def test_ddim_with_an_oracle_recovers_x0_on_every_grid(spacing):
    torch.manual_seed(0)
    schedule = DDIMSchedule(1000)
    timesteps = schedule.set_timesteps(10, spacing)
    x0 = torch.randn(3, 50, 25)
    x = schedule.add_noise(x0, torch.randn_like(x0), torch.full((3,), int(timesteps[0])))
    for t in timesteps.tolist():
        assert schedule.previous_timestep(t) < t
        x = schedule.step(x0, t, x)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)


def test_the_schedule_names_an_unknown_spacing_and_an_off_grid_step():
    schedule = DDIMSchedule(1000)
    with pytest.raises(ValueError, match="spacing"):
        schedule.set_timesteps(10, "cubic")
    schedule.set_timesteps(10)
    with pytest.raises(ValueError, match="not a timestep"):
        schedule.previous_timestep(150)


@pytest.mark.parametrize("prediction", ["x0", "v"])
@settings(max_examples=20, deadline=None)
@given(t=st.integers(0, 999), seed=st.integers(0, 2**31 - 1))
def test_the_x0_implied_by_the_training_target_is_the_clean_sample(prediction, t, seed):
    schedule = DDIMSchedule(1000, prediction=prediction)
    g = torch.Generator().manual_seed(seed)
    x0, noise = (torch.randn(3, 7, 5, generator=g, dtype=torch.float64) for _ in range(2))
    steps = torch.full((3,), t)
    x_t = schedule.add_noise(x0, noise, steps)
    target = schedule.training_target(x0, noise, steps)
    torch.testing.assert_close(schedule.predicted_x0(target, x_t, steps), x0)
    torch.testing.assert_close(schedule.predicted_x0(target, x_t, t), x0)
    if prediction == "v":  # v = √ᾱ ε - √(1-ᾱ) x0
        a = schedule.alphas_cumprod[t]
        torch.testing.assert_close(target, a.sqrt() * noise - (1 - a).sqrt() * x0)


def test_v_prediction_passes_the_input_through_as_the_noise_vanishes():
    schedule = DDIMSchedule(1000, prediction="v")
    x_t = torch.randn(2, 50, 25, dtype=torch.float64)
    x0 = schedule.predicted_x0(torch.zeros_like(x_t), x_t, 0)  # whatever the network says
    torch.testing.assert_close(x0, schedule.alphas_cumprod[0].sqrt() * x_t)


def test_the_schedule_names_an_unknown_prediction():
    with pytest.raises(ValueError, match="prediction"):
        DDIMSchedule(1000, prediction="eps")
