"""The REACT 2026 EEG scores: predicted listener EEG against the listener's recorded EEG, with
its mask, as the challenge's ``compute_eeg_metrics`` computes them.

Item ``k`` has ``K`` predicted sequences ``P_ki (T, c)`` (``c`` = 14 targets), its own listener's
recorded EEG ``G_k (T', c)`` and mask ``M_k (T', c)`` (1 where a cell was read, 0 where it was
bad or missing); predictions and target are cut to the shorter of the two lengths. A cell counts
where its mask is > 0.5 and the target is finite; a channel is scored on its counted frames
only, compressed (the frames between are skipped, not zero-filled).

* ``EEG_FRCorr`` (the code's ``EEG_FRC``): ``Σ_i`` masked CCC of ``P_ki``, the mean over the
  channels that have at least 2 counted frames; per channel ``2 r sx sy / (sx² + sy² +
  (mx − my)² + 1e-8)`` with population moments, Pearson ``r`` (clipped to ``[-1, 1]``), and 0
  when either std is below ``1e-8``.
* ``EEG_FRdist`` (``EEG_FRD``): ``Σ_i`` the mean over channels with a counted frame of the
  univariate DTW (tslearn's ``dtw``: square root of the accumulated squared difference, float32
  values) of the channel's counted frames.
* ``EEG_FRSyn`` (``EEG_TLCC``): mean over samples of the mean over channels of ``|lag|`` of the
  lag in ``-max_lag..max_lag`` with the largest masked CCC between the prediction shifted by
  ``lag`` and the target (the first such lag on ties); the code's lags are "2 seconds at
  1 fps", so ±2 frames of 30 fps sequences.
* ``EEG_FRDiv`` (``EEG_smse``): ``Σ_{i≠i'} |P_ki − P_ki'|² / (K (K − 1) T c)``, unmasked, 0 for
  ``K = 1``.
* ``EEG_FRVar``: mean over samples and over the channels with any counted cell of the
  *population* variance over time of the whole prediction (the facial FRVar uses the unbiased
  one).

Each score is averaged over the items that have it (an item whose target has no counted cell
has none but ``EEG_FRDiv``). The challenge scores only the item's own listener's EEG, never an
appropriate set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from perfrdiff.metrics.ccc import CCC_EPS
from perfrdiff.metrics.dtw import dtw_distance

EEG_METRICS = ("EEG_FRCorr", "EEG_FRdist", "EEG_FRSyn", "EEG_FRDiv", "EEG_FRVar")
#: The challenge code's name of each score.
CHALLENGE_NAMES = {
    "EEG_FRCorr": "EEG_FRC",
    "EEG_FRdist": "EEG_FRD",
    "EEG_FRSyn": "EEG_TLCC",
    "EEG_FRDiv": "EEG_smse",
    "EEG_FRVar": "EEG_FRVar",
}
#: TLCC lags of the challenge's EEG code (``seconds=2, fps=1``).
EEG_MAX_LAG = 2
#: A std below this makes a channel's CCC 0 (the challenge's threshold).
STD_FLOOR = 1e-8


def masked_ccc(predictions: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Masked CCC per sample and channel.

    Args:
        predictions: ``(a, t, c)``.
        target: ``(t, c)``.
        valid: ``(t, c)`` bool, the counted cells.

    Returns:
        ``(a, c)`` float64; NaN for a channel with fewer than 2 counted frames.
    """
    x = np.asarray(predictions, dtype=np.float64)
    m = np.asarray(valid, dtype=np.float64)
    y = np.where(valid, np.asarray(target, dtype=np.float64), 0.0)  # a NaN target cell is masked
    n = m.sum(axis=0)  # (c,)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_x, mean_y = (x * m).sum(axis=1) / n, (y * m).sum(axis=0) / n  # (a, c), (c,)
        xc, yc = (x - mean_x[:, None]) * m, (y - mean_y) * m
        var_x, var_y = (xc**2).sum(axis=1) / n, (yc**2).sum(axis=0) / n
        cov = (xc * yc).sum(axis=1) / n
        sx, sy = np.sqrt(var_x), np.sqrt(var_y)
        r = np.clip(cov / (sx * sy), -1.0, 1.0)
        ccc = 2 * r * sx * sy / (var_x + var_y + (mean_x - mean_y) ** 2 + CCC_EPS)
    ccc = np.where((sx < STD_FLOOR) | (sy < STD_FLOOR), 0.0, ccc)
    return np.where(n >= 2, ccc, np.nan)


