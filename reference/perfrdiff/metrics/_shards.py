"""Per-item scores computed by one process, or shared by ``torchrun`` processes.

A metric that is a mean over items is computed from the vector of its items' scores; every
process computes its share of the items (:func:`perfrdiff.distributed.run_shards`) and all of
them receive the whole vector in item order, so the mean is the same float a single process
computes (the same numbers, summed in the same order). torch is imported only when processes
share the work: FRdist's worker processes import this package without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from perfrdiff.host import usable_cpus

if TYPE_CHECKING:
    from perfrdiff.distributed import Distributed

T = TypeVar("T")


def scores_by_item(
    n: int, compute: Callable[[Sequence[int]], Sequence[T]], distributed: Distributed | None
) -> list[T]:
    """``compute`` over items ``0..n-1``: here (``distributed`` None), or shared by the
    processes, every one of which receives the ``n`` results in item order.

    Raises:
        perfrdiff.distributed.RankFailed: another process's share failed.
    """
    if distributed is None:
        return list(compute(range(n)))
    from perfrdiff.distributed import run_shards

    merged = run_shards(distributed, n, compute, to="all")
    assert merged is not None  # to="all": every rank receives them
    return merged


def is_main(distributed: Distributed | None) -> bool:
    """Whether this process shows progress (rank 0, or the only process)."""
    return distributed is None or distributed.is_main


def frdist_jobs(n_jobs: int | None, distributed: Distributed | None) -> int | None:
    """FRdist's worker processes per process: ``n_jobs``, else the usable CPUs shared by the
    processes on this machine (``None``: all of them, one process)."""
    if n_jobs is not None or distributed is None or not distributed.enabled:
        return n_jobs
    return max(1, usable_cpus() // distributed.local_world_size)
