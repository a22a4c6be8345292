"""The float64 per-sample loop every algorithm is checked against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from weditlib.deltas import Delta


def loop_edited_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: Delta, index: Tensor | None
) -> Tensor:
    """``y[b] = F.linear(x[b], W ⊕ ΔW[index[b]], bias)`` one sample at a time, in float64."""
    shifts = delta.matrix().double()
    base = weight.double()
    outputs = []
    for b in range(x.shape[0]):
        shift = shifts[b if index is None else int(index[b])]
        effective = base + shift if delta.mode == "shift" else base * (1 + shift)
        outputs.append(F.linear(x[b].double(), effective, None if bias is None else bias.double()))
    return torch.stack(outputs)
