"""The algorithms ``edited_linear`` and ``edited_conv`` run inside ``torch.compile``: one graph
for every batch size and index pattern.

The planner picks an algorithm per problem shape and the grouped algorithms lay samples out by
the grouping's Python-side facts (``max_count``, ``uniform``, ``identity``); traced, each of
those becomes a guard, so a compiled model would recompile for every new batch size, token count
and index pattern. Traced calls therefore run fixed algorithms with symbolic shapes throughout
that read the index tensor and one bool, ``uniform``: a batch sorted in equal groups (``c``
samples per shift, ``c = b / l`` from the shapes) runs the grouped products on a free view, as
eager calls do; any other index gathers the shift's tensors per sample (``up[index]``,
``down[index]``, ``(W ⊕ ΔW)[index]``). At most two graphs, one per value of the bool.

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

from weditlib.deltas import Grouping, Shift, combine
from weditlib.kernels.conv import ConvGeometry, output_sizes
from weditlib.kernels.reference import add_base, group_bias, linear_bmm, shift_bias
from weditlib.materialised import EditedWeights


def per_sample_bias(
    bias: Tensor | None, delta: Shift | EditedWeights, index: Tensor
) -> Tensor | None:
    """The bias of each sample: ``(b, 1, n)`` ``b + Δb[index]``, the base ``(n,)``, or ``None``."""
    per_shift = shift_bias(bias, delta)
    return bias if per_shift is None else per_shift[index].unsqueeze(1)


def run_traced(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
) -> Tensor:
    """``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias + Δb_index[b]`` from the index and one bool.

    A uniform grouping (sorted, every shift used by the same number of samples, as a batch of
    ``c`` samples per adapter) runs the grouped products on the free view ``(l, c·t, k)``, with
    ``c = b / l`` taken from the shapes; any other runs on shifts gathered per sample. The bool
    is the only grouping fact in the graph: at most two graphs per shift kind.

    Args:
        x: ``(b, t, k)``.
        weight: ``(n, k)``.
        bias: ``(n,)`` or ``None``.
        delta: ``l`` shifts of the weight.
        grouping: the samples' shifts (only ``index``, ``uniform`` and the shapes are read).

    Returns:
        ``(b, t, n)``.
    """
    low_rank_scale = delta.rank is not None and delta.mode == "scale"
    if grouping.uniform and not low_rank_scale:
        return _run_uniform(x, weight, bias, delta, grouping.num_shifts)
    return _run_gathered(x, weight, bias, delta, grouping.index)


def _run_uniform(x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, shifts: int):
    """Samples sorted in equal groups: products per shift on the view ``(l, c·t, k)``."""
    batch, tokens, k = x.shape
    rows = x.contiguous().view(-1, k)  # (b·t, k)
    # (l, c·t, k) as strides, not a reshape: a reshape's view rule tells c = 1 apart (a guard)
    grouped = rows.as_strided(
        (shifts, rows.shape[0] // shifts, k), (rows.shape[0] // shifts * k, k, 1)
    )
    per_group_bias = group_bias(bias, delta)  # (l, 1, n), (n,) or None
    if delta.rank is not None:  # add mode: (x Vᵀ) Uᵀ + bias, then += x Wᵀ (not in replace)
        inner = torch.bmm(grouped, delta.down.transpose(1, 2))  # (l, c·t, r)
        y = linear_bmm(inner, delta.up.transpose(1, 2), per_group_bias).view(-1, weight.shape[0])
        if delta.mode == "add":
            y.addmm_(rows, weight.t())  # the base GEMM accumulates onto it (see add_base)
    else:
        effective = delta.edited(weight)  # (l, n, k), once per shift
        y = linear_bmm(grouped, effective.transpose(1, 2), per_group_bias)
    return y.view(batch, tokens, -1)


def _run_gathered(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, index: Tensor
) -> Tensor:
    """Any index: each sample's factors (or edited weight) gathered by ``index``."""
    sample_bias = per_sample_bias(bias, delta, index)
    if delta.rank is not None:
        up, down = delta.up[index], delta.down[index]  # (b, n, r), (b, r, k)
        if delta.mode != "scale":  # (x Vᵀ) Uᵀ, then += x Wᵀ in the base GEMM (add mode)
            y = torch.bmm(torch.bmm(x, down.transpose(1, 2)), up.transpose(1, 2))
            y = y if delta.mode == "replace" else add_base(y, x, weight)
        else:  # W ⊙ (1 + U V): x Wᵀ + Σ_r u_r ⊙ ((x ⊙ v_r) Wᵀ)
            scaled = rearrange(x, "b t k -> b 1 t k") * rearrange(down, "b r k -> b r 1 k")
            per_rank = torch.nn.functional.linear(scaled, weight)  # (b, r, t, n)
            y = torch.nn.functional.linear(x, weight) + torch.einsum("brtn,bnr->btn", per_rank, up)
        return y if sample_bias is None else y + sample_bias
    effective = delta.select(index).edited(weight)  # (b, n, k)
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
    delta: Shift | EditedWeights,
    index: Tensor,
    geometry: ConvGeometry,
) -> Tensor:
    """The edited convolution from the index alone, as products over unfolded inputs.

    A low-rank shift (``add`` mode) adds ``U (V · cols)`` to the base convolution; any other
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
    built = isinstance(delta, EditedWeights)
    if not built and delta.rank is not None and delta.mode == "add":
        up, down = delta.up[index], delta.down[index]  # (b, n, r), (b, r, k)
        inner = torch.einsum("bgkp,brk->bgrp", cols, down)
        up = up.reshape(batch, groups, n // groups, -1)  # (b, g, n/g, r)
        y = torch.einsum("bgrp,bgmr->bgmp", inner, up).reshape(batch, n, *out_sizes)
        y = y + geometry.conv(x, weight, None, groups)
    else:
        if built:
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
