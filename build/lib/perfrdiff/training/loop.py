"""The one training loop every stage uses.

A stage provides an :class:`Objective`: an ``nn.Module`` whose ``forward(batch)`` returns the loss
and whose ``trained`` submodule is what gets optimised and saved (frozen parts have
``requires_grad=False``). The loop adds the optimiser and LR schedule, the device (batches in
pinned memory, copied without blocking on CUDA), bf16 autocast with float32 master weights, DDP,
validation, a JSONL metrics log, tqdm progress and resumable checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from perfrdiff.config import StageConfig
from perfrdiff.data.samplers import Reseeded, StepBatchSampler
from perfrdiff.device import autocast, check_precision
from perfrdiff.training.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    newest_intact_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from perfrdiff.training.distributed import (
    Distributed,
    gather_objects,
    mean_scalar,
    replica_divergence,
)
from perfrdiff.training.resume import apply_settings, plan_resume, training_record
from perfrdiff.weights import save_weights

log = logging.getLogger(__name__)

Batch = Mapping[str, Tensor]
BatchSamplerFactory = Callable[[Dataset, int, int, int, int], Sampler[list[int]]]


class Objective(nn.Module):
    """A stage's loss. Subclasses set ``self.trained`` and implement ``forward``."""

    trained: nn.Module

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError


@dataclass
class StageRun:
    """Where a stage writes and how it behaves."""

    out_dir: Path
    config: StageConfig
    seed: int = 0
    resume: bool = False
    num_workers: int = 0
    metadata: Mapping[str, Any] | None = None  # saved next to the final weights
    # Called after each optimiser step with the step count; tests use it to simulate a kill.
    on_step: Callable[[int], None] | None = None
    precision: str = "fp32"  # "bf16": forward passes under bf16 autocast, fp32 weights


def default_batch_sampler(
    dataset: Dataset, batch_size: int, seed: int, start: int, env_rank_world: tuple[int, int]
) -> Sampler[list[int]]:
    rank, world = env_rank_world
    return StepBatchSampler(len(dataset), batch_size, seed, start, rank, world)


def _lr_lambda(config: StageConfig) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 10 % of the base rate."""

    def f(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def make_optimizer(params: list[nn.Parameter], config: StageConfig) -> torch.optim.Optimizer:
    """The stage's optimiser (``adamw`` or ``sgd``) over ``params`` (fused AdamW on CUDA)."""
    if config.optimizer == "adamw":
        fused = all(p.is_cuda for p in params)  # one kernel per step instead of one per tensor
        return torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {config.optimizer!r}")


def _to(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    # From pinned memory the copy is asynchronous: the host goes on to the next batch.
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }


