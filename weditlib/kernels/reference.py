"""Exact algorithms in plain torch: they run anywhere and autograd differentiates them.

Five ways to compute ``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias``:

* ``materialise`` — build ``W ⊕ ΔW`` once per shift, then one batched GEMM over the groups of
  samples that share it (compute-bound regime: many tokens per shift).
* ``materialise_gather`` — build ``W ⊕ ΔW`` once per shift and gather it per sample; no padding
  when groups are very unequal.
* ``split`` — ``x Wᵀ + bmm(x, ΔWᵀ)``: reads each shift once and never writes ``W + ΔW``
  (memory-bound regime: few tokens per shift). Dense shifts in ``add`` mode only.
* ``lowrank`` — ``x Wᵀ + (x Vᵀ) Uᵀ`` (mode ``replace``: ``(x Vᵀ) Uᵀ`` alone): never builds an
  ``(n, k)`` matrix per shift.
* ``lowrank_scale`` — ``W ⊙ (1 + U V)`` applied as ``x Wᵀ + Σ_r u_r ⊙ ((x ⊙ v_r) Wᵀ)``: ``r``
  extra GEMMs against the shared ``W`` instead of ``l`` materialised matrices.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from weditlib.deltas import Grouping, Shift
from weditlib.kernels.base import Cost, Problem
from weditlib.materialised import EditedWeights


def to_groups(x: Tensor, grouping: Grouping) -> Tensor:
    """Arrange samples by shift: ``(b, t, k) -> (l, max_count * t, k)``.

    A free view when the grouping is uniform; otherwise a zero-padded copy.
    """
    _, t, k = x.shape
    lcount, count = grouping.num_shifts, grouping.max_count
    if grouping.uniform:
        return x.reshape(lcount, count * t, k)
    buffer = x.new_zeros(lcount * count, t, k).index_copy(0, grouping.position, x)
    return buffer.reshape(lcount, count * t, k)


def from_groups(y: Tensor, grouping: Grouping, tokens: int) -> Tensor:
    """Inverse of :func:`to_groups`: ``(l, max_count * t, n) -> (b, t, n)``."""
    lcount, _, n = y.shape
    if grouping.uniform:
        return y.reshape(grouping.batch_size, tokens, n)
    return y.reshape(lcount * grouping.max_count, tokens, n)[grouping.position]


def _per_sample(tensor: Tensor, grouping: Grouping) -> Tensor:
    """``(l, ...) -> (b, ...)``: the shift tensor of each sample (a view when identity; always a
    gather when traced, where ``identity`` would be a guard)."""
    if not torch.compiler.is_compiling() and grouping.identity:
        return tensor
    return tensor[grouping.index]


def shift_bias(bias: Tensor | None, delta: Shift | EditedWeights) -> Tensor | None:
    """``(l, n)`` the bias each shift adds, ``b + Δb`` (``Δb`` alone without ``b``), or ``None``.

    ``None`` when the shift has no bias shift: then every sample adds the base ``bias``.
    """
    if delta.bias is None:
        return None
    return delta.bias if bias is None else delta.bias + bias


def sample_bias(bias: Tensor | None, delta: Shift, grouping: Grouping) -> Tensor | None:
    """The bias to add to a ``(b, t, n)`` result: ``(b, 1, n)``, the base ``(n,)``, or ``None``."""
    per_shift = shift_bias(bias, delta)
    if per_shift is None:
        return bias
    return _per_sample(per_shift, grouping).unsqueeze(1)


def add_bias_shift(y: Tensor, delta: Shift, grouping: Grouping) -> Tensor:
    """``y (b, t, n) + Δb[index]`` when the shift carries a bias shift, else ``y``."""
    if delta.bias is None:
        return y
    return y + _per_sample(delta.bias, grouping).unsqueeze(1)


def linear_bmm(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight_t + bias`` batched: ``bias`` broadcasts (``(n,)`` or ``(l, 1, n)``)."""
    if bias is None:
        return torch.bmm(x, weight_t)
    return torch.baddbmm(bias, x, weight_t)


def group_bias(bias: Tensor | None, delta: Shift | EditedWeights) -> Tensor | None:
    """The bias of each group of :func:`to_groups`: ``(l, 1, n)`` ``b + Δb``, the base ``(n,)``
    for all, or ``None``."""
    per_shift = shift_bias(bias, delta)
    return bias if per_shift is None else per_shift.unsqueeze(1)


def grouped_product(
    x: Tensor, effective: Tensor, bias: Tensor | None, grouping: Grouping
) -> Tensor:
    """``y_b = x_b W'ᵀ_index[b] + bias`` as one batched GEMM over the samples grouped by shift.

    Shapes: ``x: (b, t, k)``, ``effective: (l, n, k)`` the edited weights, ``bias`` as
    :func:`group_bias` returns -> ``(b, t, n)``.
    """
    xg = to_groups(x, grouping)  # (l, c·t, k)
    yg = linear_bmm(xg, effective.transpose(1, 2), bias)
    return from_groups(yg, grouping, x.shape[1])


