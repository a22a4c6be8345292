"""``edited_linear``: the one op that applies per-sample weight shifts.

Everything else in the library (layers, attention, the edit context) calls it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from weditlib import planner
from weditlib._autocast import autocast_dtype, autocast_inputs
from weditlib.deltas import Grouping, Shift, check_grouping
from weditlib.deltas import check_index as check_index  # re-exported: its historical home
from weditlib.kernels.base import Problem
from weditlib.kernels.reference import group_bias, grouped_product, sample_bias
from weditlib.kernels.traced import per_sample_bias, run_traced
from weditlib.materialised import EditedWeights
from weditlib.mixed_dtype import keeps_own_dtype, mixed_dtype_linear
from weditlib.row_range import RowRangeShift
from weditlib.row_scaled import SHIFT_KINDS, AnyShift, sample_scale

#: What ``edited_linear`` accepts (a tuple: ``isinstance`` on it is cheaper than on a union
#: built at each call).
_DELTA_TYPES = (*SHIFT_KINDS, EditedWeights)
_DELTA_NAMES = "a DenseShift, LowRankShift, RowScaledShift, RowRangeShift or EditedWeights"


def check_bias(bias: Tensor | None, n: int, size_name: str) -> None:
    """``bias`` is ``None`` or a tensor of shape ``(n,)`` (``size_name`` names ``n`` in errors)."""
    if bias is None:
        return
    if not isinstance(bias, Tensor):
        raise TypeError(f"bias must be a Tensor or None, got {type(bias).__name__}")
    if bias.shape != (n,):
        raise ValueError(f"bias must have shape ({size_name},) = ({n},), got {tuple(bias.shape)}")


def check_like_x(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift | EditedWeights,
    own_dtype: bool = False,
) -> None:
    """``weight``, ``delta`` and ``bias`` (if any) share ``x``'s dtype and device (``delta`` only
    its device when ``own_dtype``: a shift computed in its own dtype)."""
    dtype, device = x.dtype, x.device
    if (
        weight.dtype == dtype and (own_dtype or delta.dtype == dtype) and weight.device == device
        and delta.device == device
        and (bias is None or (bias.dtype == dtype and bias.device == device))
    ):  # fmt: skip
        return  # the common case, checked without building the error list (a per-call cost)
    named = [("weight", weight), ("delta", delta)] + ([("bias", bias)] if bias is not None else [])
    for name, value in named:
        if value.dtype != dtype and not (own_dtype and name == "delta"):
            raise TypeError(f"{name} dtype {value.dtype} does not match x dtype {dtype}")
        if value.device != device:
            raise ValueError(f"{name} is on {value.device} but x is on {device}")


def _check_inputs(
    x: Tensor, weight: Tensor, bias: Tensor | None, delta: AnyShift | EditedWeights
) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a Tensor, got {type(weight).__name__}")
    if not isinstance(delta, _DELTA_TYPES):
        raise TypeError(f"delta must be {_DELTA_NAMES}, got {type(delta).__name__}")
    if weight.dim() != 2:
        raise ValueError(f"weight must have shape (n, k), got {tuple(weight.shape)}")
    n, k = weight.shape
    if x.dim() < 2:
        raise ValueError(f"x must have shape (b, *t, k) with at least 2 dims, got {tuple(x.shape)}")
    if x.shape[-1] != k:
        raise ValueError(f"x's last dim must equal weight's k={k}, got x shape {tuple(x.shape)}")
    if (delta.out_features, delta.in_features) != (n, k):
        raise ValueError(
            f"delta edits a ({delta.out_features}, {delta.in_features}) weight, "
            f"but weight has shape ({n}, {k})"
        )
    check_bias(bias, n, "n")
    check_like_x(x, weight, bias, delta, keeps_own_dtype(x, delta))
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")


def _check_finite(delta: AnyShift | EditedWeights) -> None:
    for position, tensor in enumerate(delta.tensors()):
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(
                f"delta tensor {position} (shape {tuple(tensor.shape)}) has {bad} non-finite values"
            )


def prepare(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: Shift,
    index: Tensor | None = None,
    grouping: Grouping | None = None,
) -> tuple[Tensor, Grouping, Problem]:
    """Validate the inputs and describe the problem: ``(x3 (b, t, k), grouping, problem)``.

    With a precomputed ``grouping`` every check is on shapes, dtypes and devices only (no host
    synchronisation, nothing data-dependent), so the call traces into one graph.
    """
    grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
    x3 = _as_3d(x)
    return x3, grouping, Problem.describe(x3, delta, grouping, bias is not None)


def _checked_grouping(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift | EditedWeights,
    index: Tensor | None,
    grouping: Grouping | None,
) -> Grouping:
    """Check the inputs; the grouping of ``index`` (or the given one, checked against ``x``)."""
    _check_inputs(x, weight, bias, delta)
    if grouping is None:
        return Grouping.from_index(index, delta.num_shifts, x.shape[0], device=x.device)
    check_grouping(grouping, x.shape[0], delta.num_shifts, x.device)
    return grouping


def _as_3d(x: Tensor) -> Tensor:
    """``(b, *t, k) -> (b, t, k)`` with the token dims flattened (a view when possible)."""
    if x.dim() == 3:
        return x
    tokens = math.prod(x.shape[1:-1])  # explicit: reshape cannot infer -1 when b == 0
    return x.reshape(x.shape[0], tokens, x.shape[-1])


def _plain_call_fits(
    x: Tensor, bias: Tensor | None, delta: EditedWeights, index: object, grouping: object
) -> bool:
    """What a one-shift call must satisfy beyond what ``F.linear`` checks: ``x`` is a batch of
    the grouping's size, and the bias, if any, is ``(n,)`` (``F.linear`` would broadcast a
    ``(1,)`` one). The base weight is the built one's (``check_base``), so it adds nothing."""
    return (
        index is None and isinstance(grouping, Grouping) and isinstance(x, Tensor)
        and x.dim() >= 2 and x.shape[0] == grouping.batch_size
        and (bias is None or (isinstance(bias, Tensor) and bias.shape == delta.weight.shape[1:2]))
    )  # fmt: skip


