"""Triton kernels for dense shifts: the fused edited GEMM and its grouped weight gradients.

Both kernels walk the samples *sorted by shift* (``Grouping.order``) without copying ``x``: a
group's rows are the concatenation of its samples' tokens, and a row ``r`` of group ``g`` lives at
sample ``order[starts[g] + r // t]``, token ``r % t``. Gathering row pointers through the
permutation costs one small integer load per row and saves writing and re-reading a sorted copy of
``x`` (and un-permuting ``y``), which is what the grouped torch algorithms pay.

* :func:`edited_matmul` — ``out[rows of g] = a[rows of g] @ (W ⊕ ΔW_g)ᵀ + bias``. Each program owns
  one ``(group, m-tile, n-tile)``; it loads a tile of ``W`` and the matching tile of ``ΔW_g``,
  combines them in registers and feeds the tensor cores, so ``W ⊕ ΔW`` never reaches memory.
  With transposed views of ``W`` and ``ΔW`` the same kernel computes ``dx = dy @ (W ⊕ ΔW_g)``.
* :func:`grouped_outer` — per group ``G_g = dy_gᵀ x_g``, written as ``dΔW_g`` (``G_g`` or
  ``G_g ⊙ W``) while ``dW = Σ_g G_g`` (or ``Σ_g G_g ⊙ (1 + ΔW_g)``) accumulates in registers of
  the same program: no atomics, deterministic, and ``G_g`` is never stored twice.

Every buffer a launcher returns is allocated by :func:`empty`, which tests replace with a
NaN-filling version to check that the kernels write every element.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from weditlib.deltas import Grouping


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``).

    Triton reads the variable when a kernel is decorated, so this must agree with the value at
    import time of this module; tests set it before importing.
    """
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _configs(blocks: list[tuple[int, int, int, int, int]], names: tuple[str, str, str]):
    """``triton.Config`` per ``(block_a, block_b, block_c, num_warps, num_stages)``.

    Under the interpreter a single 16-wide config: autotuning would benchmark every config on the
    CPU, and small blocks make tiny test shapes span several tiles and exercise the masks.
    """
    if interpreting():
        blocks = [(16, 16, 16, 1, 1)]
    return [
        triton.Config(dict(zip(names, block[:3], strict=True)), num_warps=w, num_stages=s)
        for *block, w, s in blocks
    ]


