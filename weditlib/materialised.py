"""Edited weights: ``W ⊕ ΔW`` built once (*materialised*), reused by every call.

A loop that calls an edited model many times under the same shifts (the steps of a diffusion
sampler, the tokens of a decoder) makes the planner's ``materialise`` algorithm rebuild
``W ⊕ ΔW`` at every call, and pays the planner's bookkeeping each time. A
:class:`EditedWeights` holds the built weights instead: :func:`weditlib.edited_linear` and
:func:`weditlib.edited_conv` run it as one product (a plain ``F.linear`` / ``F.conv*`` when one
shift serves the whole batch), with no planner and no per-call build.
``weditlib.edit(..., materialise=True)`` binds every shift of the block this way.

The built weights are a snapshot: they remember the base weight's storage and version counter
and refuse to run once that weight has changed in place (an optimiser step, :func:`weditlib.merge`),
instead of silently applying the old ``W``. They take ``l·n·k`` values per weight, what a dense
shift takes; a low-rank shift's factors are smaller, so materialise those only when the loop is
long enough to repay it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from weditlib._deprecation import renamed_names
from weditlib.deltas import TensorFields, _check_bias, _StackedWeights
from weditlib.row_scaled import SHIFT_KIND_NAMES, SHIFT_KINDS, AnyShift

_Kept = TypeVar("_Kept")

#: ``(storage address, version counter)`` of a base weight when its shifts were built in.
Signature = tuple[int, int]


def weight_signature(weight: Tensor) -> Signature:
    """``weight``'s storage address and version counter.

    Views, slices and transposes of one parameter share both, so a signature taken from a
    layer's ``(n, k)`` view also matches the row slices and transposed views layers pass at
    call time. Inference-mode tensors keep no version counter; their version reads as ``-1``.
    """
    try:
        version = weight._version
    except RuntimeError:  # inference tensors do not track versions
        version = -1
    return weight.untyped_storage().data_ptr(), version


@dataclass(frozen=True, eq=False)  # holds tensors: == is identity
class EditedWeights(_StackedWeights, TensorFields):
    """``l`` edited weights ``W ⊕ ΔW`` of one ``(n, k)`` weight, built by :func:`materialise`.

    Not a shift: it holds the weights a shift makes of one base weight, and runs only on that
    weight (``edited_linear`` and ``edited_conv`` check it, then run one product on them).

    Args:
        weight: ``(l, n, k)`` the edited weights themselves (not the shifts).
        bias: ``(l, n)`` the shift's bias shifts ``Δb`` or ``None`` (the base bias is still
            added at call time, so a change of the base bias is honoured).
        base: the :func:`weight_signature` of the base weight they were built from.

    Raises:
        TypeError: ``weight`` or ``bias`` is not a tensor, or their dtypes differ.
        ValueError: ``weight`` is not 3-d, or ``bias`` is not ``(l, n)`` or on another device.
    """

    weight: Tensor
    bias: Tensor | None
    base: Signature
    _factor_fields: ClassVar[tuple[str, ...]] = ("weight",)

    def __post_init__(self) -> None:
        if not isinstance(self.weight, Tensor):
            raise TypeError(
                f"EditedWeights.weight must be a Tensor, got {type(self.weight).__name__}"
            )
        if self.weight.dim() != 3:
            raise ValueError(
                f"EditedWeights.weight must have shape (l, n, k), got {tuple(self.weight.shape)}"
            )
        _check_bias("EditedWeights", self.bias, self.weight, *self.weight.shape[:2])

    def rows(self, start: int, stop: int) -> EditedWeights:
        """The edited weights of output rows ``[start, stop)`` (views; same base weight).

        Built once per ``(start, stop)`` and kept: a layer that splits one edited weight into
        parts (the q, k, v rows of a joint attention projection) asks for the same rows at
        every call.
        """

        def part() -> EditedWeights:
            bias = None if self.bias is None else self.bias[:, start:stop]
            return EditedWeights(self.weight[:, start:stop], bias, self.base)

        return self._kept(("rows", start, stop), part)

    def single(self, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The plain layer that one shift serving the whole batch amounts to.

        Args:
            bias: ``(n,)`` the base bias at this call, or ``None``.

        Returns:
            ``(weight (n, k), bias (n,) or None)``: the edited weight and the bias to add, the
                base bias plus the bias shift ``Δb`` (``Δb`` alone without a base bias).

        Raises:
            ValueError: the delta holds more than one shift.
        """
        if self.num_shifts != 1:
            raise ValueError(f"single() needs l == 1 shift, this delta holds {self.num_shifts}")
        weight, shift_bias = self._kept(
            ("single",), lambda: (self.weight[0], None if self.bias is None else self.bias[0])
        )
        if shift_bias is None:
            return weight, bias
        return weight, shift_bias if bias is None else bias + shift_bias

    def _kept(self, key: tuple, build: Callable[[], _Kept]) -> _Kept:
        """``build()``, made once per ``key`` and kept on this (frozen) object in eager mode.

        Traced code (``torch.compile``) builds it every time: it keeps no Python state, and the
        views it makes cost nothing in a compiled graph.
        """
        if torch.compiler.is_compiling():
            return build()
        kept = self.__dict__.setdefault("_kept_views", {})  # not a field: bypasses frozen
        value = kept.get(key)
        if value is None:
            value = kept[key] = build()
        return value

    def check_base(self, weight: Tensor) -> None:
        """Raise unless ``weight`` is (a view of) the unchanged weight these were built from.

        Raises:
            RuntimeError: ``weight`` lives elsewhere or was modified in place since.
        """
        if torch.compiler.is_compiling():  # version counters are not traceable; eager checks
            return
        address, version = weight_signature(weight)
        if address != self.base[0]:
            raise RuntimeError(
                "this EditedWeights was built from another weight than the one it is applied "
                "to; materialise the shift for this weight (the weight itself, or a view of it: "
                "a copy such as flatten() of a channels_last conv kernel is another weight)"
            )
        if version != self.base[1]:
            raise RuntimeError(
                "the base weight changed in place since its shift was materialised (an optimiser "
                "step, merge(), a load): materialise it again, e.g. by reopening the edit() block"
            )