def _materialised_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: EditedWeights,
    index: Tensor | None,
    grouping: Grouping | None,
    algorithm: str | None,
) -> Tensor:
    """:func:`edited_linear` with edited weights built beforehand: one product, no planner."""
    if algorithm not in (None, "materialise"):
        raise ValueError(
            f"a EditedWeights runs only as algorithm='materialise' (or None), got {algorithm!r}"
        )
    if isinstance(weight, Tensor):
        delta.check_base(weight)  # before autocast makes a copy of it
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    one_shift = delta.num_shifts == 1
    if not (one_shift and _plain_call_fits(x, bias, delta, index, grouping)):
        grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
    if one_shift:
        # One shift for the whole batch: the plain layer on the edited weight. With a block's
        # grouping (a sampler's steps) F.linear alone checks x, the bias and their dtypes and
        # devices; an error it raises is explained by the full checks.
        try:
            return torch.nn.functional.linear(x, *delta.single(bias))
        except RuntimeError:
            _checked_grouping(x, weight, bias, delta, index, grouping)
            raise
    if torch.compiler.is_compiling():  # gathered per sample: no grouping facts in the graph
        y3 = torch.bmm(_as_3d(x), delta.weight[grouping.index].transpose(1, 2))
        sample_bias = per_sample_bias(bias, delta, grouping.index)
        y3 = y3 if sample_bias is None else y3 + sample_bias
    else:
        y3 = grouped_product(_as_3d(x), delta.weight, group_bias(bias, delta), grouping)
    return y3.reshape(*x.shape[:-1], weight.shape[0])


def _row_scaled_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift,
    index: Tensor | None,
    grouping: Grouping | None,
    algorithm: str | None,
) -> Tensor:
    """:func:`edited_linear` of a :class:`~weditlib.RowScaledShift`: the inner shift's output
    without bias, then ``⊙ scale + bias + Δb`` in one pass."""
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
    y = edited_linear(x, weight, None, delta.unscaled(), algorithm=algorithm, grouping=grouping)
    y3 = _as_3d(y)
    scale = sample_scale(delta.scale, grouping).unsqueeze(1)  # (b, 1, n)
    bias3 = sample_bias(bias, delta.inner, grouping)  # (b, 1, n), (n,) or None
    out = y3 * scale if bias3 is None else torch.addcmul(bias3, y3, scale)
    return out.reshape(y.shape)


