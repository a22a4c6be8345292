"""``torch.distributed`` helpers for DDP runs launched by ``torchrun`` (gloo on CPU, NCCL on GPU).

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything degrades to one process on
the run's device (CUDA when ``--device auto`` finds it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

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
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    log.info("process %d/%d on %s (%s)", rank, world_size, device, backend)
    return Distributed(rank, world_size, device)


def shutdown(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(env: Distributed, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list without DDP)."""
    if not env.enabled:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_scalar(env: Distributed, value: float) -> float:
    if not env.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.item() / env.world_size


@torch.no_grad()
def replica_divergence(env: Distributed, module: nn.Module) -> float:
    """Largest absolute difference of any parameter between this rank and rank 0 (all ranks).

    DDP keeps replicas identical by averaging gradients; a non-zero value means a rank drifted
    (e.g. a parameter used outside ``forward`` missed its all-reduce).
    """
    if not env.enabled:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = torch.tensor([(flat - reference).abs().max().item()], device=flat.device)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return diff.item()
