"""What a weight shift is: the one place that knows the kinds of shift.

A *shift* holds ``l`` edits of one ``(n, k)`` weight. Two kinds are stored here (a third,
:class:`~weditlib.RowScaledShift`, wraps either in :mod:`weditlib.row_scaled`):

* :class:`DenseShift` — ``weight: (l, n, k)``;
* :class:`LowRankShift` — ``up: (l, n, r)`` and ``down: (l, r, k)``, i.e. ``ΔW = up @ down``.

Each is combined with the base weight in one of three modes: ``"add"`` gives ``W + ΔW`` (the
paper's default), ``"scale"`` gives ``W ⊙ (1 + ΔW)`` and ``"replace"`` gives ``ΔW`` itself (the
shift *is* the weight; ``W`` is unused); :func:`combine` is that ``W ⊕ ΔW``, written once for
the whole library. Either kind may also carry a bias shift ``bias: (l, n)``, always added to the
base bias, in every mode: ``y_b = x_b (W ⊕ ΔW_{i_b})ᵀ + b + Δb_{i_b}`` (``+ Δb`` alone without a
base bias).

Callers ask a shift what they need instead of branching on its class: its ``rank`` (``None``
for dense), its full matrices (:meth:`~DenseShift.matrix`), the edited weights it makes of a
base weight (:meth:`~DenseShift.edited`), some of its shifts (:meth:`~DenseShift.select`), its
rows (:meth:`~DenseShift.rows`), its row scale (``row_scale``, ``None`` but for a row-scaled
shift) and a copy with its tensors mapped (:meth:`~DenseShift.map_tensors`).

Which sample uses which of the ``l`` shifts is said by an ``index: (b,)`` of integers in
``[0, l)`` (``None`` means ``l == b``, one shift per sample). :class:`Grouping` is the sorted view
of such an index that the grouped algorithms use; it is computed once per forward pass and can be
shared by every edited layer.
"""

from __future__ import annotations

import dataclasses
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from weditlib._deprecation import renamed_names

Mode = Literal["add", "scale", "replace"]
MODES: tuple[str, ...] = ("add", "scale", "replace")
#: Mode names of the previous release, still accepted with a ``DeprecationWarning``.
OLD_MODES: dict[str, str] = {"shift": "add"}


