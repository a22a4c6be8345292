"""The training stages of PerFRDiff: one :class:`Stage` record each, in training order.

``emotion-vae`` → ``style`` → ``gafrg`` (around the trained VAE, frozen) → ``pwsg`` (the shift
generator around the trained GAFRG and style encoder, both frozen). Everything that asks about a
stage reads this registry: the order ``train all`` follows, which earlier stages a stage loads,
how its model is built, what it optimises, on which data, and which part of the model it exports.
Which config keys a stage's weights depend on is declared by the config fields themselves
(:mod:`perfrdiff.config`), naming the stages listed here.

The parts that need the models or the training code are named as ``"module:attribute"`` and
imported on first use (as transformers' auto-class mappings do), so this module imports nothing
of the package: the config takes the stage names from here, and inference never imports the
training code.

Adding a stage means one record here and the new stage's own module(s) for its model builder,
objective and datasets.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (imported on demand)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        name: the stage's name (``perfrdiff train <name>``, ``<run_dir>/<name>/``).
        requires: stages whose trained models this one is built around, in the order the
            model builder takes them; they are frozen while this stage trains.
        model: ``"module:function"``, ``(config, *required models) -> nn.Module``.
        objective: ``"module:function"``, ``run -> Objective``: the loss of a new model of this
            stage (built by ``run.build(name, trained=False)``); its ``trained`` module is what
            is optimised.
        datasets: ``"module:function"``, ``config -> (train, validation or None)``.
        batch_sampler: ``"module:function"`` batching the training set (see
            ``perfrdiff.training.loop.BatchSamplerFactory``), or ``None`` for uniform batches.
        exported: the attribute of the model whose weights the stage exports (``None``: the
            whole model).
        exports_requirements: whether the exported weights hold the required models' too
            (GAFRG's hold its VAE), so that loading the trained stage needs no earlier stage.
        included: ``"module:function"``, ``config -> bool``: whether a run with that config
            has this stage (``train all`` trains it); ``None``: every run has it.
    """

    name: str
    requires: tuple[str, ...]
    model: str
    objective: str
    datasets: str
    batch_sampler: str | None = None
    exported: str | None = None
    exports_requirements: bool = False
    included: str | None = None

    def build_model(self, config: Any, *required: Any) -> Any:
        """A new, untrained model of this stage around the ``required`` models."""
        return resolve(self.model)(config, *required)

    def exported_part(self, model: Any) -> Any:
        """The module whose weights this stage exports (and loads back)."""
        return model if self.exported is None else getattr(model, self.exported)

    def part(self, name: str) -> Callable[..., Any] | None:
        """The training part ``name`` (``"objective"``, ``"datasets"``, ``"batch_sampler"``)."""
        reference = getattr(self, name)
        return None if reference is None else resolve(reference)


_OBJECTIVES = "perfrdiff.training.objectives"
_DATASETS = "perfrdiff.training.datasets"

#: Stage name -> record, in training order: a stage's requirements come before it.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "emotion-vae",
            (),
            model="perfrdiff.models.build:build_vae",
            objective=f"{_OBJECTIVES}:emotion_vae_objective",
            datasets=f"{_DATASETS}:window_datasets",
        ),
        Stage(
            "style",
            (),
            model="perfrdiff.models.build:build_style_encoder",
            objective=f"{_OBJECTIVES}:style_objective",
            datasets=f"{_DATASETS}:style_datasets",
            batch_sampler=f"{_DATASETS}:listener_batches",
        ),
        Stage(
            "gafrg",
            ("emotion-vae",),
            model="perfrdiff.models.build:build_gafrg",
            objective=f"{_OBJECTIVES}:gafrg_objective",
            datasets=f"{_DATASETS}:window_datasets",
            exports_requirements=True,
        ),
        Stage(
            "pwsg",
            ("gafrg", "style"),
            model="perfrdiff.models.build:build_perfrdiff",
            objective=f"{_OBJECTIVES}:pwsg_objective",
            datasets=f"{_DATASETS}:history_window_datasets",
            exported="exported",
        ),
        # REACT 2026 only, and only where the training split has EEG (perfrdiff.training.eeg)
        Stage(
            "eeg",
            (),
            model="perfrdiff.models.build:build_eeg_head",
            objective="perfrdiff.training.eeg:eeg_objective",
            datasets="perfrdiff.training.eeg:eeg_datasets",
            included="perfrdiff.training.eeg:has_eeg",
        ),
    )
}

#: The stage names in training order.
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)


def stage(name: str) -> Stage:
    """The record of stage ``name``.

    Raises:
        ValueError: no such stage (the message lists the stages).
    """
    if name not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {name!r}")
    return STAGES[name]


def run_stages(config: Any) -> tuple[str, ...]:
    """The stages a run with ``config`` has, in training order (what ``train all`` trains):
    every stage without an ``included`` test, and those whose test passes."""
    return tuple(
        s.name for s in STAGES.values() if s.included is None or resolve(s.included)(config)
    )


def upstream(name: str) -> tuple[str, ...]:
    """Every stage ``name`` is built on, directly or through another, in training order."""
    found: set[str] = set()
    pending = list(stage(name).requires)
    while pending:
        required = pending.pop()
        if required not in found:
            found.add(required)
            pending.extend(STAGES[required].requires)
    return tuple(s for s in STAGE_NAMES if s in found)
