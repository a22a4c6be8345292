"""A trained stage's exported weights: ``model.safetensors`` plus ``model.json`` metadata.

Used by training (to export) and by inference (to load), so it lives outside both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

from perfrdiff.atomic import atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "model.safetensors"


def stage_weights(run_dir: str | Path, stage: str) -> Path:
    """Where stage ``stage`` of the run in ``run_dir`` exports its weights."""
    return Path(run_dir) / stage / WEIGHTS_FILE


def contiguous(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Self-contained copies: safetensors refuses shared or non-contiguous storage."""
    return {k: v.detach().contiguous().clone() for k, v in tensors.items()}


def save_weights(module: nn.Module, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Export ``module``'s weights to ``path`` (safetensors) and ``metadata`` to ``path``.json,
    atomically."""
    path = Path(path)
    atomic_write_bytes(path, save(contiguous(module.state_dict())))
    atomic_write_text(path.with_suffix(".json"), json.dumps(metadata, indent=2))


def load_weights(
    module: nn.Module, path: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load weights written by :func:`save_weights` onto ``device``; returns the JSON metadata.

    Raises:
        FileNotFoundError: no weights at ``path`` (the stage was not trained).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path} (train the stage that writes it first)")
    module.load_state_dict(load_file(str(path), device=str(device)))
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}
