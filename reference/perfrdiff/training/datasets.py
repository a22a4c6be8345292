"""The datasets and batch samplers of the training stages (named by :mod:`perfrdiff.stages`).

Each ``*_datasets`` function maps a config to ``(train, validation or None)``; a missing
validation split is skipped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch.utils.data import Dataset, Sampler

from perfrdiff.config import Config
from perfrdiff.data.samplers import ListenerBatchSampler
from perfrdiff.protocol import protocol_named

log = logging.getLogger(__name__)

Datasets = tuple[Dataset, Dataset | None]


def _any_length(config: Config) -> bool:
    """Whether the run's protocol has sequences of any length (REACT 2026, the MARS layout)."""
    return protocol_named(config.protocol).clip_frames is None


def mars_window_datasets(config: Config, history_needed: bool) -> Datasets:
    """REACT 2026 windows (:class:`~perfrdiff.data.react2026.windows.MarsWindows`)."""
    from perfrdiff.data.react2026.store import run_store
    from perfrdiff.data.react2026.windows import MarsWindows

    d = config.data
    make = lambda split, random_start: MarsWindows(  # noqa: E731
        run_store(config, split), protocol_named(config.protocol), d.window, d.history_frames,
        seed=config.seed, random_start=random_start, history_needed=history_needed,
    )  # fmt: skip
    return make("train", True), _optional(lambda: make("val", False))


def window_datasets(config: Config, history_needed: bool = False) -> Datasets:
    """Listener windows with the speaker context (stages ``emotion-vae`` and ``gafrg``, which
    read no history)."""
    from perfrdiff.data import WindowDataset

    if _any_length(config):
        return mars_window_datasets(config, history_needed)
    d = config.data
    make = lambda split: WindowDataset(  # noqa: E731
        d.root, split, window=d.window, history_frames=d.history_frames, seed=config.seed,
        history_needed=history_needed,
    )  # fmt: skip
    return make("train"), _optional(lambda: make("val"))


def history_window_datasets(config: Config) -> Datasets:
    """Windows with a listener history that never holds the window (stage ``pwsg``)."""
    return window_datasets(config, history_needed=True)


def _optional(make: Callable[[], Dataset]) -> Dataset | None:
    try:
        dataset = make()
    except FileNotFoundError as err:
        log.warning("no validation split (%s): validation is skipped", err)
        return None
    return dataset if len(dataset) else None


def _contrastive(dataset: StyleClips | None) -> StyleClips | None:
    """``dataset``, or ``None`` (validation skipped, logged) when it holds fewer than two
    listeners: a contrastive loss needs two (a MARS session is one listener)."""
    if dataset is not None and len(dataset.groups) < 2:
        log.warning("validation split has %d listener(s): style validation is skipped",
                    len(dataset.groups))  # fmt: skip
        return None
    return dataset


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
    if _any_length(config):
        from perfrdiff.data.react2026.store import run_store
        from perfrdiff.data.react2026.windows import MarsListenerSegments

        make_mars = lambda split: StyleClips(  # noqa: E731
            MarsListenerSegments(run_store(config, split), config.style.frames, config.seed), key
        )
        return make_mars("train"), _contrastive(_optional(lambda: make_mars("val")))
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
