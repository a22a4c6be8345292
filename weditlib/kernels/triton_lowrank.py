"""Triton kernel for low-rank shifts ``ΔW_g = U_g V_g``: one fused launch, no ``(n, k)`` per shift.

Same sorted-segment walk as :mod:`weditlib.kernels.triton_dense` (rows gathered through
``Grouping.order``, grid over ``(group, m-tile, n-tile)``). Per program:

* mode ``add`` — the K loop accumulates the base GEMM ``x Wᵀ`` *and* the shrink ``x V_gᵀ``
  (``(BLOCK_M, r)``, registers only); the epilogue expands it, ``acc += (x V_gᵀ) U_gᵀ``, before
  adding the bias. The shrink is recomputed by each n-tile (``r / BLOCK_N`` extra flops), which is
  cheaper than a second launch and a ``(b·t, r)`` round trip through memory.
* mode ``scale`` — ``W ⊙ (1 + U V)`` does not factor through ``x``; each K step rebuilds the
  ``(BLOCK_K, BLOCK_N)`` tile of ``(U_g V_g)ᵀ`` from the factors (one small dot, ``r / BLOCK_M``
  extra flops) and combines it with the ``W`` tile in registers.

With transposed views (``W → Wᵀ``, ``U → Vᵀ``, ``V → Uᵀ``) the same kernel computes
``dx = dy (W ⊕ U V)``.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from weditlib.kernels import triton_dense
from weditlib.kernels.triton_dense import MATMUL_CONFIGS, Segments, accumulator, dot_precision


def rank_block(rank: int) -> int:
    """Padded rank tile: a power of two, at least 16 (``tl.dot``'s smallest dimension)."""
    return max(16, triton.next_power_of_2(rank))


@triton.jit
def _tile(rows, cols, row_ok, col_ok):
    """The tile at ``rows[:, None] + cols[None, :]`` (one side pointers, the other offsets),
    zero outside the masks."""
    return tl.load(rows[:, None] + cols[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)


@triton.autotune(configs=MATMUL_CONFIGS, key=["N", "K", "MAX_ROWS", "R"])
@triton.jit
def _lowrank_matmul_kernel(
    a_ptr, w_ptr, u_ptr, v_ptr, bias_ptr, db_ptr, out_ptr, order_ptr, starts_ptr, counts_ptr,
    T, N, K, R, MAX_ROWS,
    stride_ab, stride_at, stride_ak,
    stride_wn, stride_wk,
    stride_ul, stride_un, stride_ur,
    stride_vl, stride_vr, stride_vk,
    stride_dbl, stride_dbn,
    stride_ob, stride_ot, stride_on,
    SCALE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_SHIFT_BIAS: tl.constexpr,
    ACC_DTYPE: tl.constexpr, PRECISION: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    m_tiles = tl.cdiv(MAX_ROWS, BLOCK_M)
    n_tiles = tl.cdiv(N, BLOCK_N)
    pid = tl.program_id(0)
    pid_m = pid % m_tiles
    pid_n = (pid // m_tiles) % n_tiles
    group = (pid // (m_tiles * n_tiles)).to(tl.int64)
    rows = tl.load(counts_ptr + group) * T
    if pid_m * BLOCK_M >= rows:
        return
    first = tl.load(starts_ptr + group)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    rr = tl.arange(0, BLOCK_R)
    row_ok = rm < rows
    n_ok = rn < N
    r_ok = rr < R
    sample = tl.load(order_ptr + first + rm // T, mask=row_ok, other=0)
    token = rm % T
    a_rows = a_ptr + sample * stride_ab + token * stride_at
    operand = a_ptr.dtype.element_ty  # dtype fed to the tensor cores
    w_cols = w_ptr + rn * stride_wn
    v_rows = v_ptr + group * stride_vl + rr * stride_vr
    # U_gᵀ tile (BLOCK_R, BLOCK_N): read once, used by the expand (shift) or every rebuild (scale).
    ut = tl.load(
        u_ptr + group * stride_ul + rr[:, None] * stride_ur + rn[None, :] * stride_un,
        mask=r_ok[:, None] & n_ok[None, :],
        other=0.0,
    )
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    shrunk = tl.zeros((BLOCK_M, BLOCK_R), dtype=ACC_DTYPE)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        k_ok = kk < K
        a = _tile(a_rows, kk * stride_ak, row_ok, k_ok)
        w = _tile(kk * stride_wk, w_cols, k_ok, n_ok)
        vt = _tile(kk * stride_vk, v_rows, k_ok, r_ok)  # V_gᵀ tile (BLOCK_K, BLOCK_R)
        if SCALE:
            delta = tl.dot(vt, ut, input_precision=PRECISION, out_dtype=ACC_DTYPE)
            w32 = w.to(ACC_DTYPE)
            edited = (w32 + w32 * delta).to(operand)
            acc = tl.dot(a, edited, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
        else:
            acc = tl.dot(a, w, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
            shrunk = tl.dot(a, vt, shrunk, input_precision=PRECISION, out_dtype=ACC_DTYPE)
    if not SCALE:
        # Rounded to the operand dtype, as torch's (x Vᵀ) Uᵀ rounds its intermediate.
        acc = tl.dot(shrunk.to(operand), ut, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
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


def lowrank_matmul(
    a: Tensor,
    weight: Tensor,
    up: Tensor,
    down: Tensor,
    bias: Tensor | None,
    segments: Segments,
    scale: bool,
    shift_bias: Tensor | None = None,
) -> Tensor:
    """``out[s] = a[s] @ (W ⊕ U_g V_g)ᵀ + bias + Δb_g`` for every sample ``s`` of group ``g``.

    Args:
        a: ``(b, t, k)``, any strides.
        weight: ``(n, k)``.
        up: ``(l, n, r)`` ``U``.
        down: ``(l, r, k)`` ``V``. For ``dx`` pass ``W.t()``, ``V.transpose(1, 2)`` as ``up`` and
            ``U.transpose(1, 2)`` as ``down``.
        bias: ``(n,)`` or ``None``.
        segments: which samples use which shift.
        scale: ``W ⊙ (1 + U V)`` instead of ``W + U V``.
        shift_bias: ``(l, n)`` per-group bias shifts ``Δb`` or ``None``.

    Returns:
        ``(b, t, n)`` in ``a``'s dtype, accumulated in float32 (float64 for float64 inputs).
    """
    b, t, k = a.shape
    n = weight.shape[0]
    rank = up.shape[2]
    # Looked up on the module at call time so that tests can poison the allocation.
    out = triton_dense.empty((b, t, n), a.dtype, a.device)
    max_rows = segments.max_count * t
    if max_rows == 0 or n == 0:
        return out
    acc_dtype, _ = accumulator(a.dtype)

    def grid(meta: dict) -> tuple[int]:
        m_tiles = triton.cdiv(max_rows, meta["BLOCK_M"])
        return (segments.num_groups * m_tiles * triton.cdiv(n, meta["BLOCK_N"]),)

    shift_bias_strides = (0, 0) if shift_bias is None else shift_bias.stride()
    _lowrank_matmul_kernel[grid](
        a, weight, up, down, bias, shift_bias, out,
        segments.order, segments.starts, segments.counts,
        t, n, k, rank, max_rows,
        *a.stride(), *weight.stride(), *up.stride(), *down.stride(), *shift_bias_strides,
        *out.stride(),
        SCALE=scale, HAS_BIAS=bias is not None, HAS_SHIFT_BIAS=shift_bias is not None,
        ACC_DTYPE=acc_dtype, PRECISION=dot_precision(a.dtype), BLOCK_R=rank_block(rank),
    )  # fmt: skip
    return out
