"""Builders of every model from the application :class:`~perfrdiff.config.Config`.

The one place that maps the whole config onto each model's own small config; everything that
needs a model (the stage registry :mod:`perfrdiff.stages`, a run, benchmarks, tests) builds it
here.
"""

from __future__ import annotations

from perfrdiff.config import Config
from perfrdiff.data.react2026.store import AUDIO_WIDTHS
from perfrdiff.features import AUDIO_DIMS, EMOTION_DIM, FACE_DIM
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.eeg_head import EEGHead
from perfrdiff.models.emotion_vae import EmotionVAE
from perfrdiff.models.personalised import PerFRDiff
from perfrdiff.models.schedule import DDIMSchedule
from perfrdiff.models.style_encoder import StyleEncoder
from perfrdiff.protocol import protocol_named


def build_vae(config: Config) -> EmotionVAE:
    """The speaker-emotion VAE (stage ``emotion-vae``)."""
    return EmotionVAE(config.emotion_vae)


def build_gafrg(config: Config, vae: EmotionVAE | None = None) -> GAFRG:
    """The generic denoiser (stage ``gafrg``) around ``vae`` (a new one if ``None``): windows
    of ``data.window`` frames, the speaker context of the run's protocol, the audio width of
    ``data.audio``."""
    window = config.data.window
    return GAFRG(
        config.denoiser,
        vae if vae is not None else build_vae(config),
        window,
        speaker_frames=sum(protocol_named(config.protocol).context_frames(window)),
        audio_dim=AUDIO_DIMS[config.data.audio],
    )


def build_style_encoder(config: Config) -> StyleEncoder:
    """The PSSL style encoder (stage ``style``)."""
    return StyleEncoder(config.style)


def build_perfrdiff(
    config: Config, gafrg: GAFRG | None = None, style_encoder: StyleEncoder | None = None
) -> PerFRDiff:
    """PerFRDiff (stage ``pwsg`` trains its generator) around a denoiser and a style encoder."""
    gafrg = gafrg if gafrg is not None else build_gafrg(config)
    style_encoder = style_encoder if style_encoder is not None else build_style_encoder(config)
    context = protocol_named(config.protocol).context_frames(config.data.window)
    return PerFRDiff(gafrg, style_encoder, config.pwsg, speaker_context=context)


def build_schedule(config: Config) -> DDIMSchedule:
    """The diffusion schedule a run trains and samples with."""
    d = config.diffusion
    return DDIMSchedule(d.train_steps, eta=d.eta, prediction=d.prediction)


def build_eeg_head(config: Config) -> EEGHead:
    """The EEG head (stage ``eeg``): the protocol's window and speaker context, the speaker's
    emotion, 3DMM and ``eeg.audio``."""
    protocol = protocol_named(config.protocol)
    speaker_dim = EMOTION_DIM + FACE_DIM + AUDIO_WIDTHS[config.eeg.audio]
    return EEGHead(config.eeg, speaker_dim, protocol.window, protocol.speaker_context)
