"""A trained stage's exported weights: ``model.safetensors`` plus ``model.json`` metadata.

Used by training (to export) and by inference (to load), so it lives outside both. The JSON
carries the SHA-256 of the weights file, verified on load: a file changed or damaged after it was
written is refused, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from perfrdiff.atomic import atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint or weights file is missing, damaged or fails its checksum; names the file."""


def stage_weights(run_dir: str | Path, stage: str) -> Path:
    """Where stage ``stage`` of the run in ``run_dir`` exports its weights."""
    return Path(run_dir) / stage / WEIGHTS_FILE


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json(path: Path) -> Any:
    """The JSON in ``path``.

    Raises:
        CheckpointError: the file is missing or not readable JSON.
    """
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not readable JSON ({error})") from None


def load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """The tensors of a safetensors file, on ``device``.

    Raises:
        CheckpointError: the file is missing or not a readable safetensors file.
    """
    try:
        return load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing") from None
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def contiguous(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Self-contained copies: safetensors refuses shared or non-contiguous storage."""
    return {k: v.detach().contiguous().clone() for k, v in tensors.items()}


def save_weights(module: nn.Module, path: str | Path, metadata: Mapping[str, Any]) -> None:
    """Export ``module``'s weights to ``path`` (safetensors) and ``metadata`` plus the file's
    SHA-256 to ``path``.json, atomically."""
    path = Path(path)
    data = save(contiguous(module.state_dict()))
    atomic_write_bytes(path, data)
    metadata = {**metadata, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_text(path.with_suffix(".json"), json.dumps(metadata, indent=2))


def load_weights(
    module: nn.Module, path: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Load weights written by :func:`save_weights` onto ``device``; returns the JSON metadata.

    Raises:
        FileNotFoundError: no weights at ``path`` (the stage was not trained).
        CheckpointError: the file is damaged or its SHA-256 differs from the one recorded in
            the JSON beside it (weights exported before checksums existed are not verified).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights at {path} (train the stage that writes it first)")
    meta_path = path.with_suffix(".json")
    meta = read_json(meta_path) if meta_path.is_file() else {}
    expected = meta.get("sha256")
    if expected is not None and file_sha256(path) != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch with {meta_path.name} (the file was changed or damaged "
            "after it was written); retrain the stage or restore the file"
        )
    module.load_state_dict(load_tensors(path, device))
    return meta
