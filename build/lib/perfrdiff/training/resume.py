"""What ``--resume`` may change: settings that can be applied mid-run are applied and recorded,
the others are refused before anything is loaded, naming each key (old -> new).

A checkpoint records the stage's settings, the seed, the run's config and the earlier stages'
SHA-256 (:func:`training_record`). Resuming compares that with the new run:

* applied: ``steps`` (not below the checkpoint's step), ``lr``, ``weight_decay``,
  ``warmup_steps``, ``grad_clip``, ``val_every``, ``val_batches``, ``ckpt_every``, ``log_every``,
  and ``data.root`` (the data may have moved);
* ignored: settings of other stages and of generation (``generate.*``, ``diffusion.sample_steps``,
  ``diffusion.guidance``, ``diffusion.eta``), ``data.num_workers``, ``threads``;
* refused: everything else — ``batch_size``, ``optimizer``, ``seed``, model sizes, the schedule,
  and earlier stages retrained since the checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from perfrdiff.config import SAMPLING_ONLY, Config, StageConfig
from perfrdiff.training.checkpoint import newest_intact_checkpoint
from perfrdiff.training.rundir import flat_keys, stage_record

log = logging.getLogger(__name__)

APPLIED_SETTINGS = (
    "steps", "lr", "weight_decay", "warmup_steps", "grad_clip",
    "val_every", "val_batches", "ckpt_every", "log_every",
)  # fmt: skip
APPLIED_CONFIG = ("data.root",)
IGNORED_CONFIG = (
    "train", "generate", *SAMPLING_ONLY,
    "data.num_workers", "threads", "seed",  # the stage's own settings and seed come separately
)  # fmt: skip


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


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any], stage: str) -> dict:
    """``user-facing dotted key -> (old, new)`` over what both records hold."""
    old, new = flat_keys(saved), flat_keys(current)
    out = {}
    for key in sorted(set(old) & set(new)):
        if old[key] == new[key] or key == "stage":
            continue
        if key.startswith("settings."):
            name = f"train.{stage}.{key.removeprefix('settings.')}"
        elif key.startswith("config."):
            name = key.removeprefix("config.")
            if _under(name, IGNORED_CONFIG):
                continue
        else:
            name = key  # seed, depends_on.<stage>
        out[name] = (old[key], new[key])
    return out


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
    plan = ResumePlan(step)
    refused = []
    for key, (old, new) in _differences(saved, current, stage).items():
        setting = key.removeprefix(f"train.{stage}.")
        if setting == "steps" and new < step:
            refused.append(f"{key}: {old!r} -> {new!r} (below the checkpoint's step {step})")
        elif key.startswith("depends_on."):
            upstream = key.removeprefix("depends_on.")
            refused.append(f"the {upstream} stage has been retrained since the checkpoint")
        elif (key != setting and setting in APPLIED_SETTINGS) or key in APPLIED_CONFIG:
            plan.applied[key] = (old, new)
        else:
            refused.append(f"{key}: {old!r} -> {new!r}")
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