# Hopper (H100/H200, 228 KB shared memory per SM) starting points, not measured: no GPU was
# available. A stage holds an x tile plus *two* weight tiles (W and ΔW), so stages are fewer than
# for a plain GEMM. 16-bit inputs favour BLOCK_K = 64; float32 (4-byte) inputs fit with 32. The
# BLOCK_M = 16 row covers one-token groups (160 samples × t = 1), where the kernel is a
# bandwidth-bound GEMV and larger row tiles would only multiply the same ΔW traffic by masks.
# Configs that exceed shared memory for a dtype are discarded by the autotuner.
_MATMUL_BLOCKS = [
    (128, 128, 64, 8, 3),
    (64, 128, 64, 4, 4),
    (128, 64, 64, 4, 4),
    (64, 64, 64, 4, 4),
    (16, 64, 128, 4, 4),
    (128, 128, 32, 8, 3),
    (64, 64, 32, 4, 4),
]
_OUTER_BLOCKS = [
    (128, 128, 64, 8, 3),
    (64, 128, 64, 4, 4),
    (128, 64, 64, 4, 4),
    (64, 64, 64, 4, 4),
    (128, 128, 32, 8, 3),
    (64, 64, 32, 4, 4),
]
MATMUL_CONFIGS = _configs(_MATMUL_BLOCKS, ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
OUTER_CONFIGS = _configs(_OUTER_BLOCKS, ("BLOCK_P", "BLOCK_Q", "BLOCK_M"))


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Allocate a kernel output (uninitialised: the kernels write every element)."""
    return torch.empty(shape, dtype=dtype, device=device)


@dataclass(frozen=True)
class Segments:
    """The sorted-segment layout of a :class:`~weditlib.deltas.Grouping`, as kernel arguments.

    Attributes:
        order: ``(b,)`` int64, samples sorted by shift.
        starts: ``(l,)`` int64, position in ``order`` of each group's first sample.
        counts: ``(l,)`` int64, samples per group.
        max_count: largest group, in samples.
    """

    order: Tensor
    starts: Tensor
    counts: Tensor
    max_count: int

    @staticmethod
    def of(grouping: Grouping) -> Segments:
        """The grouping's own tensors (computed once when it was built): no work per call."""
        return Segments(grouping.order, grouping.starts, grouping.counts, grouping.max_count)

    @property
    def num_groups(self) -> int:
        return self.counts.shape[0]


def accumulator(dtype: torch.dtype) -> tuple[tl.dtype, torch.dtype]:
    """Accumulation dtype (Triton, torch): float32, except float64 stays float64."""
    return (tl.float64, torch.float64) if dtype == torch.float64 else (tl.float32, torch.float32)


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` precision: float32 honours torch's TF32 switch, like ``torch.matmul`` does."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


@triton.autotune(configs=MATMUL_CONFIGS, key=["N", "K", "MAX_ROWS"])
@triton.jit
def _edited_matmul_kernel(
    a_ptr, w_ptr, d_ptr, bias_ptr, db_ptr, out_ptr, order_ptr, starts_ptr, counts_ptr,
    T, N, K, MAX_ROWS,
    stride_ab, stride_at, stride_ak,
    stride_wn, stride_wk,
    stride_dl, stride_dn, stride_dk,
    stride_dbl, stride_dbn,
    stride_ob, stride_ot, stride_on,
    SCALE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SHIFT_BIAS: tl.constexpr,
    ACC_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # m-tiles vary fastest so that concurrently running programs share one ΔW_g strip in L2.
    m_tiles = tl.cdiv(MAX_ROWS, BLOCK_M)
    n_tiles = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)
    pid_m = pid % m_tiles
    pid_n = (pid // m_tiles) % n_tiles
    group = (pid // (m_tiles * n_tiles)).to(tl.int64)
    rows = tl.load(counts_ptr + group) * T
    # The grid is sized for the largest group; tiles past a smaller group's end have no work.
    if pid_m * BLOCK_M >= rows:
        return
    first = tl.load(starts_ptr + group)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    row_ok = rm < rows
    n_ok = rn < N
    sample = tl.load(order_ptr + first + rm // T, mask=row_ok, other=0)
    token = rm % T
    a_rows = a_ptr + sample * stride_ab + token * stride_at
    operand = a_ptr.dtype.element_ty  # dtype fed to the tensor cores
    # W and ΔW tiles are loaded as (BLOCK_K, BLOCK_N): the dot's B operand needs no transpose.
    w_cols = w_ptr + rn * stride_wn
    d_cols = d_ptr + group * stride_dl + rn * stride_dn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        k_ok = kk < K
        a = tl.load(
            a_rows[:, None] + kk[None, :] * stride_ak,
            mask=row_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        tile_ok = k_ok[:, None] & n_ok[None, :]
        w = tl.load(w_cols[None, :] + kk[:, None] * stride_wk, mask=tile_ok, other=0.0)
        d = tl.load(d_cols[None, :] + kk[:, None] * stride_dk, mask=tile_ok, other=0.0)
        # Combine at accumulator precision, then round once to the operand dtype: the same
        # rounding as torch building W ⊕ ΔW in the input dtype.
        w = w.to(ACC_DTYPE)
        d = d.to(ACC_DTYPE)
        edited = w + w * d if SCALE else w + d
        acc = tl.dot(a, edited.to(operand), acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=n_ok, other=0.0).to(ACC_DTYPE)[None, :]
    if HAS_SHIFT_BIAS:  # the group's own Δb_g, one (BLOCK_N,) row per program
        shift_bias = tl.load(db_ptr + group * stride_dbl + rn * stride_dbn, mask=n_ok, other=0.0)
        acc += shift_bias.to(ACC_DTYPE)[None, :]
    out_rows = out_ptr + sample * stride_ob + token * stride_ot
    tl.store(
        out_rows[:, None] + rn[None, :] * stride_on,
        acc.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & n_ok[None, :],
    )


def edited_matmul(
    a: Tensor,
    weight: Tensor,
    shift: Tensor,
    bias: Tensor | None,
    segments: Segments,
    scale: bool,
    shift_bias: Tensor | None = None,
) -> Tensor:
    """``out[s] = a[s] @ (W ⊕ ΔW_g)ᵀ + bias + Δb_g`` for every sample ``s`` of every group ``g``.

    Args:
        a: ``(b, t, k)``, any strides.
        weight: ``(n, k)``, any strides (pass ``W.t()`` and ``ΔW.transpose(1, 2)`` for ``dx``).
        shift: ``(l, n, k)``.
        bias: ``(n,)`` or ``None``.
        segments: which samples use which shift.
        scale: ``W ⊙ (1 + ΔW)`` instead of ``W + ΔW``.
        shift_bias: ``(l, n)`` per-group bias shifts ``Δb`` or ``None``.

    Returns:
        ``(b, t, n)`` in ``a``'s dtype, accumulated in float32 (float64 for float64 inputs).
    """
    b, t, k = a.shape
    n = weight.shape[0]
    out = empty((b, t, n), a.dtype, a.device)
    max_rows = segments.max_count * t
    if max_rows == 0 or n == 0:
        return out
    acc_dtype, _ = accumulator(a.dtype)

    def grid(meta: dict) -> tuple[int]:
        m_tiles = triton.cdiv(max_rows, meta["BLOCK_M"])
        return (segments.num_groups * m_tiles * triton.cdiv(n, meta["BLOCK_N"]),)

    shift_bias_strides = (0, 0) if shift_bias is None else shift_bias.stride()
    _edited_matmul_kernel[grid](
        a, weight, shift, bias, shift_bias, out, segments.order, segments.starts, segments.counts,
        t, n, k, max_rows,
        *a.stride(), *weight.stride(), *shift.stride(), *shift_bias_strides, *out.stride(),
        SCALE=scale, HAS_BIAS=bias is not None, HAS_SHIFT_BIAS=shift_bias is not None,
        ACC_DTYPE=acc_dtype, PRECISION=dot_precision(a.dtype),
    )  # fmt: skip
    return out


@triton.autotune(configs=OUTER_CONFIGS, key=["P", "Q", "MAX_ROWS"])
@triton.jit
def _grouped_outer_kernel(
    a_ptr, b_ptr, w_ptr, d_ptr, dd_ptr, dw_ptr, order_ptr, starts_ptr, counts_ptr,
    T, P, Q, L, SPLITS, MAX_ROWS,
    stride_ab, stride_at, stride_ap,
    stride_bb, stride_bt, stride_bq,
    stride_wp, stride_wq,
    stride_dl, stride_dp, stride_dq,
    stride_ddl, stride_ddp, stride_ddq,
    stride_dws, stride_dwp, stride_dwq,
    SCALE: tl.constexpr, WRITE_SHIFT: tl.constexpr, WRITE_WEIGHT: tl.constexpr,
    ACC_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    # MAX_ROWS only keys the autotuner (how long each program's reduction is).
    q_tiles = tl.cdiv(Q, BLOCK_Q)
    pid = tl.program_id(0)
    split = tl.program_id(1)
    rp = (pid // q_tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    rq = (pid % q_tiles) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    rm = tl.arange(0, BLOCK_M)
    p_ok = rp < P
    q_ok = rq < Q
    tile_ok = p_ok[:, None] & q_ok[None, :]
    if SCALE:
        w = tl.load(
            w_ptr + rp[:, None] * stride_wp + rq[None, :] * stride_wq, mask=tile_ok, other=0.0
        ).to(ACC_DTYPE)
    dw = tl.zeros((BLOCK_P, BLOCK_Q), dtype=ACC_DTYPE)
    # Groups are dealt round-robin to SPLITS programs per tile; each keeps a partial dW.
    for group in range(split, L, SPLITS):
        rows = tl.load(counts_ptr + group) * T
        first = tl.load(starts_ptr + group)
        acc = tl.zeros((BLOCK_P, BLOCK_Q), dtype=ACC_DTYPE)
        for r0 in range(0, rows, BLOCK_M):
            row = r0 + rm
            row_ok = row < rows
            sample = tl.load(order_ptr + first + row // T, mask=row_ok, other=0)
            token = row % T
            a = tl.load(
                (a_ptr + sample * stride_ab + token * stride_at)[:, None] + rp[None, :] * stride_ap,
                mask=row_ok[:, None] & p_ok[None, :],
                other=0.0,
            )
            bt = tl.load(
                (b_ptr + sample * stride_bb + token * stride_bt)[:, None] + rq[None, :] * stride_bq,
                mask=row_ok[:, None] & q_ok[None, :],
                other=0.0,
            )
            acc = tl.dot(tl.trans(a), bt, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
        group64 = tl.cast(group, tl.int64)
        if SCALE:
            d = tl.load(
                d_ptr + group64 * stride_dl + rp[:, None] * stride_dp + rq[None, :] * stride_dq,
                mask=tile_ok,
                other=0.0,
            ).to(ACC_DTYPE)
            shift_grad = acc * w
            dw += acc + acc * d
        else:
            shift_grad = acc
            dw += acc
        if WRITE_SHIFT:
            tl.store(
                dd_ptr + group64 * stride_ddl + rp[:, None] * stride_ddp + rq[None, :] * stride_ddq,
                shift_grad.to(dd_ptr.dtype.element_ty),
                mask=tile_ok,
            )
    if WRITE_WEIGHT:
        tl.store(
            dw_ptr + split * stride_dws + rp[:, None] * stride_dwp + rq[None, :] * stride_dwq,
            dw.to(dw_ptr.dtype.element_ty),
            mask=tile_ok,
        )


def default_splits(num_groups: int, p: int, q: int, device: torch.device) -> int:
    """Programs per output tile for :func:`grouped_outer`: enough tiles to fill the GPU twice.

    Tiles are estimated at 128 × 128 (the autotuner may pick smaller ones, which only adds
    parallelism). Off CUDA (the interpreter) one program per tile.
    """
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    tiles = triton.cdiv(p, 128) * triton.cdiv(q, 128)
    return max(1, min(num_groups, triton.cdiv(2 * sms, tiles)))


def grouped_outer(
    a: Tensor,
    b: Tensor,
    weight: Tensor,
    shift: Tensor,
    segments: Segments,
    scale: bool,
    need_shift: bool = True,
    need_weight: bool = True,
    splits: int | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``W`` and ``ΔW`` from ``G_g = Σ_{rows of g} a_rowᵀ b_row``.

    Args:
        a: ``(b, t, p)`` the output gradient ``dy``.
        b: ``(b, t, q)`` the input ``x``.
        weight: ``(p, q)`` ``W`` (read only in scale mode).
        shift: ``(l, p, q)`` ``ΔW`` (read only in scale mode).
        segments: which samples use which shift.
        scale: mode ``scale`` (``dΔW_g = G_g ⊙ W``, ``dW = Σ_g G_g ⊙ (1 + ΔW_g)``); otherwise
            ``dΔW_g = G_g`` and ``dW = Σ_g G_g``.
        need_shift, need_weight: which of the two results to write.
        splits: programs per output tile, each reducing a share of the groups into its own
            partial ``dW``; ``None`` picks :func:`default_splits`.

    Returns:
        ``(dΔW (l, p, q) in shift's dtype or None, dW (p, q) in weight's dtype or None)``.
    """
    _, t, p = a.shape
    q = b.shape[2]
    lcount = segments.num_groups
    acc_dtype, acc_torch = accumulator(a.dtype)
    if splits is None:
        splits = default_splits(lcount, p, q, a.device)
    # Unused outputs still need a pointer and strides; the kernel never touches them.
    dd = empty((lcount, p, q), shift.dtype, a.device) if need_shift else shift
    partial = empty((splits, p, q), acc_torch, a.device) if need_weight else shift
    if p and q and (need_shift or need_weight):

        def grid(meta: dict) -> tuple[int, int]:
            return (triton.cdiv(p, meta["BLOCK_P"]) * triton.cdiv(q, meta["BLOCK_Q"]), splits)

        _grouped_outer_kernel[grid](
            a, b, weight, shift, dd, partial, segments.order, segments.starts, segments.counts,
            t, p, q, lcount, splits, segments.max_count * t,
            *a.stride(), *b.stride(), *weight.stride(), *shift.stride(),
            *dd.stride(), *partial.stride(),
            SCALE=scale, WRITE_SHIFT=need_shift, WRITE_WEIGHT=need_weight,
            ACC_DTYPE=acc_dtype, PRECISION=dot_precision(a.dtype),
        )  # fmt: skip
    grad_weight = partial.sum(0).to(weight.dtype) if need_weight else None
    return (dd if need_shift else None), grad_weight
