"""Shifts of a row range of a weight: editing part of a fused projection.

A fused projection stacks several weights in one matrix: ``nn.MultiheadAttention.in_proj_weight``
is ``[W_q; W_k; W_v]``, a fused ``qkv`` linear the same. A :class:`RowRangeShift` edits only its
output rows ``[start, stop)`` (e.g. the K and V rows) with an inner shift of ``stop - start``
rows; the other rows keep the base weight and bias, in every mode. The op computes the base rows
with the plain product and the edited ones with the inner shift's, so the planner sees (and
costs) the smaller shift.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from weditlib.deltas import DenseShift, InnerShiftFields, LowRankShift, Shift, as_integer


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class RowRangeShift(InnerShiftFields):
    """``l`` shifts of output rows ``[start, start + m)`` of an ``(n, k)`` weight.

    For every sample ``b`` with shift ``i``, the edited weight is ``W`` with rows
    ``[start, stop)`` replaced by ``W[start:stop] ⊕ ΔW_i`` (any mode, ``replace`` included), and
    the inner bias shift ``Δb_i: (m,)`` is added to those rows of the output only.

    Args:
        inner: the shifts of the ``m = stop - start`` rows (:class:`~weditlib.DenseShift`
            ``(l, m, k)`` or :class:`~weditlib.LowRankShift` ``(l, m, r) @ (l, r, k)``, any mode,
            with its optional bias shift ``(l, m)``).
        start: the first edited row.
        out_features: ``n``, the rows of the whole weight (``start + m <= n``).

    Raises:
        TypeError: ``inner`` is not a DenseShift / LowRankShift, ``start`` or ``out_features``
            is not an int.
        ValueError: the rows ``[start, start + m)`` do not lie in ``[0, out_features)``.
    """

    inner: Shift
    start: int
    out_features: int

    def __post_init__(self) -> None:
        if not isinstance(self.inner, DenseShift | LowRankShift):
            raise TypeError(
                "RowRangeShift.inner must be a DenseShift or LowRankShift, "
                f"got {type(self.inner).__name__}"
            )
        for name in ("start", "out_features"):
            value = as_integer(getattr(self, name))
            if value is None:
                raise TypeError(
                    f"RowRangeShift.{name} must be an int, got {type(getattr(self, name)).__name__}"
                )
            object.__setattr__(self, name, value)
        if self.start < 0 or self.stop > self.out_features:
            raise ValueError(
                f"RowRangeShift rows [start, start + m) = [{self.start}, {self.stop}) must lie in "
                f"[0, out_features) = [0, {self.out_features})"
            )

    @property
    def stop(self) -> int:
        """One past the last edited row: ``start + m``."""
        return self.start + self.inner.out_features

    #: Row ranges carry no row scale.
    row_scale = None

    @property
    def bias(self) -> Tensor | None:
        """``(l, n)`` the bias shift over the whole output, zero outside the range, or ``None``."""
        if self.inner.bias is None:
            return None
        return self._pad(self.inner.bias.unsqueeze(-1), 0.0).squeeze(-1)

    def tensors(self) -> tuple[Tensor, ...]:
        """The inner shift's tensors."""
        return self.inner.tensors()

    def replace(self, **changes: object) -> RowRangeShift:
        """A copy with ``inner``, ``start`` or ``out_features`` replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> RowRangeShift:
        """A copy with ``fn`` applied to the inner shift's tensors (the same object when none
        changes)."""
        inner = self.inner.map_tensors(fn)
        return self if inner is self.inner else self.replace(inner=inner)

    def select(self, index: Tensor | Sequence[int]) -> RowRangeShift:
        """The shifts ``index`` picks, in its order (see :meth:`DenseShift.select`)."""
        return self.replace(inner=self.inner.select(index))

    def without_row_scale(self) -> RowRangeShift:
        return self

    def rows(self, start: int, stop: int) -> RowRangeShift:
        """The shifts of output rows ``[start, stop)`` of the whole weight: the part of the range
        that falls there (none at all gives an empty range, i.e. the base rows)."""
        low, high = min(max(self.start, start), stop), min(max(self.stop, start), stop)
        inner = self.inner.rows(low - self.start, max(low, high) - self.start)
        return RowRangeShift(inner, low - start, stop - start)

    def edited(self, weight: Tensor) -> Tensor:
        """``(l, n, k)``: ``W`` with rows ``[start, stop)`` edited by the inner shift, in
        ``weight``'s dtype (computed in the wider of the two dtypes, rounded once)."""
        return self.edited_wide(weight).to(weight.dtype)

    def edited_wide(self, weight: Tensor) -> Tensor:
        """:meth:`edited` before its rounding to ``weight``'s dtype."""
        built = self.inner.edited_wide(weight[self.start : self.stop])  # (l, m, k)
        base = weight.to(built.dtype).expand(self.num_shifts, *weight.shape)
        return torch.cat([base[:, : self.start], built, base[:, self.stop :]], dim=1)

    def matrix(self) -> Tensor:
        """``(l, n, k)`` the inner shifts placed at their rows, zero elsewhere (the ``ΔW`` that
        :func:`~weditlib.deltas.combine` needs in modes ``add`` and ``scale``).

        Raises:
            ValueError: in mode ``replace``, where the rows outside the range are the base
                weight's, not a function of ``ΔW``: use :meth:`edited`.
        """
        if self.mode == "replace":
            raise ValueError(
                "a RowRangeShift in mode 'replace' has no full-size ΔW (its other rows are the "
                "base weight's); use edited(weight)"
            )
        return self._pad(self.inner.matrix(), 0.0)

    def padded(self) -> Shift:
        """The full-size shift of the same kind that this one equals in modes ``add`` and
        ``scale``: the inner factors (``weight``, or ``up``) and bias shift with zero rows
        outside the range; a low-rank shift keeps its rank.

        Raises:
            ValueError: in mode ``replace`` (see :meth:`matrix`).
        """
        if self.mode == "replace":
            raise ValueError(
                "a RowRangeShift in mode 'replace' has no full-size equivalent (its other rows "
                "are the base weight's)"
            )
        inner = self.inner
        if isinstance(inner, LowRankShift):
            return inner.replace(up=self._pad(inner.up, 0.0), bias=self.bias)
        return inner.replace(weight=self._pad(inner.weight, 0.0), bias=self.bias)

    def _pad(self, rows: Tensor, value: float) -> Tensor:
        """``(l, m, c) -> (l, n, c)``: ``rows`` at ``[start, stop)``, ``value`` elsewhere."""
        l, _, c = rows.shape
        before = rows.new_full((l, self.start, c), value)
        after = rows.new_full((l, self.out_features - self.stop, c), value)
        return torch.cat([before, rows, after], dim=1)
