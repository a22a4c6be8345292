"""Triton backend: fused per-sample weight editing on CUDA, forward and backward.

Two algorithms, each one kernel launch forward (plus a tiny ``cumsum`` for the segment starts):

* ``triton_dense`` — dense shifts ``(l, n, k)``, modes ``add`` and ``scale``
  (:mod:`weditlib.kernels.triton_dense`): ``W`` and ``ΔW_g`` tiles are combined in registers, so
  ``W ⊕ ΔW`` is never written; each shift is read once per row tile of its group.
* ``triton_lowrank`` — low-rank shifts ``U (l, n, r) V (l, r, k)``, the same two modes
  (:mod:`weditlib.kernels.triton_lowrank`): shrink fused into the base GEMM, expand in its epilogue.

Backward (one :class:`torch.autograd.Function` per kind, next to the kernels it launches):

* ``dx = dy (W ⊕ ΔW_g)`` — the forward kernel on transposed views;
* dense ``dΔW_g`` and ``dW = Σ_g …`` — one grouped kernel that reduces ``dy_gᵀ x_g`` per group and
  sums the weight gradient in registers (:func:`~weditlib.kernels.triton_dense.grouped_outer`);
* low-rank ``add``: ``dW = dyᵀ x`` (one GEMM), ``dU_g = Σ dyᵀ (x V_gᵀ)``,
  ``dV_g = Σ (dy U_g)ᵀ x`` with ``(b, t, r)`` intermediates — nothing of size ``n·k`` per shift;
* low-rank ``scale``: ``dΔW_g = (dy_gᵀ x_g) ⊙ W`` is needed anyway for ``dU = dΔW Vᵀ`` and
  ``dV = Uᵀ dΔW``, so the backward materialises ``U V`` and ``dΔW`` (``l·n·k`` each) and reuses
  the dense gradient kernel; the forward does not;
* ``dbias = Σ dy`` and the bias shifts' ``dΔb_g = Σ_{s∈g} dy_s`` (an ``index_add``); the
  forward adds ``Δb_g`` in the kernels' epilogue.

The planner only considers these algorithms for CUDA tensors of dtype float16, bfloat16 or
float32 when Triton is importable. Tests call :meth:`run` directly on CPU tensors under
``TRITON_INTERPRET=1``, where the kernels also accept float64 (accumulating in float64).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from weditlib.deltas import Grouping, Shift
from weditlib.kernels.base import Algorithm, Cost, Problem

try:
    import triton  # noqa: F401  (only its presence is checked here)
except ImportError:
    TRITON_AVAILABLE = False
else:
    TRITON_AVAILABLE = True

if TRITON_AVAILABLE:
    from weditlib.kernels.triton_dense import Segments, edited_matmul, grouped_outer
    from weditlib.kernels.triton_lowrank import lowrank_matmul

#: Input dtypes the planner may send to this backend (CUDA).
DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)

# Nominal tile sizes for the cost model only (the autotuner picks the real ones).
_COST_BLOCK_M = 64
_COST_BLOCK_N = 128


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _bias_grads(
    dy: Tensor, index: Tensor, num_shifts: int, need_bias: bool, need_shift_bias: bool
) -> tuple[Tensor | None, Tensor | None]:
    """``dbias = Σ_{s,t} dy`` and ``dΔb_g = Σ_{s∈g, t} dy`` (accumulated in float32/64)."""
    acc = _accumulate_dtype(dy.dtype)
    if not (need_bias or need_shift_bias):
        return None, None
    per_sample = dy.sum(1, dtype=acc)  # (b, n)
    dbias = per_sample.sum(0).to(dy.dtype) if need_bias else None
    dshift_bias = None
    if need_shift_bias:
        dshift_bias = per_sample.new_zeros(num_shifts, dy.shape[2])
        dshift_bias = dshift_bias.index_add_(0, index, per_sample).to(dy.dtype)
    return dbias, dshift_bias


class _DenseEditedLinear(torch.autograd.Function):
    """``y = x (W ⊕ ΔW_g)ᵀ + bias + Δb_g`` per group, dense ``ΔW``."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        shift: Tensor,
        shift_bias: Tensor | None,
        segments: Segments,
        index: Tensor,
        scale: bool,
    ) -> Tensor:
        ctx.save_for_backward(x, weight, shift, index)
        ctx.segments, ctx.scale = segments, scale
        return edited_matmul(x, weight, shift, bias, segments, scale, shift_bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, shift, index = ctx.saved_tensors
        need_x, need_weight, need_bias, need_shift, need_shift_bias = ctx.needs_input_grad[:5]
        segments, scale = ctx.segments, ctx.scale
        dx = dshift = dweight = None
        if need_x:
            dx = edited_matmul(dy, weight.t(), shift.transpose(1, 2), None, segments, scale)
        if need_weight or need_shift:
            dshift, dweight = grouped_outer(
                dy, x, weight, shift, segments, scale, need_shift, need_weight
            )
        dbias, dshift_bias = _bias_grads(dy, index, shift.shape[0], need_bias, need_shift_bias)
        return dx, dweight, dbias, dshift, dshift_bias, None, None, None


class _LowRankEditedLinear(torch.autograd.Function):
    """``y = x (W ⊕ U_g V_g)ᵀ + bias + Δb_g`` per group."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        up: Tensor,
        down: Tensor,
        shift_bias: Tensor | None,
        segments: Segments,
        index: Tensor,
        scale: bool,
    ) -> Tensor:
        ctx.save_for_backward(x, weight, up, down, index)
        ctx.segments, ctx.scale = segments, scale
        return lowrank_matmul(x, weight, up, down, bias, segments, scale, shift_bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, up, down, index = ctx.saved_tensors
        need_x, need_weight, need_bias, need_up, need_down, need_shift_bias = ctx.needs_input_grad[
            :6
        ]
        segments, scale = ctx.segments, ctx.scale
        dx = dweight = dup = ddown = None
        if need_x:
            dx = lowrank_matmul(
                dy, weight.t(), down.transpose(1, 2), up.transpose(1, 2), None, segments, scale
            )
        if scale:
            if need_weight or need_up or need_down:
                dshift, dweight = grouped_outer(
                    dy, x, weight, torch.bmm(up, down), segments, True,
                    need_up or need_down, need_weight,
                )  # fmt: skip
                if need_up:
                    dup = torch.bmm(dshift, down.transpose(1, 2))
                if need_down:
                    ddown = torch.bmm(up.transpose(1, 2), dshift)
        else:
            if need_weight:
                dweight = torch.mm(dy.flatten(0, 1).t(), x.flatten(0, 1))
            dup, ddown = _lowrank_factor_grads(x, dy, up, down, index, need_up, need_down)
        dbias, dshift_bias = _bias_grads(dy, index, up.shape[0], need_bias, need_shift_bias)
        return dx, dweight, dbias, dup, ddown, dshift_bias, None, None, None


def _lowrank_factor_grads(
    x: Tensor,
    dy: Tensor,
    up: Tensor,
    down: Tensor,
    index: Tensor,
    need_up: bool,
    need_down: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """``dU_g = Σ_{s∈g} dy_sᵀ (x_s V_gᵀ)`` and ``dV_g = Σ_{s∈g} (dy_s U_g)ᵀ x_s`` (mode shift).

    Every intermediate is ``(b, t, r)`` or ``(b, n|k, r)``: small next to one ``(n, k)`` matrix.
    Per-sample terms are summed into their shift in the accumulator dtype.
    """
    acc = _accumulate_dtype(x.dtype)
    dup = ddown = None
    if need_up:
        inner = torch.bmm(x, down[index].transpose(1, 2))  # (b, t, r)
        per_sample = torch.bmm(dy.transpose(1, 2), inner)  # (b, n, r)
        dup = torch.zeros(up.shape, dtype=acc, device=up.device)
        dup = dup.index_add_(0, index, per_sample.to(acc)).to(up.dtype)
    if need_down:
        back = torch.bmm(dy, up[index])  # (b, t, r)
        per_sample = torch.bmm(back.transpose(1, 2), x)  # (b, r, k)
        ddown = torch.zeros(down.shape, dtype=acc, device=down.device)
        ddown = ddown.index_add_(0, index, per_sample.to(acc)).to(down.dtype)
    return dup, ddown


def _supported(problem: Problem) -> bool:
    # the kernels know W + ΔW and W ⊙ (1 + ΔW); mode replace runs on the reference backend
    return (
        TRITON_AVAILABLE and problem.device_type == "cuda" and problem.dtype in DTYPES
        and problem.mode in ("add", "scale")
    )  # fmt: skip


def _floor_bytes(p: Problem) -> float:
    """Read ``x``, ``W``, bias and every shift once; write ``y`` once."""
    rows = p.batch * p.tokens
    n, k = p.out_features, p.in_features
    shift = n * k if p.dense else p.rank * (n + k)
    bias = n if p.has_bias else 0
    return p.element_size * (rows * (k + n) + n * k + bias + p.num_shifts * shift)


def _row_tiles(p: Problem) -> int:
    """Row tiles over all groups (at most ``l · ⌈max_group·t / BLOCK_M⌉``)."""
    return p.num_shifts * -(-p.max_group * p.tokens // _COST_BLOCK_M)


class TritonDense:
    """Fused kernel for dense shifts: ``W`` and ``ΔW_g`` tiles combined in registers."""

    name = "triton_dense"

    def supported(self, problem: Problem) -> bool:
        return problem.dense and _supported(problem)

    def cost(self, p: Problem) -> Cost:
        nk = p.out_features * p.in_features
        combine = (2 if p.mode == "scale" else 1) * nk * _row_tiles(p)
        return Cost(
            flops=2.0 * p.batch * p.tokens * nk + combine,
            bytes=_floor_bytes(p),
            launches=2,
            gemm_rows=p.max_group * p.tokens,
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        assert delta.rank is None
        return _DenseEditedLinear.apply(
            x,
            weight,
            bias,
            delta.weight,
            delta.bias,
            Segments.of(grouping),
            grouping.index,
            delta.mode == "scale",
        )


class TritonLowRank:
    """Fused kernel for low-rank shifts: shrink in the K loop, expand in the epilogue."""

    name = "triton_lowrank"

    def supported(self, problem: Problem) -> bool:
        return not problem.dense and _supported(problem)

    def cost(self, p: Problem) -> Cost:
        assert p.rank is not None
        rows = p.batch * p.tokens
        n, k, r = p.out_features, p.in_features, p.rank
        if p.mode == "scale":
            # every row tile rebuilds its (k, n) strip of U V and combines it with W
            extra = (2 * r + 2) * n * k * _row_tiles(p)
        else:
            # each n-tile repeats the shrink x Vᵀ; the expand is done once
            extra = 2 * rows * r * k * -(-n // _COST_BLOCK_N) + 2 * rows * r * n
        return Cost(
            flops=2.0 * rows * n * k + extra,
            bytes=_floor_bytes(p),
            launches=2,
            gemm_rows=p.max_group * p.tokens,
        )

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Shift, grouping: Grouping
    ) -> Tensor:
        assert delta.rank is not None
        return _LowRankEditedLinear.apply(
            x,
            weight,
            bias,
            delta.up,
            delta.down,
            delta.bias,
            Segments.of(grouping),
            grouping.index,
            delta.mode == "scale",
        )


ALGORITHMS: tuple[Algorithm, ...] = (TritonDense(), TritonLowRank())
