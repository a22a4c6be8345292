"""Issue item 8: one training at a time per run directory, and stages that are used only with
the config and the earlier stages they were trained with."""

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest
from perfrdiff import Run, training
from perfrdiff.cli import main
from perfrdiff.config import load_config, save_config
from perfrdiff.training import (
    ResumeError,
    RunDirLocked,
    StageMismatch,
    check_stage,
    run_dir_lock,
)

from .training_runs import one_thread  # noqa: F401 (autouse)

QUICK = ["steps=2", "batch_size=4", "val_every=2", "ckpt_every=1", "val_batches=1", "log_every=1"]


def run_training(stage, cfg, run_dir, resume=False):
    return training.train_run(Run(cfg, run_dir, device="cpu"), [stage], resume=resume)[stage]


def build_sampler(cfg, run_dir, personalised):
    return Run(cfg, run_dir, device="cpu").sampler("personalised" if personalised else "generic")


def config(root, *overrides):
    quick = [f"train.{s}.{q}" for s in ("emotion-vae", "gafrg", "pwsg", "style") for q in QUICK]
    return load_config("tiny", [f"data.root={root}", *quick, *overrides])


@pytest.fixture(scope="module")
def trained_500(synthetic_root, tmp_path_factory):
    """emotion-vae and gafrg trained with diffusion.train_steps = 500."""
    run = tmp_path_factory.mktemp("run500")
    cfg = config(synthetic_root, "diffusion.train_steps=500")
    for stage in ("emotion-vae", "gafrg"):
        run_training(stage, cfg, run)
    save_config(cfg, run / "config.yaml")
    return run


@pytest.fixture
def run_500(trained_500, tmp_path):
    shutil.copytree(trained_500, tmp_path / "run")
    return tmp_path / "run"


def _hold(run_dir: Path, ready, release) -> None:
    with run_dir_lock(run_dir):
        ready.set()
        release.wait()


class LockHolder:
    """Another process (forked: no re-import) that holds ``run_dir``'s lock until released."""

    def __init__(self, run_dir: Path) -> None:
        context = multiprocessing.get_context("fork")
        self.ready, self.release = context.Event(), context.Event()
        self.process = context.Process(target=_hold, args=(run_dir, self.ready, self.release))
        self.process.start()
        assert self.ready.wait(30)
        self.pid = self.process.pid

    def stop(self, kill: bool = False) -> int:
        self.process.kill() if kill else self.release.set()
        self.process.join(30)
        return self.process.exitcode


def test_a_second_training_into_a_locked_run_dir_is_refused(synthetic_root, tmp_path):
    run = tmp_path / "run"
    holder = LockHolder(run)
    try:
        argv = ["train", "emotion-vae", "--run-dir", str(run), "--data-root", str(synthetic_root)]
        with pytest.raises(RunDirLocked, match=rf"being trained by another process \(pid "
                           rf"{holder.pid} on .*\); wait for it"):  # fmt: skip
            main(argv + [f"--set=train.emotion-vae.{q}" for q in QUICK])
        with pytest.raises(RunDirLocked):
            run_training("emotion-vae", config(synthetic_root), run)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing else written
    finally:
        holder.stop(kill=True)  # the OS releases a killed holder's lock
    run_training("emotion-vae", config(synthetic_root), run)
    assert (run / "emotion-vae" / "model.safetensors").is_file()


def test_the_lock_is_held_once_and_released_after(tmp_path):
    # Training takes the lock once (train_run): a second take, even in the same process, is
    # another training of the same directory.
    with run_dir_lock(tmp_path), run_dir_lock(tmp_path, enabled=False):
        second = run_dir_lock(tmp_path)
        with pytest.raises(RunDirLocked, match="being trained by another process"):
            second.__enter__()
    holder = LockHolder(tmp_path)  # free again: another process can take it
    assert holder.stop() == 0


def test_a_stage_trained_under_another_schedule_is_refused(run_500, synthetic_root):
    default = config(synthetic_root)  # diffusion.train_steps = 1000
    message = r"gafrg/model\.safetensors does not fit this run: diffusion\.train_steps: trained " \
              r"with 500, now 1000"  # fmt: skip
    with pytest.raises(StageMismatch, match=message):
        run_training("pwsg", default, run_500)
    assert not (run_500 / "pwsg").exists()
    with pytest.raises(StageMismatch, match=message):
        build_sampler(default, run_500, personalised=False)
    build_sampler(config(synthetic_root, "diffusion.train_steps=500"), run_500, False)


