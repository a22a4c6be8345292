"""How a listener follows their partner, read off a dyadic history (``pwsg.history_lags``).

A reaction style is partly *how* one responds: after what delay, how strongly, on which
channels. The style encoder may or may not learn that from a dyadic history; these features
state it explicitly: for each lag ``k`` (frames) and emotion channel ``c``, the Pearson
correlation of the listener's channel ``c`` at frame ``t`` with their partner's at ``t - k``,
over the history. Correlations are scale-free and bounded, so they do not swamp the generator's
other inputs; the history's per-channel spread (``pwsg.history_stats``) carries the scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from perfrdiff.features import EMOTION_DIM

#: Below this product of the two variances a pair counts as still: a channel that does not move
#: in the history (an AU never shown) has correlation 0 with everything, not NaN or the ratio of
#: two rounding errors.
VARIANCE_FLOOR = 1e-12


def lagged_correlations_dim(lags: Sequence[int]) -> int:
    """The width of :func:`lagged_correlations`' output: one value per lag and channel."""
    return EMOTION_DIM * len(lags)


def lagged_correlations(history: Tensor, lags: Sequence[int]) -> Tensor:
    """Per lag and channel, the correlation of the listener with their lagged partner.

    Args:
        history: ``(l, h, 2·25)`` dyadic histories: the listener's emotion, then their
            partner's at the same frames (``style.input: dyadic``).
        lags: delays ``k ≥ 0`` in frames, each below ``h``.

    Returns:
        ``(l, len(lags)·25)``, lag-major: ``corr(listener[k:, c], partner[:h-k, c])`` in
            ``[-1, 1]``.

    Raises:
        ValueError: ``history`` is not ``(l, h, 50)``, or a lag is negative or leaves fewer
            than two frames.
    """
    if history.dim() != 3 or history.shape[-1] != 2 * EMOTION_DIM:
        raise ValueError(
            f"history must be a dyadic history (l, h, {2 * EMOTION_DIM}) for pwsg.history_lags, "
            f"got {tuple(history.shape)}"
        )
    frames = history.shape[1]
    bad = [k for k in lags if k < 0 or frames - k < 2]
    if bad:
        raise ValueError(
            f"pwsg.history_lags: lags {bad} do not fit a history of {frames} frames "
            f"(each must be in [0, {frames - 2}])"
        )
    listener, partner = history[..., :EMOTION_DIM], history[..., EMOTION_DIM:]
    correlations = []
    for k in lags:
        own = listener[:, k:] - listener[:, k:].mean(dim=1, keepdim=True)
        other = partner[:, : frames - k] - partner[:, : frames - k].mean(dim=1, keepdim=True)
        variances = own.pow(2).mean(dim=1) * other.pow(2).mean(dim=1)
        moving = variances > VARIANCE_FLOOR
        scale = torch.where(moving, variances, 1.0).sqrt()
        correlations.append(torch.where(moving, (own * other).mean(dim=1) / scale, 0.0))
    return torch.cat(correlations, dim=1)
