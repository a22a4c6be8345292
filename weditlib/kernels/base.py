"""The interface every backend algorithm implements, and the problem description it is given.

A backend module (``weditlib/kernels/<backend>.py``) exposes :class:`Algorithm` objects. The planner
asks each one whether it applies to a problem (``supported``) and what it would cost
(``cost``), and runs the cheapest. One protocol serves both ops: a linear algorithm is an
``Algorithm[Problem]`` and runs ``(x, weight, bias, shift, grouping)``; a convolution's is an
``Algorithm[ConvProblem]`` and also takes the geometry. Inputs reaching ``run`` have been
validated by :func:`weditlib.edited_linear` / :func:`weditlib.edited_conv`: backends trust them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor

from weditlib.deltas import OLD_MODES, Grouping, Shift
from weditlib.deltas import combine as combine  # re-exported: W ⊕ ΔW is defined in deltas

ProblemT = TypeVar("ProblemT", contravariant=True)


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
        mode: ``"add"``, ``"scale"`` or ``"replace"``.
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

    def __post_init__(self) -> None:
        # the previous release's mode name, as problems written by hand may still spell it
        object.__setattr__(self, "mode", OLD_MODES.get(self.mode, self.mode))

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
    def describe(x3: Tensor, delta: Shift, grouping: Grouping, has_bias: bool) -> Problem:
        """The problem of ``x3: (b, t, k)`` edited by ``delta`` under ``grouping``."""
        return Problem(
            batch=x3.shape[0],
            tokens=x3.shape[1],
            in_features=delta.in_features,
            out_features=delta.out_features,
            num_shifts=delta.num_shifts,
            rank=delta.rank,
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
class Algorithm(Protocol[ProblemT]):
    """One exact way to compute an edited op, e.g. ``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias``.

    ``Algorithm[Problem]`` for :func:`~weditlib.edited_linear`, ``Algorithm[ConvProblem]`` for
    :func:`~weditlib.edited_conv` (whose ``run`` also takes the convolution's geometry).
    """

    name: str

    def supported(self, problem: ProblemT) -> bool:
        """Whether this algorithm can run ``problem`` (kind, mode, device, dtype)."""
        ...

    def cost(self, problem: ProblemT) -> Cost:
        """Work and traffic of running ``problem``."""
        ...

    def run(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        delta: Shift,
        grouping: Grouping,
        *geometry: Any,
    ) -> Tensor:
        """Compute the edited op.

        Args:
            x: linear ``(b, t, k)``; conv ``(b, c_in, *s)``, already padded.
            weight: linear ``(n, k)``; conv ``(n, c_in / g, *kernel)``.
            bias: ``(n,)`` or ``None``.
            delta: ``l`` shifts of the (flattened) ``(n, k)`` weight.
            grouping: which sample uses which shift, on ``x``'s device.
            geometry: conv only, its :class:`~weditlib.kernels.conv.ConvGeometry`.

        Returns:
            linear ``(b, t, n)``; conv ``(b, n, *s_out)``; differentiable with respect to
                ``x``, ``weight``, ``bias`` and the shift's tensors.
        """
        ...