def _io_bytes(p: Problem) -> float:
    """Bytes of reading ``x`` and writing ``y`` once."""
    rows = p.batch * p.tokens
    return p.element_size * rows * (p.in_features + p.out_features)


def _shift_bytes(p: Problem) -> float:
    """Bytes of reading every shift once (``l·n·k`` dense, ``l·r·(n+k)`` low-rank)."""
    if p.dense:
        return p.element_size * p.num_shifts * p.out_features * p.in_features
    assert p.rank is not None
    return p.element_size * p.num_shifts * p.rank * (p.out_features + p.in_features)


def _regroup_bytes(p: Problem) -> float:
    """Copies into and out of the padded group layout (free when uniform)."""
    if p.uniform:
        return 0.0
    return 2 * p.element_size * p.padded_rows * (p.in_features + p.out_features)


def _build_bytes(p: Problem) -> float:
    """Reading ``W`` and the shifts and writing ``l`` matrices ``W ⊕ ΔW``.

    Mode ``replace`` reads no ``W``, and a dense shift in that mode is its own edited weight:
    nothing is built.
    """
    nk = p.out_features * p.in_features
    if p.mode == "replace":
        return 0.0 if p.dense else _shift_bytes(p) + p.element_size * p.num_shifts * nk
    return _shift_bytes(p) + p.element_size * (nk + p.num_shifts * nk)


