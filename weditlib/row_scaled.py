"""Shifts whose edited weights are rescaled per output row: DoRA's weight, per sample.

A :class:`RowScaledShift` wraps ``l`` shifts (dense or low-rank) and a scale ``(l, n)``; shift
``i`` edits a weight into ``diag(scale_i) · (W ⊕ ΔW_i)``. That is the weight of a DoRA adapter
(weight-decomposed LoRA), ``m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row`` with the norm computed once and
folded into ``scale = m / ‖·‖``. The edited ops apply it as the inner shift's output times the
scale, so it costs one elementwise pass over the result beyond the inner shift: the bias (base
and bias shift) is added after the scale, never scaled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from weditlib._deprecation import renamed_names
from weditlib.deltas import (
    DenseShift,
    Grouping,
    InnerShiftFields,
    LowRankShift,
    Shift,
    check_row_tensor,
)
from weditlib.row_range import RowRangeShift


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class RowScaledShift(InnerShiftFields):
    """``l`` shifts ``diag(scale_i) · (W ⊕ ΔW_i)`` of an ``(n, k)`` weight.

    For every sample ``b`` with shift ``i``:
    ``y_b = scale_i ⊙ (x_b (W ⊕ ΔW_i)ᵀ) + bias + Δb_i``.

    Args:
        inner: the ``l`` shifts ``ΔW`` (:class:`~weditlib.DenseShift` or
            :class:`~weditlib.LowRankShift`, any mode, with its optional bias shift ``Δb``).
        scale: ``(l, n)`` the factor of each output row of each edited weight (``1`` leaves a
            row as the inner shift makes it).

    Raises:
        TypeError: ``inner`` is not a DenseShift / LowRankShift, ``scale`` is not a tensor or has
            another dtype than ``inner``.
        ValueError: ``scale`` is not ``(l, n)`` or is on another device.
    """

    inner: Shift
    scale: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.inner, DenseShift | LowRankShift):
            raise TypeError(
                "RowScaledShift.inner must be a DenseShift or LowRankShift, "
                f"got {type(self.inner).__name__}"
            )
        inner = self.inner
        check_row_tensor(
            "RowScaledShift", "scale", self.scale, inner, inner.num_shifts, inner.out_features
        )

    @property
    def out_features(self) -> int:
        return self.inner.out_features

    @property
    def row_scale(self) -> Tensor:
        """``(l, n)`` the factor of each output row (:attr:`scale`)."""
        return self.scale

    @property
    def bias(self) -> Tensor | None:
        """The inner shift's bias shift ``(l, n)`` (added unscaled), or ``None``."""
        return self.inner.bias

    def tensors(self) -> tuple[Tensor, ...]:
        """The scale, then the inner shift's tensors."""
        return (self.scale, *self.inner.tensors())

    def replace(self, **changes: object) -> RowScaledShift:
        """A copy with ``inner`` or ``scale`` replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> RowScaledShift:
        """A copy with ``fn`` applied to the scale and the inner shift's tensors (the same object
        when none changes)."""
        inner, scale = self.inner.map_tensors(fn), fn(self.scale)
        if inner is self.inner and scale is self.scale:
            return self
        return RowScaledShift(inner, scale)

    def select(self, index: Tensor | Sequence[int]) -> RowScaledShift:
        """The shifts ``index`` picks, in its order (see :meth:`DenseShift.select`)."""
        return RowScaledShift(self.inner.select(index), self.scale[index])

    def matrix(self) -> Tensor:
        """``(l, n, k)`` the inner shifts as full matrices (unscaled)."""
        return self.inner.matrix()

    def edited(self, weight: Tensor) -> Tensor:
        """``(l, n, k)``: ``diag(scale_i) · (W ⊕ ΔW_i)`` in ``weight``'s dtype (computed in the
        wider of the two dtypes, rounded once)."""
        return self.edited_wide(weight).to(weight.dtype)

    def edited_wide(self, weight: Tensor) -> Tensor:
        """:meth:`edited` before its rounding to ``weight``'s dtype."""
        built = self.inner.edited_wide(weight)
        return built * self.scale.to(built.dtype).unsqueeze(-1)

    def without_row_scale(self) -> Shift:
        """The inner shift, bias shift included."""
        return self.inner

    def rows(self, start: int, stop: int) -> RowScaledShift:
        """The shifts of output rows ``[start, stop)`` (views)."""
        return RowScaledShift(self.inner.rows(start, stop), self.scale[:, start:stop])

    def unscaled(self) -> Shift:
        """The inner shift without its bias shift: what runs before the scale."""
        inner = self.inner
        return inner if inner.bias is None else inner.replace(bias=None)


#: Every kind of shift, for the checks at the public entry points (``isinstance``).
SHIFT_KINDS: tuple[type, ...] = (DenseShift, LowRankShift, RowScaledShift, RowRangeShift)
#: The kinds as an error message names them: "DenseShift, ..., RowScaledShift or RowRangeShift".
SHIFT_KIND_NAMES = (
    ", ".join(kind.__name__ for kind in SHIFT_KINDS[:-1]) + f" or {SHIFT_KINDS[-1].__name__}"
)
#: Any shift an edited op or layer takes.
AnyShift = DenseShift | LowRankShift | RowScaledShift | RowRangeShift


def sample_scale(scale: Tensor, grouping: Grouping) -> Tensor:
    """``(l, n) -> (b, n)``: the row scale of each sample (a view when one shift per sample and
    not traced: traced, ``identity`` would be a guard)."""
    if not torch.compiler.is_compiling() and grouping.identity:
        return scale
    return scale[grouping.index]


__getattr__ = renamed_names(__name__, {"RowScaledDelta": "RowScaledShift"}, globals())
