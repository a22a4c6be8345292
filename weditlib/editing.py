"""Model surgery and the edit context.

* :func:`make_editable` swaps ``nn.Linear`` and ``nn.MultiheadAttention`` modules of any model for
  their editable subclasses, in place, selected by glob patterns over qualified names (like PEFT's
  ``target_modules``), and returns the editable weights (name → ``(n, k)``).
* :func:`edit` makes a mapping name → shift active for the forward passes inside a ``with``
  block; leaving it (normally or by an exception) restores the base model.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from weditlib.deltas import Delta, DenseDelta, Grouping, LowRankDelta
from weditlib.functional import check_index
from weditlib.layers import EditableLinear, EditableMixin, EditableMultiheadAttention


def _weight_name(module_path: str, local: str) -> str:
    if not local:
        return module_path
    return f"{module_path}.{local}" if module_path else local


def _attention_weight_names(module: nn.MultiheadAttention, split_in_proj: bool) -> list[str]:
    if isinstance(module, EditableMultiheadAttention):
        return list(module.editable_weights)
    projections = ["q_proj", "k_proj", "v_proj"] if split_in_proj else ["in_proj"]
    return [*projections, "out_proj"]


def _infer_batch_dim(parent: nn.Module) -> int:
    """Sample dim of a linear inside ``parent``: a sequence-first transformer layer uses 1."""
    attention = getattr(parent, "self_attn", None)
    if isinstance(attention, nn.MultiheadAttention) and not attention.batch_first:
        return 1
    return 0


def _selected(names: list[str], module_path: str, patterns: Sequence[str]) -> list[str]:
    """The weight names chosen by ``patterns`` (a pattern naming the module chooses them all)."""
    if any(fnmatch.fnmatchcase(module_path, p) for p in patterns):
        return names
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def make_editable(
    model: nn.Module,
    targets: Sequence[str],
    *,
    split_in_proj: bool = False,
    batch_dim: int | None = None,
) -> dict[str, tuple[int, int]]:
    """Make the weights of ``model`` named by ``targets`` editable, in place.

    Editable weight names: a linear layer at path ``p`` is ``"p"``; an attention layer at ``p``
    has ``"p.in_proj"`` (``(3·e, e)``) or, with ``split_in_proj``, ``"p.q_proj"``,
    ``"p.k_proj"``, ``"p.v_proj"``; and ``"p.out_proj"``. A pattern (``fnmatch`` glob, e.g.
    ``"layers.*.multihead_attn.in_proj"`` or ``"decoder.*"``) selects a weight when it matches
    the weight's name or the path of the module holding it.

    Args:
        model: any ``nn.Module``; modified in place (parameters are shared, never copied).
        targets: glob patterns; each must select at least one weight.
        split_in_proj: expose q, k, v projections of attention layers separately.
        batch_dim: sample dim of linear layers' inputs; ``None`` infers it (1 inside a
            sequence-first ``nn.Transformer*Layer``, else 0).

    Returns:
        every selected weight of the model after the call (this call's and earlier calls'),
        name → ``(n, k)``, in module order.

    Raises:
        TypeError: ``targets`` is a string instead of a sequence of patterns.
        ValueError: a pattern selects nothing (the message lists some available names).
    """
    if isinstance(targets, str):
        raise TypeError(f"targets must be a sequence of glob patterns, got the string {targets!r}")
    if not targets:
        raise ValueError("targets must name at least one pattern")
    patterns = list(targets)
    used = dict.fromkeys(patterns, False)
    available: list[str] = []
    swaps: list[tuple[str, nn.Module, list[str]]] = []
    inside_attention: set[str] = set()
    modules = dict(model.named_modules())
    for path, module in modules.items():
        if any(path.startswith(prefix + ".") for prefix in inside_attention):
            continue  # MHA applies its own out_proj; editing is done by the attention layer
        if isinstance(module, nn.MultiheadAttention):
            inside_attention.add(path)
            names = [_weight_name(path, n) for n in _attention_weight_names(module, split_in_proj)]
        elif isinstance(module, nn.Linear):
            names = [path]
        else:
            continue
        available.extend(names)
        hits = [p for p in patterns if _selected(names, path, [p])]
        used.update(dict.fromkeys(hits, True))
        chosen = _selected(names, path, hits)
        if chosen:
            swaps.append((path, module, [n[len(path) + 1 :] if path else n for n in chosen]))
    unused = [p for p, hit in used.items() if not hit]
    if unused:
        raise ValueError(
            f"targets {unused} select no linear or attention weight; available names include "
            f"{available[:12]}{' ...' if len(available) > 12 else ''}"
        )
    for path, module, locals_ in swaps:
        if isinstance(module, EditableMixin):  # already editable: extend its selection
            module.selected_weights += [n for n in locals_ if n not in module.selected_weights]
            continue
        if not path:
            raise ValueError("the model itself cannot be swapped; wrap it in a container module")
        parent_path, _, child = path.rpartition(".")
        parent = modules[parent_path]
        if isinstance(module, nn.MultiheadAttention):
            replacement: EditableMixin = EditableMultiheadAttention.from_module(
                module, split_in_proj
            )
        else:
            dim = _infer_batch_dim(parent) if batch_dim is None else batch_dim
            replacement = EditableLinear.from_module(module, batch_dim=dim)
        replacement.selected_weights = [n for n in replacement.editable_weights if n in locals_]
        setattr(parent, child, replacement)
    return {name: shape for name, (_, _, shape) in editable_modules(model).items()}


def editable_modules(model: nn.Module) -> dict[str, tuple[EditableMixin, str, tuple[int, int]]]:
    """Every selected editable weight of ``model``: name → ``(module, local name, (n, k))``."""
    found: dict[str, tuple[EditableMixin, str, tuple[int, int]]] = {}
    for path, module in model.named_modules():
        if isinstance(module, EditableMixin):
            for local in module.selected_weights:
                found[_weight_name(path, local)] = (module, local, module.editable_weights[local])
    return found


def _shift_count(shifts: Mapping[str, Delta]) -> int:
    counts = {name: delta.num_shifts for name, delta in shifts.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"all shifts must hold the same number l of shifts, got {counts}")
    return next(iter(counts.values()))


@contextlib.contextmanager
def edit(
    model: nn.Module, shifts: Mapping[str, Delta], index: Tensor | None = None
) -> Iterator[nn.Module]:
    """Run ``model`` with ``shifts`` applied inside the ``with`` block.

    Args:
        model: a model prepared by :func:`make_editable`.
        shifts: weight name → :class:`DenseDelta` / :class:`LowRankDelta` with ``l`` shifts each
            (e.g. the output of :class:`~weditlib.hyper.MultiBranchDeltaGenerator`).
        index: ``(b,)`` the shift of each sample of the batch the model will see; ``None``
            means ``l == b``. Its sorted grouping is computed once here and shared by all layers.

    Yields:
        ``model``. On exit, the previous state (usually the base model) is restored, even if the
        forward raised.

    Raises:
        KeyError: a name in ``shifts`` is not an editable weight of ``model``.
        ValueError: shifts disagree on ``l``, or a shift's shape does not match its weight.
    """
    targets = editable_modules(model)
    unknown = sorted(set(shifts) - set(targets))
    if unknown:
        raise KeyError(
            f"{unknown} are not editable weights of the model; editable: {sorted(targets)}"
        )
    for name, delta in shifts.items():
        if not isinstance(delta, DenseDelta | LowRankDelta):
            raise TypeError(f"shift {name!r} must be a DenseDelta or LowRankDelta")
    grouping = None
    if shifts:
        count = _shift_count(shifts)
        device = next(iter(shifts.values())).device
        checked = check_index(index, count, None)
        batch = count if checked is None else checked.shape[0]
        grouping = Grouping.from_index(checked, count, batch, device)
    touched = {id(targets[name][0]): targets[name][0] for name in shifts}
    saved = {key: module.active_shifts for key, module in touched.items()}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        for name, delta in shifts.items():
            module, local, _ = targets[name]
            module.set_shift(local, delta, grouping)
        # PyTorch's fused encoder fast path reads projection weights directly: switch it off so
        # it cannot bypass the edit.
        torch.backends.mha.set_fastpath_enabled(False)
        yield model
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for key, module in touched.items():
            module.clear_shifts()
            for local, (delta, old_grouping) in saved[key].items():
                module.set_shift(local, delta, old_grouping)


def edited_call(
    model: nn.Module,
    shifts: Mapping[str, Delta],
    *args: Any,
    index: Tensor | None = None,
    **kwargs: Any,
) -> Any:
    """Functional form of :func:`edit`: ``model(*args, **kwargs)`` with ``shifts`` applied."""
    with edit(model, shifts, index):
        return model(*args, **kwargs)
