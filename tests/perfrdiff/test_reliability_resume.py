"""Issue items 5 and 6: what ``--resume`` may change (applied and recorded, or refused naming each
key), and a fresh run that fails early deletes nothing of the previous one."""

import json
import shutil

import pytest
from perfrdiff.config import ConfigError, config_to_dict, load_config
from perfrdiff.training import ResumeError
from perfrdiff.training.checkpoint import list_checkpoints
from perfrdiff.training.loop import StageTraining, train_stage
from safetensors.torch import load_file

from .training_runs import (  # noqa: F401 (one_thread: autouse)
    RandomWindows,
    objective,
    one_thread,
    stage_config,
    train,
)


def snapshot(directory):
    """Every file under ``directory`` with its bytes: what must survive a refused run."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {p.relative_to(directory): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def killed_at_5(tmp_path_factory):
    out = tmp_path_factory.mktemp("killed")
    assert train(out, kill_at=5) is None
    return out


@pytest.fixture
def killed(tmp_path, killed_at_5):
    shutil.copytree(killed_at_5, tmp_path / "run")
    return tmp_path / "run"


def resumes(run):
    return json.loads((run / "model.json").read_text())["resumes"]


# --- item 5: resume with changed settings -------------------------------------------------------


def test_a_changed_learning_rate_is_applied_and_recorded(killed):
    resumed = train(killed, resume=True, lr=2e-3)
    state = json.loads((killed / "checkpoints" / "step_00000006" / "state.json").read_text())
    group = state["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 2e-3 and state["scheduler"]["base_lrs"] == [2e-3]
    assert resumes(killed) == [{"step": 4, "changed": {"train.gafrg.lr": [1e-3, 2e-3]}}]
    assert state["config"]["settings"]["lr"] == 2e-3
    assert resumed is not None


def test_unchanged_settings_record_no_resume(killed):
    train(killed, resume=True)
    assert resumes(killed) == []


def test_more_steps_continue_the_run(killed):
    train(killed, resume=True, steps=8)
    assert json.loads((killed / "model.json").read_text())["step"] == 8
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == list(range(1, 9))
    assert resumes(killed) == [{"step": 4, "changed": {"train.gafrg.steps": [6, 8]}}]


@pytest.mark.parametrize("steps", [3, 1])
def test_steps_below_the_checkpoint_are_refused(killed, steps):
    before = snapshot(killed)
    message = rf"train\.gafrg\.steps: 6 -> {steps} \(below the checkpoint's step 4\)"
    with pytest.raises(ResumeError, match=message):
        train(killed, resume=True, steps=steps)
    assert snapshot(killed) == before  # no weights labelled with the smaller step


def test_steps_below_a_finished_run_are_refused(tmp_path):
    train(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ResumeError, match=r"steps: 6 -> 4 \(below the checkpoint's step 6\)"):
        train(tmp_path, resume=True, steps=4)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 2}, r"train\.gafrg\.batch_size: 4 -> 2"),
        ({"optimizer": "sgd"}, r"train\.gafrg\.optimizer: 'adamw' -> 'sgd'"),
        ({"seed": 4}, r"seed: 3 -> 4"),
        (
            {"seed": 5, "batch_size": 8, "optimizer": "sgd"},
            r"seed: 3 -> 5; train\.gafrg\.batch_size: 4 -> 8; "
            r"train\.gafrg\.optimizer: 'adamw' -> 'sgd'\. Restore these settings",
        ),
    ],
)
def test_incompatible_changes_are_refused_naming_each_key(killed, change, message):
    before = snapshot(killed)
    with pytest.raises(ResumeError, match=message):
        train(killed, resume=True, **change)
    assert snapshot(killed) == before


def test_model_config_changes_are_refused_and_generation_settings_ignored(tmp_path):
    def record(config):
        return {"config": config_to_dict(config)}

    assert train(tmp_path, kill_at=3, metadata=record(load_config("tiny"))) is None
    with pytest.raises(ResumeError, match=r"denoiser\.ffn_dim: 128 -> 256"):
        train(tmp_path, resume=True, metadata=record(load_config("tiny", ["denoiser.ffn_dim=256"])))
    sampling = ["diffusion.guidance=2.0", "diffusion.spacing=uniform", "diffusion.eta=0.5"]
    generation = load_config("tiny", [*sampling, "generate.samples=3"])
    train(tmp_path, resume=True, metadata=record(generation))
    assert resumes(tmp_path) == []


# --- item 6: a fresh run deletes nothing before its first checkpoint ----------------------------


@pytest.fixture
def finished(tmp_path):
    train(tmp_path / "run")
    return tmp_path / "run"


def test_batch_larger_than_the_data_fails_before_deleting(finished):
    before = snapshot(finished)
    with pytest.raises(ValueError, match=r"train\.gafrg\.batch_size = 32: dataset of 16 items"):
        train(finished, batch_size=32)
    assert snapshot(finished) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [({"steps": "abc"}, "steps: expected an integer"), ({"ckpt_every": 0}, "ckpt_every: must be")],
)
def test_invalid_settings_fail_before_deleting(finished, change, message):
    before = snapshot(finished)
    with pytest.raises(ConfigError, match=message):
        train(finished, **change)
    assert snapshot(finished) == before


def test_a_run_killed_before_its_first_checkpoint_deletes_nothing(finished):
    before = snapshot(finished)
    assert train(finished, kill_at=1) is None
    after = snapshot(finished)
    assert {k: v for k, v in after.items() if not k.name.startswith(".")} == before


def test_the_first_new_checkpoint_replaces_the_old_run(finished):
    train(finished, kill_at=3, seed=4)
    assert [p.name for p in list_checkpoints(finished / "checkpoints")] == ["step_00000002"]
    lines = [json.loads(x) for x in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3]
    assert not list(finished.glob(".metrics*"))
    resumed = train(finished, resume=True, seed=4)  # the new run resumes normally
    assert resumed is not None


def test_batch_size_error_names_the_key_for_direct_calls(tmp_path):
    run = StageTraining(tmp_path, stage_config(batch_size=17), seed=0)
    with pytest.raises(ValueError, match=r"train\.gafrg\.batch_size = 17"):
        train_stage("gafrg", objective(), RandomWindows(), None, run)
    assert not (tmp_path / "checkpoints").exists()


def test_a_diverged_stage_stops_named_and_leaves_the_previous_weights(tmp_path):
    from perfrdiff.training.loop import TrainingDiverged

    train(tmp_path, steps=2, ckpt_every=1)
    weights = (tmp_path / "model.safetensors").read_bytes()
    meta = (tmp_path / "model.json").read_bytes()
    message = (
        r"gafrg: training diverged at step \d+ .*not finite.*Lower train\.gafrg\.lr \(now "
        r"1e\+30\).*skip_nonfinite"
    )
    with pytest.raises(TrainingDiverged, match=message):
        train(tmp_path, lr=1e30, warmup_steps=0)
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert (tmp_path / "model.json").read_bytes() == meta
    for checkpoint in (tmp_path / "checkpoints").iterdir():  # what is left is finite
        state = load_file(str(checkpoint / "model.safetensors"))
        assert all(t.isfinite().all() for t in state.values())


def test_non_finite_steps_can_be_skipped_a_bounded_number_of_times(tmp_path, monkeypatch):
    import perfrdiff.training.loop as loop
    from perfrdiff.training.loop import TrainingDiverged

    real = loop.optimisation_step
    calls = []

    def every_third_not_finite(model, batch, optimizer, params, grad_clip, precision="fp32"):
        calls.append(1)
        if len(calls) % 3 == 0:  # what a non-finite gradient does: nothing
            loss, metrics, _ = real(model, batch, optimizer, params, grad_clip, precision)
            return loss, metrics, False
        return real(model, batch, optimizer, params, grad_clip, precision)

    monkeypatch.setattr(loop, "optimisation_step", every_third_not_finite)
    assert train(tmp_path / "allowed", skip_nonfinite=2) is not None  # steps 3 and 6 skipped
    calls.clear()
    with pytest.raises(TrainingDiverged, match="at step 6"):
        train(tmp_path / "refused", skip_nonfinite=1)
