"""GRU variational auto-encoder over emotion windows.

Pretrained in its own stage (``perfrdiff train emotion-vae``); GAFRG then uses the posterior mean
of a speaker's emotion window as one condition token, with the VAE frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perfrdiff.config import EmotionVAEConfig
from perfrdiff.features import EMOTION_DIM


class EmotionVAE(nn.Module):
    """``(b, w, e)`` emotion windows <-> ``(b, z)`` latents, ``e`` = 25 emotion channels.

    Args:
        config: ``hidden_dim`` (GRU width) and ``latent_dim`` (``z``); ``kl_weight`` is the
            training objective's.
    """

    def __init__(self, config: EmotionVAEConfig) -> None:
        super().__init__()
        emotion_dim, hidden_dim, latent_dim = EMOTION_DIM, config.hidden_dim, config.latent_dim
        self.emotion_dim = emotion_dim
        self.latent_dim = latent_dim
        self.encoder = nn.GRU(emotion_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.posterior = nn.Linear(2 * hidden_dim, 2 * latent_dim)
        self.latent_to_hidden = nn.Linear(latent_dim, hidden_dim)
        self.decoder = nn.GRU(latent_dim, hidden_dim, batch_first=True)
        self.readout = nn.Linear(hidden_dim, emotion_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x: (b, w, e)`` -> posterior ``mu, logvar: (b, z)``."""
        if x.dim() != 3 or x.shape[-1] != self.emotion_dim:
            raise ValueError(f"x must have shape (b, w, {self.emotion_dim}), got {tuple(x.shape)}")
        _, h = self.encoder(x)  # h: (2, b, hidden), the final states of both directions
        mu, logvar = self.posterior(torch.cat([h[0], h[1]], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: Tensor, frames: int) -> Tensor:
        """``z: (b, z)`` -> ``(b, frames, e)`` reconstruction."""
        h0 = torch.tanh(self.latent_to_hidden(z)).unsqueeze(0)
        out, _ = self.decoder(z.unsqueeze(1).expand(-1, frames, -1).contiguous(), h0)
        return self.readout(out)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x: (b, w, e)`` -> ``(reconstruction (b, w, e), mu (b, z), logvar (b, z))``.

        Samples the latent with the reparameterisation trick in training, uses ``mu`` in eval.
        """
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z, x.shape[1]), mu, logvar


def vae_loss(
    recon: Tensor, target: Tensor, mu: Tensor, logvar: Tensor, kl_weight: float
) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction MSE + ``kl_weight`` · KL(q(z|x) ‖ N(0, I)), averaged over the batch."""
    mse = F.mse_loss(recon, target)
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()
    loss = mse + kl_weight * kl
    return loss, {"mse": mse.item(), "kl": kl.item()}
