"""Stage objectives: what each stage trains and what it keeps frozen."""

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.models import DDIMSchedule, build_gafrg, build_perfrdiff
from perfrdiff.run import Run
from perfrdiff.training import train_run
from perfrdiff.training.objectives import GAFRGObjective, PWSGObjective


def batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return {
        "speaker_audio": r(b, 50, 78), "speaker_face": r(b, 50, 58),
        "speaker_emotion": r(b, 50, 25), "listener_emotion": r(b, 50, 25),
        "listener_prev_emotion": r(b, 50, 25), "has_past": torch.ones(b, dtype=torch.bool),
        "history_face": r(b, 250, 58), "history_emotion": r(b, 250, 25),
        "history_dyadic": r(b, 250, 50),
    }  # fmt: skip


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def step(objective, data):
    params = [p for p in objective.trained.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    loss, _ = objective(data)
    loss.backward()
    optimizer.step()


def test_pwsg_stage_trains_only_the_shift_generator():
    torch.manual_seed(0)
    config = load_config("tiny")
    model = build_perfrdiff(config)
    objective = PWSGObjective(model, DDIMSchedule(1000), config).train()
    frozen = snapshot(model.gafrg), snapshot(model.style_encoder)
    generator = snapshot(model.generator)
    for i in range(2):  # the first step only moves the zero-initialised up-projections
        step(objective, batch(seed=i))
    assert not changed(frozen[0], model.gafrg) and not changed(frozen[1], model.style_encoder)
    assert changed(generator, model.generator)
    assert not model.gafrg.training and not model.style_encoder.training


def test_gafrg_stage_keeps_the_emotion_vae_frozen():
    torch.manual_seed(0)
    gafrg = build_gafrg(load_config("tiny"))
    vae = snapshot(gafrg.vae)
    step(GAFRGObjective(gafrg, DDIMSchedule(1000), cond_drop=0.2).train(), batch())
    assert not changed(vae, gafrg.vae)
    assert not gafrg.vae.training


def test_unfreezing_the_denoiser_leaves_its_vae_frozen():
    gafrg = build_gafrg(load_config("tiny")).requires_grad_(True)
    assert not any(p.requires_grad for p in gafrg.vae.parameters())
    assert all(p.requires_grad for n, p in gafrg.named_parameters() if not n.startswith("vae."))


@pytest.mark.parametrize("cond_drop", [0.0, 0.5])
def test_gafrg_stage_trains_the_null_condition_only_when_it_drops_conditions(cond_drop):
    # Classifier-free guidance needs an unconditional model: the learned null token must be
    # trained (it is the model's input only where the objective dropped the condition).
    torch.manual_seed(0)
    gafrg = build_gafrg(load_config("tiny"))
    objective = GAFRGObjective(gafrg, DDIMSchedule(1000), cond_drop=cond_drop).train()
    loss, _ = objective(batch(b=32))
    loss.backward()
    trained = gafrg.null.grad is not None and bool(gafrg.null.grad.abs().sum() > 0)
    assert trained == (cond_drop > 0)


def test_pwsg_stage_needs_the_trained_gafrg_and_style_encoder(tmp_path, synthetic_root):
    config = load_config("tiny", [f"data.root={synthetic_root}"])
    with pytest.raises(FileNotFoundError, match="gafrg"):
        train_run(Run(config, tmp_path, device="cpu"), ["pwsg"])


def test_pwsg_step_runs_under_bf16_autocast_with_float32_gradients():
    from perfrdiff.device import autocast

    torch.manual_seed(0)
    config = load_config("tiny")
    objective = PWSGObjective(build_perfrdiff(config), DDIMSchedule(1000), config).train()
    for _ in range(2):  # the second step reaches the edited denoiser through non-zero shifts
        with autocast(torch.device("cpu"), "bf16"):
            loss, _ = objective(batch())
        loss.backward()
        torch.optim.SGD(objective.trained.parameters(), lr=0.1).step()
    assert torch.isfinite(loss)
    grads = [p.grad for p in objective.trained.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_the_denoiser_learns_v_when_the_schedule_predicts_v():
    from perfrdiff.training.objectives import diffusion_inputs

    gafrg = build_gafrg(load_config("tiny"))
    outputs = {}
    for prediction in ("x0", "v"):
        torch.manual_seed(0)
        schedule = DDIMSchedule(1000, prediction=prediction)
        outputs[prediction] = diffusion_inputs(gafrg, schedule, batch(b=8), cond_drop=0.0)
    (x0, x_t, t, _, _), (v, x_t_v, _, _, _) = outputs["x0"], outputs["v"]
    torch.testing.assert_close(x_t_v, x_t)  # the same noisy windows, another target
    schedule = DDIMSchedule(1000, prediction="v")
    noise = schedule.predicted_noise(x_t, x0, t)
    torch.testing.assert_close(v, schedule.training_target(x0, noise, t), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch(b=8)["listener_emotion"], x0)
