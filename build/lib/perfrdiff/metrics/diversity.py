"""Diversity metrics: FRDiv (within speaker), FRDvs (across speakers), FRVar (over time).

Sums of squared pairwise distances use ``sum_{a != b} |u_a - u_b|^2 = 2 m sum_a |u_a - c|^2`` for
``m`` vectors with mean ``c`` (centring first keeps it accurate): linear in the data instead of
quadratic, and equal to the challenge's ``cdist(...)**2`` sums. Sums are accumulated in float64, a
chunk of speakers at a time, so a REACT-test-sized input (600 MB in float32) is never copied whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perfrdiff.metrics._inputs import predictions_array

CHUNK = 64


def _chunks(n: int) -> range:
    return range(0, n, CHUNK)


def frdiv(predictions: Any) -> float:
    """FRDiv = (1/n) sum_k sum_{i != i'} |P_ki - P_ki'|^2 / (k (k - 1) t d).

    Args:
        predictions: ``(n, k, t, d)`` with ``k >= 2``.
    """
    p = predictions_array(predictions)
    n, k, t, d = p.shape
    if k < 2:
        raise ValueError(f"predictions: FRDiv needs k >= 2 samples per speaker, got k = {k}")
    total = 0.0
    for begin in _chunks(n):
        chunk = p[begin : begin + CHUNK]
        centre = chunk.mean(axis=1, keepdims=True, dtype=np.float64)
        total += 2 * k * ((chunk - centre) ** 2).sum()  # float64: the centre promotes the chunk
    return float(total / n / (k * (k - 1) * t * d))


def frdvs(predictions: Any) -> float:
    """FRDvs = sum_i sum_{k != k'} |P_ki - P_k'i|^2 / (k n (n - 1) t d).

    Args:
        predictions: ``(n, k, t, d)`` with ``n >= 2``.
    """
    p = predictions_array(predictions)
    n, k, t, d = p.shape
    if n < 2:
        raise ValueError(f"predictions: FRDvs needs n >= 2 speakers, got n = {n}")
    mean = sum(p[b : b + CHUNK].astype(np.float64).sum(axis=0) for b in _chunks(n)) / n  # (k,t,d)
    spread = sum(((p[b : b + CHUNK] - mean) ** 2).sum() for b in _chunks(n))
    return float(2 * n * spread / (k * n * (n - 1) * t * d))


def frvar(predictions: Any) -> float:
    """FRVar = mean over (n, k, d) of the unbiased variance over time ``t >= 2``."""
    p = predictions_array(predictions)
    n, k, t, d = p.shape
    if t < 2:
        raise ValueError(f"predictions: FRVar needs t >= 2 frames, got t = {t}")
    # dtype=float64 accumulates in float64 without first copying the chunk to float64
    total = sum(p[b : b + CHUNK].var(axis=2, ddof=1, dtype=np.float64).sum() for b in _chunks(n))
    return float(total / (n * k * d))
