"""Training a run: the stages of a :class:`~perfrdiff.run.Run`, in order, into its directory.

:func:`train_run` is the one entry point (the ``train`` and ``demo`` commands, variants of a run,
tests). It takes the run directory's lock once, checks everything it can, then trains each stage
with :func:`train_stage_of` and writes ``config.yaml`` after each stage that finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from perfrdiff.config import save_config
from perfrdiff.data import read_split_csv
from perfrdiff.data.react2026 import find_dyads
from perfrdiff.run import CONFIG_FILE, Run
from perfrdiff.rundir import check_stage, run_dir_lock, stage_record
from perfrdiff.stages import run_stages, stage
from perfrdiff.training.distributed import Distributed, init_distributed, shutdown
from perfrdiff.training.loop import StageTraining, train_stage
from perfrdiff.training.resume import check_resume

log = logging.getLogger(__name__)


def train_run(
    run: Run, stages: Sequence[str] | None = None, resume: bool = False
) -> dict[str, Path]:
    """Train ``stages`` of ``run`` in order (``torchrun`` for several processes); returns
    stage -> exported weights. ``None``: the run's stages (:func:`~perfrdiff.stages.run_stages`).

    Raises:
        ValueError: an unknown stage (before any work).
        perfrdiff.training.ResumeError: ``resume`` and a stage's checkpoint cannot continue
            under the run's config.
        FileNotFoundError, perfrdiff.rundir.StageMismatch: an earlier stage the given ones load
            is missing or does not fit the config (see :func:`check_can_train`).
    """
    if stages is None:
        stages = run_stages(run.config)
    stages = [stage(name).name for name in stages]  # unknown names fail before any work
    if not run.directory.exists():  # cheap there (no weights to verify): create no folder for
        check_can_train(run, stages)  # a training that cannot start
    env = init_distributed(run.device)
    paths = {}
    finished = False
    try:
        with run_dir_lock(run.directory, enabled=env.is_main):
            if resume:
                check_resume(run.config, run.directory, stages)  # before config.yaml
            check_can_train(run, stages)  # before config.yaml too
            for name in stages:
                paths[name] = train_stage_of(run, name, resume=resume, env=env)
                run.forget(name)
                if env.is_main:
                    # Only now: a stage that fails (a bad value found while building it, a
                    # divergence, Ctrl-C) leaves the run's config as its weights were trained.
                    save_config(run.config, run.directory / CONFIG_FILE)
                    log.info("stage %s done: %s", name, paths[name])
        finished = True
    finally:
        shutdown(env, wait_for_peers=finished)
    return paths


def check_can_train(run: Run, stages: Sequence[str]) -> None:
    """Fail before ``config.yaml`` is replaced when ``stages`` cannot train: the training split
    is unreadable, or an earlier stage they load (and that is not trained here first) is missing
    or does not fit the run's config. Otherwise a failed call would leave the run's trained
    stages under a config they do not fit.

    Raises:
        perfrdiff.data.DataError: ``{data.root}/train.csv`` is missing or unreadable (the
            MARS layout of protocol ``react2026``: ``{data.root}/train`` has no dyad).
        FileNotFoundError, perfrdiff.rundir.StageMismatch: see
            :func:`~perfrdiff.rundir.check_stage`.
    """
    if run.protocol.clip_frames is None:  # sequences of any length: the MARS layout
        find_dyads(run.config.data.root, "train")
    else:
        read_split_csv(run.config.data.root, "train")
    for position, name in enumerate(stages):
        for required in stage(name).requires:
            if required not in stages[:position]:
                check_stage(run.directory, required, run.config)


def train_stage_of(
    run: Run,
    name: str,
    resume: bool = False,
    env: Distributed | None = None,
    on_step: Callable[[int], None] | None = None,
    *,
    objective: nn.Module | None = None,
    out_dir: Path | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Train stage ``name`` of ``run`` into ``<run dir>/<name>`` (the caller holds the run
    directory's lock); returns the exported weights' path.

    ``objective``, ``out_dir`` and ``extra`` train another model the way the stage is trained
    (its settings, data, batches, seed, device and precision), e.g. an ablation's model into a
    folder of its own; ``extra`` is recorded beside the weights.
    """
    entry = stage(name)
    env = env or Distributed(device=run.device)
    stage_run = StageTraining(
        out_dir=out_dir if out_dir is not None else run.directory / name,
        config=run.config.stage(name),
        seed=run.config.seed,
        resume=resume,
        num_workers=run.loader_workers,
        metadata={**stage_record(run.config, run.directory, name), **(extra or {})},
        on_step=on_step,
        precision=run.precision,
    )
    torch.manual_seed(run.config.seed)  # identical initial weights on every DDP rank
    if objective is None:
        objective = entry.part("objective")(run)
    train_set, val_set = entry.part("datasets")(run.config)
    label = name if out_dir is None else stage_run.out_dir.name
    return train_stage(
        label, objective, train_set, val_set, stage_run, env, entry.part("batch_sampler")
    )
