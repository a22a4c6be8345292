"""A listener's linear response to their partner, read from the dyadic history: the
time-varying part of the centre the personalised diffusion moves around
(``pwsg.listener_response``).

The listener prior (:mod:`perfrdiff.models.prior`) gives each listener a level. This gives them
a response: a ridge regression, fitted on their history (another conversation: the listener's
emotion beside their partner's), from what the partner did over the last ``blocks · block``
frames to how the listener moved. At generation the same map reads the speaker frames the
protocol shows the window, and the window is diffused around ``level + response``: whom the
listener mirrors, how strongly and how late come from the history in closed form, and the
generator learns what is left. Nothing is trained; ``benchmarks/personal_response.py`` measures
the same predictor on its own.

A frame reads only the speaker frames its window sees (the protocol's ``context_frames``) at or
before itself. Features are standardised per history (its own mean and standard deviation),
so the response has mean zero over the history: the level stays the prior's.

Shapes: ``l`` listeners, ``h`` history frames, ``b`` windows, ``s`` speaker frames a window
sees, ``w`` window frames, ``c = 25`` emotion channels, ``f = blocks · c`` features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from perfrdiff.features import EMOTION_DIM

#: Speaker frames averaged into one lag feature, and how many such blocks (lags 0 to 49).
BLOCK_FRAMES = 5
LAG_BLOCKS = 10


def lag_features(
    speaker: Tensor, positions: Tensor, lo: Tensor, hi: Tensor, block: int, blocks: int
) -> tuple[Tensor, Tensor]:
    """Per frame and lag block, the speaker's mean over the block's frames it may read.

    Frame ``i`` sits at ``positions[i]`` of ``speaker``; block ``k`` covers
    ``[p − (k+1)·block + 1, p − k·block]``, cut to ``[lo, hi)``.

    Args:
        speaker: ``(b, s, c)``.
        positions: ``(t,)`` int64.
        lo: ``(b, 1)`` or ``(1, t)`` or ``(b, t)`` int64, the first frame each may read.
        hi: ``(t,)`` int64, one past the last (at most ``positions + 1``).

    Returns:
        ``(b, t, blocks·c)`` the features (0 for a block with no readable frame, block-major)
        and ``(b, t)`` bool, whether a frame reads any speaker frame.
    """
    b, s, c = speaker.shape
    cumulative = torch.cat([speaker.new_zeros(b, 1, c), speaker.cumsum(dim=1)], dim=1)
    k = torch.arange(blocks, device=speaker.device)
    start = positions[:, None] - (k + 1) * block + 1  # (t, blocks)
    stop = positions[:, None] - k * block + 1
    begin = torch.maximum(start[None], lo[..., None]).clamp(0, s).expand(b, -1, -1)
    end = torch.minimum(stop, hi[:, None]).clamp(0, s)[None].expand_as(begin)  # (b, t, blocks)
    end = torch.maximum(end, begin)
    count = (end - begin).to(speaker.dtype)

    def at(index: Tensor) -> Tensor:  # (b, t, blocks) -> (b, t, blocks, c)
        flat = index.reshape(b, -1, 1).expand(-1, -1, c)
        return cumulative.gather(1, flat).reshape(*index.shape, c)

    means = (at(end) - at(begin)) / count.clamp(min=1)[..., None]
    return means.flatten(2), (count > 0).any(dim=-1)


def first_visible(start: Tensor, has_past: Tensor, context: tuple[int, int]) -> Tensor:
    """``(b,)`` the first real frame of each window's speaker frames ``[s − before, s + after)``
    (those before frame 0 pad the sequence), or ``before + after`` where the window sees none:
    under a protocol whose windows see only the past (``after == 0``, REACT 2024) a window
    without a past reads zeros, as its data and the online stream give it."""
    before, after = context
    total = before + after
    visible = (before - start).clamp(0, total)
    if after == 0:
        visible = torch.where(has_past.bool(), visible, torch.full_like(visible, total))
    return visible


@dataclass
class ResponseFit:
    """Each listener's response, fitted on their history.

    Attributes:
        mean: ``(l, f)`` the history's feature mean.
        scale: ``(l, f)`` its standard deviation (features are divided by it).
        response: ``(l, f, c)`` the map from standardised features to the listener's emotion.
    """

    mean: Tensor
    scale: Tensor
    response: Tensor

    def __getitem__(self, index: Tensor) -> ResponseFit:
        """The fits of listeners ``index: (b,)``."""
        return ResponseFit(self.mean[index], self.scale[index], self.response[index])


class ListenerResponse(nn.Module):
    """Fits each listener's response on their dyadic history and applies it to a window.

    Args:
        window: ``w``, the protocol's window.
        context: ``(before, after)`` speaker frames a window sees before and from its start.
        weight: the ridge weight (the features are standardised, so it counts frames).
        block: frames averaged per lag feature.
        blocks: lag features per channel.

    Raises:
        ValueError: a size or the weight out of range.
    """

    def __init__(
        self,
        window: int,
        context: tuple[int, int],
        weight: float,
        block: int = BLOCK_FRAMES,
        blocks: int = LAG_BLOCKS,
    ) -> None:
        super().__init__()
        before, after = context
        if window < 1 or block < 1 or blocks < 1 or before < 0 or after < 0:
            raise ValueError(
                f"window, block, blocks must be >= 1 and context >= 0, got window={window}, "
                f"block={block}, blocks={blocks}, context={context}"
            )
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        self.window, self.context, self.weight = window, (before, after), float(weight)
        self.block, self.blocks = block, blocks

    def history_features(self, partner: Tensor) -> tuple[Tensor, Tensor]:
        """``(l, h, c)`` the partner over the history -> ``(l, h, f)`` features as generation
        reads them (each history frame sees what its window would), and ``(l, h)`` whether a
        frame reads any."""
        h, device = partner.shape[1], partner.device
        t = torch.arange(h, device=device)
        start = (t // self.window) * self.window
        before, after = self.context
        lo = (start - before).clamp(min=0)[None]
        hi = torch.minimum(start + after, t + 1)
        return lag_features(partner, t, lo, hi, self.block, self.blocks)

    def fit(self, history: Tensor) -> ResponseFit:
        """``history: (l, h, 2c)`` (the listener's emotion, then the partner's) -> each
        listener's fit.

        Raises:
            ValueError: ``history`` is not ``(l, h, 50)``.
        """
        if history.dim() != 3 or history.shape[-1] != 2 * EMOTION_DIM:
            raise ValueError(
                f"history must be (l, h, {2 * EMOTION_DIM}) (the listener's emotion, then the "
                f"partner's: style.input 'dyadic'), got {tuple(history.shape)}"
            )
        history = history.to(torch.float64)  # the normal equations in double precision
        own, partner = history.split(EMOTION_DIM, dim=-1)
        x, _ = self.history_features(partner)
        mean = x.mean(dim=1)
        scale = x.std(dim=1, correction=0) + 1e-6
        x = (x - mean[:, None]) / scale[:, None]
        y = own - own.mean(dim=1, keepdim=True)
        f = x.shape[-1]
        gram = x.transpose(1, 2) @ x + self.weight * torch.eye(f, dtype=x.dtype, device=x.device)
        # symmetric positive definite (weight > 0): a Cholesky solve
        response = torch.cholesky_solve(x.transpose(1, 2) @ y, torch.linalg.cholesky(gram))
        return ResponseFit(mean, scale, response)

    def forward(self, fit: ResponseFit, speaker: Tensor, visible_from: Tensor) -> Tensor:
        """``(b, w, c)``: each window's response.

        Args:
            fit: the fit of each window's listener (:meth:`ResponseFit.__getitem__`).
            speaker: ``(b, s, c)`` the speaker's emotion over the frames the window sees,
                ``s = before + after``; the window starts at frame ``before`` of it.
            visible_from: ``(b,)`` int64, the first of those frames that is real (the frames
                before it pad a sequence's start): ``s`` where the window sees none.

        Raises:
            ValueError: ``speaker`` is not ``(b, before + after, c)``.
        """
        before, after = self.context
        if speaker.dim() != 3 or speaker.shape[1:] != (before + after, EMOTION_DIM):
            raise ValueError(
                f"speaker must be (b, {before + after}, {EMOTION_DIM}), got {tuple(speaker.shape)}"
            )
        w, device = self.window, speaker.device
        positions = before + torch.arange(w, device=device)
        hi = torch.minimum(positions + 1, torch.tensor(before + after, device=device))
        x, seen = lag_features(
            speaker.to(torch.float64), positions, visible_from[:, None], hi, self.block,
            self.blocks,
        )  # fmt: skip
        x = (x - fit.mean[:, None]) / fit.scale[:, None]
        response = (x @ fit.response) * seen[..., None]  # a frame that sees nothing: 0
        return response.to(speaker.dtype)
