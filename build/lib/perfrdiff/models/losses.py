"""Training losses: ``x0`` regression for the denoisers, supervised contrastive loss for PSSL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def x0_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between the denoiser's output and its target ``(b, w, e)`` (the clean
    window, or ``v``: :meth:`~perfrdiff.models.DDIMSchedule.training_target`)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    return F.mse_loss(prediction, target)


def supervised_contrastive_loss(
    features: Tensor, labels: Tensor, temperature: float = 0.07
) -> Tensor:
    """Supervised contrastive loss (Khosla et al., 2020, ``L_out``).

    For anchor ``i`` with positives ``P(i) = {p ≠ i : y_p = y_i}``:
    ``ℓ_i = -1/|P(i)| Σ_p log( exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ) )``; the loss is the mean
    over anchors that have at least one positive.

    Args:
        features: ``(b, s)`` L2-normalised embeddings.
        labels: ``(b,)`` integer class (listener identity).
        temperature: ``τ``.
    """
    if features.dim() != 2:
        raise ValueError(f"features must have shape (b, s), got {tuple(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(
            f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = features.shape[0]
    logits = features @ features.T / temperature
    self_mask = torch.eye(b, dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positives.sum(1)
    has_positive = count > 0
    if not has_positive.any():
        raise ValueError("supervised_contrastive_loss: no sample in the batch has a positive")
    summed = log_prob.masked_fill(~positives, 0.0).sum(1)
    return -(summed[has_positive] / count[has_positive]).mean()
