"""What keeps a run directory consistent: one training at a time, and stages that match.

* :func:`run_dir_lock` — an exclusive lock on ``<run_dir>/.lock`` held while a process trains
  into the directory, so two trainings cannot interleave their logs and checkpoints. The lock
  is ``flock``-based: the operating system releases it when the holder exits, even when killed.
* Stage records — each stage's ``model.json`` keeps the config it was trained with and the
  SHA-256 of the earlier stages it was trained against (``depends_on``).
  :func:`check_stage` refuses a stage whose weights were made under a config that differs on
  the keys that define them (e.g. ``diffusion.train_steps``), or whose earlier stages have been
  retrained since.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from perfrdiff.config import Config, config_to_dict
from perfrdiff.models.build import STAGE_MODELS
from perfrdiff.weights import file_sha256, load_weights, stage_weights

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

#: The earlier stages each stage loads (frozen) while it trains.
UPSTREAM: dict[str, tuple[str, ...]] = {name: m.requires for name, m in STAGE_MODELS.items()}

#: Config keys (sections or dotted values) that define a stage's weights: a stage is only valid
#: under a config that agrees with the one it was trained with on these.
DEFINED_BY: dict[str, tuple[str, ...]] = {
    "emotion-vae": ("emotion_vae", "data.window"),
    "style": ("style",),
    "gafrg": ("denoiser", "emotion_vae", "diffusion.train_steps", "data.window"),
    "pwsg": ("pwsg", "denoiser", "style", "diffusion.train_steps", "data.window"),
}


#: Values inside those sections that only shape training (losses, regularisation, crops), not
#: the weights' meaning: a later stage may use the weights under other values.
TRAINING_ONLY: tuple[str, ...] = (
    "emotion_vae.kl_weight",
    "denoiser.dropout",
    "style.dropout",
    "style.temperature",
    "style.frames",
)


class RunDirLocked(RuntimeError):
    """Another process is training into the same run directory."""


class StageMismatch(ValueError):
    """A stage's weights do not belong with the config or the earlier stages they are used with."""


# Reentrant within a process: run_training locks what the train command already holds.
_held: dict[Path, int] = {}


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold the exclusive training lock of ``run_dir`` for the block (no-op when not enabled).

    Raises:
        RunDirLocked: another process holds it; the message names that process.
    """
    run_dir = Path(run_dir).resolve()
    if not enabled:
        yield
        return
    if run_dir in _held:
        _held[run_dir] += 1
        try:
            yield
        finally:
            _held[run_dir] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 (held open for as long as the lock)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            raise RunDirLocked(
                f"{run_dir} is being trained by another process ({holder}); wait for it to "
                "finish or train into another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            f"pid {os.getpid()} on {socket.gethostname()}, since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        )
        handle.flush()
        _held[run_dir] = 1
        try:
            yield
        finally:
            del _held[run_dir]
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _weights_sha256(run_dir: str | Path, stage: str) -> str | None:
    weights = stage_weights(run_dir, stage)
    if not weights.is_file():
        return None
    meta = weights.with_suffix(".json")
    recorded = json.loads(meta.read_text()).get("sha256") if meta.is_file() else None
    return recorded or file_sha256(weights)


def stage_record(config: Config, run_dir: str | Path, stage: str) -> dict[str, Any]:
    """What ``stage``'s weights are made of: the run's config and its earlier stages' SHA-256."""
    depends_on = {up: _weights_sha256(run_dir, up) for up in UPSTREAM[stage]}
    return {
        "config": config_to_dict(config),
        "depends_on": {up: sha for up, sha in depends_on.items() if sha is not None},
    }


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one ``dotted.key -> value`` dict."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    keys: tuple[str, ...],
    ignore: tuple[str, ...] = (),
) -> dict[str, tuple[Any, Any]]:
    """``dotted key -> (old, new)`` for the values under ``keys`` (sections or dotted values),
    except ``ignore``, that both nested mappings hold and that differ."""
    flat_old, flat_new = flat_keys(old), flat_keys(new)
    selected = lambda k: any(k == s or k.startswith(f"{s}.") for s in keys)  # noqa: E731
    return {
        k: (flat_old[k], flat_new[k])
        for k in sorted(set(flat_old) & set(flat_new))
        if selected(k) and k not in ignore and flat_old[k] != flat_new[k]
    }


def check_stage(run_dir: str | Path, stage: str, config: Config) -> None:
    """Refuse to use ``stage``'s weights from ``run_dir`` under ``config`` when they do not fit.

    Weights exported without a record (older versions) pass with a warning.

    Raises:
        FileNotFoundError: the stage has not been trained.
        StageMismatch: the stage was trained under other values of the keys that define it
            (:data:`DEFINED_BY`, except :data:`TRAINING_ONLY`), or an earlier stage it was
            trained against has changed since; the message names each key (old -> new) or stage.
    """
    weights = stage_weights(run_dir, stage)
    meta_path = weights.with_suffix(".json")
    if not weights.is_file():
        raise FileNotFoundError(f"no weights at {weights} (train the stage that writes it first)")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if "config" not in meta:
        log.warning("%s records no training config: not checked against this run", meta_path)
        return
    changed = config_differences(
        meta["config"], config_to_dict(config), DEFINED_BY[stage], TRAINING_ONLY
    )
    problems = [f"{key}: trained with {old!r}, now {new!r}" for key, (old, new) in changed.items()]
    for upstream, sha in meta.get("depends_on", {}).items():
        now = _weights_sha256(run_dir, upstream)
        if now != sha:
            state = "is missing" if now is None else "has been retrained since"
            problems.append(f"the {upstream} stage it was trained against {state}")
    if problems:
        raise StageMismatch(
            f"{weights} does not fit this run: " + "; ".join(problems) + f". Retrain {stage} "
            "(and the stages after it), or use the config it was trained with."
        )


def load_stage_weights(module: nn.Module, run_dir: str | Path, stage: str, config: Config) -> None:
    """:func:`check_stage`, then load the stage's weights into ``module``."""
    check_stage(run_dir, stage, config)
    load_weights(module, stage_weights(run_dir, stage))
