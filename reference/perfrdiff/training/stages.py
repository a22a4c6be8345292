"""One trainer per stage, in the paper's order, and the loaders of trained models.

``emotion-vae`` → ``style`` → ``gafrg`` (loads the VAE, frozen) → ``pwsg`` (loads GAFRG and PSSL,
frozen; the authors' release forgot to, training stage 2 on a random generator). Each stage writes
``<run_dir>/<stage>/model.safetensors`` (+ ``.json``), checkpoints and a metrics log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from perfrdiff.config import Config
from perfrdiff.models import GAFRG, DDIMSchedule, EmotionVAE, PerFRDiff, StyleEncoder
from perfrdiff.training.distributed import Distributed
from perfrdiff.training.loop import StageRun, train_stage
from perfrdiff.training.objectives import (
    EmotionVAEObjective,
    GAFRGObjective,
    PWSGObjective,
    StyleObjective,
)
from perfrdiff.training.rundir import load_stage_weights, run_dir_lock, stage_record
from perfrdiff.training.sampler import ListenerBatchSampler

log = logging.getLogger(__name__)


def load_vae(config: Config, run_dir: str | Path) -> EmotionVAE:
    vae = EmotionVAE(25, config.emotion_vae.hidden_dim, config.emotion_vae.latent_dim)
    load_stage_weights(vae, run_dir, "emotion-vae", config)
    return vae.eval()


def load_gafrg(config: Config, run_dir: str | Path) -> GAFRG:
    gafrg = GAFRG(config)
    load_stage_weights(gafrg, run_dir, "gafrg", config)
    return gafrg.eval()


def load_style_encoder(config: Config, run_dir: str | Path) -> StyleEncoder:
    encoder = StyleEncoder(config.style)
    load_stage_weights(encoder, run_dir, "style", config)
    return encoder.eval()


def load_perfrdiff(config: Config, run_dir: str | Path, with_generator: bool = True) -> PerFRDiff:
    """GAFRG + PSSL from their stages and, if ``with_generator``, the trained PWSG."""
    model = PerFRDiff(config, load_gafrg(config, run_dir), load_style_encoder(config, run_dir))
    if with_generator:
        load_stage_weights(model.generator, run_dir, "pwsg", config)
    return model.eval()


def window_datasets(config: Config) -> tuple[Dataset, Dataset | None]:
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


def style_datasets(config: Config) -> tuple[Dataset, Dataset | None]:
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


def run_training(
    stage: str,
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    env: Distributed | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``stage`` of the run in ``run_dir``; returns the exported weights' path."""
    env = env or Distributed()
    run = StageRun(
        out_dir=Path(run_dir) / stage,
        config=config.stage(stage),
        seed=config.seed,
        resume=resume,
        num_workers=config.data.num_workers,
        metadata=stage_record(config, run_dir, stage),
        on_step=on_step,
    )
    schedule = DDIMSchedule(config.diffusion.train_steps)
    torch.manual_seed(config.seed)  # identical initial weights on every DDP rank
    sampler = None
    if stage == "emotion-vae":
        vae = EmotionVAE(25, config.emotion_vae.hidden_dim, config.emotion_vae.latent_dim)
        objective = EmotionVAEObjective(vae, config.emotion_vae.kl_weight)
        train_set, val_set = window_datasets(config)
    elif stage == "style":
        objective = StyleObjective(StyleEncoder(config.style), config.style.temperature)
        train_set, val_set = style_datasets(config)
        sampler = listener_batches
    elif stage == "gafrg":
        gafrg = GAFRG(config)
        load_stage_weights(gafrg.vae, run_dir, "emotion-vae", config)
        objective = GAFRGObjective(
            gafrg, schedule, config.diffusion.cond_drop, config.diffusion.prev_drop
        )
        train_set, val_set = window_datasets(config)
    elif stage == "pwsg":
        model = load_perfrdiff(config, run_dir, with_generator=False)
        objective = PWSGObjective(model, schedule, config)
        train_set, val_set = window_datasets(config)
    else:
        raise ValueError(f"stage must be one of emotion-vae, style, gafrg, pwsg; got {stage!r}")
    with run_dir_lock(run_dir, enabled=env.is_main):
        return train_stage(stage, objective, train_set, val_set, run, env, sampler)
