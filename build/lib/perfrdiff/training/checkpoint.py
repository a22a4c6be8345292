"""Atomic checkpoints: ``safetensors`` tensors plus JSON, enough to resume bit-for-bit.

A checkpoint is a directory ``step_<8 digits>`` holding

* ``model.safetensors`` — the trained module's ``state_dict``;
* ``optimizer.safetensors`` + the optimiser's non-tensor state in ``state.json``;
* ``rng.safetensors`` — torch CPU (and CUDA) generator states, one set per process;
* ``state.json`` — step, LR scheduler state, Python/NumPy RNG states, the config, extras;
* ``checksums.json`` — the SHA-256 of each file above, verified before anything is loaded.

It is written under a temporary name and renamed into place, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a partial one. A file damaged later
(truncated, overwritten, zeroed) fails its checksum; :func:`newest_intact_checkpoint` then says so
and falls back to the newest intact checkpoint. Exported weights carry their SHA-256 in the JSON
beside them and are verified by :func:`load_weights` the same way.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from perfrdiff.weights import (  # the weight-file functions live there, shared with inference
    CheckpointError,
    contiguous,
    file_sha256,
    load_weights,
    save_weights,
)
from perfrdiff.weights import load_tensors as _load_tensors
from perfrdiff.weights import read_json as _read_json

__all__ = [
    "CHECKSUMS",
    "CheckpointError",
    "TrainingState",
    "file_sha256",
    "list_checkpoints",
    "load_checkpoint",
    "load_weights",
    "newest_intact_checkpoint",
    "rng_state",
    "save_checkpoint",
    "save_weights",
    "set_rng_state",
    "verify_checkpoint",
]

log = logging.getLogger(__name__)

PREFIX = "step_"
CHECKSUMS = "checksums.json"
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        plain["state"][str(idx)] = {}
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"{idx}/{key}"] = value
            else:
                plain["state"][str(idx)][key] = value
    return tensors, plain


def _join_optimizer_state(tensors: dict[str, Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for name, value in tensors.items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"param_groups": plain["param_groups"], "state": state}


def rng_state() -> dict[str, Any]:
    """This process's RNG states: torch tensors and JSON-able Python/NumPy states."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    np_state = np.random.get_state()
    plain = {
        "python": _jsonable(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return {"tensors": tensors, "plain": plain}


def set_rng_state(state: Mapping[str, Any]) -> None:
    tensors, plain = state["tensors"], state["plain"]
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = plain["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class TrainingState:
    """What a resumed run restores."""

    step: int
    extra: dict[str, Any]


def save_checkpoint(
    directory: str | Path,
    step: int,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng_states: list[dict[str, Any]],
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    keep: int = 2,
    supersedes: Sequence[Path] = (),
) -> Path:
    """Write checkpoint ``directory/step_<step>`` atomically; keep the newest ``keep``.

    Args:
        rng_states: one :func:`rng_state` per process (rank order).
        supersedes: checkpoints of an earlier run that this one replaces; they are removed only
            once the new checkpoint is complete, so a run that fails before its first
            checkpoint loses nothing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:08d}"
    tmp = directory / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(contiguous(module.state_dict()), str(tmp / "model.safetensors"))
    opt_tensors, opt_plain = _split_optimizer_state(optimizer.state_dict())
    save_file(contiguous(opt_tensors), str(tmp / "optimizer.safetensors"))
    rng_tensors = {
        f"{rank}/{k}": v for rank, s in enumerate(rng_states) for k, v in s["tensors"].items()
    }
    save_file(contiguous(rng_tensors), str(tmp / "rng.safetensors"))
    state = {
        "step": step,
        "optimizer": opt_plain,
        "scheduler": scheduler.state_dict(),
        "rng": [s["plain"] for s in rng_states],
        "config": dict(config),
        "extra": dict(extra or {}),
    }
    (tmp / "state.json").write_text(json.dumps(state))
    checksums = {name: file_sha256(tmp / name) for name in FILES}
    (tmp / CHECKSUMS).write_text(json.dumps(checksums, indent=1))
    if final.exists():  # re-saving a step after a resume: replace it whole, once tmp is complete
        trash = directory / f".{final.name}.old-{os.getpid()}"
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash)
    else:
        os.rename(tmp, final)
    for old in supersedes:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint step %d -> %s", step, final)
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints under ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def load_checkpoint(
    path: str | Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rank: int = 0,
    world_size: int = 1,
) -> TrainingState:
    """Restore module, optimiser, scheduler and this rank's RNG from checkpoint ``path``.

    Every file is verified against ``checksums.json`` before anything is loaded.

    Raises:
        CheckpointError: a file is missing, unreadable or fails its checksum (the message names
            it); nothing has been restored then.
    """
    path = Path(path)
    verify_checkpoint(path)
    state = _read_json(path / "state.json")
    module.load_state_dict(_load_tensors(path / "model.safetensors"))
    optimizer.load_state_dict(
        _join_optimizer_state(_load_tensors(path / "optimizer.safetensors"), state["optimizer"])
    )
    scheduler.load_state_dict(state["scheduler"])
    saved_ranks = len(state["rng"])
    if saved_ranks != world_size:
        log.warning(
            "checkpoint has RNG states for %d processes, this run has %d: RNG is reseeded, "
            "so the continuation will not match an uninterrupted run exactly",
            saved_ranks,
            world_size,
        )
        torch.manual_seed(state["step"] * 7919 + rank)
    else:
        rng = _load_tensors(path / "rng.safetensors")
        prefix = f"{rank}/"
        tensors = {k[len(prefix) :]: v for k, v in rng.items() if k.startswith(prefix)}
        set_rng_state({"tensors": tensors, "plain": state["rng"][rank]})
    return TrainingState(step=state["step"], extra=state["extra"])


def verify_checkpoint(path: str | Path) -> None:
    """Check every file of checkpoint ``path`` against its ``checksums.json``.

    Checkpoints written before checksums existed (no ``checksums.json``) are only checked to
    be readable, with a warning.

    Raises:
        CheckpointError: naming the first file that is missing or whose SHA-256 differs.
    """
    path = Path(path)
    for name in FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name}: file is missing")
    if not (path / CHECKSUMS).is_file():
        log.warning("%s has no %s (an older format): only checked to be readable", path, CHECKSUMS)
        _read_json(path / "state.json")
        for name in FILES:
            if name.endswith(".safetensors"):
                _load_tensors(path / name)
        return
    expected = _read_json(path / CHECKSUMS)
    if not isinstance(expected, dict) or set(expected) != set(FILES):
        raise CheckpointError(f"{path / CHECKSUMS}: expected a SHA-256 for each of {FILES}")
    for name in FILES:
        if file_sha256(path / name) != expected[name]:
            raise CheckpointError(
                f"{path / name}: checksum mismatch (the file was changed or damaged after the "
                "checkpoint was written)"
            )


def newest_intact_checkpoint(directory: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint under ``directory`` that passes :func:`verify_checkpoint`, with its
    ``state.json``; None when there is no checkpoint at all.

    A damaged checkpoint is skipped with a warning that names the file, and the next older one
    is tried.

    Raises:
        CheckpointError: every checkpoint is damaged (the message lists each one's problem).
    """
    problems = []
    for path in reversed(list_checkpoints(directory)):
        try:
            verify_checkpoint(path)
            state = _read_json(path / "state.json")
        except CheckpointError as error:
            problems.append(str(error))
            log.warning("skipping damaged checkpoint: %s", error)
            continue
        if problems:
            log.warning("resuming from %s, the newest intact checkpoint", path)
        return path, state
    if problems:
        raise CheckpointError(
            f"no intact checkpoint in {directory}: " + "; ".join(problems) + " (train without "
            "--resume to start the stage again)"
        )
    return None
