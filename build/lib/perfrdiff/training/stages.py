"""The registry of training stages, in the paper's order.

``emotion-vae`` → ``style`` → ``gafrg`` (loads the VAE, frozen) → ``pwsg`` (loads GAFRG and PSSL,
frozen; the authors' release forgot to, training stage 2 on a random generator). Each entry says
which stages it needs, how to build its objective (the model it trains and its loss), its datasets
and its batch sampler; the optimiser comes from the stage's
:class:`~perfrdiff.config.StageConfig`. :func:`run_training` is the one dispatcher. Each stage
writes ``<run_dir>/<stage>/model.safetensors`` (+ ``.json``), checkpoints and a metrics log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset, Sampler

from perfrdiff.config import Config
from perfrdiff.data.samplers import ListenerBatchSampler
from perfrdiff.models import PerFRDiff, build_schedule
from perfrdiff.rundir import run_dir_lock, stage_record
from perfrdiff.training.distributed import Distributed
from perfrdiff.training.loop import BatchSamplerFactory, Objective, StageRun, train_stage
from perfrdiff.training.objectives import (
    EmotionVAEObjective,
    GAFRGObjective,
    PWSGObjective,
    StyleObjective,
)

if TYPE_CHECKING:
    from perfrdiff.run import Run

log = logging.getLogger(__name__)

Datasets = tuple[Dataset, Dataset | None]


@dataclass(frozen=True)
class Stage:
    """One training stage of the registry.

    The model it trains, and the stages that model is built around, come from
    :data:`perfrdiff.models.STAGE_MODELS`.

    Attributes:
        objective: ``run -> Objective``; the objective's ``trained`` module is what is optimised
            and exported. Earlier stages are loaded through ``run``.
        datasets: ``config -> (train, validation or None)``.
        batch_sampler: ``None`` for uniform batches, else how to batch (see
            :data:`~perfrdiff.training.loop.BatchSamplerFactory`).
    """

    objective: Callable[[Run], Objective]
    datasets: Callable[[Config], Datasets]
    batch_sampler: BatchSamplerFactory | None = None


def window_datasets(config: Config) -> Datasets:
    from perfrdiff.data import WindowDataset

    d = config.data
    make = lambda split: WindowDataset(  # noqa: E731
        d.root, split, window=d.window, history_frames=d.history_frames, seed=config.seed
    )
    return make("train"), _optional(lambda: make("val"))


def _optional(make: Callable[[], Dataset]) -> Dataset | None:
    try:
        dataset = make()
    except FileNotFoundError as err:
        log.warning("no validation split (%s): validation is skipped", err)
        return None
    return dataset if len(dataset) else None


class StyleClips(Dataset):
    """Adapts ``ListenerClipDataset`` items to ``{"clip": (f, c), "listener_id": ()}``."""

    def __init__(self, clips: Dataset, key: str) -> None:
        self.clips = clips
        self.key = key
        self.groups = clips.items_of_listener()

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self.clips[i]
        return {
            "clip": torch.as_tensor(item[self.key]).float(),
            "listener_id": torch.as_tensor(item["label"]).long(),
        }


def style_datasets(config: Config) -> Datasets:
    from perfrdiff.data import ListenerClipDataset

    key = config.style.input
    make = lambda split: StyleClips(  # noqa: E731
        ListenerClipDataset(config.data.root, split, frames=config.style.frames, seed=config.seed),
        key,
    )
    return make("train"), _optional(lambda: make("val"))


def listener_batches(
    dataset: Dataset, batch_size: int, seed: int, start: int, rank_world: tuple[int, int]
) -> Sampler[list[int]]:
    """Batches of ``batch_size / 4`` listeners with 4 clips each, so every anchor has positives."""
    return ListenerBatchSampler(
        dataset.groups, len(dataset), batch_size, 4, seed, start, *rank_world
    )


def _vae_objective(run: Run) -> Objective:
    return EmotionVAEObjective(
        run.build("emotion-vae", trained=False), run.config.emotion_vae.kl_weight
    )


def _style_objective(run: Run) -> Objective:
    return StyleObjective(run.build("style", trained=False), run.config.style.temperature)


def _gafrg_objective(run: Run) -> Objective:
    d = run.config.diffusion
    gafrg = run.build("gafrg", trained=False)  # around the trained, frozen VAE
    if gafrg.scaler is not None:
        from perfrdiff.data import listener_emotion_statistics

        gafrg.scaler.fit(*listener_emotion_statistics(run.config.data.root, "train"))
    return GAFRGObjective(gafrg, build_schedule(run.config), d.cond_drop, d.prev_drop)


def _pwsg_objective(run: Run) -> Objective:
    model = run.build("pwsg", trained=False)  # trained GAFRG + PSSL, a new generator
    if model.fit_prior_weight:
        fit_listener_prior(model, run.config)
    return PWSGObjective(model, build_schedule(run.config), run.config)


def fit_listener_prior(model: PerFRDiff, config: Config) -> None:
    """Fit ``model``'s listener prior weights on the training split (histories of
    ``data.history_frames`` frames, as at evaluation)."""
    from perfrdiff.data import listener_level_pairs

    pairs = listener_level_pairs(config.data.root, "train", config.data.history_frames)
    weight = model.prior.fit(*pairs, model.gafrg.scaler.mean)
    log.info("listener prior weights fitted on %d clip pairs: %s", len(pairs[0]), weight.tolist())


STAGE_REGISTRY: dict[str, Stage] = {
    "emotion-vae": Stage(_vae_objective, window_datasets),
    "style": Stage(_style_objective, style_datasets, listener_batches),
    "gafrg": Stage(_gafrg_objective, window_datasets),
    "pwsg": Stage(_pwsg_objective, window_datasets),
}


def stage(name: str) -> Stage:
    """The registry entry of stage ``name``.

    Raises:
        ValueError: no such stage.
    """
    if name not in STAGE_REGISTRY:
        raise ValueError(f"stage must be one of {list(STAGE_REGISTRY)}; got {name!r}")
    return STAGE_REGISTRY[name]


def run_training(
    name: str,
    run: Run,
    resume: bool = False,
    env: Distributed | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train stage ``name`` of ``run``; returns the exported weights' path."""
    entry = stage(name)
    config = run.config
    env = env or Distributed(device=run.device)
    stage_run = StageRun(
        out_dir=run.directory / name,
        config=config.stage(name),
        seed=config.seed,
        resume=resume,
        num_workers=run.loader_workers,
        metadata=stage_record(config, run.directory, name),
        on_step=on_step,
        precision=run.precision,
    )
    torch.manual_seed(config.seed)  # identical initial weights on every DDP rank
    objective = entry.objective(run)
    train_set, val_set = entry.datasets(config)
    with run_dir_lock(run.directory, enabled=env.is_main):
        return train_stage(name, objective, train_set, val_set, stage_run, env, entry.batch_sampler)