def check_mode(mode: object, stacklevel: int = 3) -> str:
    """``mode`` as one of :data:`MODES` (an old name is translated, with a warning).

    Raises:
        ValueError: ``mode`` is not a mode name.
    """
    if isinstance(mode, str) and mode in OLD_MODES:
        new = OLD_MODES[mode]
        warnings.warn(
            f"mode={mode!r} is deprecated and will be refused in the next release; use "
            f"mode={new!r} (the same W + ΔW)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return new
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def combine(weight: Tensor, shift: Tensor, mode: str) -> Tensor:
    """``W ⊕ ΔW``: ``W + ΔW`` (mode ``add``), ``W ⊙ (1 + ΔW)`` (``scale``) or ``ΔW`` (``replace``).

    The library's one definition: the op's algorithms, :func:`~weditlib.materialise`,
    :func:`~weditlib.merge` and the PEFT export all build edited weights here, so they round
    alike (``scale`` is ``W + W ⊙ ΔW`` in one fused multiply-add). In mode ``replace`` the
    result is ``shift`` itself, not a copy (nothing to build; no gradient reaches ``weight``).

    Args:
        weight: ``(n, k)``.
        shift: ``(..., n, k)``, of ``weight``'s dtype.

    Returns:
        ``(..., n, k)``.
    """
    if mode == "add":
        return weight + shift
    if mode == "replace":
        return shift
    return torch.addcmul(weight, weight, shift)


def _check_floating(name: str, t: Tensor) -> None:
    """A shift is a floating tensor: an integer one would fail later in a matmul, unnamed."""
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_row_tensor(
    owner: str, name: str, t: object, like: Tensor | Shift, num_shifts: int, n: int
) -> None:
    """``t`` is an ``(l, n)`` tensor (one value per shift and output row) of the dtype and device
    of ``like`` (a tensor or a shift); the errors name ``owner.name``."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{owner}.{name} must be a Tensor, got {type(t).__name__}")
    if tuple(t.shape) != (num_shifts, n):
        raise ValueError(
            f"{owner}.{name} must have shape (l, n) = ({num_shifts}, {n}), got {tuple(t.shape)}"
        )
    if t.dtype != like.dtype:
        raise TypeError(f"{owner}.{name} dtype {t.dtype} does not match the shift's {like.dtype}")
    if t.device != like.device:
        raise ValueError(f"{owner}.{name} is on {t.device} but the shift is on {like.device}")


def _check_bias(owner: str, bias: Tensor | None, like: Tensor, num_shifts: int, n: int) -> None:
    """``bias`` is ``None`` or an ``(l, n)`` tensor of ``like``'s dtype and device."""
    if bias is None:
        return
    if not isinstance(bias, Tensor):
        raise TypeError(f"{owner}.bias must be a Tensor or None, got {type(bias).__name__}")
    check_row_tensor(owner, "bias", bias, like, num_shifts, n)


def _set_mode(shift: object, mode: object) -> None:
    """Store the checked ``mode`` on a frozen shift (an old name becomes the new one)."""
    object.__setattr__(shift, "mode", check_mode(mode, stacklevel=5))


class TensorFields:
    """What every stored kind shares: its optional bias shift and the list of its tensors."""

    bias: Tensor | None
    _factor_fields: ClassVar[tuple[str, ...]]

    def tensor_fields(self) -> tuple[str, ...]:
        """Names of the fields that hold tensors (``bias`` only when present)."""
        names = self._factor_fields
        return (*names, "bias") if self.bias is not None else names

    def tensors(self) -> tuple[Tensor, ...]:
        """The tensors, in :meth:`tensor_fields` order."""
        return tuple(getattr(self, name) for name in self.tensor_fields())

    def replace(self, **changes: object):
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def map_tensors(self, fn: Callable[[Tensor], Tensor]):
        """A copy with ``fn`` applied to every tensor (the same object when none changes)."""
        fields = {name: getattr(self, name) for name in self.tensor_fields()}
        mapped = {name: fn(value) for name, value in fields.items()}
        if all(mapped[name] is fields[name] for name in fields):
            return self
        return self.replace(**mapped)

    def select(self, index: Tensor | Sequence[int]):
        """The shifts ``index`` picks, in its order: ``l' = len(index)`` shifts of the same kind
        (``index`` may repeat; ``select([i])`` is shift ``i`` alone)."""
        return self.replace(**{name: getattr(self, name)[index] for name in self.tensor_fields()})


class _ShiftMethods(TensorFields):
    """What both stored kinds of shift answer beyond their tensors."""

    mode: str
    #: The per-row factor of each edited weight; only a row-scaled shift has one.
    row_scale: ClassVar[None] = None

    def matrix(self) -> Tensor:
        raise NotImplementedError

    def edited(self, weight: Tensor) -> Tensor:
        """``(l, n, k)``: the edited weights ``W ⊕ ΔW_i`` of the base ``weight: (n, k)``, in
        ``weight``'s dtype.

        Built by :func:`combine` in the wider of the two dtypes and rounded once (a float32
        shift of a bfloat16 weight is merged as PEFT merges a float32 adapter); with one dtype
        it is exactly ``combine(weight, matrix(), mode)``.
        """
        return self.edited_wide(weight).to(weight.dtype)

    def edited_wide(self, weight: Tensor) -> Tensor:
        """:meth:`edited` before its rounding to ``weight``'s dtype."""
        wide = torch.promote_types(weight.dtype, self.dtype)  # type: ignore[attr-defined]
        return combine(weight.to(wide), self.matrix().to(wide), self.mode)

    def without_row_scale(self):
        """The shift without its row scale: itself (a row-scaled shift answers its inner one)."""
        return self


class _StackedWeights:
    """Sizes of ``weight: (l, n, k)``, a stack of ``l`` full-size matrices."""

    weight: Tensor

    @property
    def num_shifts(self) -> int:
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    @property
    def in_features(self) -> int:
        return self.weight.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.weight.device


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class DenseShift(_StackedWeights, _ShiftMethods):
    """``l`` full-size shifts of an ``(n, k)`` weight.

    Args:
        weight: ``(l, n, k)`` the shifts ``ΔW``.
        mode: ``"add"`` (``W + ΔW``), ``"scale"`` (``W ⊙ (1 + ΔW)``) or ``"replace"``
            (``ΔW``: the shift is the edited weight); the previous release's ``"shift"`` is
            read as ``"add"``, with a ``DeprecationWarning``.
        bias: ``(l, n)`` optional bias shifts ``Δb``, added to the base bias in every mode.

    Raises:
        TypeError: ``weight`` or ``bias`` is not a tensor, ``weight`` is not floating-point, or
            their dtypes differ.
        ValueError: ``weight`` is not 3-d, ``bias`` is not ``(l, n)`` or on another device, or
            ``mode`` is unknown.
    """

    weight: Tensor
    mode: Mode = "add"
    bias: Tensor | None = None
    _factor_fields: ClassVar[tuple[str, ...]] = ("weight",)
    #: Dense shifts have no rank (the planner's costs and the algorithms ask).
    rank: ClassVar[None] = None

    def __post_init__(self) -> None:
        if not isinstance(self.weight, Tensor):
            raise TypeError(f"DenseShift.weight must be a Tensor, got {type(self.weight).__name__}")
        if self.weight.dim() != 3:
            raise ValueError(
                f"DenseShift.weight must have shape (l, n, k), got {tuple(self.weight.shape)}"
            )
        _check_floating("DenseShift.weight", self.weight)
        _set_mode(self, self.mode)
        _check_bias("DenseShift", self.bias, self.weight, *self.weight.shape[:2])

    def to_dense(self) -> DenseShift:
        return self

    def matrix(self) -> Tensor:
        """``(l, n, k)`` the shifts as full matrices."""
        return self.weight

    def rows(self, start: int, stop: int) -> DenseShift:
        """The shifts of output rows ``[start, stop)``: ``(l, stop - start, k)`` (views)."""
        bias = None if self.bias is None else self.bias[:, start:stop]
        return DenseShift(self.weight[:, start:stop], mode=self.mode, bias=bias)


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class LowRankShift(_ShiftMethods):
    """``l`` rank-``r`` shifts ``ΔW = up @ down`` of an ``(n, k)`` weight.

    Args:
        up: ``(l, n, r)`` left factors ``U``.
        down: ``(l, r, k)`` right factors ``V``.
        mode: ``"add"`` (``W + U V``), ``"scale"`` (``W ⊙ (1 + U V)``) or ``"replace"``
            (``U V``); the previous release's ``"shift"`` is read as ``"add"``, with a
            ``DeprecationWarning``.
        bias: ``(l, n)`` optional bias shifts ``Δb``, added to the base bias in every mode.

    The factors keep their own dtype: a float32 shift edits a bfloat16 layer in mode ``add``
    as PEFT applies a float32 LoRA adapter (see :func:`~weditlib.edited_linear`).

    Raises:
        TypeError: a factor or ``bias`` is not a tensor, a factor is not floating-point, or
            their dtypes differ.
        ValueError: a factor is not 3-d, they disagree on ``l`` or ``r``, they (or ``bias``) are
            on different devices, ``bias`` is not ``(l, n)``, or ``mode`` is unknown.
    """

    up: Tensor
    down: Tensor
    mode: Mode = "add"
    bias: Tensor | None = None
    _factor_fields: ClassVar[tuple[str, ...]] = ("up", "down")

    def __post_init__(self) -> None:
        for name, t in (("up", self.up), ("down", self.down)):
            if not isinstance(t, Tensor):
                raise TypeError(f"LowRankShift.{name} must be a Tensor, got {type(t).__name__}")
            if t.dim() != 3:
                expected = "(l, n, r)" if name == "up" else "(l, r, k)"
                raise ValueError(
                    f"LowRankShift.{name} must have shape {expected}, got {tuple(t.shape)}"
                )
            _check_floating(f"LowRankShift.{name}", t)
        if self.up.shape[0] != self.down.shape[0] or self.up.shape[2] != self.down.shape[1]:
            raise ValueError(
                "LowRankShift.up (l, n, r) and down (l, r, k) disagree on l or r: "
                f"up {tuple(self.up.shape)}, down {tuple(self.down.shape)}"
            )
        if self.up.dtype != self.down.dtype:
            raise TypeError(
                f"LowRankShift.up and down must share a dtype, got {self.up.dtype} "
                f"and {self.down.dtype}"
            )
        if self.up.device != self.down.device:
            raise ValueError(
                f"LowRankShift.up and down must share a device, got {self.up.device} "
                f"and {self.down.device}"
            )
        _set_mode(self, self.mode)
        _check_bias("LowRankShift", self.bias, self.up, *self.up.shape[:2])

    @property
    def num_shifts(self) -> int:
        return self.up.shape[0]

    @property
    def out_features(self) -> int:
        return self.up.shape[1]

    @property
    def in_features(self) -> int:
        return self.down.shape[2]

    @property
    def rank(self) -> int:  # type: ignore[override]
        return self.up.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.up.dtype

    @property
    def device(self) -> torch.device:
        return self.up.device

    def matrix(self) -> Tensor:
        """``(l, n, k)`` the shifts as full matrices ``up @ down``."""
        return torch.bmm(self.up, self.down)

    def to_dense(self) -> DenseShift:
        return DenseShift(self.matrix(), mode=self.mode, bias=self.bias)

    def rows(self, start: int, stop: int) -> LowRankShift:
        """The shifts of output rows ``[start, stop)``: ``up[:, start:stop] @ down`` (views)."""
        bias = None if self.bias is None else self.bias[:, start:stop]
        return LowRankShift(self.up[:, start:stop], self.down, mode=self.mode, bias=bias)


#: A stored shift (a :class:`~weditlib.RowScaledShift` wraps one of these).
Shift = DenseShift | LowRankShift


class InnerShiftFields:
    """What a wrapper kind (a shift around another, ``self.inner``) takes from the shift it
    wraps: its count, input width, dtype, device, mode and rank."""

    inner: Shift  # the wrapper's own dataclass field

    @property
    def num_shifts(self) -> int:
        return self.inner.num_shifts

    @property
    def in_features(self) -> int:
        return self.inner.in_features

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def mode(self) -> str:
        return self.inner.mode

    @property
    def rank(self) -> int | None:
        """The inner shift's rank (``None`` when dense)."""
        return self.inner.rank


#: Names of the previous release: ``weditlib.deltas.<old>`` warns and returns ``<new>``.
__getattr__ = renamed_names(
    __name__,
    {"DenseDelta": "DenseShift", "LowRankDelta": "LowRankShift", "Delta": "Shift"},
    globals(),
)


_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)