class Materialise:
    """``W ⊕ ΔW`` per shift, then one batched GEMM per group of samples."""

    name = "materialise"

    def supported(self, problem: Problem) -> bool:
        return True

    def cost(self, p: Problem) -> Cost:
        nk = p.out_features * p.in_features
        build_flops = 0 if p.dense else 2 * p.num_shifts * nk * p.rank
        return Cost(
            flops=2.0 * p.padded_rows * nk + build_flops,
            bytes=_io_bytes(p) + p.element_size * p.num_shifts * nk,
            launches=3 if p.uniform else 6,
            gemm_rows=p.max_group * p.tokens,
            extra_bytes=_build_bytes(p) + _regroup_bytes(p),
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        effective = delta.edited(weight)  # (l, n, k)
        return grouped_product(x, effective, group_bias(bias, delta), grouping)


class MaterialiseGather:
    """``W ⊕ ΔW`` per shift, gathered per sample: no padding for unequal groups."""

    name = "materialise_gather"

    def supported(self, problem: Problem) -> bool:
        return True

    def cost(self, p: Problem) -> Cost:
        nk = p.out_features * p.in_features
        build_flops = 0 if p.dense else 2 * p.num_shifts * nk * p.rank
        gather = 0 if p.num_shifts == p.batch and p.uniform else 2 * p.batch * nk
        return Cost(
            flops=2.0 * p.batch * p.tokens * nk + build_flops,
            bytes=_io_bytes(p) + p.element_size * p.batch * nk,
            launches=3,
            gemm_rows=p.tokens,
            extra_bytes=_build_bytes(p) + p.element_size * gather,
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        effective = _per_sample(delta.edited(weight), grouping)
        return linear_bmm(x, effective.transpose(1, 2), sample_bias(bias, delta, grouping))


def add_base(y: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """``y += x Wᵀ`` in place, as the GEMM's own accumulation (``beta = 1``).

    The shared-weight product is the big, compute-bound GEMM: reading ``y`` inside it is hidden
    under its compute, where a separate ``base + partial`` would be one more memory-bound pass.

    Args:
        y: ``(b, t, n)``, a fresh result of the caller (not a leaf, not an input).
        x: ``(b, t, k)``.
        weight: ``(n, k)``.
    """
    b, t, n = y.shape
    y.view(b * t, n).addmm_(x.reshape(b * t, x.shape[-1]), weight.t())
    return y


class Split:
    """``bmm(x, ΔWᵀ) + bias + Δb`` with samples grouped by shift, then ``+= x Wᵀ``."""

    name = "split"

    def supported(self, problem: Problem) -> bool:
        return problem.dense and problem.mode == "add"

    def cost(self, p: Problem) -> Cost:
        nk = p.out_features * p.in_features
        rows = p.batch * p.tokens
        return Cost(
            flops=2.0 * rows * nk + 2.0 * p.padded_rows * nk,
            # two products: x ΔWᵀ per group, then x Wᵀ accumulated onto it (x read twice)
            bytes=2 * _io_bytes(p)
            + p.element_size * (nk + rows * p.out_features)
            + _shift_bytes(p),
            launches=2 if p.uniform else 4,
            gemm_rows=p.max_group * p.tokens,
            extra_bytes=_regroup_bytes(p),
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        assert delta.rank is None
        per_shift = shift_bias(bias, delta)
        group_bias = bias if per_shift is None else per_shift.unsqueeze(1)
        yg = linear_bmm(to_groups(x, grouping), delta.weight.transpose(1, 2), group_bias)
        return add_base(from_groups(yg, grouping, x.shape[1]), x, weight)


def _lowrank_grouped(grouping: Grouping, tokens: int, rank: int) -> bool:
    """Whether :class:`LowRank` runs on groups (else on factors gathered per sample).

    Groups are free when uniform; otherwise they copy ``x`` in and ``y`` out (``t·(k + n)`` per
    sample) where gathering costs the factors (``r·(n + k)`` per sample): groups win when
    ``2·t < r``, i.e. for few tokens per sample.
    """
    return grouping.uniform or 2 * tokens < rank


class LowRank:
    """``(x Vᵀ) Uᵀ + bias + Δb``, then ``+= x Wᵀ`` (mode ``add``; mode ``replace`` stops before
    it): nothing of size ``n·k`` per shift."""

    name = "lowrank"

    def supported(self, problem: Problem) -> bool:
        return not problem.dense and problem.mode in ("add", "replace")

    def cost(self, p: Problem) -> Cost:
        assert p.rank is not None
        rows = p.batch * p.tokens
        nk = p.out_features * p.in_features
        if p.mode == "replace":  # no base GEMM: x is read once, W never
            rows_nk, io, weight_bytes = 0.0, _io_bytes(p), 0.0
        else:
            rows_nk, io, weight_bytes = 2.0 * rows * nk, 2 * _io_bytes(p), p.element_size * nk
        grouped = p.uniform or 2 * p.tokens < p.rank
        if grouped:
            moved = _regroup_bytes(p)
        else:
            moved = 2 * p.element_size * p.batch * p.rank * (p.out_features + p.in_features)
        return Cost(
            flops=rows_nk + 2.0 * rows * p.rank * (p.out_features + p.in_features),
            # the shrink re-reads x; the expand writes y, which the base GEMM then accumulates
            # onto (overlapped with its compute)
            bytes=io + weight_bytes + _shift_bytes(p),
            launches=3 if p.uniform else 5,
            gemm_rows=rows,
            extra_bytes=moved,
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        assert delta.rank is not None
        t = x.shape[1]
        if _lowrank_grouped(grouping, t, delta.rank):  # one (c·t)-row product per shift
            per_shift = shift_bias(bias, delta)
            group_bias = bias if per_shift is None else per_shift.unsqueeze(1)
            inner = torch.bmm(to_groups(x, grouping), delta.down.transpose(1, 2))  # (l, c·t, r)
            yg = linear_bmm(inner, delta.up.transpose(1, 2), group_bias)
            y = from_groups(yg, grouping, t)
        else:
            up = _per_sample(delta.up, grouping)  # (b, n, r)
            down = _per_sample(delta.down, grouping)  # (b, r, k)
            inner = torch.bmm(x, down.transpose(1, 2))  # (b, t, r)
            y = linear_bmm(inner, up.transpose(1, 2), sample_bias(bias, delta, grouping))
        return y if delta.mode == "replace" else add_base(y, x, weight)


class LowRankScale:
    """``W ⊙ (1 + U V)`` as ``x Wᵀ + Σ_r u_r ⊙ ((x ⊙ v_r) Wᵀ)``: ``r`` GEMMs against shared W."""

    name = "lowrank_scale"

    def supported(self, problem: Problem) -> bool:
        return not problem.dense and problem.mode == "scale"

    def cost(self, p: Problem) -> Cost:
        assert p.rank is not None
        rows = p.batch * p.tokens
        nk = p.out_features * p.in_features
        scaled_inputs = p.element_size * rows * p.rank * (p.in_features + p.out_features)
        return Cost(
            flops=2.0 * rows * (1 + p.rank) * nk,
            bytes=_io_bytes(p) + p.element_size * nk + scaled_inputs,
            launches=5,
            gemm_rows=rows * p.rank,
            extra_bytes=2 * scaled_inputs + _shift_bytes(p),
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        assert delta.rank is not None
        up = _per_sample(delta.up, grouping)  # (b, n, r)
        down = _per_sample(delta.down, grouping)  # (b, r, k)
        base = add_bias_shift(torch.nn.functional.linear(x, weight, bias), delta, grouping)
        scaled = rearrange(x, "b t k -> b 1 t k") * rearrange(down, "b r k -> b r 1 k")
        per_rank = torch.nn.functional.linear(scaled, weight)  # (b, r, t, n)
        return base + torch.einsum("brtn,bnr->btn", per_rank, up)


ALGORITHMS: tuple = (Materialise(), MaterialiseGather(), Split(), LowRank(), LowRankScale())
