"""Per-channel standardisation of the listener features the denoiser diffuses.

The cosine schedule assumes data of unit variance: the 25 emotion channels have standard
deviations of 0.05–0.6 (AU and expression probabilities in ``[0, 1]``), so unscaled their
signal is drowned at a noise level the schedule still calls "mid" and the low-noise steps must
do the work. :class:`FeatureScaler` maps ``x`` to ``(x - mean) / std`` with the training split's
statistics (fitted once, saved with the model's weights) and back.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Channels whose training std is below this are scaled by it instead (a constant channel).
MIN_STD = 1e-3


class FeatureScaler(nn.Module):
    """``x -> (x - mean) / std`` per channel; identity until :meth:`fit`.

    Args:
        channels: ``c``, the last dimension of the features.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    @torch.no_grad()
    def fit(self, mean: Tensor, std: Tensor) -> FeatureScaler:
        """Set the statistics: ``mean, std: (c,)``; a std below :data:`MIN_STD` is raised to it.

        Raises:
            ValueError: a shape is not ``(c,)`` or a value is not finite.
        """
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (self.channels,):
                raise ValueError(
                    f"{name} must have shape ({self.channels},), got {tuple(value.shape)}"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} must be finite, got {value.tolist()}")
        self.mean.copy_(mean)
        self.std.copy_(std.clamp(min=MIN_STD))
        return self

    def normalise(self, x: Tensor, mean: Tensor | None = None) -> Tensor:
        """``(..., c)`` features -> standardised ``(..., c)``; ``mean`` (broadcastable against
        ``x``) replaces the fitted mean, e.g. one per listener."""
        mean = self.mean if mean is None else mean
        return (x - mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalise(self, z: Tensor, mean: Tensor | None = None) -> Tensor:
        """Inverse of :meth:`normalise` (with the same ``mean``)."""
        mean = self.mean if mean is None else mean
        return z * self.std.to(z.dtype) + mean.to(z.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
