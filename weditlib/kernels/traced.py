"""The algorithms ``edited_linear`` and ``edited_conv`` run inside ``torch.compile``: one graph
for every batch size and index pattern.

The planner picks an algorithm per problem shape and the grouped algorithms lay samples out by
the grouping's Python-side facts (``max_count``, ``uniform``, ``identity``); traced, each of
those becomes a guard, so a compiled model would recompile for every new batch size, token count
and index pattern. Traced calls therefore run one fixed algorithm per kind of shift that reads
only the index tensor: the shift's tensors are gathered per sample (``up[index]``,
``down[index]``, ``(W ⊕ ΔW)[index]``), with symbolic shapes throughout.

Costs beside the planner's choice: low-rank shifts gather ``b·r·(n + k)`` factor values (small
next to the products); dense shifts gather one edited weight per sample, ``b·n·k`` values
(the ``materialise_gather`` algorithm), where eager calls of samples sharing a shift may share
one product. Convolutions multiply unfolded inputs (``F.unfold``: ``prod(kernel)`` times the
input's size) with the gathered factors or kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from weditlib.deltas import Delta, LowRankDelta
from weditlib.kernels.base import combine
from weditlib.kernels.conv import ConvGeometry, output_sizes
from weditlib.kernels.reference import shift_bias
from weditlib.materialised import MaterialisedDelta


def _add_base(y: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """``y + x Wᵀ`` (the shared-weight GEMM)."""
    return y + torch.nn.functional.linear(x, weight)


def per_sample_bias(
    bias: Tensor | None, delta: Delta | MaterialisedDelta, index: Tensor
) -> Tensor | None:
    """The bias of each sample: ``(b, 1, n)`` ``b + Δb[index]``, the base ``(n,)``, or ``None``."""
    per_shift = shift_bias(bias, delta)
    return bias if per_shift is None else per_shift[index].unsqueeze(1)


def run_traced(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: Delta, index: Tensor
) -> Tensor:
    """``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias + Δb_index[b]`` from the index alone.

    Args:
        x: ``(b, t, k)``.
        weight: ``(n, k)``.
        bias: ``(n,)`` or ``None``.
        delta: ``l`` shifts of the weight.
        index: ``(b,)`` int64, the shift of each sample.

    Returns:
        ``(b, t, n)``.
    """
    sample_bias = per_sample_bias(bias, delta, index)
    if isinstance(delta, LowRankDelta):
        up, down = delta.up[index], delta.down[index]  # (b, n, r), (b, r, k)
        if delta.mode == "shift":  # x Wᵀ + (x Vᵀ) Uᵀ
            y = torch.bmm(torch.bmm(x, down.transpose(1, 2)), up.transpose(1, 2))
            y = _add_base(y, x, weight)
        else:  # W ⊙ (1 + U V): x Wᵀ + Σ_r u_r ⊙ ((x ⊙ v_r) Wᵀ)
            scaled = rearrange(x, "b t k -> b 1 t k") * rearrange(down, "b r k -> b r 1 k")
            per_rank = torch.nn.functional.linear(scaled, weight)  # (b, r, t, n)
            y = torch.nn.functional.linear(x, weight) + torch.einsum("brtn,bnr->btn", per_rank, up)
        return y if sample_bias is None else y + sample_bias
    effective = combine(weight, delta.weight[index], delta.mode)  # (b, n, k)
    y = torch.bmm(x, effective.transpose(1, 2))
    return y if sample_bias is None else y + sample_bias


def _unfold(x: Tensor, kernel: tuple[int, ...], geometry: ConvGeometry) -> Tensor:
    """``(b, c_in, *s) -> (b, c_in · prod(kernel), p)``: every output position's receptive field
    (``F.unfold``; a 1-d conv is unfolded as a 2-d one of height 1)."""
    if geometry.spatial_dims == 2:
        return F.unfold(x, kernel, geometry.dilation, geometry.padding, geometry.stride)
    return F.unfold(
        x.unsqueeze(2),
        (1, *kernel),
        (1, *geometry.dilation),
        (0, *geometry.padding),
        (1, *geometry.stride),
    )


def run_traced_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: Delta | MaterialisedDelta,
    index: Tensor,
    geometry: ConvGeometry,
) -> Tensor:
    """The edited convolution from the index alone, as products over unfolded inputs.

    A low-rank shift (``shift`` mode) adds ``U (V · cols)`` to the base convolution; any other
    shift (and built kernels) gathers each sample's edited kernel ``(b, n, k)`` and multiplies
    it with the sample's unfolded input. Groups split the unfolded rows and the kernel rows
    alike.

    Args:
        x: ``(b, c_in, *s)``, padded already where the padding mode is not zeros.
        weight: ``(n, c_in / g, *kernel)``.
        bias: ``(n,)`` or ``None``.
        delta: ``l`` shifts of the flattened kernel, or edited kernels built beforehand.
        index: ``(b,)`` int64.
        geometry: stride, symmetric padding, dilation, groups.

    Returns:
        ``(b, n, *s_out)``.
    """
    batch, n, groups = x.shape[0], weight.shape[0], geometry.groups
    out_sizes = output_sizes(x.shape[2:], weight.shape[2:], geometry)
    cols = _unfold(x, tuple(weight.shape[2:]), geometry)  # (b, c_in · prod, p)
    cols = cols.reshape(batch, groups, -1, cols.shape[-1])  # (b, g, k, p)
    sample_bias = per_sample_bias(bias, delta, index)  # (b, 1, n), (n,) or None
    if isinstance(delta, LowRankDelta) and delta.mode == "shift":
        up, down = delta.up[index], delta.down[index]  # (b, n, r), (b, r, k)
        inner = torch.einsum("bgkp,brk->bgrp", cols, down)
        up = up.reshape(batch, groups, n // groups, -1)  # (b, g, n/g, r)
        y = torch.einsum("bgrp,bgmr->bgmp", inner, up).reshape(batch, n, *out_sizes)
        y = y + geometry.conv(x, weight, None, groups)
    else:
        if isinstance(delta, MaterialisedDelta):
            effective = delta.weight[index]  # (b, n, k)
        else:
            effective = combine(weight.reshape(n, -1), delta.matrix()[index], delta.mode)
        effective = effective.reshape(batch, groups, n // groups, -1)  # (b, g, n/g, k)
        y = torch.einsum("bgkp,bgmk->bgmp", cols, effective).reshape(batch, n, *out_sizes)
    if sample_bias is None:
        return y
    spatial = (1,) * len(out_sizes)
    if sample_bias.dim() == 1:
        return y + sample_bias.reshape(n, *spatial)
    return y + sample_bias.reshape(batch, n, *spatial)
