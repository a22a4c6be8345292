"""``edited_conv``: 1-d and 2-d convolutions with per-sample kernel shifts.

The conv counterpart of :func:`weditlib.edited_linear`. A kernel ``(out, in/groups, *kernel)`` is
edited through its flattened ``(n, k) = (out, in/groups · prod(kernel))`` view, so the same
:class:`~weditlib.DenseShift` / :class:`~weditlib.LowRankShift` that edit a linear
layer edit a convolution (a PEFT LoRA conv adapter factors the same way: ``B (out, r) @ A (r, k)``).
Everything about how the kernel slides (stride, padding, dilation, groups, padding mode) is the base
module's, validated here once; the algorithms in :mod:`weditlib.kernels.conv` trust it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from weditlib import planner
from weditlib._autocast import autocast_inputs
from weditlib.deltas import Grouping, Shift, check_grouping
from weditlib.functional import _DELTA_NAMES, _DELTA_TYPES, _check_finite, check_bias, check_like_x
from weditlib.kernels.conv import (
    ALGORITHMS,
    ConvGeometry,
    ConvProblem,
    output_sizes,
)
from weditlib.kernels.reference import shift_bias
from weditlib.kernels.traced import run_traced_conv
from weditlib.materialised import EditedWeights
from weditlib.row_range import RowRangeShift
from weditlib.row_scaled import AnyShift, sample_scale

AnyInput = AnyShift | EditedWeights

PADDING_MODES: tuple[str, ...] = ("zeros", "reflect", "replicate", "circular")
SPATIAL_DIMS: tuple[int, ...] = (1, 2)

IntOrTuple = int | Sequence[int]


def conv_algorithm_names() -> list[str]:
    """Names accepted by ``edited_conv(..., algorithm=...)``."""
    return [algorithm.name for algorithm in ALGORITHMS]


def _tuple(value: IntOrTuple, dims: int, name: str, minimum: int) -> tuple[int, ...]:
    """``value`` as ``dims`` ints ``>= minimum`` (an int is repeated, like ``nn.Conv*``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        values = (value,) * dims
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != dims or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise ValueError(f"{name} must be an int or {dims} ints, got {value!r}")
    else:
        raise TypeError(f"{name} must be an int or a tuple of {dims} ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in every dim, got {value!r}")
    return values


def _padding_pairs(
    padding: str | IntOrTuple,
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` padding of every spatial dim, as ``nn.Conv*`` computes it."""
    dims = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * dims
        if padding != "same":
            raise ValueError(f"padding must be 'same', 'valid', an int or ints, got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(
                f"padding='same' is not supported for strided convolutions, got stride {stride}"
            )
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        return tuple((total // 2, total - total // 2) for total in totals)  # extra on the right
    return tuple((p, p) for p in _tuple(padding, dims, "padding", 0))


def _check_kernel(x: Tensor, weight: Tensor) -> None:
    """``x`` and ``weight`` are tensors, ``weight`` a 1-d or 2-d kernel."""
    for name, value in (("x", x), ("weight", weight)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if weight.dim() - 2 not in SPATIAL_DIMS:
        raise ValueError(
            "weight must have shape (out, in/groups, *kernel) with 1 or 2 kernel dims, "
            f"got {tuple(weight.shape)}"
        )


def _check_tensors(x: Tensor, weight: Tensor, bias: Tensor | None, delta: AnyInput) -> None:
    _check_kernel(x, weight)
    if not isinstance(delta, _DELTA_TYPES):
        raise TypeError(f"delta must be {_DELTA_NAMES}, got {type(delta).__name__}")
    if x.dim() != weight.dim():
        raise ValueError(
            f"x must be a batch (b, c_in, *s) with {weight.dim() - 2} spatial dims like the "
            f"weight {tuple(weight.shape)}, got shape {tuple(x.shape)}"
        )
    n = weight.shape[0]
    k = math.prod(weight.shape[1:])
    if (delta.out_features, delta.in_features) != (n, k):
        raise ValueError(
            f"delta edits a ({delta.out_features}, {delta.in_features}) weight, but the kernel "
            f"{tuple(weight.shape)} flattens to (out, in/groups · prod(kernel)) = ({n}, {k})"
        )
    check_bias(bias, n, "out")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    check_like_x(x, weight, bias, delta)


def _check_groups(groups: int, in_channels: int, weight: Tensor) -> None:
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    out_channels, per_group = weight.shape[:2]
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide the out channels, weight has {out_channels}")
    if in_channels != per_group * groups:
        raise ValueError(
            f"x must have in/groups · groups = {per_group} · {groups} = {per_group * groups} "
            f"channels in dim 1, got {in_channels}"
        )


def _pad_input(
    x: Tensor, pairs: tuple[tuple[int, int], ...], padding_mode: str
) -> tuple[Tensor, tuple[int, ...]]:
    """Apply padding the conv cannot apply itself; return ``x`` and the conv's own padding."""
    symmetric = all(before == after for before, after in pairs)
    if padding_mode == "zeros" and symmetric:
        return x, tuple(before for before, _ in pairs)
    sizes = x.shape[2:]
    for dim, ((before, after), size) in enumerate(zip(pairs, sizes, strict=True)):
        largest = max(before, after)
        if padding_mode == "reflect" and largest >= size:
            raise ValueError(
                f"padding_mode='reflect' needs padding < input size in every spatial dim; "
                f"spatial dim {dim} has size {size} and padding {largest}"
            )
        if (
            padding_mode in ("circular", "replicate")
            and largest > 0
            and (size == 0 or (padding_mode == "circular" and largest > size))
        ):
            raise ValueError(
                f"padding_mode={padding_mode!r} needs padding <= input size (and a non-empty "
                f"input) in every spatial dim; spatial dim {dim} has size {size} and padding "
                f"{largest}"
            )
    flat = [amount for pair in reversed(pairs) for amount in pair]  # F.pad: last dim first
    mode = "constant" if padding_mode == "zeros" else padding_mode
    return F.pad(x, flat, mode=mode), (0,) * len(pairs)


def _geometry(
    x: Tensor,
    weight: Tensor,
    stride: IntOrTuple,
    padding: str | IntOrTuple,
    dilation: IntOrTuple,
    groups: int,
    padding_mode: str,
) -> tuple[Tensor, ConvGeometry]:
    """Validate how the kernel slides; return ``x`` padded as the mode needs, and the geometry."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    _check_groups(groups, x.shape[1], weight)
    dims, kernel = weight.dim() - 2, tuple(weight.shape[2:])
    stride_ = _tuple(stride, dims, "stride", 1)
    dilation_ = _tuple(dilation, dims, "dilation", 1)
    pairs = _padding_pairs(padding, kernel, dilation_, stride_)
    x, conv_padding = _pad_input(x, pairs, padding_mode)
    geometry = ConvGeometry(stride_, conv_padding, dilation_, groups)
    if min(output_sizes(x.shape[2:], kernel, geometry)) < 1:
        padded = tuple(s + 2 * p for s, p in zip(x.shape[2:], conv_padding, strict=True))
        dilated = tuple(d * (k - 1) + 1 for d, k in zip(dilation_, kernel, strict=True))
        raise ValueError(
            f"x's padded spatial size {padded} is smaller than the dilated kernel {dilated} "
            f"in some dim (x shape {tuple(x.shape)})"
        )
    return x, geometry


def _prepare(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyInput,
    index: Tensor | None,
    grouping: Grouping | None,
    stride: IntOrTuple,
    padding: str | IntOrTuple,
    dilation: IntOrTuple,
    groups: int,
    padding_mode: str,
) -> tuple[Tensor, ConvGeometry, Grouping, ConvProblem]:
    """Validate everything once: ``(padded x, geometry, grouping, problem)``."""
    _check_tensors(x, weight, bias, delta)
    x, geometry = _geometry(x, weight, stride, padding, dilation, groups, padding_mode)
    batch = x.shape[0]
    if grouping is None:
        grouping = Grouping.from_index(index, delta.num_shifts, batch, device=x.device)
    else:
        check_grouping(grouping, batch, delta.num_shifts, x.device)
    problem = ConvProblem.describe(x, weight, bias, delta, grouping, geometry)
    return x, geometry, grouping, problem


def _empty_batch(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: AnyInput, geometry: ConvGeometry
) -> Tensor:
    """``(0, n, *s')`` for ``b = 0``; the shift's tensors join the graph (zero gradients), as the
    weight and bias of ``F.conv*`` do on an empty batch."""
    y = geometry.conv(x, weight, bias, geometry.groups)
    return y + sum(tensor[:0].sum() for tensor in delta.tensors())  # + 0, in the graph


def _traced_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: Shift | EditedWeights,
    index: Tensor | None,
    grouping: Grouping | None,
    geometry_args: tuple,
    check_finite: bool,
) -> Tensor:
    """:func:`edited_conv` inside ``torch.compile``: the checks on shapes only, then
    :func:`~weditlib.kernels.traced.run_traced_conv` (no planner, no grouping facts), so one
    graph serves every batch size and index pattern."""
    _check_tensors(x, weight, bias, delta)
    x, geometry = _geometry(x, weight, *geometry_args)
    if grouping is None:
        grouping = Grouping.from_index(index, delta.num_shifts, x.shape[0], device=x.device)
    else:
        check_grouping(grouping, x.shape[0], delta.num_shifts, x.device)
    if check_finite:
        _check_finite(delta)
    return run_traced_conv(x, weight, bias, delta, grouping.index, geometry)


def _row_scaled_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift,
    index: Tensor | None,
    grouping: Grouping | None,
    geometry_args: tuple,
    algorithm: str | None,
) -> Tensor:
    """:func:`edited_conv` of a :class:`~weditlib.RowScaledShift`: the inner shift's output
    without bias, then ``⊙ scale + bias + Δb`` per output channel in one pass."""
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    _check_tensors(x, weight, bias, delta)
    if grouping is None:
        grouping = Grouping.from_index(index, delta.num_shifts, x.shape[0], device=x.device)
    stride, padding, dilation, groups, padding_mode = geometry_args
    y = edited_conv(
        x, weight, None, delta.unscaled(), stride=stride, padding=padding, dilation=dilation,
        groups=groups, padding_mode=padding_mode, algorithm=algorithm, grouping=grouping,
    )  # fmt: skip
    spatial = (1,) * (y.dim() - 2)
    scale = sample_scale(delta.scale, grouping).reshape(*y.shape[:2], *spatial)
    per_shift = shift_bias(bias, delta.inner)  # (l, n) or None: then the base bias, if any
    if per_shift is not None:
        bias = sample_scale(per_shift, grouping).reshape(*y.shape[:2], *spatial)
    elif bias is not None:
        bias = bias.reshape(-1, *spatial)
    return y * scale if bias is None else torch.addcmul(bias, y, scale)


def plan_conv(
    x: Tensor,
    weight: Tensor,
    delta: AnyShift,
    index: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: str | IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> planner.Plan:
    """What :func:`edited_conv` would run for these inputs, with its cost estimate.

    Takes the arguments of :func:`edited_conv` (without running anything).

    Returns:
        The :class:`~weditlib.planner.Plan`: the chosen algorithm, its estimated seconds and cost,
            and the estimate of every supported candidate.

    Raises:
        TypeError: as :func:`edited_conv`.
        ValueError: as :func:`edited_conv`.
    """
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    *_, problem = _prepare(
        x, weight, bias, delta, index, None, stride, padding, dilation, groups, padding_mode
    )
    return planner.choose(problem, pool=ALGORITHMS)[1]


def edited_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyInput | None,
    index: Tensor | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: str | IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    algorithm: str | None = None,
    check_finite: bool = False,
    grouping: Grouping | None = None,
) -> Tensor:
    """1-d or 2-d convolution with a per-sample edited kernel.

    For every sample ``b``: ``y[b] = conv(x[b], W ⊕ ΔW[index[b]], bias + Δb[index[b]])`` with the
    base module's ``stride``, ``padding``, ``dilation``, ``groups`` and ``padding_mode``; ``⊕`` is
    ``W + ΔW`` (``delta.mode == "add"``), ``W ⊙ (1 + ΔW)`` (``"scale"``) or ``ΔW``
    (``"replace"``) on the flattened kernel, and the bias shift ``Δb`` (``delta.bias``, when
    present) is always added.

    Args:
        x: ``(b, c_in, w)`` or ``(b, c_in, h, w)``: a batch (unbatched inputs have no sample to
            edit).
        weight: ``(n, c_in / groups, *kernel)`` base kernel, shared by all samples.
        bias: ``(n,)`` or ``None``.
        delta: ``l`` shifts of the flattened ``(n, k) = (n, c_in / groups · prod(kernel))``
            kernel (dense ``(l, n, k)`` or low-rank ``(l, n, r) @ (l, r, k)``), optionally with
            ``bias: (l, n)``), or a :class:`~weditlib.materialised.EditedWeights` of the
            kernel's flattened view (kernels built once by :func:`~weditlib.materialise`; a
            plain conv when ``l == 1``); ``None`` is the plain convolution.
        index: ``(b,)`` integers in ``[0, l)``: the shift of each sample (unsorted and repeated
            values allowed). ``None`` means ``l == b`` and sample ``b`` uses shift ``b``.
        stride: int or one int per spatial dim, as ``nn.Conv*``.
        padding: int, ints, ``"same"`` (stride 1; extra padding on the right when uneven, as
            ``nn.Conv*``) or ``"valid"``.
        dilation: int or one int per spatial dim.
        groups: channel groups; divides ``c_in`` and ``n``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        algorithm: force one algorithm by name (see :func:`conv_algorithm_names`); ``None`` lets
            the planner choose by cost.
        check_finite: raise if the shift holds NaN or infinity instead of propagating it.
        grouping: a precomputed :class:`~weditlib.deltas.Grouping` of ``index`` (e.g. shared by
            all layers of one forward pass); overrides ``index``.

    Returns:
        ``(b, n, *s_out)``, differentiable with respect to ``x``, ``weight``, ``bias`` and the
            shift's tensors. Under ``torch.autocast`` the inputs are cast as ``F.conv*`` casts them.

    Raises:
        TypeError: non-tensor inputs, mismatched dtypes, non-integer ``index``, non-int geometry.
        ValueError: shapes that disagree (channels, groups, kernel vs shift), wrong ranks, bad
            geometry or padding mode, an input smaller than the kernel, ``index`` of wrong length
            or out of range, device mismatch, unknown or unsupported ``algorithm``, non-finite
            shift when ``check_finite``.
        RuntimeError: a ``EditedWeights`` of another kernel, or of one changed in place
            since it was built.
    """
    if delta is None:  # the plain convolution, padded exactly as with a shift
        _check_kernel(x, weight)  # _geometry reads their shapes before F.conv* could check them
        unbatched = x.dim() == weight.dim() - 1
        x = x.unsqueeze(0) if unbatched else x
        x, geometry = _geometry(x, weight, stride, padding, dilation, groups, padding_mode)
        y = geometry.conv(x, weight, bias, groups)
        return y.squeeze(0) if unbatched else y
    geometry_args = (stride, padding, dilation, groups, padding_mode)
    if isinstance(delta, RowRangeShift):
        raise TypeError(
            "delta is a RowRangeShift, which edits linear weights only; edit a kernel with its "
            "full-size shift (or materialise(weight, delta) first)"
        )
    if not isinstance(delta, _DELTA_TYPES):
        _check_tensors(x, weight, bias, delta)  # raises, naming the first bad argument
    materialised = isinstance(delta, EditedWeights)  # built weights, not a shift
    if not materialised and delta.row_scale is not None:
        if check_finite:
            _check_finite(delta)
        return _row_scaled_conv(x, weight, bias, delta, index, grouping, geometry_args, algorithm)
    if materialised and isinstance(weight, Tensor):
        delta.check_base(weight)  # before autocast makes a copy of it
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    if algorithm is None and torch.compiler.is_compiling():
        return _traced_conv(x, weight, bias, delta, index, grouping, geometry_args, check_finite)
    x, geometry, grouping, problem = _prepare(
        x, weight, bias, delta, index, grouping, stride, padding, dilation, groups, padding_mode
    )
    if check_finite:
        _check_finite(delta)
    chosen, _ = planner.choose(problem, algorithm, pool=ALGORITHMS)
    if problem.batch == 0:
        return _empty_batch(x, weight, bias, delta, geometry)
    if not materialised:
        return chosen.run(x, weight, bias, delta, grouping, geometry)
    kernels = delta.weight.reshape(delta.num_shifts, *weight.shape)  # (l, n, c_in/g, *kernel)
    per_shift = shift_bias(bias, delta)
    if delta.num_shifts == 1 and algorithm is None:  # one kernel for all: the plain conv
        own = bias if per_shift is None else per_shift[0]
        return geometry.conv(x, kernels[0], own, geometry.groups)
    return chosen.run_kernels(x, kernels, bias, per_shift, grouping, geometry)
