"""Where a run computes and in which precision: ``--device`` and ``--precision``.

``auto`` is CUDA when it is available, else the CPU. ``bf16`` runs the forward passes under
``torch.autocast`` (bfloat16 matmuls) with float32 weights and optimiser state ("master
weights"); ``fp32`` runs everything in float32.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from perfrdiff.host import usable_cpus

DEVICES_HELP = "auto (CUDA when available), cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "bf16")


class DeviceUnavailable(RuntimeError):
    """A device was asked for that this machine does not have (no CUDA, or too few GPUs)."""


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) -> a concrete device.

    Raises:
        ValueError: ``spec`` is none of these.
        DeviceUnavailable: a CUDA device is asked for but CUDA is not available, or ``N`` is out
            of range (a ``RuntimeError``).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec):
        raise ValueError(f"device must be {DEVICES_HELP}, got {spec!r}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {spec!r} asked for, but CUDA is not available here")
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA devices are visible"
            )
        device = torch.device("cuda", index)
    return device


def check_precision(precision: str) -> str:
    """Validate ``precision`` (``"fp32"`` or ``"bf16"``) and return it.

    Raises:
        ValueError: any other value.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast(device.type, bfloat16)`` for ``bf16``; nothing for ``fp32``."""
    if check_precision(precision) == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def loader_workers(configured: int | None, device: torch.device) -> int:
    """DataLoader workers: ``configured`` if set, else 0 on the CPU (the model needs the cores)
    and up to 4 on CUDA (batches are prepared while the GPU computes)."""
    if configured is not None:
        if configured < 0:
            raise ValueError(f"data.num_workers must be >= 0 or null, got {configured}")
        return configured
    return 0 if device.type == "cpu" else min(4, max(0, usable_cpus() - 1))
