"""Diversity metrics: FRDiv (within speaker), FRDvs (across speakers), FRVar (over time).

Sums of squared pairwise distances use ``sum_{a != b} |u_a - u_b|^2 = 2 m sum_a |u_a - c|^2``
for ``m`` vectors with mean ``c`` (centring first keeps it accurate), which is linear in the data
instead of quadratic, and equals the challenge's ``cdist(...)**2`` sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfrdiff.metrics._inputs import predictions_array


def _pairwise_sq_sum(vectors: np.ndarray, axis: int) -> np.ndarray:
    """Sum over ordered pairs ``a != b`` along ``axis`` of squared distances (other axes flattened
    except the leading ones before ``axis``)."""
    m = vectors.shape[axis]
    centred = vectors - vectors.mean(axis=axis, keepdims=True)
    return 2 * m * (centred**2).sum(axis=tuple(range(axis, vectors.ndim)))


def frdiv(predictions: Any) -> float:
    """FRDiv = (1/n) sum_k sum_{i != i'} |P_ki - P_ki'|^2 / (k (k - 1) t d).

    Args:
        predictions: ``(n, k, t, d)`` with ``k >= 2``.
    """
    p = predictions_array(predictions).astype(np.float64)
    _, k, t, d = p.shape
    if k < 2:
        raise ValueError(f"predictions: FRDiv needs k >= 2 samples per speaker, got k = {k}")
    return float(_pairwise_sq_sum(p, axis=1).mean() / (k * (k - 1) * t * d))


def frdvs(predictions: Any) -> float:
    """FRDvs = sum_i sum_{k != k'} |P_ki - P_k'i|^2 / (k n (n - 1) t d).

    Args:
        predictions: ``(n, k, t, d)`` with ``n >= 2``.
    """
    p = predictions_array(predictions).astype(np.float64)
    n, k, t, d = p.shape
    if n < 2:
        raise ValueError(f"predictions: FRDvs needs n >= 2 speakers, got n = {n}")
    per_sample = _pairwise_sq_sum(p.transpose(1, 0, 2, 3), axis=1)  # (k,)
    return float(per_sample.sum() / (k * n * (n - 1) * t * d))


def frvar(predictions: Any) -> float:
    """FRVar = mean over (n, k, d) of the unbiased variance over time ``t >= 2``."""
    p = predictions_array(predictions).astype(np.float64)
    if p.shape[2] < 2:
        raise ValueError(f"predictions: FRVar needs t >= 2 frames, got t = {p.shape[2]}")
    return float(p.var(axis=2, ddof=1).mean())
