"""Generated reactions as the features are defined: each channel in its valid range, and
without the frame-to-frame jitter the sampler leaves.

Two sampling settings (``generate.clamp``, ``generate.smooth_sigma``), applied to whole
generated clips before the protocol's own post-processing
(:meth:`perfrdiff.protocol.Protocol.finish`):

* **clamp**: AUs (occurrences) and expression probabilities to ``[0, 1]``, valence and arousal
  to ``[-1, 1]``; a sample outside them is no reaction a face can show.
* **smooth**: a Gaussian filter over time of standard deviation ``sigma`` frames (edges
  reflected). The samples' 8-12.5 Hz power is ~1.8x real listeners' (the demo's motion table);
  that jitter is variance the speaker does not explain and lowers FRCorr's correlation factor
  (:mod:`perfrdiff.metrics.ccc_factors`). It reads ``ceil(4 sigma)`` frames on either side of a
  frame, so an online system would emit each frame that much later.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from perfrdiff.protocol import AU_CHANNELS, EXPRESSION_CHANNELS, VA_CHANNELS


def clamp_ranges(reactions: Tensor) -> Tensor:
    """``(..., 25)`` reactions with AUs and expressions clamped to ``[0, 1]`` and valence and
    arousal to ``[-1, 1]`` (a new tensor)."""
    out = reactions.clone()
    for channels, low in ((AU_CHANNELS, 0.0), (VA_CHANNELS, -1.0), (EXPRESSION_CHANNELS, 0.0)):
        out[..., channels] = out[..., channels].clamp(low, 1.0)
    return out


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(2r + 1,)`` normalised Gaussian weights, ``r = ceil(4 sigma)``.

    Raises:
        ValueError: ``sigma`` is not > 0.
    """
    if not sigma > 0:
        raise ValueError(f"sigma: expected > 0 frames, got {sigma!r}")
    radius = math.ceil(4 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).to(dtype)


def smooth_time(reactions: Tensor, sigma: float) -> Tensor:
    """``(..., t, d)`` reactions filtered over time ``t`` by a Gaussian of ``sigma`` frames,
    edges reflected (``t`` must exceed the kernel's radius ``ceil(4 sigma)``).

    Raises:
        ValueError: ``sigma`` is not > 0, or the clip is too short to reflect.
    """
    kernel = gaussian_kernel(sigma, reactions.dtype).to(reactions.device)
    radius = kernel.numel() // 2
    *lead, t, d = reactions.shape
    if t <= radius:
        raise ValueError(f"reactions: need more than {radius} frames to smooth, got {t}")
    rows = reactions.reshape(-1, t, d).transpose(1, 2).reshape(-1, 1, t)  # (rows·d, 1, t)
    padded = F.pad(rows, (radius, radius), mode="reflect")
    smooth = F.conv1d(padded, kernel.view(1, 1, -1))
    return smooth.reshape(-1, d, t).transpose(1, 2).reshape(*lead, t, d)


def postprocess(reactions: Tensor, clamp: bool, smooth_sigma: float) -> Tensor:
    """``(..., t, 25)`` generated reactions smoothed (``smooth_sigma > 0``), then clamped
    (``clamp``); the same tensor when neither is asked for."""
    if smooth_sigma > 0:
        reactions = smooth_time(reactions, smooth_sigma)
    if clamp:
        reactions = clamp_ranges(reactions)
    return reactions
