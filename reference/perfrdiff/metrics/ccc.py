"""Concordance correlation coefficient and FRCorr (appropriateness by correlation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from perfrdiff.metrics._inputs import neighbour_array, predictions_array, sequences_array

CCC_EPS = 1e-8


def ccc_matrix(predictions: np.ndarray, reals: np.ndarray) -> np.ndarray:
    """CCC of every prediction against every real sequence, averaged over channels.

    Per channel, as the challenge: ``2 r sx sy / (sx^2 + sy^2 + (mx - my)^2 + 1e-8)`` with
    population moments and Pearson ``r`` clipped to ``[-1, 1]`` (0 when a channel is constant).

    Args:
        predictions: ``(a, t, d)``.
        reals: ``(b, t, d)``.

    Returns:
        ``(a, b)`` float64.
    """
    x = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(reals, dtype=np.float64)
    mean_x, mean_y = x.mean(axis=1), y.mean(axis=1)  # (a, d), (b, d)
    xc, yc = x - mean_x[:, None], y - mean_y[:, None]
    var_x, var_y = (xc**2).mean(axis=1), (yc**2).mean(axis=1)
    # (d, a, t) @ (d, t, b) -> (d, a, b): every pair in one batched product per channel
    cov = np.matmul(xc.transpose(2, 0, 1), yc.transpose(2, 1, 0)).transpose(1, 2, 0) / x.shape[1]
    sd = np.sqrt(var_x)[:, None] * np.sqrt(var_y)[None]  # (a, b, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(sd > 0, cov / sd, 0.0)
    r = np.clip(r, -1.0, 1.0)
    denominator = var_x[:, None] + var_y[None] + (mean_x[:, None] - mean_y[None]) ** 2 + CCC_EPS
    return (2 * r * sd / denominator).mean(axis=-1)


def frcorr_per_speaker(
    predictions: Any,
    listener_emotion: Any,
    neighbours: Any,
    progress: bool = False,
    items: Sequence[int] | None = None,
) -> np.ndarray:
    """``(n,)``: for each speaker, the sum over its samples of the best CCC with an appropriate
    real reaction. FRCorr is the mean of this vector.

    Args:
        predictions: ``(n, k, t, d)`` generated reactions.
        listener_emotion: ``(n, t, d)`` real listener reactions, ``G_j``.
        neighbours: ``(n, n)`` bool, ``M[k, j]``: ``G_j`` is appropriate for speaker ``k``.
        items: only these speakers (one score each, in this order; default: all ``n``).
    """
    predictions = predictions_array(predictions)
    reals = sequences_array("listener_emotion", listener_emotion, predictions)
    neighbours = neighbour_array(neighbours, predictions.shape[0])
    items = range(predictions.shape[0]) if items is None else items
    scores = np.empty(len(items))
    for i, k in enumerate(tqdm(items, desc="FRCorr", disable=not progress, leave=False)):
        scores[i] = ccc_matrix(predictions[k], reals[neighbours[k]]).max(axis=1).sum()
    return scores


def frcorr(predictions: Any, listener_emotion: Any, neighbours: Any, progress: bool = False):
    """FRCorr = (1/n) sum_k sum_i max_{j in A_k} CCC(G_j, P_ki). See :func:`frcorr_per_speaker`."""
    return float(frcorr_per_speaker(predictions, listener_emotion, neighbours, progress).mean())
