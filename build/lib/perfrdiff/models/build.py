"""Builders of every model from the application :class:`~perfrdiff.config.Config`.

The one place that maps the whole config onto each model's own small config; everything that
needs a model (training stages, a run's loaders, benchmarks, tests) builds it here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from perfrdiff.config import Config
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.emotion_vae import EmotionVAE
from perfrdiff.models.personalised import PerFRDiff
from perfrdiff.models.schedule import DDIMSchedule
from perfrdiff.models.style_encoder import StyleEncoder


def build_vae(config: Config) -> EmotionVAE:
    """The speaker-emotion VAE (stage ``emotion-vae``)."""
    return EmotionVAE(config.emotion_vae)


def build_gafrg(config: Config, vae: EmotionVAE | None = None) -> GAFRG:
    """The generic denoiser (stage ``gafrg``) around ``vae`` (a new one if ``None``)."""
    return GAFRG(config.denoiser, vae if vae is not None else build_vae(config), config.data.window)


def build_style_encoder(config: Config) -> StyleEncoder:
    """The PSSL style encoder (stage ``style``)."""
    return StyleEncoder(config.style)


def build_perfrdiff(
    config: Config, gafrg: GAFRG | None = None, style_encoder: StyleEncoder | None = None
) -> PerFRDiff:
    """PerFRDiff (stage ``pwsg`` trains its generator) around a denoiser and a style encoder."""
    gafrg = gafrg if gafrg is not None else build_gafrg(config)
    style_encoder = style_encoder if style_encoder is not None else build_style_encoder(config)
    return PerFRDiff(gafrg, style_encoder, config.pwsg)


def build_schedule(config: Config) -> DDIMSchedule:
    """The diffusion schedule a run trains and samples with."""
    d = config.diffusion
    return DDIMSchedule(d.train_steps, eta=d.eta, prediction=d.prediction)


@dataclass(frozen=True)
class StageModel:
    """The model a training stage produces.

    Attributes:
        requires: stages whose models this one is built around (in ``build``'s argument order).
        build: ``(config, *required models) -> model``.
        exported: the part of the model whose weights the stage exports (``pwsg``: the
            generator, and a fitted listener prior; the others: the whole model).
        exports_requirements: whether the exported weights include the required models' (GAFRG's
            hold its VAE's), so loading the trained stage needs no earlier stage.
    """

    requires: tuple[str, ...]
    build: Callable[..., nn.Module]
    exported: Callable[[nn.Module], nn.Module] = lambda model: model
    exports_requirements: bool = False


#: Stage name -> its model, in training order: the one registry every model is built from.
STAGE_MODELS: dict[str, StageModel] = {
    "emotion-vae": StageModel((), build_vae),
    "style": StageModel((), build_style_encoder),
    "gafrg": StageModel(("emotion-vae",), build_gafrg, exports_requirements=True),
    "pwsg": StageModel(("gafrg", "style"), build_perfrdiff, lambda model: model.exported),
}
