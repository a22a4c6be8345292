"""Processes launched by ``torchrun``: where this one sits, and work split over all of them.

Training (DDP), generation and evaluation share these helpers; without ``torchrun`` (no
``WORLD_SIZE`` in the environment) everything degrades to one process on the run's device.

Sharded work (:func:`run_shards`) is split into *units* (a batch of clips for generation, an
item for the metrics): rank ``r`` of ``R`` takes units ``r, r + R, r + 2R, …`` (strided, so the
ranks' shares differ by at most one unit and a split sorted by length still spreads its long
items). Each unit must be a function of its index alone (its inputs, its seed), never of the
units before it on the same rank: then the merged result is the one a single process computes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in the job (``local_world_size``: processes on this machine)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> Distributed:
    """Join the process group described by ``torchrun``'s environment, if any.

    Args:
        device: the run's device. One process computes on it; under ``torchrun`` a CUDA device
            means one GPU per process (``cuda:LOCAL_RANK``, NCCL), the CPU means gloo.
            ``None``: CUDA when available.
    """
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return Distributed(device=device)
    rank = int(os.environ["RANK"])
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    log.info("process %d/%d on %s (%s)", rank, world_size, device, backend)
    return Distributed(rank, world_size, device, local_world_size)


def shutdown(env: Distributed, wait_for_peers: bool = False) -> None:
    """Leave the process group (nothing to do without one).

    Args:
        wait_for_peers: meet every rank at a barrier first. Pass it when the work finished on
            this rank, so that no rank tears down its gloo connections while a peer still
            uses them (rank 0 writing the run's files after the last collective); a rank
            leaving on an error does not wait for peers that may never arrive.
    """
    if env.enabled and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def gather_objects(env: Distributed, obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (a one-element list without DDP)."""
    if not env.enabled:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def shard(n: int, env: Distributed) -> range:
    """This rank's units of ``n``: ``rank, rank + R, …`` (all of them in one process)."""
    if n < 0:
        raise ValueError(f"n: expected >= 0 units, got {n}")
    return range(env.rank, n, env.world_size)


class RankFailed(RuntimeError):
    """Another rank's part of sharded work raised; this rank stops too (no rank waits forever
    for a collective the failed one never reaches)."""


def agree_on_failure(env: Distributed, error: BaseException | None) -> None:
    """Exchange every rank's outcome; raise here if any rank failed.

    The failed rank re-raises its own ``error``; the others raise :class:`RankFailed` naming the
    first failed rank and its message. Every rank calls this exactly once per sharded step.
    """
    outcomes = gather_objects(env, None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(outcomes) if message is not None]
    if failed:
        rank, message = failed[0]
        raise RankFailed(f"rank {rank} of {env.world_size} failed: {message}")


def run_shards(
    env: Distributed,
    n: int,
    compute: Callable[[Sequence[int]], Sequence[T]],
    to: Literal["main", "all"] = "main",
) -> list[T] | None:
    """``compute`` this rank's units of ``n`` (:func:`shard`), then merge every rank's results
    in unit order.

    Args:
        compute: the units' indices -> one result per unit, in that order.
        to: ``"main"``: rank 0 receives the merged list, the others ``None`` (large results,
            e.g. predictions); ``"all"``: every rank receives it (small results, e.g. per-item
            scores).

    Raises:
        RankFailed: another rank's ``compute`` raised (this rank's own error is re-raised).
    """
    mine = shard(n, env)
    results: Sequence[T] = ()
    error = None
    try:
        results = compute(mine)
        if len(results) != len(mine):
            raise ValueError(f"compute: expected {len(mine)} results, got {len(results)}")
    except Exception as failure:  # shared with the other ranks before anyone waits on data
        error = failure
    agree_on_failure(env, error)
    if not env.enabled:
        return list(results)
    if to == "all":
        parts = gather_objects(env, list(results))
    else:
        parts = [None] * env.world_size if env.is_main else None
        dist.gather_object(list(results), parts, dst=0)
        if not env.is_main:
            return None
    merged: list = [None] * n
    for rank, part in enumerate(parts):
        merged[rank :: env.world_size] = part
    return merged
