"""A trained (or training) PerFRDiff run: the one object that owns its config, directory, device
and precision, builds every stage's model and hands out samplers, predictions and metrics.

    run = Run.load("runs/demo/run", device="auto")        # a finished run
    predictions = run.generate("test")                    # {"generic": ..., "personalised": ...}
    metrics = run.evaluate(predictions["personalised"], "test")

A run directory holds ``config.yaml`` and one folder per trained stage (the registry:
:mod:`perfrdiff.stages`). A run knows nothing of training: :func:`perfrdiff.training.train_run`
takes a run and trains its stages, and inference never imports :mod:`perfrdiff.training`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from perfrdiff.config import Config, apply_runtime, load_config
from perfrdiff.device import autocast, check_precision, loader_workers, resolve_device
from perfrdiff.distributed import Distributed, run_shards
from perfrdiff.generation import (
    MODES,
    EvaluationSet,
    ReactionSampler,
    SamplerConfig,
    batch_count,
    check_history_frames,
    generate_batches,
    load_evaluation_set,
    with_listener_history,
    with_style_input,
)
from perfrdiff.generation.mars import TRACKS, MarsSequences
from perfrdiff.generation.postprocess import postprocess
from perfrdiff.models import DDIMSchedule, build_schedule
from perfrdiff.protocol import Protocol, protocol_named
from perfrdiff.rundir import load_stage_weights
from perfrdiff.stages import stage as stage_entry

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"


class Run:
    """One PerFRDiff run.

    Args:
        config: everything the run needs (sizes, data root, stage lengths, sampling).
        directory: where the stages' weights live (``<directory>/<stage>/model.safetensors``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast; weights stay float32).

    Raises:
        ValueError: an unknown device or precision.
    """

    def __init__(
        self,
        config: Config,
        directory: str | Path,
        device: str | torch.device = "auto",
        precision: str = "fp32",
    ) -> None:
        self.config = config
        self.directory = Path(directory)
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        self._models: dict[str, nn.Module] = {}
        apply_runtime(config)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        overrides: Sequence[str] = (),
        config: str | Path | None = None,
    ) -> Run:
        """The run in ``directory``, with its saved ``config.yaml`` (or ``config``) and
        ``overrides`` (``key.sub=value``) applied.

        Raises:
            FileNotFoundError: no ``config.yaml`` in ``directory`` and no ``config`` given.
        """
        path = Path(config) if config is not None else Path(directory) / CONFIG_FILE
        if config is None and not path.is_file():
            raise FileNotFoundError(f"{path} not found: train the run first or pass a config")
        return cls(load_config(path, list(overrides)), directory, device, precision)

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}, device={self.device}, precision={self.precision!r})"

    @property
    def loader_workers(self) -> int:
        """DataLoader workers for training (``data.num_workers``, or by device when null)."""
        return loader_workers(self.config.data.num_workers, self.device)

    @property
    def protocol(self) -> Protocol:
        """The challenge protocol the run follows (config key ``protocol``)."""
        return protocol_named(self.config.protocol)

    @cached_property
    def schedule(self) -> DDIMSchedule:
        """The diffusion schedule the run trains and samples with."""
        return build_schedule(self.config)

    # Models -------------------------------------------------------------------------------

    def build(self, stage: str, trained: bool = True) -> nn.Module:
        """A new model of ``stage`` with its earlier stages' trained weights loaded, on the CPU.

        ``emotion-vae`` -> :class:`~perfrdiff.models.EmotionVAE`, ``style`` ->
        :class:`~perfrdiff.models.StyleEncoder`, ``gafrg`` -> :class:`~perfrdiff.models.GAFRG`
        (around the trained VAE), ``pwsg`` -> :class:`~perfrdiff.models.PerFRDiff` (trained
        GAFRG and style encoder). With ``trained``, ``stage``'s own weights are loaded too.

        Raises:
            ValueError: unknown stage.
            FileNotFoundError: a needed stage has not been trained.
        """
        entry = stage_entry(stage)
        # Required stages load their trained weights, unless this stage's own weights hold them.
        required = not (trained and entry.exports_requirements)
        model = entry.build_model(self.config, *(self.build(r, required) for r in entry.requires))
        if trained:  # checked against the config and the stages it was trained with
            load_stage_weights(entry.exported_part(model), self.directory, stage, self.config)
        return model

    def model(self, stage: str) -> nn.Module:
        """The trained model of ``stage`` on the run's device, in eval mode (built once)."""
        if stage not in self._models:
            self._models[stage] = self.build(stage).to(self.device).eval()
        return self._models[stage]

    def forget(self, stage: str) -> None:
        """Drop the model of ``stage`` built by :meth:`model` (its weights were retrained)."""
        self._models.pop(stage, None)

    # Inference ----------------------------------------------------------------------------

    def sampler(self, mode: str, model: nn.Module | None = None) -> ReactionSampler:
        """Sampler of ``mode`` (``"generic"``: GAFRG; ``"personalised"``: PerFRDiff) with
        the config's solver, steps, guidance, spacing and online overlap, on the run's device.

        ``model`` samples another model of the same kind the run's way (a variant or an
        ablation's model, on the run's device); by default, the run's trained one.

        Raises:
            ValueError: unknown mode.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if model is None:
            model = self.model("pwsg" if mode == "personalised" else "gafrg")
        d = self.config.diffusion
        g = self.config.generate
        config = SamplerConfig(d.sample_steps, d.guidance, g.overlap, d.spacing, g.solver)
        return ReactionSampler(model, self.schedule, config)

    def sample(
        self,
        mode: str,
        data: EvaluationSet,
        samples: int | None = None,
        seed: int = 0,
        model: nn.Module | None = None,
        distributed: Distributed | None = None,
    ) -> np.ndarray | None:
        """Reactions ``(n, M, T, 25)`` float32 of :meth:`sampler` ``(mode, model)`` for every clip
        of ``data``, under the run's precision, post-processed as the run's protocol submits
        them (:meth:`~perfrdiff.protocol.Protocol.finish`: REACT 2024 leaves them as they are);
        what :meth:`generate` does per mode.

        With ``distributed`` (several ``torchrun`` processes) each process generates its share
        of the batches (:func:`~perfrdiff.distributed.run_shards`) and rank 0 returns them all,
        equal to one process's; the other ranks return ``None``.

        Raises:
            FloatingPointError: the model produced NaN or infinite reactions.
            perfrdiff.distributed.RankFailed: another process failed.
        """
        env = distributed or Distributed(device=self.device)
        sampler = self.sampler(mode, model)
        per_batch = self.config.generate.clips_per_batch
        samples = samples or self.config.generate.samples

        def compute(batches: Sequence[int]) -> list[np.ndarray]:
            with autocast(self.device, self.precision):
                personalised = mode == "personalised"
                reactions = generate_batches(
                    sampler,
                    data.clips,
                    samples,
                    personalised,
                    per_batch,
                    seed,
                    batches,
                    env.is_main,
                )
            return [self._postprocessed(self._finite(r, mode)) for r in reactions]

        parts = run_shards(env, batch_count(len(data.clips), per_batch), compute)
        return None if parts is None else self.protocol.finish(np.concatenate(parts))

    def _finite(self, reactions: torch.Tensor, mode: str) -> torch.Tensor:
        """``reactions``, checked.

        Raises:
            FloatingPointError: they hold NaN or infinite values, saying the likely cause.
        """
        if not torch.isfinite(reactions).all():
            guidance = self.config.diffusion.guidance
            cause = (
                f"diffusion.guidance = {guidance:g} scales the difference of two predictions "
                "and overflows; use a guidance of order 1 to 10"
                if abs(guidance) > 100
                else f"the weights in {self.directory} are probably damaged or diverged in training"
            )
            raise FloatingPointError(
                f"{mode} generation produced NaN or infinite reactions: {cause}"
            )
        return reactions

    def _postprocessed(self, reactions: torch.Tensor) -> np.ndarray:
        """``(..., t, 25)`` generated reactions smoothed and clamped as ``generate.smooth_sigma``
        and ``generate.clamp`` say (before the protocol's :meth:`~Protocol.finish`)."""
        g = self.config.generate
        return postprocess(reactions.float(), g.clamp, g.smooth_sigma).cpu().numpy()

    def sampling_info(self) -> dict:
        """How the run samples (recorded beside saved predictions)."""
        d = self.config.diffusion
        return {
            "sample_steps": d.sample_steps,
            "guidance": d.guidance,
            "eta": d.eta,
            "spacing": d.spacing,
            "solver": self.config.generate.solver,
            "prediction": d.prediction,
            "window": self.config.data.window,
            "stride": self.config.data.window - self.config.generate.overlap,
            "protocol": self.protocol.name,
            "fps": self.protocol.fps,
            "device": str(self.device),
            "precision": self.precision,
        }

    def sequence_set(
        self, split: str, limit: int | None = None, histories: bool = True
    ) -> MarsSequences:
        """REACT 2026: the :class:`~perfrdiff.generation.mars.MarsSequences` of ``split`` (the
        first ``limit`` dyads), with each item's listener history when ``histories``."""
        from perfrdiff.data.react2026.store import run_store
        from perfrdiff.generation.mars import load_sequences, read_histories

        d = self.config.data
        data = load_sequences(run_store(self.config, split), limit)
        if not histories:
            return data
        style_input, same = self.config.style.input, d.allow_same_clip_history
        return read_histories(data, d.history_frames, style_input, same)

    def generate_sequences(
        self,
        data: MarsSequences,
        modes: Sequence[str] = MODES,
        tracks: Sequence[str] = TRACKS,
        samples: int | None = None,
        seed: int = 0,
        distributed: Distributed | None = None,
    ) -> dict[str, list[np.ndarray]]:
        """REACT 2026: ``"<mode>-<track>"`` -> ``(M, T, 25)`` reactions per item of ``data``
        (:meth:`sequence_set`), post-processed by the protocol; the tracks ``"offline"``
        (pieces of the protocol's crop) and ``"online"`` (windows with bounded state).
        Personalised generation reads each item's history and/or Big Five, as the run's
        ``pwsg.condition`` reads them.

        With ``distributed`` (several ``torchrun`` processes) each process generates its share
        of the seeded batches (:func:`~perfrdiff.distributed.run_shards`) and rank 0 returns
        them all, equal to one process's; the other ranks return an empty dict.

        Raises:
            FloatingPointError: the model produced NaN or infinite reactions.
            perfrdiff.distributed.RankFailed: another process failed.
        """
        from perfrdiff.generation.mars import in_item_order, sample_batches, sequence_batches

        env = distributed or Distributed(device=self.device)
        window, g = self.config.data.window, self.config.generate
        context = self.protocol.context_frames(window)
        groups = sequence_batches(data, g.clips_per_batch)
        out = {}
        for mode in modes:
            for track in tracks:

                def compute(batches: Sequence[int], mode=mode, track=track) -> list:
                    with autocast(self.device, self.precision):
                        return sample_batches(
                            self.sampler(mode), data, track, samples or g.samples, context,
                            self.protocol.crop_frames, g.clips_per_batch, seed,
                            personalised=mode == "personalised", batches=batches,
                        )  # fmt: skip

                parts = run_shards(env, len(groups), compute)
                if parts is not None:
                    arrays = in_item_order(groups, parts)
                    out[f"{mode}-{track}"] = [
                        self.protocol.finish(self._postprocessed(torch.from_numpy(a)))
                        for a in arrays
                    ]
        return out

    def evaluation_set(
        self, split: str, limit: int | None = None, histories: bool = True
    ) -> EvaluationSet:
        """The ``split`` clips of the run's dataset (the first ``limit`` items); without
        ``histories`` (generic generation only) no listener needs another clip."""
        return load_evaluation_set(self.config, split, limit, histories)

    def generate(
        self,
        split: str = "test",
        modes: Sequence[str] = MODES,
        samples: int | None = None,
        seed: int = 0,
        data: EvaluationSet | None = None,
        history: np.ndarray | None = None,
        limit: int | None = None,
        distributed: Distributed | None = None,
    ) -> dict[str, np.ndarray]:
        """Reactions ``(n, M, T, 25)`` float32 per mode for every item of ``split``.

        Args:
            samples: ``M`` (default: ``generate.samples``).
            data: the split, if already loaded (:meth:`evaluation_set`).
            history: ``(h, c)`` to personalise every item to this one listener instead of each
                item's own.
            limit: only the first ``limit`` items (when ``data`` is not given).
            distributed: this process's place among several (``torchrun``): the processes
                share the work and rank 0 returns every mode's reactions, the same as one
                process's; the other ranks return an empty dict (:meth:`sample`).
        """
        personalised = "personalised" in modes
        if data is None:  # histories only where they are read
            data = self.evaluation_set(split, limit, histories=personalised and history is None)
        if history is not None:
            data = with_listener_history(data, history, self.config)
        elif personalised:
            if data.style_input is None and not all("history" in c for c in data.clips):
                raise ValueError(
                    "personalised generation needs each item's listener history: this "
                    "evaluation set was read without histories (evaluation_set(histories=True))"
                )
            if data.style_input is not None:  # e.g. a set loaded by a run with another input
                data = with_style_input(data, self.config.style.input)
            check_history_frames(data, self.config.data.history_frames)
        predictions = {
            mode: self.sample(mode, data, samples, seed, None, distributed) for mode in modes
        }
        return {mode: array for mode, array in predictions.items() if array is not None}

    def evaluate(
        self,
        predictions: np.ndarray | Mapping[str, np.ndarray],
        split: str = "test",
        data: EvaluationSet | None = None,
        n_jobs: int | None = None,
        distributed: Distributed | None = None,
    ) -> dict:
        """The seven REACT metrics of ``predictions`` ``(n, M, T, 25)`` against ``split``
        (or of each array of a mapping name -> predictions, returning name -> metrics), FRCorr
        and FRdist on both label sets (``"PMAFRG FRCorr"``, ``"PMAFRG FRdist"`` beside the
        challenge's MAFRG ones, when ``data`` knows its listeners), with the motion statistics
        of :func:`perfrdiff.metrics.motion_report` at the joins of the run's online windows.

        Metrics are computed in NumPy on the CPU whatever the run's device. With
        ``distributed`` (``torchrun`` processes, each holding all of ``predictions``) the
        processes share the per-item scores and each returns the numbers one process computes
        (:func:`~perfrdiff.metrics.evaluate_all`).
        """
        from perfrdiff.metrics import evaluate_all, motion_report

        data = data if data is not None else self.evaluation_set(split)
        window = self.config.data.window
        stride = window - self.config.generate.overlap

        protocol = self.protocol

        def one(p: np.ndarray) -> dict[str, float]:
            metrics = evaluate_all(
                p,
                data.listener_emotion,
                data.speaker_emotion,
                data.neighbours,
                n_jobs,
                protocol=protocol,
                listeners=data.listeners,
                distributed=distributed,
            )
            motion = motion_report(p, data.listener_emotion, window, stride, fps=protocol.fps)
            return {**metrics, **motion}

        if isinstance(predictions, Mapping):
            return {name: one(p) for name, p in predictions.items()}
        return one(predictions)
