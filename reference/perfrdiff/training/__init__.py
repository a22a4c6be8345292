"""Training: the stage registry, one loop, one objective per stage, resumable checkpoints, DDP."""

from perfrdiff.training.checkpoint import load_checkpoint, save_checkpoint
from perfrdiff.training.loop import Objective, StageRun, train_stage
from perfrdiff.training.stages import STAGE_REGISTRY, Stage, run_training, stage

__all__ = [
    "STAGE_REGISTRY",
    "Objective",
    "Stage",
    "StageRun",
    "load_checkpoint",
    "run_training",
    "save_checkpoint",
    "stage",
    "train_stage",
]
