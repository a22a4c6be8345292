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
from dataclasses import dataclass, field
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
    CheckpointWriter,
    list_checkpoints,
    load_checkpoint,
    newest_intact_checkpoint,
    rng_state,
    set_rng_state,
)
from perfrdiff.training.distributed import Distributed, mean_scalar, replica_divergence
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
class StageTraining:
    """One stage's training: where it writes and how it behaves (a `Run` is the whole run)."""

    out_dir: Path
    config: StageConfig
    seed: int = 0
    resume: bool = False
    num_workers: int = 0
    metadata: Mapping[str, Any] | None = None  # saved next to the final weights
    # Called after each optimiser step with the step count; tests use it to simulate a kill.
    on_step: Callable[[int], None] | None = None
    precision: str = "fp32"  # "bf16": forward passes under bf16 autocast, fp32 weights

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)


def default_batch_sampler(
    dataset: Dataset, batch_size: int, seed: int, start: int, env_rank_world: tuple[int, int]
) -> Sampler[list[int]]:
    """Uniform batches of ``batch_size`` (this rank's share), from step ``start + 1`` on."""
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


class TrainingDiverged(FloatingPointError):
    """A stage's loss or gradient stopped being finite: the stage stopped, nothing was exported,
    and the weights it would have replaced are as they were."""


def optimisation_step(
    model: nn.Module,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    grad_clip: float,
    precision: str = "fp32",
) -> tuple[Tensor, dict[str, float], bool]:
    """One step: forward under ``precision``'s autocast, backward (float32 gradients into the
    float32 master weights), clipping, optimiser update. Returns the objective's output and
    whether the update was applied: a step whose loss or gradient norm is not finite changes
    nothing (as a mixed-precision scaler skips an overflowing step)."""
    device = params[0].device
    with autocast(device, precision):
        loss, metrics = model(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # The norm is computed (and clipping applied when grad_clip > 0) in one pass; under DDP the
    # gradients are already reduced, so every rank takes the same decision.
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf)
    if not bool(torch.isfinite(norm) & torch.isfinite(loss.detach())):
        optimizer.zero_grad(set_to_none=True)
        return loss, metrics, False
    optimizer.step()
    return loss, metrics, True


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

    def discard(self) -> None:
        """Remove a fresh run's log that was never committed (the run failed before its first
        checkpoint): the previous run's log stays the stage's, and no temporary is left."""
        if self.pending is not None:
            self.pending.unlink(missing_ok=True)
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


