"""Bake one shift into the base weights for serving one listener, and take it out again.

:func:`merge` writes ``W ⊕ ΔW[which]`` into each edited weight, so the model runs its plain base
forward with that shift built in: no per-sample edit, no overhead. :func:`unmerge` copies the
original weights back (kept aside by :func:`merge`, never recovered by subtraction, so they come
back bit-identical).

Each editable layer exposes its weights through ``EditableMixin._weight_views(local_name) ->
(weight (n, k), bias (n,) | None)``, *views* of its parameters; a layer whose weight is not stored
as ``(n, k)`` (HF ``Conv1D``'s ``(k, n)``) returns a transposed view, and merging works through
it; a convolution returns its kernel ``(out, in/groups, *kernel)`` itself (a ``channels_last``
kernel has no ``(n, k)`` view), which merging flattens and writes back whole.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from weditlib.deltas import as_integer
from weditlib.edit_state import current_state
from weditlib.editing import check_shifts
from weditlib.layers import EditableMixin
from weditlib.row_scaled import AnyShift


def _merged_layers(model: nn.Module) -> list[tuple[str, EditableMixin]]:
    return [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, EditableMixin) and module._merged is not None
    ]


def merge(model: nn.Module, shifts: Mapping[str, AnyShift], which: int) -> None:
    """Bake shift number ``which`` of every shift in ``shifts`` into the weights of ``model``.

    Afterwards ``model(x)`` equals what ``edit(model, shifts, index=full(which))`` computes, with
    the base layers' own forward: weights become ``W ⊕ ΔW[which]`` (``diag(scale) (W ⊕ ΔW)``
    for a :class:`~weditlib.RowScaledShift`) and biases ``b + Δb[which]``. The merged weight is
    built by the shift's :meth:`~weditlib.DenseShift.edited`, as :func:`~weditlib.materialise`
    builds it: bit for bit ``materialise(W, shift.select([which])).weight[0]``.
    The original parameters of every touched layer are kept (copied) until :func:`unmerge`.

    Args:
        model: a model prepared by :func:`~weditlib.make_editable`.
        shifts: weight name → shift holding ``l`` edits (as for :func:`~weditlib.edit`).
        which: the shift to merge, in ``[0, l)``.

    Raises:
        KeyError, TypeError, ValueError: as :func:`~weditlib.edit` for ``shifts``; ValueError
            also when ``shifts`` is empty, ``which`` is out of range, or a bias shift targets a
            layer without a bias.
        RuntimeError: ``model`` has a merged shift already, or is being edited now.
    """
    targets = check_shifts(model, shifts)
    if not shifts:
        raise ValueError("shifts is empty: nothing to merge")
    count = next(iter(shifts.values())).num_shifts
    position = as_integer(which)  # numpy ints and 0-d integer tensors count as ints
    if position is None or not 0 <= position < count:
        raise ValueError(
            f"which must be an int in [0, {count}) (the number of shifts), got {which!r}"
        )
    which = position
    if merged := _merged_layers(model):
        raise RuntimeError(
            f"the model has merged shifts already (at {[p for p, _ in merged][:4]}); "
            "call weditlib.unmerge(model) first"
        )
    state = current_state()
    if state is not None and any(id(m) in state.by_module for m, _, _ in targets.values()):
        raise RuntimeError("cannot merge inside an edit() block that edits this model")
    views = {name: targets[name][0]._weight_views(targets[name][1]) for name in shifts}
    for name, delta in shifts.items():
        if delta.bias is not None and views[name][1] is None:
            raise ValueError(
                f"shift {name!r} has a bias shift, but its layer has no bias to merge it into"
            )
    with torch.no_grad():
        for name, delta in shifts.items():
            module = targets[name][0]
            if module._merged is None:
                module._merged = {n: p.detach().clone() for n, p in module.named_parameters()}
            weight, bias = views[name]
            # a conv kernel's (n, k) values (maybe a copy)
            flat = weight.reshape(delta.out_features, delta.in_features)
            merged = delta.select([which]).edited(flat)[0]
            weight.copy_(merged.reshape(weight.shape))
            if delta.bias is not None:
                bias.add_(delta.bias[which].to(bias.dtype))


def unmerge(model: nn.Module) -> None:
    """Restore the weights :func:`merge` changed, bit for bit.

    Raises:
        RuntimeError: nothing is merged in ``model``.
    """
    merged = _merged_layers(model)
    if not merged:
        raise RuntimeError("nothing is merged in this model: call weditlib.merge first")
    with torch.no_grad():
        for _, module in merged:
            parameters = dict(module.named_parameters())
            for name, original in module._merged.items():
                parameters[name].copy_(original)
            module._merged = None
