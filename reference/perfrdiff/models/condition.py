"""What the shift generator reads: the style of a listener's history, their personality, or both.

``pwsg.condition`` (as the REACT 2026 baseline's personalisation options):

* ``history``: the PSSL style of the listener's history (the paper's; nothing here learns);
* ``personality``: the listener's Big Five scores ``(l, 5)`` in ``[0, 1]`` through a
  ``5 → 128 → s`` MLP, L2-normalised;
* ``both``: the history style and that personality embedding concatenated, through an MLP to
  ``s`` values, L2-normalised.

``s`` is the style encoder's ``style.style_dim``, so every condition gives the generator a
unit vector of the same width. The MLPs are trained with the shift generator (stage ``pwsg``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: The Big Five scores of a listener: Extraversion, Agreeableness, Conscientiousness,
#: Neuroticism, Openness, each ``(v − 1) / 4`` of a 1–5 score.
PERSONALITY_DIM = 5
#: Width of the hidden layer of the personality and fusion MLPs (the REACT 2026 baseline's 128).
HIDDEN_DIM = 128


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, HIDDEN_DIM), nn.GELU(), nn.Linear(HIDDEN_DIM, out_dim))


def check_personality(personality: object, rows: int | None = None) -> Tensor:
    """``personality`` validated as ``(l, 5)`` floating scores in ``[0, 1]``.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: not ``(l, 5)`` (``l = rows`` when given), not finite, or outside
            ``[0, 1]`` (raw 1–5 scores must be mapped by ``(v − 1) / 4`` first).
    """
    if not isinstance(personality, Tensor) or not personality.is_floating_point():
        kind = personality.dtype if isinstance(personality, Tensor) else type(personality).__name__
        raise TypeError(f"personality must be a floating-point tensor (l, 5), got {kind}")
    l = "l" if rows is None else rows
    if (
        personality.dim() != 2
        or personality.shape[1] != PERSONALITY_DIM
        or (rows is not None and personality.shape[0] != rows)
    ):
        raise ValueError(
            f"personality must have shape ({l}, {PERSONALITY_DIM}) (the Big Five of each "
            f"listener), got {tuple(personality.shape)}"
        )
    if not bool(((personality >= 0) & (personality <= 1)).all()):
        raise ValueError(
            "personality must be in [0, 1] and finite (Big Five 1-5 scores as (v - 1) / 4), got "
            f"values in [{personality.min().item():g}, {personality.max().item():g}]"
        )
    return personality


def jittered(condition: Tensor, std: float) -> Tensor:
    """``condition: (l, s)`` unit vectors moved by Gaussian noise of ``std`` per dimension and
    normalised back to length 1: conditions near (and between) the training listeners'
    (``pwsg.style_noise``, stage ``pwsg`` only)."""
    return F.normalize(condition + std * torch.randn_like(condition), dim=-1)


class ListenerCondition(nn.Module):
    """The generator's condition vector ``(l, s)`` from a history style and/or a personality.

    Args:
        condition: ``"history"``, ``"personality"`` or ``"both"``.
        style_dim: ``s``, the width of the history style and of the result.
    """

    def __init__(self, condition: str, style_dim: int) -> None:
        super().__init__()
        if condition not in ("history", "personality", "both"):
            raise ValueError(
                f"condition must be 'history', 'personality' or 'both', got {condition!r}"
            )
        self.kind = condition
        self.style_dim = style_dim
        self.personality = _mlp(PERSONALITY_DIM, style_dim) if self.reads_personality else None
        self.fusion = _mlp(2 * style_dim, style_dim) if condition == "both" else None

    def extra_repr(self) -> str:
        return f"{self.kind!r}, style_dim={self.style_dim}"

    @property
    def reads_history(self) -> bool:
        """Whether the condition reads the history's style."""
        return self.kind != "personality"

    @property
    def reads_personality(self) -> bool:
        """Whether the condition reads the listener's personality."""
        return self.kind != "history"

    @property
    def learns(self) -> bool:
        """Whether the condition has weights (trained with the generator)."""
        return self.reads_personality

    def forward(self, style: Tensor | None, personality: Tensor | None) -> Tensor:
        """``style: (l, s)`` (unit rows, or ``None`` for ``personality``) and
        ``personality: (l, 5)`` (or ``None`` for ``history``) -> ``(l, s)``.

        Raises:
            ValueError: the condition needs ``personality`` (or ``style``) and got ``None``,
                or a bad personality (:func:`check_personality`).
        """
        if not self.reads_personality:
            return style
        if personality is None:
            raise ValueError(
                f"pwsg.condition={self.kind!r} needs each listener's 'personality' "
                "((l, 5) Big Five in [0, 1]; a batch key of REACT 2026 data), got none"
            )
        rows = None if style is None else style.shape[0]
        dtype = self.personality[0].weight.dtype
        embedded = F.normalize(self.personality(check_personality(personality, rows).to(dtype)))
        if self.fusion is None:
            return embedded
        return F.normalize(self.fusion(torch.cat([style.to(dtype), embedded], dim=1)))
