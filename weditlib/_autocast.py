"""Follow ``torch.autocast`` the way the op an edited layer replaces does.

``F.linear`` and ``F.conv*`` sit on autocast's lower-precision list: inside an enabled region for
the inputs' device type, every floating input that is not float64 is cast to the region's dtype
before the op runs, and the result is in that dtype. Edited ops do the same to ``x``, the base
weight and bias, and the shift's tensors (so ``weight dtype float32 does not match x dtype
bfloat16`` cannot happen under autocast). The casts are ordinary ``Tensor.to`` calls, so gradients
flow back to float32 master parameters and to the generator that produced the shift.

Unlike autocast's own weight cache, a cast here is redone at every call; it costs one pass over
each tensor, which the edited op then reads anyway.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor

from weditlib.deltas import DenseShift, LowRankShift
from weditlib.materialised import EditedWeights
from weditlib.row_scaled import RowScaledShift

_T = TypeVar("_T", Tensor, None)
_D = TypeVar("_D", DenseShift, LowRankShift, RowScaledShift, EditedWeights)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype of the enabled autocast region for ``device_type`` (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``torch.get_autocast_dtype(device_type)`` when autocast is enabled for that device type,
            otherwise ``None``.
    """
    if device_type == "meta" or not torch.is_autocast_enabled(device_type):
        return None  # meta: no autocast region exists for it (torch raises on asking)
    return torch.get_autocast_dtype(device_type)


def cast(tensor: _T, dtype: torch.dtype, device_type: str) -> _T:
    """``tensor`` as autocast would feed it to a lower-precision op.

    Only floating tensors on ``device_type`` other than float64 are cast (autocast's eligibility
    rule); ``None``, integer, float64 and other-device tensors are returned unchanged.
    """
    if (
        tensor is None
        or not tensor.is_floating_point()
        or tensor.dtype in (torch.float64, dtype)
        or tensor.device.type != device_type
    ):
        return tensor
    return tensor.to(dtype)


def cast_delta(delta: _D, dtype: torch.dtype, device_type: str) -> _D:
    """``delta`` with each of its tensors :func:`cast` (the same object when none changes)."""
    return delta.map_tensors(lambda tensor: cast(tensor, dtype, device_type))


def autocast_inputs(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: _D | None
) -> tuple[Tensor, Tensor, Tensor | None, _D | None]:
    """Cast an edited op's inputs for the autocast region of ``x``'s device type, if any.

    Args:
        x: the op's input; its device type selects the autocast region.
        weight: the base weight (any shape: linear ``(n, k)``, conv ``(out, in/groups, *kernel)``).
        bias: the base bias or ``None``.
        delta: the shift or ``None``.

    Returns:
        ``(x, weight, bias, delta)`` cast to the region's dtype, or unchanged outside autocast.
    """
    device_type = x.device.type if isinstance(x, Tensor) else "cpu"
    dtype = autocast_dtype(device_type)
    if dtype is None:
        return x, weight, bias, delta
    return (
        cast(x, dtype, device_type),
        cast(weight, dtype, device_type),
        cast(bias, dtype, device_type),
        None if delta is None else cast_delta(delta, dtype, device_type),
    )
