"""PerFRDiff models: speaker encoders, emotion VAE, GAFRG denoiser, schedule, PSSL, PWSG."""

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.models.build import (
    build_gafrg,
    build_perfrdiff,
    build_schedule,
    build_style_encoder,
    build_vae,
)
from perfrdiff.models.condition import ListenerCondition
from perfrdiff.models.coupling import lagged_correlations
from perfrdiff.models.denoiser import GAFRG, MemoryCache
from perfrdiff.models.emotion_vae import EmotionVAE, vae_loss
from perfrdiff.models.encoders import SpeakerEncoder, sinusoidal_embedding
from perfrdiff.models.losses import supervised_contrastive_loss, x0_loss
from perfrdiff.models.personalised import PerFRDiff, build_generator
from perfrdiff.models.prior import ListenerPrior, PersonalityLevel
from perfrdiff.models.response import ListenerResponse, ResponseFit, first_visible
from perfrdiff.models.scaler import FeatureScaler
from perfrdiff.models.schedule import DDIMSchedule, cosine_alphas_cumprod
from perfrdiff.models.solvers import SOLVERS, DPMSolverPP2M, UniPC, build_solver
from perfrdiff.models.style_encoder import StyleEncoder

__all__ = [
    "GAFRG",
    "SOLVERS",
    "DDIMSchedule",
    "DPMSolverPP2M",
    "EmotionVAE",
    "FeatureScaler",
    "ListenerCondition",
    "ListenerPrior",
    "ListenerResponse",
    "MemoryCache",
    "PerFRDiff",
    "PersonalityLevel",
    "ResponseFit",
    "SpeakerEncoder",
    "StyleEncoder",
    "UniPC",
    "build_gafrg",
    "build_generator",
    "build_perfrdiff",
    "build_schedule",
    "build_solver",
    "build_style_encoder",
    "build_vae",
    "cosine_alphas_cumprod",
    "first_visible",
    "lagged_correlations",
    "sinusoidal_embedding",
    "supervised_contrastive_loss",
    "vae_loss",
    "x0_loss",
]