def _row_range_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: RowRangeShift,
    index: Tensor | None,
    grouping: Grouping | None,
    algorithm: str | None,
    check_finite: bool,
) -> Tensor:
    """:func:`edited_linear` of a :class:`~weditlib.RowRangeShift`: the plain product for the
    rows outside the range, the inner shift's for the rows inside, side by side."""
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
    start, stop = delta.start, delta.stop

    def part(t: Tensor | None, low: int, high: int | None) -> Tensor | None:
        return None if t is None else t[low:high]

    inside = edited_linear(
        x, weight[start:stop], part(bias, start, stop), delta.inner,
        algorithm=algorithm, check_finite=check_finite, grouping=grouping,
    )  # fmt: skip
    before = torch.nn.functional.linear(x, weight[:start], part(bias, 0, start))
    after = torch.nn.functional.linear(x, weight[stop:], part(bias, stop, None))
    return torch.cat([before, inside, after], dim=-1)


def _own_dtype_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift,
    index: Tensor | None,
    grouping: Grouping | None,
    check_finite: bool,
) -> Tensor:
    """:func:`edited_linear` of a low-rank shift in another dtype than ``x`` (a float32 PEFT
    adapter on a bfloat16 model): PEFT's arithmetic, see :mod:`weditlib.mixed_dtype`."""
    grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
    if check_finite and delta.row_scale is None:
        _check_finite(delta)
    y3 = mixed_dtype_linear(_as_3d(x), weight, bias, delta, grouping)
    return y3.reshape(*x.shape[:-1], weight.shape[0])


def plan(
    x: Tensor,
    weight: Tensor,
    delta: AnyShift,
    index: Tensor | None = None,
    bias: Tensor | None = None,
) -> planner.Plan:
    """What :func:`edited_linear` would run for these inputs, with its cost estimate.

    Args:
        x: ``(b, *t, k)`` input.
        weight: ``(n, k)`` base weight.
        delta: ``l`` shifts of the weight.
        index: ``(b,)`` shift of each sample, or ``None`` (``l == b``).
        bias: ``(n,)`` or ``None``.

    Returns:
        The :class:`~weditlib.planner.Plan`: the chosen algorithm's name, its estimated seconds and
            cost, and the estimate of every supported candidate.

    Raises:
        TypeError: as :func:`edited_linear`.
        ValueError: as :func:`edited_linear`.
    """
    if isinstance(delta, RowRangeShift):  # the plan of the edited rows; the others are plain
        part = None if bias is None else bias[delta.start : delta.stop]
        return plan(x, weight[delta.start : delta.stop], delta.inner, index, part)
    if delta.row_scale is not None:  # the inner shift's plan, then one elementwise pass
        delta = delta.unscaled()
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    _, _, problem = prepare(x, weight, bias, delta, index)
    return planner.choose(problem)[1]


