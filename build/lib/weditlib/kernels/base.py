"""The interface every backend algorithm implements, and the problem description it is given.

A backend module (``weditlib/kernels/<backend>.py``) exposes :class:`Algorithm` objects. The planner
asks each one whether it applies to a :class:`Problem` (``supported``) and what it would cost
(``cost``), and runs the cheapest. Inputs reaching ``run`` have been validated by
:func:`weditlib.functional.edited_linear`: backends trust them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from weditlib.deltas import Delta, Grouping, LowRankDelta


@dataclass(frozen=True)
class Problem:
    """Sizes of one ``edited_linear`` call: everything an algorithm's cost depends on.

    Attributes:
        batch: ``b``, number of samples.
        tokens: ``t``, tokens per sample (the product of ``x``'s middle dims).
        in_features: ``k``.
        out_features: ``n``.
        num_shifts: ``l``.
        rank: ``r`` for low-rank shifts, ``None`` for dense.
        mode: ``"shift"`` or ``"scale"``.
        max_group: largest number of samples sharing one shift.
        uniform: ``index`` is sorted and every shift has ``max_group`` samples.
        has_bias: a bias is added.
        dtype: element type of ``x``, the weight and the shift.
        device_type: ``"cpu"``, ``"cuda"``, ...
    """

    batch: int
    tokens: int
    in_features: int
    out_features: int
    num_shifts: int
    rank: int | None
    mode: str
    max_group: int
    uniform: bool
    has_bias: bool
    dtype: torch.dtype
    device_type: str

    @property
    def dense(self) -> bool:
        return self.rank is None

    @property
    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def padded_rows(self) -> int:
        """Rows of the grouped GEMM once groups are padded to ``max_group`` samples."""
        return self.num_shifts * self.max_group * self.tokens

    @staticmethod
    def describe(x3: Tensor, delta: Delta, grouping: Grouping, has_bias: bool) -> Problem:
        """The problem of ``x3: (b, t, k)`` edited by ``delta`` under ``grouping``."""
        return Problem(
            batch=x3.shape[0],
            tokens=x3.shape[1],
            in_features=delta.in_features,
            out_features=delta.out_features,
            num_shifts=delta.num_shifts,
            rank=delta.rank if isinstance(delta, LowRankDelta) else None,
            mode=delta.mode,
            max_group=grouping.max_count,
            uniform=grouping.uniform,
            has_bias=has_bias,
            dtype=x3.dtype,
            device_type=x3.device.type,
        )


@dataclass(frozen=True)
class Cost:
    """What an algorithm moves and computes, and how many kernels it launches.

    Attributes:
        flops: floating-point operations of the matrix products (a multiply-add counts 2).
        bytes: bytes the matrix products read and write (their operands and results), which
            overlaps with their compute.
        launches: number of separate kernels/ops (each pays a fixed overhead).
        gemm_rows: the ``m`` of the main GEMMs, which decides how close to peak they run.
        extra_bytes: bytes of memory-bound passes outside the products (building ``W + ΔW``,
            gathering or padding, adding a partial result), which do not overlap with compute.
    """

    flops: float
    bytes: float
    launches: int
    gemm_rows: int
    extra_bytes: float = 0.0


@runtime_checkable
class Algorithm(Protocol):
    """One exact way to compute ``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias``."""

    name: str

    def supported(self, problem: Problem) -> bool:
        """Whether this algorithm can run ``problem`` (kind, mode, device, dtype)."""
        ...

    def cost(self, problem: Problem) -> Cost:
        """Work and traffic of running ``problem``."""
        ...

    def run(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, delta: Delta, grouping: Grouping
    ) -> Tensor:
        """Compute the edited linear map.

        Args:
            x: ``(b, t, k)``.
            weight: ``(n, k)``.
            bias: ``(n,)`` or ``None``.
            delta: ``l`` shifts of the ``(n, k)`` weight.
            grouping: which sample uses which shift, on ``x``'s device.

        Returns:
            ``(b, t, n)``, differentiable with respect to ``x``, ``weight``, ``bias`` and the
                shift's tensors.
        """
        ...


def combine(weight: Tensor, shift: Tensor, mode: str) -> Tensor:
    """``W + ΔW`` (mode ``shift``) or ``W ⊙ (1 + ΔW)`` (mode ``scale``).

    Args:
        weight: ``(n, k)``.
        shift: ``(..., n, k)``.

    Returns:
        ``(..., n, k)``.
    """
    if mode == "shift":
        return weight + shift
    return torch.addcmul(weight, weight, shift)
