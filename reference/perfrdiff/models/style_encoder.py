"""PSSL style encoder: a listener's history -> an L2-normalised style vector.

Linear input map, transformer encoder with a CLS token, MLP projection. Sinusoidal positions make
it accept histories of any length (the paper works from 10 s, i.e. 250 frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perfrdiff.config import StyleConfig
from perfrdiff.features import history_dim
from perfrdiff.models.encoders import sinusoidal_embedding


class StyleEncoder(nn.Module):
    """``history: (b, h, c)`` -> ``style: (b, s)`` with ``‖style‖ = 1``.

    Args:
        config: sizes; ``config.input`` selects 3DMM (``"face"``, c = 58) or emotion (c = 25).
    """

    def __init__(self, config: StyleConfig) -> None:
        super().__init__()
        self.input_dim = history_dim(config.input)
        self.input_name = config.input
        self.style_dim = config.style_dim
        d = config.d_model
        self.embed = nn.Linear(self.input_dim, d)
        self.cls = nn.Parameter(torch.randn(d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.heads, config.ffn_dim, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.project = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.style_dim))

    def forward(self, history: Tensor) -> Tensor:
        if history.dim() != 3 or history.shape[-1] != self.input_dim:
            raise ValueError(
                f"history must have shape (b, h, {self.input_dim}) for style.input="
                f"{self.input_name!r}, got {tuple(history.shape)}"
            )
        b, h, _ = history.shape
        x = self.embed(history) + sinusoidal_embedding(
            torch.arange(h, device=history.device), self.cls.shape[0]
        )
        x = torch.cat([self.cls.expand(b, 1, -1), x], dim=1)
        cls = self.norm(self.encoder(x)[:, 0])
        return F.normalize(self.project(cls), dim=-1)
