"""FRRea without a face renderer: a Fréchet distance on emotion dynamics.

The challenge's FRRea is the FID between rendered face images of generated and real reactions; we
have no renderer. Ours is the Fréchet distance
``|mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))`` between Gaussians fitted to per-frame
50-d features ``[e_t, e_t - e_{t-1}]`` (the 25-d emotion and its frame-to-frame change, frames
``t >= 1``), pooled over all generated frames (``n k (t - 1)`` vectors) versus all real listener
frames (``n (t - 1)`` vectors). It measures whether generated values *and* their motion are
distributed like real reactions; it is not comparable with image-FID numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from perfrdiff.metrics._inputs import as_array, predictions_array


def dynamics_features(sequences: np.ndarray) -> np.ndarray:
    """``(..., t, d)`` -> ``(m, 2 d)``: ``[e_t, e_t - e_{t-1}]`` for ``t >= 1``, flattened."""
    x = np.asarray(sequences, dtype=np.float64)
    features = np.concatenate([x[..., 1:, :], np.diff(x, axis=-2)], axis=-1)
    return features.reshape(-1, features.shape[-1])


def gaussian_fit(sequences: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(f,)`` and unbiased covariance ``(f, f)`` of :func:`dynamics_features` of
    ``sequences (b, ..., t, d)``, accumulated ``chunk`` leading rows at a time."""
    total, outer, count = 0.0, 0.0, 0
    for begin in range(0, sequences.shape[0], chunk):
        features = dynamics_features(sequences[begin : begin + chunk])
        total = total + features.sum(axis=0)
        outer = outer + features.T @ features
        count += features.shape[0]
    mean = total / count
    covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
    return mean, covariance


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Fréchet distance between the Gaussians ``N(mean_a, cov_a)`` and ``N(mean_b, cov_b)``."""
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    trace = np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(np.real(root))
    return float(max(((mean_a - mean_b) ** 2).sum() + trace, 0.0))


def frrea(predictions: Any, listener_emotion: Any) -> float:
    """FRRea (ours): Fréchet distance of emotion dynamics, generated vs real (module docstring).

    Args:
        predictions: ``(n, k, t, d)``.
        listener_emotion: ``(m, t, d)`` real reactions (any ``m``).
    """
    p = predictions_array(predictions)
    real = as_array("listener_emotion", listener_emotion, 3, "(m, t, d)")
    if real.shape[1:] != p.shape[2:]:
        raise ValueError(
            f"listener_emotion: expected (m, t, d) with (t, d) = {p.shape[2:]}, got {real.shape}"
        )
    if p.shape[2] < 3:
        raise ValueError(f"predictions: FRRea needs t >= 3 frames, got {p.shape[2]}")
    return frechet_distance(*gaussian_fit(p), *gaussian_fit(real))
