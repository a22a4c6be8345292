"""Run-directory lock and stage records: they live in :mod:`perfrdiff.rundir` (inference checks
stage records too, and never imports training); re-exported here for the training code."""

from perfrdiff.rundir import (
    DEFINED_BY,
    LOCK_NAME,
    TRAINING_ONLY,
    UPSTREAM,
    RunDirLocked,
    StageMismatch,
    check_stage,
    config_differences,
    flat_keys,
    load_stage_weights,
    run_dir_lock,
    stage_record,
    stage_weights,
)

__all__ = [
    "DEFINED_BY",
    "LOCK_NAME",
    "TRAINING_ONLY",
    "UPSTREAM",
    "RunDirLocked",
    "StageMismatch",
    "check_stage",
    "config_differences",
    "flat_keys",
    "load_stage_weights",
    "run_dir_lock",
    "stage_record",
    "stage_weights",
]
