"""The batch samplers of every training stage, stateless: the batch of step ``s`` is a pure
function of ``(seed, s, rank)``.

Resuming at step ``s`` therefore sees exactly the batches an uninterrupted run would have seen,
without saving any data-loader state, and DDP ranks see disjoint batches.

Samplers yield *tagged* indices ``tag · n + item`` (``tag``: the epoch or the step); wrapping the
dataset in :class:`Reseeded` makes an item's own random draws (window start, history clip) a pure
function of ``(seed, tag, item)`` as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


class Reseeded(Dataset):
    """Serve tagged index ``tag · n + item`` as ``dataset[item]`` under seed ``(seed, tag, item)``.

    perfrdiff's datasets draw from a NumPy generator keyed on ``torch.initial_seed()``, so seeding
    torch right before an item fixes its draws; the caller's torch RNG state is restored after.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.length = len(dataset)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, tagged: int) -> Any:
        tag, item = divmod(int(tagged), self.length)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + tag) * 1_000_033 + item) % 2**63)
            return self.dataset[item]


class StepBatchSampler(Sampler[list[int]]):
    """Infinite batches of ``batch_size`` indices, reshuffled every epoch.

    Args:
        length: dataset size ``n``.
        batch_size: per-process batch size.
        seed: shuffling seed.
        start_step: first step to produce (the resumed step).
        rank: which share of each global batch this process takes.
        world_size: number of processes sharing each global batch.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        global_batch = batch_size * world_size
        if length < global_batch:
            raise ValueError(
                f"dataset of {length} items is smaller than one global batch "
                f"({batch_size} x {world_size} processes)"
            )
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = length // global_batch

    def batch(self, step: int) -> list[int]:
        epoch, position = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.length, generator=g)
        start = (position * self.world_size + self.rank) * self.batch_size
        return [epoch * self.length + i for i in order[start : start + self.batch_size].tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class ListenerBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size // per_listener`` listeners × ``per_listener`` of their items.

    Contrastive learning needs positives in every batch; uniform batches over hundreds of
    listeners rarely contain two clips of one. Stateless in the step like
    :class:`StepBatchSampler`; indices are tagged with the step.

    Args:
        groups: listener -> its item indices.
        length: dataset size ``n`` (for tagging).
        batch_size: items per batch and process.
        per_listener: items drawn per listener (uniformly, with replacement).
        seed: sampling seed.
        start_step: first step to produce (the resumed step).
        rank: this process's rank; it seeds the process's own draws.
        world_size: number of processes (every rank draws independently).
    """

    def __init__(
        self,
        groups: dict[int, list[int]],
        length: int,
        batch_size: int,
        per_listener: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.groups = {k: list(v) for k, v in groups.items() if v}
        self.listeners = sorted(self.groups)
        if len(self.listeners) < 2:
            raise ValueError(f"need items of at least 2 listeners, got {len(self.listeners)}")
        self.length = length
        self.per_listener = max(2, min(per_listener, batch_size // 2))
        self.count = min(len(self.listeners), max(2, batch_size // self.per_listener))
        self.seed = seed
        self.start_step = start_step
        self.rank = rank

    def batch(self, step: int) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 65_537 + self.rank)
        chosen = torch.randperm(len(self.listeners), generator=g)[: self.count].tolist()
        out: list[int] = []
        for c in chosen:
            items = self.groups[self.listeners[c]]
            picks = torch.randint(len(items), (self.per_listener,), generator=g).tolist()
            out.extend(step * self.length + items[p] for p in picks)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
