"""A low-rank shift kept in its own dtype, applied the way PEFT applies a LoRA adapter.

PEFT keeps an adapter in the dtype it was saved in: a float32 LoRA (or DoRA) adapter on a
bfloat16 model computes its branch in float32, from the input cast to float32, and adds it to
the bfloat16 base output in float32 before rounding the sum once to bfloat16
(``result + lora_B(lora_A(x.to(fp32))) * scaling``, then ``.to(bf16)``). Rounding the factors
to the model's dtype instead changes outputs by far more than bfloat16's own rounding, and a
saved adapter would no longer be the one loaded. :func:`mixed_dtype_linear` computes exactly
PEFT's sum; the planner's algorithms are for shifts of the input's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from weditlib.deltas import Grouping
from weditlib.row_scaled import SHIFT_KINDS, AnyShift


def keeps_own_dtype(x: object, delta: object) -> bool:
    """Whether ``delta`` is a low-rank shift in mode ``add`` (row-scaled or not) whose floating
    dtype differs from the floating ``x``'s: then it is applied in its own dtype."""
    if not isinstance(x, Tensor) or not isinstance(delta, SHIFT_KINDS):
        return False
    inner = delta.without_row_scale()  # type: ignore[union-attr]
    return (
        inner.rank is not None and inner.mode == "add" and delta.dtype != x.dtype  # type: ignore[union-attr]
        and x.dtype.is_floating_point and delta.dtype.is_floating_point  # type: ignore[union-attr]
    )  # fmt: skip


def mixed_dtype_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: AnyShift, grouping: Grouping
) -> Tensor:
    """``y_b = x_b Wᵀ + b + (x_b Aᵀ) Bᵀ + Δb`` with the low-rank part in the shift's dtype.

    The base product runs in ``x``'s dtype; the shift's part on ``x`` cast to the shift's
    dtype; both are summed in the wider of the two dtypes and the sum is cast to ``x``'s. A
    row-scaled shift (DoRA) gives ``scale ⊙ (x_b Wᵀ + (x_b Aᵀ) Bᵀ) + b + Δb`` the same way.

    Args:
        x: ``(b, t, k)``.
        weight: ``(n, k)`` of ``x``'s dtype.
        bias: ``(n,)`` of ``x``'s dtype, or ``None``.
        delta: ``l`` low-rank shifts in mode ``add`` (possibly row-scaled), of another dtype.
        grouping: the shift of each sample.

    Returns:
        ``(b, t, n)`` in ``x``'s dtype, differentiable with respect to every tensor.
    """
    inner = delta.without_row_scale()
    scale = delta.row_scale
    index = grouping.index
    wide = torch.promote_types(x.dtype, inner.dtype)
    shrunk = torch.bmm(x.to(inner.dtype), inner.down[index].transpose(1, 2))  # (b, t, r)
    part = torch.bmm(shrunk, inner.up[index].transpose(1, 2))  # (b, t, n)
    shift_bias = None if inner.bias is None else inner.bias[index].unsqueeze(1).to(wide)
    if scale is None:
        y = F.linear(x, weight, bias).to(wide) + part.to(wide)
    else:
        y = F.linear(x, weight).to(wide) + part.to(wide)
        y = y * scale[index].unsqueeze(1).to(wide)
        y = y if bias is None else y + bias.to(wide)
    y = y if shift_bias is None else y + shift_bias
    return y.to(x.dtype)
