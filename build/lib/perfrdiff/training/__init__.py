"""Training: the stage registry, one loop, one objective per stage, resumable checkpoints, DDP."""

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    newest_intact_checkpoint,
    save_checkpoint,
    save_weights,
    verify_checkpoint,
)
from perfrdiff.training.loop import Objective, StageRun, train_stage
from perfrdiff.training.resume import ResumeError, check_resume, plan_resume
from perfrdiff.training.rundir import (
    RunDirLocked,
    StageMismatch,
    check_stage,
    run_dir_lock,
    stage_weights,
)
from perfrdiff.training.stages import STAGE_REGISTRY, Stage, run_training, stage

__all__ = [
    "STAGE_REGISTRY",
    "CheckpointError",
    "Objective",
    "ResumeError",
    "RunDirLocked",
    "Stage",
    "StageMismatch",
    "StageRun",
    "check_resume",
    "check_stage",
    "load_checkpoint",
    "load_weights",
    "newest_intact_checkpoint",
    "plan_resume",
    "run_dir_lock",
    "run_training",
    "save_checkpoint",
    "save_weights",
    "stage",
    "stage_weights",
    "train_stage",
    "verify_checkpoint",
]