def masked_dtw(prediction: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Univariate DTW per channel on the counted frames, ``(c,)`` float64 (NaN for a channel with
    none); values are rounded to float32 first, as the challenge passes them.

    Args:
        prediction: ``(t, c)``.
        target: ``(t, c)``.
        valid: ``(t, c)`` bool.
    """
    x = np.asarray(prediction, dtype=np.float32)
    y = np.asarray(target, dtype=np.float32)
    out = np.full(x.shape[1], np.nan)
    for channel in range(x.shape[1]):
        rows = valid[:, channel]
        if rows.any():
            pair = [np.ascontiguousarray(a[rows, channel, None], dtype=np.float64) for a in (x, y)]
            out[channel] = dtw_distance(*pair)
    return out


def _lag_offsets(predictions: np.ndarray, target: np.ndarray, valid: np.ndarray, max_lag: int):
    """``(a, c)`` ``|best lag|`` per sample and channel (NaN where no lag has a CCC)."""
    t = predictions.shape[1]
    scores = []
    for lag in range(-max_lag, max_lag + 1):
        p = predictions[:, max(lag, 0) : t + min(lag, 0)]  # lag > 0: prediction later
        rows = slice(max(-lag, 0), t - max(lag, 0))
        if p.shape[1] == 0:
            scores.append(np.full(predictions.shape[::2], np.nan))
        else:
            scores.append(masked_ccc(p, target[rows], valid[rows]))
    stacked = np.stack(scores)  # (lags, a, c)
    defined = ~np.isnan(stacked).all(axis=0)
    best = np.argmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0)  # first maximum
    return np.where(defined, np.abs(best - max_lag).astype(np.float64), np.nan)


def _checked(predictions: Any, target: Any, mask: Any) -> tuple[np.ndarray, ...]:
    p = np.asarray(predictions, dtype=np.float64)
    g = np.asarray(target, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"predictions: expected (K >= 1, T >= 1, c), got {p.shape}")
    if g.ndim != 2 or g.shape[1] != p.shape[2]:
        raise ValueError(f"target: expected (T', {p.shape[2]}) like predictions, got {g.shape}")
    if m.shape != g.shape:
        raise ValueError(f"mask: expected the target's shape {g.shape}, got {m.shape}")
    if not np.isfinite(p).all():
        raise ValueError("predictions: expected finite values, found NaN or inf")
    return p, g, m


def eeg_item_scores(
    predictions: Any, target: Any, mask: Any, max_lag: int = EEG_MAX_LAG
) -> dict[str, float]:
    """The five EEG scores of one item (module docstring); NaN where the item has none.

    Args:
        predictions: ``(K, T, c)`` its predicted EEG.
        target: ``(T', c)`` its listener's recorded EEG.
        mask: ``(T', c)`` 1 where ``target`` was read.
        max_lag: TLCC lags ``-max_lag..max_lag`` (frames).
    """
    p, g, m = _checked(predictions, target, mask)
    k, t = p.shape[0], min(p.shape[1], g.shape[0])
    valid = (m[:t] > 0.5) & np.isfinite(g[:t])
    cut = p[:, :t]
    ccc = _row_mean(masked_ccc(cut, g[:t], valid))  # (K,)
    dtw = _row_mean(np.stack([masked_dtw(x, g[:t], valid) for x in cut]))
    offsets = _row_mean(_lag_offsets(cut, g[:t], valid, max_lag))
    counted = (m[: min(p.shape[1], m.shape[0])] > 0.5).any(axis=0)  # the code's FRVar mask
    variance = p[:, : m.shape[0]].var(axis=1)[:, counted]
    centre = p.mean(axis=0, keepdims=True)
    return {
        "EEG_FRCorr": _sum_defined(ccc),
        "EEG_FRdist": _sum_defined(dtw),
        "EEG_FRSyn": float(_row_mean(offsets)),
        "EEG_FRDiv": float(2 * ((p - centre) ** 2).sum() / ((k - 1) * p[0].size)) if k > 1 else 0.0,
        "EEG_FRVar": float(variance.mean()) if variance.size else np.nan,
    }


def _row_mean(a: np.ndarray) -> np.ndarray:
    """The mean over the last axis of the values that are not NaN; NaN where there are none."""
    counted = ~np.isnan(a)
    n = counted.sum(axis=-1)
    total = np.where(counted, a, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _sum_defined(per_sample: np.ndarray) -> float:
    """The sum over samples that have a score (the code skips the others), NaN when none."""
    defined = ~np.isnan(per_sample)
    return float(per_sample[defined].sum()) if defined.any() else np.nan


def evaluate_eeg(
    predictions: Sequence[Any],
    targets: Sequence[Any],
    masks: Sequence[Any],
    max_lag: int = EEG_MAX_LAG,
    progress: bool = False,
) -> dict[str, float]:
    """The EEG scores averaged over the items that have them.

    Args:
        predictions: ``n`` arrays ``(K, T_k, c)``.
        targets: ``n`` recorded EEG ``(T'_k, c)``.
        masks: ``n`` masks ``(T'_k, c)``.

    Returns:
        The average of each score of ``EEG_METRICS``, NaN when no item has it, and
            ``EEG_items``, the number of items whose target had a counted cell.
    """
    if not len(predictions) == len(targets) == len(masks) or not len(predictions):
        raise ValueError(
            f"predictions, targets, masks: expected one per item (at least one), got "
            f"{len(predictions)}, {len(targets)}, {len(masks)}"
        )
    rows = []
    for k, p in enumerate(tqdm(predictions, desc="EEG scores", disable=not progress)):
        try:
            rows.append(eeg_item_scores(p, targets[k], masks[k], max_lag))
        except ValueError as error:
            raise ValueError(f"item {k}: {error}") from None
    out = {}
    for name in EEG_METRICS:
        values = np.array([row[name] for row in rows])
        out[name] = float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else np.nan
    out["EEG_items"] = int(sum(not np.isnan(row["EEG_FRCorr"]) for row in rows))
    return out