def optimisation_step(
    model: nn.Module,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    grad_clip: float,
    precision: str = "fp32",
) -> tuple[Tensor, dict[str, float]]:
    """One step: forward under ``precision``'s autocast, backward (float32 gradients into the
    float32 master weights), clipping, optimiser update. Returns the objective's output."""
    device = params[0].device
    with autocast(device, precision):
        loss, metrics = model(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss, metrics


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class MetricsLog:
    """Append-only JSONL of training/validation metrics; a resume drops lines past its step.

    A fresh run writes to a hidden file that replaces the old log at :meth:`commit` (its first
    checkpoint), so a run that fails before then leaves the previous log intact.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int) -> None:
        self.path = path
        self.enabled = enabled
        self.pending: Path | None = None
        if not enabled:
            return
        if resume_step:
            kept = []
            if path.is_file():
                kept = [
                    ln
                    for ln in path.read_text().splitlines()
                    if json.loads(ln)["step"] <= resume_step
                ]
            path.write_text("".join(ln + "\n" for ln in kept))
        else:
            self.pending = path.with_name(f".{path.name}.new")
            self.pending.unlink(missing_ok=True)  # left by a run that died before its checkpoint

    def write(self, record: Mapping[str, Any]) -> None:
        if self.enabled:
            with open(self.pending or self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def commit(self) -> None:
        """Make a fresh run's log the stage's log (replacing the previous run's)."""
        if self.pending is not None:
            self.pending.touch()
            os.replace(self.pending, self.path)
            self.pending = None


@torch.no_grad()
def validate(
    objective: Objective, batches: list[Batch], seed: int, precision: str = "fp32"
) -> dict[str, float]:
    """Mean loss and metrics over fixed batches with fixed noise, without touching training RNG."""
    was_training = objective.training
    objective.eval()
    totals: dict[str, float] = {}
    device = next(objective.parameters()).device
    with preserved_rng():
        torch.manual_seed(seed)
        for batch in batches:
            with autocast(device, precision):
                loss, metrics = objective(batch)
            for k, v in {"loss": loss.item(), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + v / len(batches)
    objective.train(was_training)
    return totals


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without consuming any RNG the training steps see (torch, NumPy, Python)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def train_stage(
    name: str,
    objective: Objective,
    train_set: Dataset,
    val_set: Dataset | None,
    run: StageRun,
    env: Distributed | None = None,
    batch_sampler: BatchSamplerFactory | None = None,
) -> Path:
    """Train ``objective.trained`` for ``run.config.steps`` steps; returns the exported weights.

    Writes ``run.out_dir/{checkpoints/, metrics.jsonl, model.safetensors, model.json}``.
    With ``run.resume`` it continues from the newest checkpoint (model, optimiser, scheduler,
    RNG, step) and reaches the same weights as an uninterrupted run.
    """
    env = env or Distributed()
    cfg = run.config
    check_precision(run.precision)
    out_dir = Path(run.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    make_sampler = batch_sampler or (
        lambda ds, bs, seed, start, rw: default_batch_sampler(ds, bs, seed, start, rw)
    )
    seed_everything(run.seed * 1000 + env.rank)
    objective.to(env.device).train()
    params = [p for p in objective.trained.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {name!r}: the trained module has no trainable parameters")
    optimizer = make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))

    how_trained = training_record(name, run.seed, cfg, run.metadata)
    start, resumes = 0, []
    found = newest_intact_checkpoint(ckpt_dir) if run.resume else None
    if found is not None:
        path, saved = found
        plan = plan_resume(name, saved["config"], how_trained, saved["step"], path, env.is_main)
        state = load_checkpoint(
            path, objective.trained, optimizer, scheduler, env.rank, env.world_size
        )
        apply_settings(optimizer, scheduler, cfg)
        start, resumes = state.step, list(state.extra.get("resumes", []))
        if plan.applied:
            resumes.append({"step": start, "changed": plan.applied})
        log.info("%s: resumed from %s at step %d", name, path, start)
    # A fresh run replaces the old checkpoints and metrics only once its first checkpoint exists.
    superseded = [] if found is not None else list_checkpoints(ckpt_dir)
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    metrics_log = MetricsLog(out_dir / "metrics.jsonl", env.is_main, start)

    model: nn.Module = objective
    if env.enabled:
        model = DistributedDataParallel(
            objective, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    try:
        train_batches = make_sampler(
            train_set, cfg.batch_size, run.seed, start, (env.rank, env.world_size)
        )
    except ValueError as error:
        raise ValueError(f"train.{name}.batch_size = {cfg.batch_size}: {error}") from error
    loader = DataLoader(
        Reseeded(train_set, run.seed),
        batch_sampler=train_batches,
        num_workers=run.num_workers,
        pin_memory=env.device.type == "cuda",
        persistent_workers=run.num_workers > 0,
    )
    val_batches: list[Batch] = []
    if val_set is not None and cfg.val_batches > 0 and len(val_set) >= 2:
        with preserved_rng():
            val_batch = min(cfg.batch_size, len(val_set))  # small validation splits
            val_sampler = make_sampler(val_set, val_batch, run.seed + 1, 0, (0, 1))
            val_loader = DataLoader(Reseeded(val_set, run.seed + 1), batch_sampler=val_sampler)
            val_iter = iter(val_loader)
            val_batches = [_to(next(val_iter), env.device) for _ in range(cfg.val_batches)]

    def checkpoint(step: int, extra: dict[str, Any]) -> None:
        states = gather_objects(env, rng_state())
        if env.is_main:
            save_checkpoint(
                ckpt_dir,
                step,
                objective.trained,
                optimizer,
                scheduler,
                states,
                how_trained,
                {**extra, "resumes": resumes},
                supersedes=superseded,
            )
            metrics_log.commit()
        superseded.clear()
        if env.enabled:
            torch.distributed.barrier()

    last_val: dict[str, float] = {}
    if val_batches and start == 0:  # the untrained reference point of the validation curve
        metrics_log.write(
            {"step": 0, "split": "val", **validate(objective, val_batches, run.seed, run.precision)}
        )
    progress = tqdm(total=cfg.steps, initial=start, desc=name, unit="step", disable=not env.is_main)
    with preserved_rng():  # creating a DataLoader iterator draws a seed from the global RNG
        batches = iter(loader)  # infinite: the batch sampler never ends
    for step in range(start + 1, cfg.steps + 1):
        batch = _to(next(batches), env.device)
        loss, metrics = optimisation_step(
            model, batch, optimizer, params, cfg.grad_clip, run.precision
        )
        scheduler.step()
        progress.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            record = {"loss": mean_scalar(env, loss.item()), **metrics}
            progress.set_postfix(loss=f"{record['loss']:.4f}")
            metrics_log.write(
                {"step": step, "split": "train", "lr": scheduler.get_last_lr()[0], **record}
            )
        if val_batches and (step % cfg.val_every == 0 or step == cfg.steps):
            last_val = validate(objective, val_batches, run.seed, run.precision)
            metrics_log.write({"step": step, "split": "val", **last_val})
            if env.is_main:
                log.info(
                    "%s step %d: val %s",
                    name,
                    step,
                    ", ".join(f"{k}={v:.4f}" for k, v in last_val.items()),
                )
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint(step, {"val": last_val})
        if run.on_step is not None:
            run.on_step(step)
    progress.close()

    divergence = replica_divergence(env, objective.trained)
    if env.enabled:
        log.info("%s: replicas differ by at most %.3g after %d steps", name, divergence, cfg.steps)
    final = out_dir / "model.safetensors"
    if env.is_main:
        meta = {
            "stage": name,
            "step": cfg.steps,
            "val": last_val,
            "replica_divergence": divergence,
            "world_size": env.world_size,
            "resumes": resumes,
            **(run.metadata or {}),
        }
        save_weights(objective.trained, final, meta)
        log.info("%s: weights -> %s", name, final)
    if env.enabled:
        torch.distributed.barrier()
    return final