def edited_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift | EditedWeights | None,
    index: Tensor | None = None,
    *,
    algorithm: str | None = None,
    check_finite: bool = False,
    grouping: Grouping | None = None,
) -> Tensor:
    """Linear map with a per-sample edited weight.

    For every sample ``b``, with ``i = index[b]``:
    ``y[b] = F.linear(x[b], W ⊕ ΔW[i], bias) + Δb[i]``, where ``⊕`` is ``W + ΔW``
    (``delta.mode == "add"``), ``W ⊙ (1 + ΔW)`` (``"scale"``) or ``ΔW`` alone (``"replace"``:
    the shift is the weight, ``W`` unused) and ``Δb`` is the shift's optional bias shift
    ``delta.bias: (l, n)`` (added to ``bias`` in every mode, also without ``bias``).

    Behaves like ``F.linear`` around the edit: under ``torch.autocast`` every floating input (the
    shift's tensors included; float64 excepted) is cast to the autocast dtype and so is the
    result; empty batches and zero-size ``t``, ``n``, ``k`` or ``l`` give empty results. With a
    precomputed ``grouping`` the call does no host synchronisation and no data-dependent shape,
    so it compiles into one graph (``torch.compile(..., fullgraph=True)``); building the grouping
    from ``index`` reads the group sizes back to the host once per call. Traced (and with no
    ``algorithm`` forced), it runs the algorithms of :mod:`weditlib.kernels.traced` instead of
    the planner's, so one graph serves every batch size and index pattern.

    Args:
        x: ``(b, *t, k)`` input; any number of token dims (possibly none).
        weight: ``(n, k)`` base weight, shared by all samples.
        bias: ``(n,)`` or ``None``.
        delta: ``l`` shifts (:class:`~weditlib.DenseShift` ``(l, n, k)`` or
            :class:`~weditlib.LowRankShift` ``(l, n, r) @ (l, r, k)``, each with an
            optional ``bias: (l, n)``; a :class:`~weditlib.RowScaledShift` of either, whose
            edited weights ``diag(scale_i) (W ⊕ ΔW_i)`` are DoRA's; a
            :class:`~weditlib.RowRangeShift` of either, editing only output rows
            ``[start, stop)``, e.g. the K and V rows of a fused q/k/v projection), or the
            :class:`~weditlib.EditedWeights` of this ``weight`` (edited weights
            built once by :func:`~weditlib.materialise`: one product, no planner, a plain
            ``F.linear`` when ``l == 1``); ``None`` is the plain ``F.linear``. A low-rank
            shift in mode ``add`` (row-scaled or not) may have another floating dtype than
            ``x``: outside autocast it is then applied in its own dtype, as PEFT applies an
            adapter (the sum rounded once to ``x``'s dtype; see :mod:`weditlib.mixed_dtype`).
        index: ``(b,)`` integers in ``[0, l)``: the shift of each sample (unsorted and repeated
            values allowed). ``None`` means ``l == b`` and sample ``b`` uses shift ``b``.
        algorithm: force one algorithm by name (see :func:`weditlib.planner.algorithm_names`);
            ``None`` lets the planner choose by cost (decided once per problem shape, dtype and
            device, then cached).
        check_finite: raise if the shift holds NaN or infinity instead of propagating it (a host
            synchronisation).
        grouping: a precomputed :class:`~weditlib.deltas.Grouping` of ``index`` (e.g. shared by
            all layers of one forward pass); overrides ``index``.

    Returns:
        ``(b, *t, n)``; differentiable with respect to ``x``, ``weight``, ``bias`` and the shift's
            tensors (``Δb`` included).

    Raises:
        TypeError: non-tensor inputs, mismatched dtypes, non-integer ``index``, a ``grouping``
            that is not a :class:`~weditlib.deltas.Grouping`.
        ValueError: mismatched ``k``/``n``, wrong ranks, ``index`` of wrong length or out of
            range, a ``grouping`` of another batch, shift count or device, device mismatch,
            unknown or unsupported ``algorithm``, non-finite shift when ``check_finite``.
        RuntimeError: a ``EditedWeights`` of another weight, or of one changed in place
            since it was built.
    """
    if delta is None:
        return torch.nn.functional.linear(x, weight, bias)
    if not isinstance(delta, _DELTA_TYPES):
        _check_inputs(x, weight, bias, delta)  # raises, naming the first bad argument
    built = isinstance(delta, EditedWeights)  # built weights, not a shift
    if check_finite and (built or delta.row_scale is not None):
        _check_finite(delta)
    if built:
        return _materialised_linear(x, weight, bias, delta, index, grouping, algorithm)
    if isinstance(delta, RowRangeShift):
        return _row_range_linear(x, weight, bias, delta, index, grouping, algorithm, check_finite)
    if keeps_own_dtype(x, delta) and autocast_dtype(x.device.type) is None:
        return _own_dtype_linear(x, weight, bias, delta, index, grouping, check_finite)
    if delta.row_scale is not None:
        return _row_scaled_linear(x, weight, bias, delta, index, grouping, algorithm)
    x, weight, bias, delta = autocast_inputs(x, weight, bias, delta)
    if check_finite:
        _check_finite(delta)
    if algorithm is None and torch.compiler.is_compiling():
        # one graph for every batch size and index pattern: no planner, no grouping facts
        grouping = _checked_grouping(x, weight, bias, delta, index, grouping)
        y3 = run_traced(_as_3d(x), weight, bias, delta, grouping)
    else:
        x3, grouping, problem = prepare(x, weight, bias, delta, index, grouping)
        chosen, _ = planner.choose(problem, algorithm)
        y3 = chosen.run(x3, weight, bias, delta, grouping)
    return y3 if x.dim() == 3 else y3.reshape(*x.shape[:-1], weight.shape[0])
