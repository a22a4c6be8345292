"""Training: one loop, one objective per stage, atomic resumable checkpoints, DDP helpers."""

from perfrdiff.training.checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from perfrdiff.training.loop import Objective, StageRun, train_stage
from perfrdiff.training.stages import (
    load_gafrg,
    load_perfrdiff,
    load_style_encoder,
    load_vae,
    run_training,
    stage_weights,
)

__all__ = [
    "Objective",
    "StageRun",
    "load_checkpoint",
    "load_gafrg",
    "load_perfrdiff",
    "load_style_encoder",
    "load_vae",
    "load_weights",
    "run_training",
    "save_checkpoint",
    "save_weights",
    "stage_weights",
    "train_stage",
]
