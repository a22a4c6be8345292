"""What FRCorr's CCC is missing: each channel's CCC split into correlation, scale and location.

Per channel, with population moments (the challenge's CCC, :func:`~perfrdiff.metrics.ccc_matrix`)::

    CCC = 2 r sx sy / (sx² + sy² + (mx - my)²)
        = r                                     correlation (co-movement)
        · 2 sx sy / (sx² + sy²)                 scale: 1 when the spreads agree
        · (sx² + sy²) / (sx² + sy² + (mx - my)²)  location: 1 when the levels agree

so a CCC below 1 is read as "does not move with it", "moves too much / too little" or "sits at
another level". :func:`frcorr_factors` takes the pairs FRCorr scores (each sample with its best
appropriate real reaction) and reports the three factors, the spread ratio ``sx / sy`` and the
level gap ``mx - my`` per channel group (AUs, valence/arousal, expression probabilities), plus
the fraction of frames outside each group's valid range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfrdiff.metrics._inputs import neighbour_array, predictions_array, sequences_array
from perfrdiff.metrics.ccc import CCC_EPS, ccc_matrix
from perfrdiff.protocol import AU_CHANNELS, EXPRESSION_CHANNELS, VA_CHANNELS

#: The emotion vector's channel groups and each one's valid range (AUs are occurrences,
#: valence/arousal lie in [-1, 1], expressions are probabilities).
CHANNEL_GROUPS: dict[str, tuple[slice, tuple[float, float]]] = {
    "AUs": (AU_CHANNELS, (0.0, 1.0)),
    "valence/arousal": (VA_CHANNELS, (-1.0, 1.0)),
    "expressions": (EXPRESSION_CHANNELS, (0.0, 1.0)),
}
#: What :func:`frcorr_factors` reports per group.
FACTORS = ("ccc", "correlation", "scale", "location", "sd_ratio", "mean_gap", "out_of_range")


def ccc_factors(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel CCC of paired sequences and its three factors.

    Args:
        x: ``(p, t, d)`` predictions.
        y: ``(p, t, d)`` the real sequence each is paired with.

    Returns:
        ``(p, d)`` float64 arrays keyed ``"ccc"``, ``"correlation"`` (Pearson ``r`` clipped
            to ``[-1, 1]``, 0 where a channel is constant), ``"scale"``, ``"location"``,
            ``"sd_ratio"`` (``sx / sy``, NaN where ``sy = 0``) and ``"mean_gap"``
            (``mx - my``), with ``ccc = correlation * scale * location`` up to the
            challenge's ``1e-8``.

    Raises:
        ValueError: ``x`` and ``y`` are not two arrays of one ``(p, t, d)`` shape.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(f"x, y: expected two (p, t, d) arrays, got {x.shape} and {y.shape}")
    mean_x, mean_y = x.mean(axis=1), y.mean(axis=1)
    var_x, var_y = x.var(axis=1), y.var(axis=1)
    cov = ((x - mean_x[:, None]) * (y - mean_y[:, None])).mean(axis=1)
    sd = np.sqrt(var_x * var_y)
    spread = var_x + var_y
    gap = mean_x - mean_y
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(np.where(sd > 0, cov / sd, 0.0), -1.0, 1.0)
        scale = np.where(spread > 0, 2 * sd / spread, 0.0)
        location = np.where(spread > 0, spread / (spread + gap**2), 0.0)
        ratio = np.where(var_y > 0, np.sqrt(var_x) / np.sqrt(var_y), np.nan)
    return {
        "ccc": 2 * r * sd / (spread + gap**2 + CCC_EPS),
        "correlation": r,
        "scale": scale,
        "location": location,
        "sd_ratio": ratio,
        "mean_gap": gap,
    }


def best_matches(predictions: np.ndarray, reals: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``(n, k)`` index of the appropriate real reaction FRCorr credits each sample with (the
    highest channel-mean CCC among ``neighbours[i]``).

    Args:
        predictions: ``(n, k, t, d)``.
        reals: ``(n, t, d)``.
        neighbours: ``(n, n)`` bool.
    """
    out = np.empty(predictions.shape[:2], dtype=np.int64)
    for item in range(predictions.shape[0]):
        candidates = np.flatnonzero(neighbours[item])
        out[item] = candidates[ccc_matrix(predictions[item], reals[candidates]).argmax(axis=1)]
    return out


def frcorr_factors(
    predictions: Any, listener_emotion: Any, neighbours: Any
) -> dict[str, dict[str, float]]:
    """FRCorr's CCC per channel group, split into its factors.

    Each sample is paired with its best appropriate real reaction (:func:`best_matches`, the
    pair FRCorr scores); every factor of :func:`ccc_factors` is averaged over the pairs and the
    group's channels (``sd_ratio``: the geometric mean, so 2x and 0.5x do not cancel).
    ``"out_of_range"`` is the fraction of the samples' values outside the group's valid range
    (:data:`CHANNEL_GROUPS`). A group's ``"ccc"`` times its channel count over ``d`` is its
    share of FRCorr / k.

    Args:
        predictions: ``(n, k, t, 25)``.
        listener_emotion: ``(n, t, 25)``.
        neighbours: ``(n, n)`` bool label set (MAFRG or PMAFRG).

    Returns:
        ``{group: {factor: value}}`` for each group of :data:`CHANNEL_GROUPS` and ``"all"``.
    """
    predictions = predictions_array(predictions)
    reals = sequences_array("listener_emotion", listener_emotion, predictions)
    neighbours = neighbour_array(neighbours, predictions.shape[0])
    n, k, t, d = predictions.shape
    matched = reals[best_matches(predictions, reals, neighbours)]  # (n, k, t, d)
    factors = ccc_factors(predictions.reshape(n * k, t, d), matched.reshape(n * k, t, d))
    out = {}
    for name, (channels, bounds) in CHANNEL_GROUPS.items():
        out[name] = _summary(factors, channels)
        out[name]["out_of_range"] = float(_outside(predictions[..., channels], bounds).mean())
    out["all"] = _summary(factors, slice(0, d))
    outside = sum(_outside(predictions[..., c], b).sum() for c, b in CHANNEL_GROUPS.values())
    out["all"]["out_of_range"] = float(outside / predictions.size)
    return out


def _summary(factors: dict[str, np.ndarray], channels: slice) -> dict[str, float]:
    """The factors of ``channels`` averaged over pairs and channels (``sd_ratio``: geometric)."""
    row = {f: float(np.nanmean(factors[f][:, channels])) for f in FACTORS[:4]}
    row["sd_ratio"] = float(np.exp(np.nanmean(np.log(factors["sd_ratio"][:, channels]))))
    row["mean_gap"] = float(factors["mean_gap"][:, channels].mean())
    return row


def _outside(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (values < bounds[0]) | (values > bounds[1])
