"""The sampler's exact speedups: cached memory keys/values and one edit per window give the same
reactions as calling the model at every DDIM step (float64, to 1e-6)."""

import copy

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import ReactionSampler, SamplerConfig
from perfrdiff.models import DDIMSchedule, build_perfrdiff, build_solver

from weditlib import edit

from .tiny_preset import HISTORY_DIM as H

EVERY_KIND = ["decoder.layers.*.multihead_attn", "decoder.layers.*.self_attn", "output"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(one_thread):
    torch.manual_seed(0)
    config = load_config("tiny", [f"pwsg.targets={EVERY_KIND}"])
    model = build_perfrdiff(config).double().eval()
    for p in model.parameters():  # untrained heads and null tokens are zero: make them matter
        torch.nn.init.normal_(p, std=0.05) if p.dim() < 2 else None
    for p in model.generator.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def inputs(model, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    memory = model.gafrg.condition(r(b, 50, 78), r(b, 50, 58), r(b, 50, 25))
    shifts = model.listener_shifts(r(2, 250, H))
    return memory, shifts, torch.tensor([0, 1, 1, 0])[:b]


def per_step_reference(
    model, schedule, steps, guidance, memory, generator, shifts, index, solver="ddim"
):
    """The sampler as it was: the full model (and a fresh edit) at every step and branch."""
    b = memory.shape[0]
    x = torch.randn((b, 50, 25), generator=generator, dtype=memory.dtype)
    solver = build_solver(solver, schedule)
    for t in solver.set_timesteps(steps).tolist():
        t_batch = torch.full((b,), t, dtype=torch.long)
        if guidance == 1.0:
            x0 = model(x, t_batch, memory, None, shifts, index)
        else:
            keep = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)])
            both = model(
                torch.cat([x, x]),
                torch.cat([t_batch, t_batch]),
                torch.cat([memory, memory]),
                keep,
                shifts,
                None if index is None else index.repeat(2),
            )
            x0 = both[b:] + guidance * (both[:b] - both[b:])
        x = solver.step(schedule.predicted_x0(x0, x, t), t, x, generator)
    return x


@pytest.mark.parametrize("personalised", [False, True])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
@pytest.mark.parametrize("eta", [0.0, 0.5])
@torch.no_grad()
def test_sampler_equals_calling_the_model_at_every_step(model, personalised, guidance, eta):
    memory, shifts, index = inputs(model)
    if not personalised:
        shifts, index = None, None
    config = SamplerConfig(steps=4, guidance=guidance)
    fast = ReactionSampler(model, DDIMSchedule(1000, eta=eta), config).sample(
        memory, torch.Generator().manual_seed(5), shifts, index
    )
    slow = per_step_reference(
        model, DDIMSchedule(1000, eta=eta), 4, guidance, memory,
        torch.Generator().manual_seed(5), shifts, index,
    )  # fmt: skip
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)
    assert fast.abs().max() > 0.1  # not trivially zero


@pytest.mark.parametrize("solver", ["dpmpp-2m", "unipc"])
@pytest.mark.parametrize("prediction", ["x0", "v"])
@torch.no_grad()
def test_sampler_runs_the_configured_solver(model, solver, prediction):
    """Guidance on the model's output, then its x0 (x0 or v target), then the solver's step;
    the solver's history is fresh for every window (two windows in a row give the same)."""
    memory, shifts, index = inputs(model)
    config = SamplerConfig(steps=5, guidance=2.0, solver=solver)
    sampler = ReactionSampler(model, DDIMSchedule(1000, prediction=prediction), config)
    fast = [sampler.sample(memory, torch.Generator().manual_seed(5), shifts, index)
            for _ in range(2)]  # fmt: skip
    slow = per_step_reference(
        model, DDIMSchedule(1000, prediction=prediction), 5, 2.0, memory,
        torch.Generator().manual_seed(5), shifts, index, solver,
    )  # fmt: skip
    torch.testing.assert_close(fast[0], slow, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast[1], slow, rtol=0, atol=1e-6)
    ddim = per_step_reference(
        model, DDIMSchedule(1000, prediction=prediction), 5, 2.0, memory,
        torch.Generator().manual_seed(5), shifts, index,
    )  # fmt: skip
    assert (fast[0] - ddim).abs().max() > 1e-4  # another solver than DDIM (>= 9e-4 here)


