"""PSSL style encoder: a listener's history -> an L2-normalised style vector.

Linear input map, transformer encoder with a CLS token, MLP projection. Sinusoidal positions make
it accept histories of any length (the paper works from 10 s, i.e. 250 frames).
:meth:`StyleEncoder.segmented` embeds a longer history the way the encoder was trained: in pieces
of its training length, whose styles it averages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from perfrdiff.config import StyleConfig
from perfrdiff.features import history_dim
from perfrdiff.models.encoders import sinusoidal_embedding


def segment_starts(length: int, segment: int) -> list[int]:
    """Starts of the ``segment``-frame pieces that cover ``length`` frames.

    ``0, segment, 2·segment, …`` while a whole piece fits, and one more piece ending at the last
    frame when ``segment`` does not divide ``length`` (it overlaps the piece before it, so no
    frame is left out). ``[0]`` when ``length <= segment``: the whole history is one piece.

    Raises:
        ValueError: ``length`` or ``segment`` is below 1.
    """
    if length < 1 or segment < 1:
        raise ValueError(f"length and segment must be >= 1, got {length} and {segment}")
    if length <= segment:
        return [0]
    starts = list(range(0, length - segment + 1, segment))
    if length % segment:
        starts.append(length - segment)
    return starts


class StyleEncoder(nn.Module):
    """``history: (b, h, c)`` -> ``style: (b, s)`` with ``‖style‖ = 1``.

    Args:
        config: sizes; ``config.input`` selects 3DMM (``"face"``, c = 58) or emotion (c = 25);
            ``config.frames`` is the clip length it is trained on (:meth:`segmented`).
    """

    def __init__(self, config: StyleConfig) -> None:
        super().__init__()
        self.input_dim = history_dim(config.input)
        self.input_name = config.input
        self.frames = config.frames
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

    def segmented(self, history: Tensor) -> Tensor:
        """``history: (b, h, c)`` -> ``(b, s)``: the mean style of the history's ``frames``-frame
        pieces (:func:`segment_starts`), normalised to length 1.

        The encoder is trained on clips of ``frames`` frames; a longer history is embedded as
        pieces of that length instead of one sequence it has never seen, and the pieces' styles
        are averaged, as listener retrieval represents a listener. A history of at most
        ``frames`` frames is one piece: ``forward(history)``.
        """
        if history.dim() != 3 or history.shape[1] <= self.frames:
            return self(history)  # one piece (forward names a wrong shape)
        b, h = history.shape[:2]
        starts = segment_starts(h, self.frames)
        pieces = torch.stack([history[:, s : s + self.frames] for s in starts])  # (p, b, f, c)
        styles = self(pieces.flatten(0, 1)).unflatten(0, (len(starts), b))  # (p, b, s)
        return F.normalize(styles.mean(dim=0), dim=-1)
