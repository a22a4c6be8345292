"""Training: :func:`train_run` trains a run's stages (the registry, :mod:`perfrdiff.stages`),
through one loop, one objective per stage, resumable checkpoints, DDP."""

import warnings

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.rundir import RunDirLocked, StageMismatch, check_stage, run_dir_lock
from perfrdiff.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    newest_intact_checkpoint,
    save_checkpoint,
    save_weights,
    verify_checkpoint,
)
from perfrdiff.training.loop import Objective, StageTraining, TrainingDiverged, train_stage
from perfrdiff.training.resume import ResumeError, check_resume, plan_resume
from perfrdiff.training.train import check_can_train, train_run, train_stage_of

__all__ = [
    "CheckpointError",
    "Objective",
    "ResumeError",
    "RunDirLocked",
    "StageMismatch",
    "StageTraining",
    "TrainingDiverged",
    "check_can_train",
    "check_resume",
    "check_stage",
    "load_checkpoint",
    "load_weights",
    "newest_intact_checkpoint",
    "plan_resume",
    "run_dir_lock",
    "save_checkpoint",
    "save_weights",
    "train_run",
    "train_stage",
    "train_stage_of",
    "verify_checkpoint",
]

#: Names of the previous release, served for one more release with a ``DeprecationWarning``.
_RENAMED = {"StageRun": "StageTraining"}  # a stage's training settings, not a Run


def __getattr__(name: str):
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} is deprecated and will be removed in the next release; use "
        f"{__name__}.{new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