def _flattens_to(weight: Tensor, shape: tuple[int, int]) -> bool:
    """``weight`` is ``shape`` ``(n, k)``, or a 1-d / 2-d conv kernel ``(n, in/groups, *kernel)``
    whose rows flatten to ``k`` values."""
    if weight.dim() == 2:
        return tuple(weight.shape) == shape
    return (
        weight.dim() in (3, 4)
        and weight.shape[0] == shape[0]
        and (math.prod(weight.shape[1:]) == shape[1])
    )


def materialise(weight: Tensor, delta: AnyShift) -> EditedWeights:
    """Build ``W ⊕ ΔW`` for every shift of ``delta`` once.

    The result can be passed wherever the shift could (``edited_linear``, ``edited_conv``, with
    the same base weight and bias) and gives the same outputs to float rounding, without
    rebuilding ``W ⊕ ΔW`` at each call. The weights are built in ``weight``'s dtype (a shift
    made in another one, e.g. by a generator under bf16 autocast, is cast to it first), so they
    serve the calls the layer's own weight would: under ``torch.autocast`` each call casts them
    as ``F.linear`` casts its weight. Gradients flow to ``weight`` and the shift through the
    build, once per backward pass: build again for each one.

    Args:
        weight: ``(n, k)`` the base weight; for a convolution, the kernel ``(out, in/groups,
            *kernel)`` itself (or its flattened ``(out, in/groups · prod(kernel))`` view, which
            a ``channels_last`` kernel does not have: ``flatten`` would copy it, and a copy is
            another weight than the one calls pass).
        delta: ``l`` shifts of that weight.

    Returns:
        ``l`` edited weights ``(l, n, k)`` with the shift's bias shifts.

    Raises:
        TypeError: ``weight`` is not a floating tensor, or ``delta`` is not a shift.
        ValueError: ``weight`` is neither ``(n, k)`` of the shift's shape nor a conv kernel
            that flattens to it, or is on another device.
    """
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a Tensor, got {type(weight).__name__}")
    if not isinstance(delta, SHIFT_KINDS):
        raise TypeError(f"delta must be a {SHIFT_KIND_NAMES}, got {type(delta).__name__}")
    expected = (delta.out_features, delta.in_features)
    if not _flattens_to(weight, expected):
        raise ValueError(
            f"weight must have the shift's shape (n, k) = {expected}, got "
            f"{tuple(weight.shape)} (a conv kernel (n, in/groups, *kernel) that flattens to it "
            "also serves)"
        )
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must have a floating dtype, got {weight.dtype}")
    if weight.device != delta.device:
        raise ValueError(f"weight is on {weight.device} but the shift is on {delta.device}")
    with torch.autocast(weight.device.type, enabled=False):  # build at the weights' precision
        # A kernel's (n, k) view may not exist (channels_last): reshape then copies, and the
        # signature below is still taken from the kernel itself, the tensor calls will pass.
        built = delta.edited(weight.reshape(expected))
    bias = None if delta.bias is None else delta.bias.to(weight.dtype)
    return EditedWeights(built, bias, weight_signature(weight))


__getattr__ = renamed_names(__name__, {"MaterialisedDelta": "EditedWeights"}, globals())
