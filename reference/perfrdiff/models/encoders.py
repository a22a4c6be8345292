"""Speaker behaviour encoders: per-frame audio and 3DMM tokens plus one speaker-emotion token
(and, optionally, per-frame emotion tokens).

Their output is the cross-attention memory of the denoiser (together with its time token).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from perfrdiff.features import EMOTION_DIM
from perfrdiff.models.emotion_vae import EmotionVAE
from perfrdiff.models.scaler import FeatureScaler


def sinusoidal_embedding(positions: Tensor, dim: int) -> Tensor:
    """``positions: (*p,)`` (int or float) -> ``(*p, dim)`` transformer sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float().unsqueeze(-1) * freqs
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class SpeakerEncoder(nn.Module):
    """Speaker window -> memory tokens ``(b, m, d)``: audio and 3DMM tokens per frame, one
    emotion token (the emotion VAE's summary of the window) and, with ``emotion_frames``, an
    emotion token per frame: ``m = 2v + 1`` (``3v + 1``).

    The emotion VAE is owned elsewhere (pretrained, frozen) and passed in at call time, so its
    parameters are neither part of this module's state nor of the denoiser's optimiser.

    Args:
        d_model: ``d``.
        audio_dim: ``a``, audio features per frame (78 MFCC, 768 wav2vec2).
        face_dim: 3DMM coefficients per frame (58).
        latent_dim: emotion VAE latent size.
        window: ``v``, speaker frames per window (positional table size).
        standardise: standardise the ``a + 58 + 25`` frame features with :attr:`scaler`
            (identity until fitted to the training split).
        emotion_frames: add the per-frame emotion tokens.
    """

    def __init__(
        self,
        d_model: int,
        audio_dim: int,
        face_dim: int,
        latent_dim: int,
        window: int,
        standardise: bool = False,
        emotion_frames: bool = False,
    ) -> None:
        super().__init__()
        self.audio = nn.Linear(audio_dim, d_model)
        self.face = nn.Linear(face_dim, d_model)
        self.emotion = nn.Linear(latent_dim, d_model)
        self.emotion_frames = nn.Linear(EMOTION_DIM, d_model) if emotion_frames else None
        # Which stream a token came from; positions are shared by the per-frame streams.
        self.stream = nn.Parameter(torch.zeros(4 if emotion_frames else 3, d_model))
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(window), d_model))
        self.scaler = FeatureScaler(audio_dim + face_dim + EMOTION_DIM) if standardise else None

    def forward(self, audio: Tensor, face: Tensor, emotion: Tensor, vae: EmotionVAE) -> Tensor:
        """``audio (b, v, a)``, ``face (b, v, 58)``, ``emotion (b, v, 25)`` -> ``(b, m, d)``."""
        w = audio.shape[1]
        if face.shape[:2] != audio.shape[:2] or emotion.shape[:2] != audio.shape[:2]:
            raise ValueError(
                "audio, face and emotion must share (b, w), got "
                f"{tuple(audio.shape)}, {tuple(face.shape)}, {tuple(emotion.shape)}"
            )
        if w > self.positions.shape[0]:
            raise ValueError(
                f"speaker window has {w} frames, the encoder supports at most "
                f"{self.positions.shape[0]}"
            )
        pos = self.positions[:w]
        with torch.no_grad():
            mu, _ = vae.encode(emotion)  # the VAE was trained on raw emotion
        if self.scaler is not None:
            frames = self.scaler.normalise(torch.cat([audio, face, emotion], dim=-1))
            audio, face, emotion = frames.split([audio.shape[-1], face.shape[-1], EMOTION_DIM], -1)
        tokens = [
            self.audio(audio) + pos + self.stream[0],
            self.face(face) + pos + self.stream[1],
            (self.emotion(mu) + self.stream[2]).unsqueeze(1),
        ]
        if self.emotion_frames is not None:
            tokens.append(self.emotion_frames(emotion) + pos + self.stream[3])
        return torch.cat(tokens, dim=1)
