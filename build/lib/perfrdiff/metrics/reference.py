"""Straightforward per-speaker loop implementations of the metrics, written from the definitions.

They follow the challenge code's structure (a Python loop over speakers, samples and appropriate
reactions, tslearn's ``dtw`` per pair) and are the baseline that the tests and
``benchmarks/metrics.py`` compare the vectorised implementations against. Not for production use.
"""

from __future__ import annotations

import numpy as np

from perfrdiff.metrics.ccc import CCC_EPS
from perfrdiff.metrics.dtw import COMPONENTS
from perfrdiff.metrics.synchrony import MAX_LAG, VARIANCE_EPS


def ccc_loop(x: np.ndarray, y: np.ndarray) -> float:
    """CCC of two ``(t, d)`` sequences averaged over channels, one channel at a time."""
    values = []
    for c in range(x.shape[1]):
        a, b = x[:, c].astype(np.float64), y[:, c].astype(np.float64)
        sa, sb = a.std(), b.std()
        r = 0.0 if sa == 0 or sb == 0 else float(np.clip(np.corrcoef(a, b)[0, 1], -1, 1))
        denominator = a.var() + b.var() + (a.mean() - b.mean()) ** 2 + CCC_EPS
        values.append(2 * r * sa * sb / denominator)
    return float(np.mean(values))


def frcorr_loop(predictions, listener_emotion, neighbours) -> np.ndarray:
    """``(n,)`` per-speaker sums over samples of the best CCC (see :func:`~.ccc.frcorr`)."""
    scores = []
    for k in range(predictions.shape[0]):
        appropriate = np.flatnonzero(neighbours[k])
        scores.append(
            sum(
                max(ccc_loop(sample, listener_emotion[j]) for j in appropriate)
                for sample in predictions[k]
            )
        )
    return np.array(scores)


def frdist_loop(predictions, listener_emotion, neighbours) -> np.ndarray:
    """``(n,)`` per-speaker sums of the minimum DTW cost, with tslearn, pair by pair."""
    from tslearn.metrics import dtw

    scores = []
    for k in range(predictions.shape[0]):
        appropriate = np.flatnonzero(neighbours[k])
        total = 0.0
        for sample in predictions[k]:
            costs = []
            for j in appropriate:
                value = 0.0
                for channels, weight in COMPONENTS:
                    value += weight * dtw(
                        sample.astype(np.float32)[:, channels],
                        listener_emotion[j].astype(np.float32)[:, channels],
                    )
                costs.append(value)
            total += min(costs)
        scores.append(total)
    return np.array(scores)


def frsyn_loop(predictions, speaker_emotion) -> np.ndarray:
    """``(n, k)`` absolute offsets, one lag at a time (``nan_policy="ignore"`` semantics)."""
    n, k, t, _ = predictions.shape
    result = np.empty((n, k))
    for s in range(n):
        y = speaker_emotion[s].astype(np.float64)
        for i in range(k):
            x = predictions[s, i].astype(np.float64)
            means = []
            for lag in range(-MAX_LAG, MAX_LAG + 1):
                a = x[max(lag, 0) : t + min(lag, 0)]
                b = y[max(-lag, 0) : t + min(-lag, 0)]
                ac, bc = a - a.mean(axis=0), b - b.mean(axis=0)
                va, vb = (ac**2).mean(axis=0), (bc**2).mean(axis=0)
                ok = (va > VARIANCE_EPS) & (vb > VARIANCE_EPS)
                r = (ac * bc).mean(axis=0)[ok] / np.sqrt(va[ok] * vb[ok])
                means.append(r.mean() if ok.any() else -np.inf)
            result[s, i] = MAX_LAG if np.all(np.isinf(means)) else abs(MAX_LAG - np.argmax(means))
    return result


def frdiv_loop(predictions) -> float:
    n, k, t, d = predictions.shape
    total = 0.0
    for s in range(n):
        flat = predictions[s].reshape(k, -1).astype(np.float64)
        total += sum(((flat[a] - flat[b]) ** 2).sum() for a in range(k) for b in range(k) if a != b)
    return total / n / (k * (k - 1) * t * d)


def frdvs_rows(predictions, rows) -> float:
    """Part of FRDvs' numerator: squared distances from the speakers in ``rows`` to all others."""
    n, k = predictions.shape[:2]
    total = 0.0
    for i in range(k):
        flat = predictions[:, i].reshape(n, -1).astype(np.float64)
        for a in rows:
            total += ((flat[a] - flat) ** 2).sum()
    return total


def frdvs_loop(predictions) -> float:
    n, k, t, d = predictions.shape
    return frdvs_rows(predictions, range(n)) / (k * n * (n - 1) * t * d)


def frvar_loop(predictions) -> float:
    sequences = predictions.reshape(-1, *predictions.shape[2:]).astype(np.float64)
    return float(np.mean([np.var(sequence, axis=0, ddof=1) for sequence in sequences]))
