"""``torch.distributed`` helpers of DDP training launched by ``torchrun`` (gloo on CPU, NCCL on
GPU); where a process sits and how it joins the job are :mod:`perfrdiff.distributed`'s, shared
with generation and evaluation.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from perfrdiff.distributed import Distributed, gather_objects, init_distributed, shutdown

__all__ = [
    "Distributed",
    "gather_objects",
    "init_distributed",
    "mean_scalar",
    "replica_divergence",
    "shutdown",
]


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
