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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a (m1, f)`` and ``b (m2, f)``."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    trace = np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(np.real(root))
    return float(max(((mu_a - mu_b) ** 2).sum() + trace, 0.0))


def frrea(predictions: Any, listener_emotion: Any) -> float:
    """FRRea (ours): Fréchet distance of emotion dynamics, generated vs real (module docstring).

    Args:
        predictions: ``(n, k, t, d)``; listener_emotion: ``(m, t, d)`` real reactions (any ``m``).
    """
    p = predictions_array(predictions)
    real = as_array("listener_emotion", listener_emotion, 3, "(m, t, d)")
    if real.shape[1:] != p.shape[2:]:
        raise ValueError(
            f"listener_emotion: expected (m, t, d) with (t, d) = {p.shape[2:]}, got {real.shape}"
        )
    if p.shape[2] < 3:
        raise ValueError(f"predictions: FRRea needs t >= 3 frames, got {p.shape[2]}")
    return frechet_distance(dynamics_features(p), dynamics_features(real))
