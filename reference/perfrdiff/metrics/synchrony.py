"""FRSyn: time-lagged cross-correlation offset between a generated reaction and its speaker.

For each lag ``l`` in ``-49..49`` (2 s at 25 fps, as the challenge), the Pearson correlation per
channel between ``P[t]`` and ``S[t - l]`` over their overlap (pandas' ``x.corr(y.shift(l))``),
averaged over channels; the offset is ``49 - argmax`` over the lags in increasing order (first
maximum), i.e. ``-l*``; FRSyn is the mean ``|offset|`` over *all* speakers and samples.

Differences from the challenge code, by design:

* the challenge's multiprocess version scores only the first sample of each speaker; we score all;
* a channel that is constant on the overlap has no Pearson correlation. The challenge averages it
  as NaN, which makes the whole lag NaN, and ``np.argmax`` then returns the first NaN lag, so one
  constant channel (common: an AU that never fires) turns the offset into 49. We average over the
  channels where the correlation is defined (``nan_policy="ignore"``), and give a sample with no
  defined lag at all the worst offset, 49. ``nan_policy="challenge"`` reproduces the original.

A correlation counts as undefined when either overlap variance is at most ``VARIANCE_EPS``.
Implementation: overlap sums from prefix sums and all lags' cross products from one FFT per
sequence, in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from perfrdiff.metrics._inputs import predictions_array, sequences_array

MAX_LAG = 49
VARIANCE_EPS = 1e-12


def lag_correlations(
    x: np.ndarray, y: np.ndarray, max_lag: int = MAX_LAG
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of ``x[t]`` with ``y[t - l]`` for every lag, per channel.

    Args:
        x: ``(b, t, d)`` (e.g. a speaker's samples).
        y: ``(t, d)`` shared by all ``b`` rows of ``x`` (the speaker).

    Returns:
        ``r (b, 2 max_lag + 1, d)`` float64 (0 where undefined) and ``defined`` bool, same shape;
            lag index ``i`` is lag ``i - max_lag``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = x.shape[1]
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    lags = np.arange(-max_lag, max_lag + 1)
    first = np.maximum(lags, 0)  # overlap of x is [first, stop)
    stop = t + np.minimum(lags, 0)
    count = (stop - first)[None, :, None].astype(np.float64)

    def window_sums(prefix: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return prefix[..., b, :] - prefix[..., a, :]

    px = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    pxx = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x**2, axis=1)], axis=1)
    py = np.concatenate([np.zeros_like(y[:1]), np.cumsum(y, axis=0)], axis=0)
    pyy = np.concatenate([np.zeros_like(y[:1]), np.cumsum(y**2, axis=0)], axis=0)
    sx, sxx = window_sums(px, first, stop), window_sums(pxx, first, stop)
    sy, syy = (
        window_sums(py, first - lags, stop - lags)[None],
        window_sums(pyy, first - lags, stop - lags)[None],
    )
    size = 1 << (2 * t - 1).bit_length()
    spectrum = np.fft.rfft(x, size, axis=1) * np.conj(np.fft.rfft(y, size, axis=0))[None]
    circular = np.fft.irfft(spectrum, size, axis=1)  # [m] = sum_t x[t] y[t - m]
    sxy = circular[:, lags % size]
    var_x = sxx / count - (sx / count) ** 2
    var_y = syy / count - (sy / count) ** 2
    cov = sxy / count - (sx / count) * (sy / count)
    defined = (var_x > VARIANCE_EPS) & (var_y > VARIANCE_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(defined, cov / np.sqrt(var_x * var_y), 0.0)
    return r, defined


def offsets(
    r: np.ndarray, defined: np.ndarray, nan_policy: Literal["ignore", "challenge"] = "ignore"
) -> np.ndarray:
    """``(b,)`` absolute offsets from :func:`lag_correlations` output ``(b, lags, d)``."""
    lags = r.shape[1]
    centre = lags // 2
    if nan_policy == "challenge":
        poisoned = ~defined.all(axis=-1)  # (b, lags): a NaN channel makes the lag NaN
        mean = r.mean(axis=-1)
        best = np.where(poisoned.any(axis=1), poisoned.argmax(axis=1), mean.argmax(axis=1))
        return np.abs(centre - best).astype(np.float64)
    if nan_policy != "ignore":
        raise ValueError(f"nan_policy: expected 'ignore' or 'challenge', got {nan_policy!r}")
    counts = defined.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(counts > 0, r.sum(axis=-1) / counts, -np.inf)
    best = mean.argmax(axis=1)
    result = np.abs(centre - best).astype(np.float64)
    result[~(counts > 0).any(axis=1)] = centre
    return result


def check_max_lag(predictions: np.ndarray, max_lag: int) -> None:
    """Reject lags FRSyn cannot compute for ``predictions (n, k, t, d)``.

    Raises:
        ValueError: ``max_lag < 1``, or ``t <= max_lag``.
    """
    if max_lag < 1:
        raise ValueError(f"max_lag: expected >= 1, got {max_lag}")
    if predictions.shape[2] <= max_lag:
        raise ValueError(
            f"predictions: FRSyn needs t > {max_lag} frames, got {predictions.shape[2]}"
        )


def frsyn_offsets(
    predictions: Any,
    speaker_emotion: Any,
    nan_policy: Literal["ignore", "challenge"] = "ignore",
    progress: bool = False,
    max_lag: int = MAX_LAG,
    items: Sequence[int] | None = None,
) -> np.ndarray:
    """``(n, k)`` absolute TLCC offsets of every sample against its speaker.

    Args:
        predictions: ``(n, k, t, d)`` with ``t > max_lag``.
        speaker_emotion: ``(n, t, d)``.
        max_lag: lags ``-max_lag..max_lag`` (the protocol's ``metrics.tlcc_max_lag``).
        items: only these speakers' rows, in this order (default: all ``n``).
    """
    predictions = predictions_array(predictions)
    speakers = sequences_array("speaker_emotion", speaker_emotion, predictions)
    check_max_lag(predictions, max_lag)
    items = range(predictions.shape[0]) if items is None else items
    result = np.empty((len(items), predictions.shape[1]))
    for i, k in enumerate(tqdm(items, desc="FRSyn", disable=not progress, leave=False)):
        r, defined = lag_correlations(predictions[k], speakers[k], max_lag)
        result[i] = offsets(r, defined, nan_policy)
    return result


def frsyn(
    predictions: Any,
    speaker_emotion: Any,
    nan_policy: Literal["ignore", "challenge"] = "ignore",
    progress: bool = False,
    max_lag: int = MAX_LAG,
    first_sample_only: bool = False,
) -> float:
    """FRSyn = mean over all speakers and samples of the absolute TLCC offset (frames); with
    ``first_sample_only``, over sample 0 of each speaker (the challenges' parallel code)."""
    if first_sample_only:
        predictions = predictions_array(predictions)[:, :1]
    offsets_ = frsyn_offsets(predictions, speaker_emotion, nan_policy, progress, max_lag)
    return float(offsets_.mean())