@dataclass
class Resumed:
    """Where a stage's training starts: step 0, or a checkpoint's step and its resume history."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    from_checkpoint: bool = False


def resume_state(
    name: str,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    run: StageTraining,
    how_trained: Mapping[str, Any],
    env: Distributed,
) -> Resumed:
    """With ``run.resume``, restore the newest intact checkpoint into ``trained``, ``optimizer``
    and ``scheduler`` (after checking its record against ``how_trained``) and apply the changed
    settings the resume allows; otherwise start at step 0."""
    found = newest_intact_checkpoint(run.out_dir / "checkpoints") if run.resume else None
    if found is None:
        return Resumed()
    path, saved = found
    plan = plan_resume(name, saved["config"], how_trained, saved["step"], path, env.is_main)
    state = load_checkpoint(path, trained, optimizer, scheduler, env.rank, env.world_size)
    apply_settings(optimizer, scheduler, run.config)
    history = list(state.extra.get("resumes", []))
    if plan.applied:
        history.append({"step": state.step, "changed": plan.applied})
    log.info("%s: resumed from %s at step %d", name, path, state.step)
    return Resumed(state.step, history, from_checkpoint=True)


def training_loader(
    name: str,
    dataset: Dataset,
    run: StageTraining,
    env: Distributed,
    make_sampler: BatchSamplerFactory,
    start: int,
) -> Iterator[Batch]:
    """The endless stream of training batches from step ``start + 1`` on (this rank's share)."""
    cfg = run.config
    try:
        batches = make_sampler(dataset, cfg.batch_size, run.seed, start, (env.rank, env.world_size))
    except ValueError as error:
        raise ValueError(f"train.{name}.batch_size = {cfg.batch_size}: {error}") from error
    loader = DataLoader(
        Reseeded(dataset, run.seed),
        batch_sampler=batches,
        num_workers=run.num_workers,
        pin_memory=env.device.type == "cuda",
        persistent_workers=run.num_workers > 0,
    )
    with preserved_rng():  # creating a DataLoader iterator draws a seed from the global RNG
        return iter(loader)  # infinite: the batch sampler never ends


def validation_batches(
    dataset: Dataset | None, run: StageTraining, env: Distributed, make_sampler: BatchSamplerFactory
) -> list[Batch]:
    """``val_batches`` fixed batches of ``dataset`` on the device (none without one)."""
    cfg = run.config
    if dataset is None or cfg.val_batches == 0 or len(dataset) < 2:
        return []
    with preserved_rng():
        size = min(cfg.batch_size, len(dataset))  # small validation splits
        sampler = make_sampler(dataset, size, run.seed + 1, 0, (0, 1))
        batches = iter(DataLoader(Reseeded(dataset, run.seed + 1), batch_sampler=sampler))
        return [_to(next(batches), env.device) for _ in range(cfg.val_batches)]


def train_stage(
    name: str,
    objective: Objective,
    train_set: Dataset,
    val_set: Dataset | None,
    run: StageTraining,
    env: Distributed | None = None,
    batch_sampler: BatchSamplerFactory | None = None,
) -> Path:
    """Train ``objective.trained`` for ``run.config.steps`` steps; returns the exported weights.

    Writes ``run.out_dir/{checkpoints/, metrics.jsonl, model.safetensors, model.json}``.
    With ``run.resume`` it continues from the newest checkpoint (model, optimiser, scheduler,
    RNG, step) and reaches the same weights as an uninterrupted run.
    """
    env = env or Distributed()
    check_precision(run.precision)
    make_sampler = batch_sampler or default_batch_sampler
    seed_everything(run.seed * 1000 + env.rank)
    objective.to(env.device).train()
    params = [p for p in objective.trained.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"stage {name!r}: the trained module has no trainable parameters")
    optimizer = make_optimizer(params, run.config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(run.config))
    how_trained = training_record(name, run.seed, run.config, run.metadata)
    resumed = resume_state(name, objective.trained, optimizer, scheduler, run, how_trained, env)
    if env.is_main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
    metrics_log = MetricsLog(run.out_dir / "metrics.jsonl", env.is_main, resumed.step)
    checkpoint = CheckpointWriter(
        run.out_dir / "checkpoints",
        objective.trained,
        optimizer,
        scheduler,
        how_trained,
        env,
        # A fresh run replaces the old checkpoints and log only once its first checkpoint exists.
        supersedes=[] if resumed.from_checkpoint else list_checkpoints(run.out_dir / "checkpoints"),
        on_written=metrics_log.commit,
    )
    model: nn.Module = objective
    if env.enabled:
        model = DistributedDataParallel(
            objective, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    guard = NonFiniteGuard(name, run)
    steps = StepLoop(
        name, objective, model, optimizer, scheduler, params, run, env, metrics_log, guard
    )
    try:
        with flushed_denormals():
            last_val = steps.train(
                training_loader(name, train_set, run, env, make_sampler, resumed.step),
                validation_batches(val_set, run, env, make_sampler),
                resumed,
                checkpoint,
            )
        check_finite(objective.trained, guard)
    except BaseException:  # diverged, interrupted, failed: nothing of this run replaces anything
        metrics_log.discard()
        raise
    return export_weights(name, objective.trained, run, env, last_val, resumed.history)


@contextlib.contextmanager
def flushed_denormals() -> Iterator[None]:
    """CPU arithmetic flushes denormal floats to zero inside (PyTorch's default again after).

    Adam's second moments of tiny gradients (a shift generator whose condition barely moves
    its loss) decay into denormals, which x86 CPUs compute on up to ~100x slower: a
    personality-only stage pwsg slowed 15-17x over its training. Values that small change no
    update (Adam divides by their square root plus eps), so flushing them changes nothing else.
    A CPU without flush-to-zero (``set_flush_denormal`` returns ``False``) trains as before.
    """
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)


@dataclass
class StepLoop:
    """The optimisation steps of one stage: log, validate and checkpoint on their schedules."""

    name: str
    objective: Objective
    model: nn.Module  # the objective, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    params: list[nn.Parameter]
    run: StageTraining
    env: Distributed
    metrics_log: MetricsLog
    guard: NonFiniteGuard

    def train(
        self,
        batches: Iterator[Batch],
        val_batches: list[Batch],
        resumed: Resumed,
        checkpoint: CheckpointWriter,
    ) -> dict[str, float]:
        """Steps ``resumed.step + 1 .. steps``; returns the last validation metrics."""
        cfg, run = self.run.config, self.run
        last_val: dict[str, float] = {}
        if val_batches and resumed.step == 0:  # the untrained point of the validation curve
            self.metrics_log.write({"step": 0, "split": "val", **self.validate(val_batches)})
        # closed on an exception too: the refusal line then starts on a line of its own
        with tqdm(
            total=cfg.steps, initial=resumed.step, desc=self.name, unit="step",
            disable=not self.env.is_main,
        ) as progress:  # fmt: skip
            for step in range(resumed.step + 1, cfg.steps + 1):
                loss, metrics, applied = optimisation_step(
                    self.model, _to(next(batches), self.env.device), self.optimizer, self.params,
                    cfg.grad_clip, run.precision,
                )  # fmt: skip
                self.guard.after(step, loss, applied)
                self.scheduler.step()
                progress.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    self.log_training(step, loss, metrics, progress)
                if val_batches and (step % cfg.val_every == 0 or step == cfg.steps):
                    last_val = self.validate(val_batches)
                    self.metrics_log.write({"step": step, "split": "val", **last_val})
                    if self.env.is_main:
                        values = ", ".join(f"{k}={v:.4f}" for k, v in last_val.items())
                        log.info("%s step %d: val %s", self.name, step, values)
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    check_finite(self.objective.trained, self.guard)
                    checkpoint(step, {"val": last_val, "resumes": resumed.history})
                if run.on_step is not None:
                    run.on_step(step)
        return last_val

    def validate(self, batches: list[Batch]) -> dict[str, float]:
        return validate(self.objective, batches, self.run.seed, self.run.precision)

    def log_training(
        self, step: int, loss: Tensor, metrics: Mapping[str, float], progress: tqdm
    ) -> None:
        record = {"loss": mean_scalar(self.env, loss.item()), **metrics}
        progress.set_postfix(loss=f"{record['loss']:.4f}")
        lr = self.scheduler.get_last_lr()[0]
        self.metrics_log.write({"step": step, "split": "train", "lr": lr, **record})


@dataclass
class NonFiniteGuard:
    """Stops a stage whose steps are not finite: after ``skip_nonfinite`` skipped steps the next
    one raises :class:`TrainingDiverged`, naming the step, the last finite loss and what to
    change."""

    name: str
    run: StageTraining
    skipped: int = 0
    last_finite: tuple[int, float] | None = None

    def after(self, step: int, loss: Tensor, applied: bool) -> None:
        if applied:
            self.last_finite = (step, loss.item())
            return
        self.skipped += 1
        allowed = self.run.config.skip_nonfinite
        if self.skipped <= allowed:
            log.warning(
                "%s step %d: the loss or its gradient is not finite; step skipped (%d of %d "
                "allowed, train.%s.skip_nonfinite)", self.name, step, self.skipped, allowed,
                self.name,
            )  # fmt: skip
            return
        raise TrainingDiverged(self.message(f"at step {step} (loss {loss.item():.4g})"))

    def message(self, where: str) -> str:
        key = f"train.{self.name}"
        last = (
            f"the last finite loss was {self.last_finite[1]:.4g} at step {self.last_finite[0]}"
            if self.last_finite is not None
            else "no step was finite"
        )
        return (
            f"{self.name}: training diverged {where}: the loss or its gradient is not finite "
            f"({last}). The stage stopped; nothing was exported, {self.run.out_dir} keeps its "
            f"previous weights and its last finite checkpoint. Lower {key}.lr (now "
            f"{self.run.config.lr:.3g}), set {key}.grad_clip, or let a few such steps be skipped "
            f"with {key}.skip_nonfinite=N."
        )


def check_finite(trained: nn.Module, guard: NonFiniteGuard) -> None:
    """Refuse to save non-finite weights (:class:`TrainingDiverged`)."""
    bad = [
        n
        for n, t in trained.state_dict().items()
        if t.is_floating_point() and not t.isfinite().all()
    ]
    if bad:
        raise TrainingDiverged(guard.message(f"(non-finite weights: {', '.join(bad[:3])})"))


def export_weights(
    name: str,
    trained: nn.Module,
    run: StageTraining,
    env: Distributed,
    last_val: Mapping[str, float],
    resumes: list[dict[str, Any]],
) -> Path:
    """Write the trained weights and what made them to ``run.out_dir/model.safetensors``."""
    divergence = replica_divergence(env, trained)
    if env.enabled:
        log.info(
            "%s: replicas differ by at most %.3g after %d steps", name, divergence, run.config.steps
        )
    final = run.out_dir / "model.safetensors"
    if env.is_main:
        meta = {
            "stage": name,
            "step": run.config.steps,
            "val": dict(last_val),
            "replica_divergence": divergence,
            "world_size": env.world_size,
            "resumes": resumes,
            **(run.metadata or {}),
        }
        save_weights(trained, final, meta)
        log.info("%s: weights -> %s", name, final)
    if env.enabled:
        torch.distributed.barrier()
    return final
