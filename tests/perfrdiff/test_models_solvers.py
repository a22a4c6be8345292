"""DPM-Solver++ 2M and UniPC against diffusers' schedulers, and their properties."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import ConfigError, load_config
from perfrdiff.models import SOLVERS, DDIMSchedule, DPMSolverPP2M, UniPC, build_solver
from perfrdiff.models.schedule import SPACINGS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy copy=
MULTISTEP = {"dpmpp-2m": DPMSolverPP2M, "unipc": UniPC}


def analytic_model(x: torch.Tensor, t: int) -> torch.Tensor:
    """A fixed smooth "network" output (read as x0 or v), nonlinear in x and in t."""
    return torch.tanh(x) * (0.5 + t / 1000) + 0.1 * torch.sin(3 * x + t / 100)


def solve(name: str, prediction: str, steps: int, spacing: str, x: torch.Tensor) -> torch.Tensor:
    schedule = DDIMSchedule(1000, prediction=prediction)
    solver = build_solver(name, schedule)
    for t in solver.set_timesteps(steps, spacing).tolist():
        x0 = schedule.predicted_x0(analytic_model(x, t), x, t)
        x = solver.step(x0, t, x)
    return x


def diffusers_solve(name: str, prediction: str, steps: int, spacing: str, x: torch.Tensor):
    """The same run with diffusers' scheduler on our betas and our grid (its σ's in float64)."""
    diffusers = pytest.importorskip("diffusers")
    schedule = DDIMSchedule(1000)
    a = schedule.alphas_cumprod
    betas = 1 - a / torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]])
    common = dict(
        num_train_timesteps=1000,
        trained_betas=betas.numpy(),
        solver_order=2,
        prediction_type={"x0": "sample", "v": "v_prediction"}[prediction],
        final_sigmas_type="zero",
        lower_order_final=True,
    )
    if name == "dpmpp-2m":
        oracle = diffusers.DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver++", solver_type="midpoint", **common
        )
    else:
        oracle = diffusers.UniPCMultistepScheduler(solver_type="bh2", **common)
    grid = DDIMSchedule(1000).set_timesteps(steps, spacing)
    oracle.alphas_cumprod = a.clone()  # diffusers computes it from the betas in float32
    oracle.set_timesteps(steps)
    oracle.timesteps = grid.clone()
    sigmas = ((1 - a[grid]) / a[grid]).sqrt()
    oracle.sigmas = torch.cat([sigmas, torch.zeros(1, dtype=sigmas.dtype)])
    for t in grid.tolist():
        x = oracle.step(analytic_model(x, t), t, x).prev_sample
    return x


@pytest.mark.parametrize("name", list(MULTISTEP))
@pytest.mark.parametrize("prediction", ["x0", "v"])
@pytest.mark.parametrize(
    ("steps", "spacing"),
    [(1, "trailing"), (2, "trailing"), (3, "quadratic"), (5, "uniform"), (10, "trailing"),
     (20, "linspace")],
)  # fmt: skip
def test_solver_matches_diffusers(name, prediction, steps, spacing):
    x = torch.randn(3, 50, 25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = solve(name, prediction, steps, spacing, x)
    theirs = diffusers_solve(name, prediction, steps, spacing, x)
    assert ours.dtype == torch.float64
    # diffusers' DPM-Solver step rounds the sample to float32 (UniPC's keeps float64)
    atol = 2e-6 if name == "dpmpp-2m" else 1e-12
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=0, atol=atol)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(SOLVERS),
    steps=st.integers(1, 30),
    spacing=st.sampled_from(SPACINGS),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_dirac_data_follows_the_exact_trajectory(name, steps, spacing, shape, seed):
    """Data of one point ``c``: the exact ODE path is ``α_t c + σ_t ε``, and every solver stays
    on it, step after step, to float64 rounding (their extrapolations vanish)."""
    g = torch.Generator().manual_seed(seed)
    c, noise = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
    schedule = DDIMSchedule(1000)
    solver = build_solver(name, schedule)
    grid = solver.set_timesteps(steps, spacing).tolist()
    a = schedule.alphas_cumprod
    x = a[grid[0]].sqrt() * c + (1 - a[grid[0]]).sqrt() * noise
    for t, after in zip(grid, [*grid[1:], -1], strict=True):
        x = solver.step(c, t, x)
        assert x.shape == c.shape and x.dtype == torch.float64
        a_next = a[after] if after >= 0 else torch.tensor(1.0, dtype=torch.float64)
        exact = a_next.sqrt() * c + (1 - a_next).sqrt() * noise
        torch.testing.assert_close(x, exact, rtol=0, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(list(MULTISTEP)),
    steps=st.integers(1, 25),
    spacing=st.sampled_from(SPACINGS),
    split=st.integers(1, 5),
)
def test_samples_are_solved_independently(name, steps, spacing, split):
    """A batch solved at once equals its parts solved one after the other, and the solver's
    history starts afresh at every set_timesteps."""
    x = torch.randn(6, 7, 3, generator=torch.Generator().manual_seed(steps), dtype=torch.float64)
    whole = solve(name, "v", steps, spacing, x)
    parts = torch.cat([solve(name, "v", steps, spacing, x[:split]),
                       solve(name, "v", steps, spacing, x[split:])])  # fmt: skip
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(MULTISTEP))
def test_second_order_beats_ddim_on_gaussian_data(name):
    """Gaussian data ``N(0, 1)``: ``x0 = √ᾱ x / 1`` and the exact ODE keeps ``x_t`` fixed;
    with 10 trailing steps both solvers land > 4x closer than DDIM (measured: 5.1x, 87x)."""
    schedule = DDIMSchedule(1000)
    x_T = torch.linspace(-2, 2, 9, dtype=torch.float64)

    def error(solver_name: str) -> float:
        solver, x = build_solver(solver_name, schedule), x_T.clone()
        for t in solver.set_timesteps(10, "trailing").tolist():
            x = solver.step(schedule.alphas_cumprod[t].sqrt() * x, t, x)
        return float((x - x_T).abs().max())

    assert error(name) < error("ddim") / 4


@pytest.mark.parametrize("name", list(MULTISTEP))
def test_steps_must_follow_the_grid(name):
    solver = build_solver(name, DDIMSchedule(1000))
    grid = solver.set_timesteps(5, "trailing").tolist()
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="not a timestep of the grid"):
        solver.step(x, 500, x)
    with pytest.raises(ValueError, match="after 0 steps"):
        solver.step(x, grid[1], x)
    solver.step(x, grid[0], x)
    solver.set_timesteps(5, "trailing")
    solver.step(x, grid[0], x)  # set_timesteps starts again


def test_build_solver_rejects_bad_input():
    with pytest.raises(ValueError, match="solver must be one of"):
        build_solver("euler", DDIMSchedule(1000))
    with pytest.raises(ValueError, match="eta must be 0"):
        build_solver("unipc", DDIMSchedule(1000, eta=0.5))
    with pytest.raises(TypeError, match="DDIMSchedule"):
        UniPC(object())
    assert build_solver("ddim", schedule := DDIMSchedule(1000)) is schedule


def test_config_solver_is_validated():
    assert load_config("tiny", ["generate.solver=unipc"]).generate.solver == "unipc"
    with pytest.raises(ConfigError, match=r"generate\.solver"):
        load_config("tiny", ["generate.solver=euler"])
    with pytest.raises(ConfigError, match="eta = 0,"):
        load_config("tiny", ["generate.solver=dpmpp-2m", "diffusion.eta=0.5"])
    for name in SOLVERS:  # the config's choices are the solvers
        assert load_config("tiny", [f"generate.solver={name}"]).generate.solver == name
