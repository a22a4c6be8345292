"""Stage pwsg's objective under pwsg.condition, pwsg.shift_l2 and pwsg.style_noise."""

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.models import DDIMSchedule, build_perfrdiff
from perfrdiff.models.condition import jittered
from perfrdiff.training.objectives import PWSGObjective, squared_norm
from safetensors.torch import load_file

from .test_training_objectives import batch, changed, snapshot, step
from .tiny_preset import HISTORY_DIM as H


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def objective_of(*overrides):
    config = load_config("tiny", ["protocol=react2026", *overrides])
    torch.manual_seed(0)
    model = build_perfrdiff(config)
    for p in model.generator.parameters():  # non-zero shifts, so the penalty is not zero
        p.data.normal_(0, 0.05)
    return PWSGObjective(model, DDIMSchedule(1000), config).train()


def with_personality(data, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {**data, "personality": torch.rand(data["listener_emotion"].shape[0], 5, generator=g)}


@pytest.mark.parametrize("condition", ["history", "both"])
def test_the_l2_penalty_adds_exactly_its_term_and_is_logged(condition):
    data = with_personality(batch())
    torch.manual_seed(5)  # the same noise and timesteps for both
    plain, plain_logs = objective_of(f"pwsg.condition={condition}")(data)
    torch.manual_seed(5)
    penalised = objective_of(f"pwsg.condition={condition}", "pwsg.shift_l2=0.25")
    loss, logs = penalised(data)
    assert "shift_penalty" not in plain_logs
    assert logs["shift_norm"] == plain_logs["shift_norm"] > 0
    # the term: 0.25 times the mean over samples of the shifts' summed squared norms
    with torch.no_grad():
        shifts = penalised.model.listener_shifts(
            data["history_dyadic"].float(), data["personality"]
        )
        term = 0.25 * sum(squared_norm(s) for s in shifts.values()) / 4
    torch.testing.assert_close(loss - plain, term, rtol=1e-5, atol=0)
    assert logs["shift_penalty"] == pytest.approx(term.item(), rel=1e-6)
    assert logs["shift_penalty"] == pytest.approx(0.25 * logs["shift_norm"] ** 2, rel=1e-5)


def test_the_l2_penalty_pulls_the_shifts_towards_zero():
    data = batch()
    norms = {}
    for weight in (0.0, 2.0):
        objective = objective_of(f"pwsg.shift_l2={weight}")
        for i in range(3):
            step(objective, batch(seed=i))
        norms[weight] = objective(data)[1]["shift_norm"]
    assert norms[2.0] < 0.8 * norms[0.0]


def test_a_personality_condition_trains_its_mlps_with_the_generator():
    objective = objective_of("pwsg.condition=personality")
    model = objective.model
    frozen = snapshot(model.gafrg), snapshot(model.style_encoder)
    before = snapshot(objective.trained)
    for i in range(2):
        step(objective, with_personality(batch(seed=i), seed=i))
    assert not changed(frozen[0], model.gafrg) and not changed(frozen[1], model.style_encoder)
    moved = changed(before, objective.trained)
    assert any(k.startswith("condition.personality.") for k in moved)
    assert any(k.startswith("generator.") for k in moved)


def test_a_batch_without_personality_is_refused_by_name():
    objective = objective_of("pwsg.condition=both")
    with pytest.raises(ValueError, match=r"needs each listener's 'personality'"):
        objective(batch())


def test_the_personality_in_a_batch_changes_a_personality_conditioned_loss_only():
    data = batch()
    losses = {}
    for condition in ("history", "personality"):
        objective = objective_of(f"pwsg.condition={condition}")
        for seed in (0, 1):
            torch.manual_seed(5)
            losses[condition, seed] = objective(with_personality(data, seed))[0].item()
    assert losses["history", 0] == losses["history", 1]
    assert losses["personality", 0] != losses["personality", 1]


def test_a_jittered_condition_stays_a_unit_vector_and_moves_with_the_noise():
    torch.manual_seed(0)
    style = torch.nn.functional.normalize(torch.randn(4096, 32), dim=-1)
    moved = {std: jittered(style, std) for std in (0.0, 0.05, 0.2)}
    torch.testing.assert_close(moved[0.0], style)
    for unit in moved.values():
        torch.testing.assert_close(unit.norm(dim=-1), torch.ones(4096))
    distance = {std: (moved[std] - style).norm(dim=-1).mean().item() for std in moved}
    # small noise: the move is about std * sqrt(s - 1) (the radial part is normalised away)
    assert distance[0.05] == pytest.approx(0.05 * 31**0.5, rel=0.1)
    assert distance[0.2] > 3 * distance[0.05]


@pytest.mark.parametrize("condition", ["history", "personality", "both"])
def test_style_noise_changes_the_training_loss_only(condition):
    data = with_personality(batch())
    losses = {}
    for noise in (0.0, 0.3):
        objective = objective_of(f"pwsg.style_noise={noise}", f"pwsg.condition={condition}")
        for mode in ("train", "eval"):
            getattr(objective, mode)()
            torch.manual_seed(5)  # the same diffusion noise and timesteps
            losses[noise, mode] = objective(data)[0].item()
    assert losses[0.3, "train"] != losses[0.0, "train"]
    # validation (eval mode) and generation read the style unchanged
    assert losses[0.3, "eval"] == losses[0.0, "eval"] == losses[0.0, "train"]


class PersonalWindows(torch.utils.data.Dataset):
    """pwsg training items with a personality, fixed by their index."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        item = {k: v[0] for k, v in batch(b=1, seed=i).items()}
        return {**item, "personality": torch.rand(5, generator=torch.Generator().manual_seed(i))}


def test_a_trained_condition_is_saved_with_the_generator_and_its_penalty_logged(tmp_path):
    import json

    from perfrdiff.config import StageConfig
    from perfrdiff.training.loop import StageTraining, train_stage
    from perfrdiff.weights import load_weights

    overrides = ("pwsg.condition=both", "pwsg.shift_l2=0.5")
    objective = objective_of(*overrides)
    settings = StageConfig(steps=3, batch_size=4, lr=1e-3, val_batches=0, log_every=1)
    weights = train_stage(
        "pwsg", objective, PersonalWindows(), None, StageTraining(tmp_path, settings)
    )
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("shift_penalty" in record for record in logged), logged
    fresh = objective_of(*overrides).model.eval()
    history, personality = torch.randn(2, 250, H), torch.rand(2, 5)
    with torch.no_grad():
        want = objective.model.eval().listener_shifts(history, personality)
        untrained = fresh.listener_shifts(history, personality)
        load_weights(fresh.exported, weights)
        got = fresh.listener_shifts(history, personality)
    assert not torch.equal(untrained["output"].matrix(), want["output"].matrix())
    for name, shift in want.items():
        torch.testing.assert_close(got[name].matrix(), shift.matrix(), rtol=0, atol=0)


def test_a_tuned_denoiser_learns_with_the_generator_and_keeps_its_vae_frozen():
    objective = objective_of("pwsg.tune_denoiser=true")
    model = objective.model
    frozen = snapshot(model.gafrg.vae), snapshot(model.style_encoder)
    before = snapshot(objective.trained)
    for i in range(2):
        step(objective, batch(seed=i))
    assert not changed(frozen[0], model.gafrg.vae) and not changed(frozen[1], model.style_encoder)
    moved = changed(before, objective.trained)
    assert any(k.startswith("generator.") for k in moved)
    # an edited weight, an unedited one and the speaker encoder (the memory carries a gradient)
    for name in ("denoiser.output.weight", "denoiser.query.weight"):
        assert name in moved
    assert any(k.startswith("denoiser.speaker.") for k in moved)
    assert model.gafrg.training and not model.gafrg.vae.training


def test_without_tuning_the_exported_weights_keep_the_generator_layout():
    plain = objective_of()
    assert plain.trained is plain.model.generator
    tuned = objective_of("pwsg.tune_denoiser=true")
    assert tuned.model.exported["denoiser"] is tuned.model.gafrg


@pytest.mark.slow
def test_a_run_with_a_tuned_denoiser_personalises_with_it_and_stays_generic_without(
    tmp_path, synthetic_root
):
    from perfrdiff.run import Run

    from .test_models_prior import trained_run

    _, saved = trained_run(tmp_path, synthetic_root, "pwsg.tune_denoiser=true")
    assert "denoiser.output.weight" in saved and "generator.trunk.0.weight" in saved
    loaded = Run.load(tmp_path, device="cpu")
    generic, personalised = loaded.model("gafrg"), loaded.model("pwsg")
    stage_gafrg = load_file(str(tmp_path / "gafrg" / "model.safetensors"))
    for name in ("output.weight", "query.weight"):
        torch.testing.assert_close(personalised.gafrg.state_dict()[name], saved[f"denoiser.{name}"])
        torch.testing.assert_close(generic.state_dict()[name], stage_gafrg[name])
    assert not torch.equal(saved["denoiser.query.weight"], stage_gafrg["query.weight"])