def test_model_size_changes_are_named_before_loading(run_500, synthetic_root):
    wider = config(synthetic_root, "diffusion.train_steps=500", "emotion_vae.latent_dim=16")
    with pytest.raises(StageMismatch, match=r"emotion_vae\.latent_dim: trained with 32, now 16"):
        run_training("gafrg", wider, run_500)


def test_a_retrained_earlier_stage_makes_later_stages_stale(run_500, synthetic_root):
    cfg = config(synthetic_root, "diffusion.train_steps=500")
    retrained = config(synthetic_root, "diffusion.train_steps=500", "train.emotion-vae.lr=0.01")
    run_training("emotion-vae", retrained, run_500)
    with pytest.raises(StageMismatch, match="the emotion-vae stage it was trained against has "
                       "been retrained since"):  # fmt: skip
        check_stage(run_500, "gafrg", cfg)
    checkpoints = sorted((run_500 / "gafrg" / "checkpoints").iterdir())
    with pytest.raises(ResumeError, match="the emotion-vae stage has been retrained since"):
        run_training("gafrg", retrained, run_500, resume=True)
    assert sorted((run_500 / "gafrg" / "checkpoints").iterdir()) == checkpoints


def test_gafrg_records_what_it_was_trained_against(run_500):
    meta = json.loads((run_500 / "gafrg" / "model.json").read_text())
    vae = json.loads((run_500 / "emotion-vae" / "model.json").read_text())
    assert meta["depends_on"] == {"emotion-vae": vae["sha256"]}
    assert meta["config"]["diffusion"]["train_steps"] == 500


def test_weights_without_a_record_are_used_with_a_warning(run_500, synthetic_root, caplog):
    meta_path = run_500 / "gafrg" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({"stage": "gafrg", "sha256": meta["sha256"]}))
    check_stage(run_500, "gafrg", config(synthetic_root))
    assert "records no training config" in caplog.text


def test_resume_refusal_happens_before_config_yaml_is_rewritten(run_500, synthetic_root):
    saved = (run_500 / "config.yaml").read_text()
    argv = ["train", "gafrg", "--resume", "--run-dir", str(run_500), "--data-root",
            str(synthetic_root), "--set", "diffusion.train_steps=500", "--set",
            "train.gafrg.batch_size=2"]  # fmt: skip
    argv += [f"--set=train.gafrg.{q}" for q in QUICK if not q.startswith("batch_size")]
    with pytest.raises(ResumeError, match=r"train\.gafrg\.batch_size: 4 -> 2"):
        main(argv)
    assert (run_500 / "config.yaml").read_text() == saved


def test_values_that_only_shape_training_may_differ(run_500, synthetic_root):
    changed = ["diffusion.train_steps=500", "emotion_vae.kl_weight=0.5", "denoiser.dropout=0.3"]
    check_stage(run_500, "gafrg", config(synthetic_root, *changed))


def test_another_diffusion_target_is_refused_at_generate_train_and_resume(run_500, synthetic_root):
    # diffusion.prediction defines what the denoiser's output means (its role, perfrdiff.config).
    trained = config(synthetic_root, "diffusion.train_steps=500")
    was = trained.diffusion.prediction
    other = "x0" if was == "v" else "v"
    changed = config(synthetic_root, "diffusion.train_steps=500", f"diffusion.prediction={other}")
    message = rf"diffusion\.prediction: trained with '{was}', now '{other}'"
    with pytest.raises(StageMismatch, match=message):
        build_sampler(changed, run_500, personalised=False)
    saved = (run_500 / "config.yaml").read_text()
    with pytest.raises(StageMismatch, match=message):
        run_training("pwsg", changed, run_500)
    assert (run_500 / "config.yaml").read_text() == saved  # refused before it is rewritten
    with pytest.raises(ResumeError, match=rf"diffusion\.prediction: '{was}' -> '{other}'"):
        run_training("gafrg", changed, run_500, resume=True)
    build_sampler(trained, run_500, personalised=False)  # the trained target still loads