def check_grouping(
    grouping: object,
    batch_size: int | None,
    num_shifts: int,
    device: torch.device,
    device_of: str = "x is",
) -> None:
    """``grouping`` is a :class:`Grouping` for ``batch_size`` samples (any when ``None``),
    ``num_shifts`` shifts, on ``device``, the device of what ``device_of`` names (with its verb,
    for the error message).

    Raises:
        TypeError: it is not a :class:`Grouping`.
        ValueError: it is for another batch size, shift count or device.
    """
    if not isinstance(grouping, Grouping):
        raise TypeError(f"grouping must be a Grouping or None, got {type(grouping).__name__}")
    if batch_size is None:
        if grouping.num_shifts != num_shifts:
            raise ValueError(
                f"grouping is for l={grouping.num_shifts} shifts; the shifts hold {num_shifts}"
            )
    elif grouping.batch_size != batch_size or grouping.num_shifts != num_shifts:
        raise ValueError(
            f"grouping is for b={grouping.batch_size}, l={grouping.num_shifts}; "
            f"got b={batch_size}, l={num_shifts} (an edit() block's index, or its grouping, needs "
            "one entry per sample of the batch each edited layer sees)"
        )
    if grouping.device != device:
        raise ValueError(f"grouping is on {grouping.device} but {device_of} on {device}")


