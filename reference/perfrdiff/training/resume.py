"""What ``--resume`` may change: settings that can be applied mid-run are applied and recorded,
the others are refused before anything is loaded, naming each key (old -> new).

A checkpoint records the stage's settings, the seed, the run's config and the earlier stages'
SHA-256 (:func:`training_record`). Resuming compares that with the new run, by the role each
config field declares (:class:`perfrdiff.config.Role`, :func:`perfrdiff.changes.resume_changes`):

* applied: the values the stage's training reads that are declared resumable — the stage's
  ``steps`` (not below the checkpoint's step), ``lr``, ``weight_decay``, ``warmup_steps``,
  ``grad_clip``, ``val_every``, ``val_batches``, ``ckpt_every``, ``log_every``, and
  ``data.root`` (the data may have moved);
* refused: the other values the stage's training reads or that define a stage it is built on
  (``batch_size``, ``optimizer``, ``seed``, model sizes, the schedule), and earlier stages
  retrained since the checkpoint;
* ignored: everything else (other stages' settings, sampling, threads, loader workers).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from perfrdiff.changes import resume_changes
from perfrdiff.config import Config, StageConfig
from perfrdiff.rundir import stage_record
from perfrdiff.training.checkpoint import newest_intact_checkpoint

log = logging.getLogger(__name__)


class ResumeError(ValueError):
    """The new run's settings cannot continue the checkpoint; names each key (old -> new)."""


@dataclass
class ResumePlan:
    """The changes a resume applies: ``dotted key -> (old, new)``."""

    step: int
    applied: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def training_record(
    stage: str, seed: int, settings: StageConfig, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What a checkpoint of ``stage`` records about how it is trained."""
    return {
        "stage": stage,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        **(metadata or {}),
    }


def _as_config(record: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """A training record's config with the stage's own settings and seed in their config places
    (``train.<stage>.*``, ``seed``): a record need not hold a whole config."""
    config = copy.deepcopy(dict(record.get("config", {})))
    config.setdefault("train", {})[stage] = dict(record.get("settings", {}))
    config["seed"] = record.get("seed")
    return config


def _other_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Differences in the rest of the records: retrained earlier stages, other metadata."""
    compared = set(saved) & set(current) - {"stage", "seed", "settings", "config"}
    refused = []
    for key in sorted(compared):
        if key == "depends_on":
            for upstream in sorted(set(saved[key]) & set(current[key])):
                if saved[key][upstream] != current[key][upstream]:
                    refused.append(f"the {upstream} stage has been retrained since the checkpoint")
        elif saved[key] != current[key]:
            refused.append(f"{key}: {saved[key]!r} -> {current[key]!r}")
    return refused


def plan_resume(
    stage: str,
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    step: int,
    where: Path,
    announce: bool = True,
) -> ResumePlan:
    """Compare a checkpoint's record (:func:`training_record`) with the new run's.

    Args:
        saved: the checkpoint's record.
        current: the new run's record.
        step: the checkpoint's step.
        where: the checkpoint (for messages).
        announce: log the applied changes.

    Raises:
        ResumeError: listing every change that cannot be applied.
    """
    applied, refused_values = resume_changes(
        _as_config(saved, stage), _as_config(current, stage), stage
    )
    refused = [f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused_values.items()]
    steps = f"train.{stage}.steps"
    if steps in applied and applied[steps][1] < step:
        old, new = applied.pop(steps)
        refused.append(f"{steps}: {old!r} -> {new!r} (below the checkpoint's step {step})")
    refused += _other_differences(saved, current)
    plan = ResumePlan(step, applied)
    if refused:
        raise ResumeError(
            f"cannot resume {stage} from {where}: " + "; ".join(refused) + ". Restore these "
            "settings, or train without --resume to start the stage again."
        )
    if plan.applied and announce:
        log.warning(
            "%s: resuming at step %d with changed settings: %s",
            stage,
            step,
            ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in plan.applied.items()),
        )
    return plan


def apply_settings(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    settings: StageConfig,
) -> None:
    """Put ``settings``' learning rate and weight decay into a restored optimiser and schedule.

    The schedule's multiplier is rebuilt from ``settings`` (``steps``, ``warmup_steps``) by the
    caller; with unchanged settings this reproduces the restored values exactly.
    """
    scheduler.base_lrs = [settings.lr for _ in optimizer.param_groups]
    for group, multiplier in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = settings.lr
        group["weight_decay"] = settings.weight_decay
        group["lr"] = settings.lr * multiplier(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def check_resume(config: Config, run_dir: str | Path, stages: Sequence[str]) -> None:
    """Check, before anything is written, that every stage in ``stages`` can resume under
    ``config`` (stages without a checkpoint start fresh).

    Raises:
        ResumeError: for the first stage that cannot.
    """
    for stage in stages:
        found = newest_intact_checkpoint(Path(run_dir) / stage / "checkpoints")
        if found is None:
            continue
        path, state = found
        current = training_record(
            stage, config.seed, config.stage(stage), stage_record(config, run_dir, stage)
        )
        plan_resume(stage, state["config"], current, state["step"], path, announce=False)
