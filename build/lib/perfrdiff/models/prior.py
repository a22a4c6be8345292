"""The listener prior: the mean a listener's windows are diffused around.

A diffusion model's prior may depend on the condition (PriorGrad, Lee et al., ICLR 2022). With
``pwsg.listener_prior``, PerFRDiff diffuses a listener's standardised windows around

    centre = mean + w ⊙ (history mean − mean)

per channel, ``mean`` the training split's mean (the denoiser's
:class:`~perfrdiff.models.FeatureScaler`). ``w`` says how much of a history's deviation from the
population carries over to *another* conversation of the same listener: a constant
(``pwsg.prior_weight``), or fitted per channel on the training split (``pwsg.fit_prior_weight``):
the least-squares slope of another clip's level on the history's, which is small where a level
is set by the conversation (a listener mirroring the speaker) and near 1 where it is the
listener's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ListenerPrior(nn.Module):
    """``centre = mean + weight ⊙ (history mean − mean)`` with ``weight: (c,)`` in ``[0, 1]``.

    Args:
        channels: ``c``, the features' last dimension.
        weight: the weight of every channel until :meth:`fit`.
        fitted: the weight is fitted (:meth:`fit`) and so part of the state dict; a constant
            weight comes from the config and is not saved.

    Raises:
        ValueError: ``weight`` outside ``[0, 1]``, or ``channels`` < 1.
    """

    def __init__(self, channels: int, weight: float, fitted: bool = False) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.fitted = fitted
        self.register_buffer("weight", torch.full((channels,), float(weight)), persistent=fitted)

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    @torch.no_grad()
    def fit(self, history_means: Tensor, clip_means: Tensor, mean: Tensor) -> Tensor:
        """Set ``weight`` per channel to the least-squares slope, through ``mean``, of the level
        of another clip on the history's, clipped to ``[0, 1]``; returns it.

        ``w_c = Σ_p (h_pc − μ_c)(y_pc − μ_c) / Σ_p (h_pc − μ_c)²``. A channel whose histories
        never leave ``mean`` carries nothing over (``w_c = 0``).

        Args:
            history_means: ``(p, c)`` mean of each history.
            clip_means: ``(p, c)`` mean of another clip of the same listener, pair by pair
                (:func:`perfrdiff.data.listener_level_pairs`).
            mean: ``(c,)`` the population mean the centre is taken around.

        Raises:
            ValueError: shapes that disagree, no pair, or non-finite values.
        """
        c = self.channels
        if history_means.dim() != 2 or history_means.shape[1] != c or history_means.shape[0] < 1:
            raise ValueError(
                f"history_means must be (p, {c}) with p >= 1, got {tuple(history_means.shape)}"
            )
        if clip_means.shape != history_means.shape:
            raise ValueError(
                f"clip_means must have history_means' shape {tuple(history_means.shape)}, got "
                f"{tuple(clip_means.shape)}"
            )
        if mean.shape != (c,):
            raise ValueError(f"mean must be ({c},), got {tuple(mean.shape)}")
        for name, value in (("history_means", history_means), ("clip_means", clip_means)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} must be finite")
        centre = mean.to(torch.float64)
        history = history_means.to(torch.float64) - centre
        level = clip_means.to(torch.float64) - centre
        spread = history.pow(2).sum(0)
        slope = (history * level).sum(0) / spread.clamp(min=torch.finfo(torch.float64).tiny)
        weight = torch.where(spread > 0, slope, torch.zeros_like(slope)).clamp(0.0, 1.0)
        self.weight.copy_(weight)
        return self.weight

    def centre(self, history_mean: Tensor, mean: Tensor) -> Tensor:
        """``history_mean: (l, c)``, ``mean: (c,)`` -> ``(l, c)`` in ``mean``'s dtype."""
        history_mean = history_mean.to(mean.dtype)
        return mean + self.weight.to(mean.dtype) * (history_mean - mean)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, fitted={self.fitted}"
