"""The float64 per-sample loop every algorithm is checked against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from weditlib.deltas import Shift


def loop_edited_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, index: Tensor | None
) -> Tensor:
    """``y[b] = F.linear(x[b], W ⊕ ΔW[i], bias) + Δb[i]``, ``i = index[b]``, in float64.

    One sample at a time; an empty batch gives an empty ``(0, *t, n)`` result.
    """
    shifts = delta.matrix().double()
    base = weight.double()
    outputs = []
    for b in range(x.shape[0]):
        i = b if index is None else int(index[b])
        shift = shifts[i]
        effective = {"add": base + shift, "scale": base * (1 + shift), "replace": shift}[delta.mode]
        y = F.linear(x[b].double(), effective, None if bias is None else bias.double())
        if delta.bias is not None:
            y = y + delta.bias[i].double()
        outputs.append(y)
    if not outputs:
        return x.new_zeros(*x.shape[:-1], weight.shape[0], dtype=torch.float64)
    return torch.stack(outputs)
