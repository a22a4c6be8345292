"""Checkpoints and resume: a run killed at any step continues to the uninterrupted result."""

import json

import pytest
import torch
from perfrdiff.training.checkpoint import list_checkpoints
from perfrdiff.training.loop import StageTraining, train_stage

from .training_runs import (  # noqa: F401 (one_thread: an autouse fixture)
    Killed,
    RandomWindows,
    objective,
    one_thread,
    stage_config,
    train,
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(tmp_path_factory.mktemp("full"))


@pytest.mark.parametrize("kill_at", [2, 3, 5])
def test_resumed_run_matches_uninterrupted_run(tmp_path, uninterrupted, kill_at):
    assert train(tmp_path, kill_at=kill_at) is None
    resumed = train(tmp_path, resume=True)
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_runs_with_different_seeds_differ(tmp_path, uninterrupted):
    run = StageTraining(tmp_path, stage_config(), seed=4)
    obj = objective()
    train_stage("gafrg", obj, RandomWindows(), None, run)
    assert not torch.equal(obj.trained.output.weight, uninterrupted["output.weight"])


def test_only_the_newest_complete_checkpoints_are_kept(tmp_path):
    train(tmp_path)
    names = [p.name for p in list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step_00000004", "step_00000006"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".tmp" in p.name]


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path):
    train(tmp_path, kill_at=5)
    train(tmp_path, resume=True)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_steps = [x["step"] for x in lines if x["split"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]


def test_final_weights_and_metadata_are_exported(tmp_path):
    train(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["step"] == 6 and "loss" in meta["val"]
    assert (tmp_path / "model.safetensors").is_file()


def test_unknown_optimizer_is_named(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        train(tmp_path, optimizer="lion")


def test_resume_matches_with_the_real_window_dataset(tmp_path, synthetic_root):
    # WindowDataset draws window starts and history clips from its own RNG; resuming must
    # reproduce those draws too (the loop reseeds every item from (seed, epoch, item)).
    from perfrdiff.data import WindowDataset

    windows = WindowDataset(synthetic_root, "train")

    def run(out_dir, resume=False, kill_at=None):
        def on_step(step):
            if step == kill_at:
                raise Killed

        config = stage_config(steps=4, batch_size=2, val_batches=0)
        obj = objective()
        try:
            train_stage(
                "gafrg",
                obj,
                windows,
                None,
                StageTraining(out_dir, config, 3, resume, 0, None, on_step),
            )
        except Killed:
            return None
        return obj.trained.state_dict()

    full = run(tmp_path / "full")
    assert run(tmp_path / "killed", kill_at=3) is None
    resumed = run(tmp_path / "killed", resume=True)
    for name, value in full.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_bf16_autocast_steps_train_float32_master_weights(tmp_path):
    run = StageTraining(tmp_path, stage_config(steps=2, val_batches=0), seed=3, precision="bf16")
    obj = objective()
    train_stage("gafrg", obj, RandomWindows(), None, run)
    assert all(p.dtype == torch.float32 for p in obj.trained.parameters())
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)


def test_training_steps_flush_denormals_and_leave_the_default_after(tmp_path):
    tiny = torch.tensor([1e-40])  # a denormal float32
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(False)
    seen = []
    run = StageTraining(
        tmp_path, stage_config(steps=2), 0, on_step=lambda step: seen.append((tiny * 1).item())
    )
    train_stage("gafrg", objective(), RandomWindows(), RandomWindows(), run)
    assert seen == [0.0, 0.0]  # flushed during the steps
    assert (tiny * 1).item() > 0  # and not after