def _check_index_tensor(index: object, batch_size: int | None) -> None:
    """``index`` is an integer tensor of shape ``(b,)`` (``b == batch_size`` when given)."""
    if not isinstance(index, Tensor):
        raise TypeError(
            f"index must be an integer Tensor of shape (b,), got {type(index).__name__}"
        )
    if index.dtype not in _INDEX_DTYPES:
        raise TypeError(f"index must have an integer dtype, got {index.dtype}")
    if index.dim() != 1 or (batch_size is not None and index.shape[0] != batch_size):
        expected = "(b,)" if batch_size is None else f"(b,) = ({batch_size},)"
        raise ValueError(f"index must have shape {expected}, got {tuple(index.shape)}")
    if index.device.type == "meta":
        raise _meta_index_error()


def _meta_index_error() -> ValueError:
    return ValueError(
        "index must hold values to group samples by (a meta tensor holds none); build the "
        "grouping from a real index, then move it with Grouping.to('meta')"
    )


def as_integer(value: object) -> int | None:
    """``value`` as a Python int when it is an integer (a numpy integer or a 0-d integer tensor
    too), else ``None``: bools and floats are not taken for counts or positions."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_index(index: Tensor | None, num_shifts: int, batch_size: int | None) -> Tensor | None:
    """Validate ``index`` and return it as int64 (``None`` stays ``None``).

    Reads ``index.min()``/``max()`` back to the host: call it once per index (building a
    :class:`Grouping` does), not once per layer.

    Args:
        index: ``(b,)`` integers in ``[0, num_shifts)``, or ``None`` meaning one shift per sample.
        num_shifts: ``l``.
        batch_size: ``b``, or ``None`` when any length is allowed (``None`` index then means
            ``b == l``).

    Raises:
        TypeError: ``index`` is not an integer tensor.
        ValueError: wrong shape, or out-of-range values, or ``None`` with ``l != b``.
    """
    if index is None:
        if batch_size is not None and num_shifts != batch_size:
            raise ValueError(
                f"index=None means one shift per sample, so the shift count ({num_shifts}) must "
                f"equal the batch size ({batch_size}); pass index (b,) to share shifts"
            )
        return None
    _check_index_tensor(index, batch_size)
    if index.numel():
        _check_range(*torch.stack([index.min(), index.max()]).tolist(), num_shifts)
    return index.long()


def _check_range(low: int, high: int, num_shifts: int) -> None:
    """The index's smallest and largest values lie in ``[0, num_shifts)``."""
    if low < 0 or high >= num_shifts:
        raise ValueError(
            f"index values must lie in [0, {num_shifts}) (the number of shifts), "
            f"got min {low}, max {high}"
        )


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class Grouping:
    """Samples sorted by the shift they use: the layout of the grouped algorithms.

    Built once per index by :meth:`from_index` (which validates the index and reads the group
    sizes back to the host) and shared by every edited layer of a forward pass, so that a layer
    call does no validation, no host synchronisation and no data-dependent shape: everything a
    layer needs is either a tensor of static shape or a Python number fixed here.

    Attributes:
        index: ``(b,)`` int64, the shift of each sample.
        order: ``(b,)`` int64, a stable permutation that sorts samples by shift.
        counts: ``(l,)`` int64, number of samples using each shift (zeros allowed).
        starts: ``(l,)`` int64, position in ``order`` of each shift's first sample.
        position: ``(b,)`` int64, row of each sample in the shift-major padded layout
            ``(l · max_count)``: ``index[s] · max_count + (rank of s among its shift's samples)``.
        max_count: largest entry of ``counts`` (a Python int: the static group size).
        uniform: every shift is used by the same number of samples and ``index`` is already
            sorted, so ``x`` can be viewed as ``(l, count * t, k)`` without any copy.
    """

    index: Tensor
    order: Tensor
    counts: Tensor
    starts: Tensor
    position: Tensor
    max_count: int
    uniform: bool

    @property
    def num_shifts(self) -> int:
        return self.counts.shape[0]

    @property
    def batch_size(self) -> int:
        return self.index.shape[0]

    @property
    def device(self) -> torch.device:
        return self.index.device

    @property
    def identity(self) -> bool:
        """One shift per sample, in order (``index == arange(b)``)."""
        return self.uniform and self.max_count == 1

    @staticmethod
    def from_index(
        index: Tensor | None,
        num_shifts: int,
        batch_size: int | None,
        device: torch.device | str | None = None,
    ) -> Grouping:
        """Validate ``index`` and build its grouping (``None`` means ``arange(batch_size)``).

        Args:
            index: ``(b,)`` integers in ``[0, num_shifts)`` or ``None`` (then ``l == b``).
            num_shifts: ``l``.
            batch_size: ``b``; ``None`` takes it from ``index`` (``l`` when ``index`` is ``None``).
            device: where the grouping's tensors live (default: ``index``'s device, or CPU).

        Raises:
            TypeError: as :func:`check_index`, or ``num_shifts`` is not an int.
            ValueError: as :func:`check_index`, or ``num_shifts`` is negative.
        """
        if isinstance(num_shifts, bool) or not isinstance(num_shifts, int | torch.SymInt):
            raise TypeError(f"num_shifts must be an int, got {type(num_shifts).__name__}")
        if num_shifts < 0:  # else reported as an index out of range [0, l)
            raise ValueError(f"num_shifts must be >= 0, got {num_shifts}")
        if index is None:
            check_index(None, num_shifts, batch_size)
            size = num_shifts if batch_size is None else batch_size
            ar = torch.arange(size, device=device)
            ones = torch.ones(size, dtype=torch.long, device=device)
            return Grouping(ar, ar, ones, ar, ar, 1 if size else 0, True)
        _check_index_tensor(index, batch_size)
        if device is not None:
            if torch.device(device).type == "meta":
                raise _meta_index_error()
            index = index.to(device)
        # The group sizes must reach the host anyway (max_count is a Python int), so the whole
        # grouping is built there from one copy of the index: a few vectorised numpy calls on
        # b integers instead of a dozen small device ops, and one copy back.
        host = index.detach().cpu().numpy().astype(np.int64, copy=False)
        if host.size:
            _check_range(int(host.min()), int(host.max()), num_shifts)
        counts = np.bincount(host, minlength=num_shifts)
        order = np.argsort(host, kind="stable")
        starts = np.cumsum(counts) - counts
        max_count = int(counts.max()) if num_shifts else 0
        sorted_index = host[order]
        position = np.empty_like(order)
        position[order] = sorted_index * max_count + np.arange(host.size) - starts[sorted_index]
        ordered = bool(np.all(host[1:] >= host[:-1]))
        uniform = ordered and num_shifts > 0 and int(counts.min()) == max_count
        packed = torch.from_numpy(np.concatenate([order, counts, starts, position]))
        order_t, counts_t, starts_t, position_t = packed.to(index.device).split(
            [host.size, num_shifts, num_shifts, host.size]
        )
        return Grouping(index.long(), order_t, counts_t, starts_t, position_t, max_count, uniform)

    def to(self, device: torch.device | str) -> Grouping:
        """The same grouping with its tensors on ``device``."""
        device = torch.device(device)
        if self.index.device == device:
            return self
        return Grouping(
            self.index.to(device),
            self.order.to(device),
            self.counts.to(device),
            self.starts.to(device),
            self.position.to(device),
            self.max_count,
            self.uniform,
        )