@pytest.mark.parametrize("keep", [None, [True, False, True, False]])
@torch.no_grad()
def test_cached_memory_denoise_equals_forward_under_an_edit(model, keep):
    memory, shifts, index = inputs(model)
    keep = None if keep is None else torch.tensor(keep)
    x_t = torch.randn(4, 50, 25, dtype=torch.float64)
    t = torch.tensor([999, 500, 20, 0])
    with edit(model.gafrg, shifts, index):
        cached = model.gafrg.denoise(x_t, t, model.gafrg.memory_cache(memory, keep))
        full = model.gafrg(x_t, t, memory, keep)
    torch.testing.assert_close(cached, full, rtol=0, atol=1e-9)
    generic = model.gafrg(x_t, t, memory, keep)
    assert not torch.allclose(cached, generic)  # the edit reached the cached path


@torch.no_grad()
def test_one_edit_per_window_not_per_step(model, monkeypatch):
    import perfrdiff.generation.sampler as sampler_module

    entered = []
    real_edit = sampler_module.edit
    monkeypatch.setattr(
        sampler_module, "edit", lambda *a, **k: entered.append(1) or real_edit(*a, **k)
    )
    memory, shifts, index = inputs(model)
    sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(steps=5, guidance=2.0))
    sampler.sample(memory, torch.Generator().manual_seed(0), shifts, index)
    assert entered == [1]


def test_cache_of_another_batch_is_refused(model):
    memory, _, _ = inputs(model)
    cache = model.gafrg.memory_cache(memory)
    with pytest.raises(ValueError, match="disagree"):
        model.gafrg.denoise(
            torch.zeros(2, 50, 25, dtype=torch.float64), torch.zeros(2).long(), cache
        )


@pytest.mark.parametrize("limit", [None, 0])
@torch.no_grad()
def test_edited_weights_are_built_once_per_window_within_the_limit(model, monkeypatch, limit):
    import perfrdiff.generation.sampler as sampler_module

    if limit is not None:
        monkeypatch.setattr(sampler_module, "DENSE_LIMIT", limit)
    flags = []
    real_edit = sampler_module.edit
    monkeypatch.setattr(
        sampler_module,
        "edit",
        lambda *a, materialise, **k: (
            flags.append(materialise) or real_edit(*a, materialise=materialise, **k)
        ),
    )
    memory, shifts, index = inputs(model)
    config = SamplerConfig(steps=3)
    fast = ReactionSampler(model, DDIMSchedule(1000), config).sample(
        memory, torch.Generator().manual_seed(2), shifts, index
    )
    slow = per_step_reference(
        model, DDIMSchedule(1000), 3, 1.0, memory, torch.Generator().manual_seed(2), shifts, index
    )
    assert flags == [limit is None]  # the default limit holds these shifts; 0 holds none
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-6)


@pytest.mark.parametrize("limit", [None, 0])
@pytest.mark.parametrize("guidance", [1.0, 2.5])
@torch.no_grad()
def test_bound_shifts_give_the_same_windows(model, monkeypatch, limit, guidance):
    import perfrdiff.generation.sampler as sampler_module

    from weditlib import EditedWeights

    if limit is not None:
        monkeypatch.setattr(sampler_module, "DENSE_LIMIT", limit)
    memory, shifts, index = inputs(model)
    sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(steps=3, guidance=guidance))
    bound = sampler.bind(shifts)
    built = [isinstance(delta, EditedWeights) for delta in bound.values()]
    assert built == [limit is None] * len(shifts)  # built within the limit, else as given
    expected = sampler.sample(memory, torch.Generator().manual_seed(4), shifts, index)
    for _ in range(2):  # one binding, many windows
        windows = sampler.sample(memory, torch.Generator().manual_seed(4), bound, index)
        torch.testing.assert_close(windows, expected, rtol=0, atol=1e-12)


@torch.no_grad()
def test_bf16_autocast_keeps_the_solver_in_float32(model):
    """Under bf16 autocast the bound edited weights are bf16 (cast once, not at every step),
    the windows and the solver stay float32, and the result is near the float32 one."""
    model = copy.deepcopy(model)
    memory, shifts, index = inputs(model)  # float64, then everything float32
    model.float()
    memory = memory.float()
    to_float = lambda d: d.replace(**{f: getattr(d, f).float() for f in d.tensor_fields()})  # noqa: E731
    shifts = {name: to_float(delta) for name, delta in shifts.items()}
    sampler = ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(steps=4, solver="unipc"))
    exact = sampler.sample(memory, torch.Generator().manual_seed(5), sampler.bind(shifts), index)
    with torch.autocast("cpu", torch.bfloat16):
        bound = sampler.bind(shifts)
        half = sampler.sample(memory, torch.Generator().manual_seed(5), bound, index)
    assert {delta.weight.dtype for delta in bound.values()} == {torch.bfloat16}
    assert half.dtype == torch.float32
    assert 0 < (half - exact).abs().max() < 0.05 * exact.abs().max()
