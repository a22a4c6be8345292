"""Speaker behaviour encoders: per-frame audio and 3DMM tokens plus one speaker-emotion token.

Their output is the cross-attention memory of the denoiser (together with its time token).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from perfrdiff.models.emotion_vae import EmotionVAE


def sinusoidal_embedding(positions: Tensor, dim: int) -> Tensor:
    """``positions: (*p,)`` (int or float) -> ``(*p, dim)`` transformer sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float().unsqueeze(-1) * freqs
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class SpeakerEncoder(nn.Module):
    """Speaker window -> memory tokens ``(b, 2w + 1, d)``: audio, 3DMM, one emotion token.

    The emotion VAE is owned elsewhere (pretrained, frozen) and passed in at call time, so its
    parameters are neither part of this module's state nor of the denoiser's optimiser.

    Args:
        d_model: ``d``.
        audio_dim: MFCC features per frame (78).
        face_dim: 3DMM coefficients per frame (58).
        latent_dim: emotion VAE latent size.
        window: ``w``, frames per window (positional table size).
    """

    def __init__(
        self, d_model: int, audio_dim: int, face_dim: int, latent_dim: int, window: int
    ) -> None:
        super().__init__()
        self.audio = nn.Linear(audio_dim, d_model)
        self.face = nn.Linear(face_dim, d_model)
        self.emotion = nn.Linear(latent_dim, d_model)
        # Which stream a token came from; positions are shared by the two per-frame streams.
        self.stream = nn.Parameter(torch.zeros(3, d_model))
        self.register_buffer("positions", sinusoidal_embedding(torch.arange(window), d_model))

    def forward(self, audio: Tensor, face: Tensor, emotion: Tensor, vae: EmotionVAE) -> Tensor:
        """``audio (b, w, 78)``, ``face (b, w, 58)``, ``emotion (b, w, 25)`` -> ``(b, 2w+1, d)``."""
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
            mu, _ = vae.encode(emotion)
        tokens = [
            self.audio(audio) + pos + self.stream[0],
            self.face(face) + pos + self.stream[1],
            (self.emotion(mu) + self.stream[2]).unsqueeze(1),
        ]
        return torch.cat(tokens, dim=1)
