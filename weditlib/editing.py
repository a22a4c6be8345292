"""Model surgery and the edit context.

* :func:`make_editable` swaps the editable layer types of any model (``nn.Linear``,
  ``nn.MultiheadAttention``, ``nn.Conv1d``, ``nn.Conv2d``, Hugging Face's ``Conv1D``, and whatever
  :func:`register_editable` adds) for their editable subclasses, in place, selected by glob
  patterns over qualified names (like PEFT's ``target_modules``), and returns the editable
  weights (name → ``(n, k)``).
* :func:`edit` makes a mapping name → shift active for the forward passes inside a ``with``
  block, for the calling thread / asyncio task only; leaving it (normally or by an exception)
  removes exactly those shifts.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from weditlib import edit_state, materialised
from weditlib.conv_layers import EditableConv1d, EditableConv2d
from weditlib.deltas import Grouping, check_grouping
from weditlib.layers import (
    EditableLinear,
    EditableMixin,
    EditableMultiheadAttention,
    check_batch_dim,
)
from weditlib.row_scaled import SHIFT_KIND_NAMES, SHIFT_KINDS, AnyShift

# ----------------------------------------------------------------------------- wrapping table


@dataclass(frozen=True)
class WrapOptions:
    """Options of one :func:`make_editable` call that a wrapper's ``from_module`` may take."""

    split_in_proj: bool
    batch_dim: int


def _one_weight(module: nn.Module, options: WrapOptions) -> list[str]:
    return [""]


def _attention_weights(module: nn.Module, options: WrapOptions) -> list[str]:
    projections = ["q_proj", "k_proj", "v_proj"] if options.split_in_proj else ["in_proj"]
    return [*projections, "out_proj"]


@dataclass(frozen=True)
class EditableEntry:
    """One row of the wrapping table: which modules a wrapper edits, and how to build it.

    Attributes:
        base: the module type to match (``isinstance``), or ``"package.module:Name"`` for a type
            of an optional package: matched only once that module is imported by someone else,
            so the table never imports it.
        editable: the wrapper type (a subclass of :class:`~weditlib.layers.EditableMixin` with a
            ``from_module(base, **options)`` classmethod), or ``"package.module:Name"`` imported
            when first needed.
        options: names of :class:`WrapOptions` fields passed to ``from_module`` as keywords.
        local_names: ``(base module, options) -> local weight names`` it will expose (``""`` is
            the module's own path).
        edits_children: the wrapper edits its submodules itself (attention's ``out_proj``), so
            they are not wrapped on their own.
    """

    base: type[nn.Module] | str
    editable: type[EditableMixin] | str
    options: tuple[str, ...] = ()
    local_names: Callable[[nn.Module, WrapOptions], list[str]] = _one_weight
    edits_children: bool = False

    def matches(self, module: nn.Module) -> bool:
        base = self.base
        if isinstance(base, str):
            module_name, _, type_name = base.partition(":")
            loaded = sys.modules.get(module_name)
            if loaded is None:
                return False
            base = getattr(loaded, type_name)
        return isinstance(module, base)

    def wrap(self, module: nn.Module, options: WrapOptions) -> EditableMixin:
        editable = self.editable
        if isinstance(editable, str):
            module_name, _, type_name = editable.partition(":")
            editable = getattr(importlib.import_module(module_name), type_name)
        kwargs = {name: getattr(options, name) for name in self.options}
        return editable.from_module(module, **kwargs)


_TABLE: list[EditableEntry] = [
    EditableEntry(nn.Linear, EditableLinear, options=("batch_dim",)),
    EditableEntry(
        nn.MultiheadAttention,
        EditableMultiheadAttention,
        options=("split_in_proj",),
        local_names=_attention_weights,
        edits_children=True,
    ),
    EditableEntry(nn.Conv1d, EditableConv1d),
    EditableEntry(nn.Conv2d, EditableConv2d),
    EditableEntry(
        "transformers.pytorch_utils:Conv1D",
        "weditlib.layers_hf:EditableConv1D",
        options=("batch_dim",),
    ),
]


def register_editable(entry: EditableEntry) -> None:
    """Add a row to the wrapping table; it is tried before the built-in rows (first match wins).

    Example: ``register_editable(EditableEntry(MyLinear, EditableMyLinear))``.
    """
    _TABLE.insert(0, entry)


def _entry_for(module: nn.Module) -> EditableEntry | None:
    return next((entry for entry in _TABLE if entry.matches(module)), None)


# ----------------------------------------------------------------------------- batch dims

_TORCH_TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


class _BatchDims:
    """The sample dim of each wrapped layer that takes one: explicit, or inferred when certain."""

    def __init__(self, batch_dim: int | Mapping[str, int] | None, model: nn.Module) -> None:
        if isinstance(batch_dim, Mapping):
            for pattern, dim in batch_dim.items():
                check_batch_dim(dim, f"batch_dim[{pattern!r}]", _BATCH_DIM_FORMS)
        elif batch_dim is not None:
            check_batch_dim(batch_dim, "batch_dim", _BATCH_DIM_FORMS)
        self.explicit = batch_dim
        self.used: dict[str, bool] = (
            dict.fromkeys(batch_dim, False) if isinstance(batch_dim, Mapping) else {}
        )
        self.ambiguous = _sequence_first_attention(model)

    def given(self, paths: list[str]) -> int | None:
        """The dim ``batch_dim=`` gives the layer at ``paths``, if any."""
        if isinstance(self.explicit, int):
            return self.explicit
        if isinstance(self.explicit, Mapping):
            for pattern, dim in self.explicit.items():
                if any(fnmatch.fnmatchcase(p, pattern) for p in paths):
                    self.used[pattern] = True
                    return dim
        return None

    def resolve(self, paths: list[str], parents: list[nn.Module]) -> int:
        given = self.given(paths)
        if given is not None:
            return given
        places = zip(parents, paths, strict=True)
        inferred = {_inferred_batch_dim(parent, self.ambiguous, path) for parent, path in places}
        if len(inferred) > 1:
            raise ValueError(
                f"the layer at {paths} is used in layers with different batch dims; "
                "pass batch_dim={pattern: dim} for it"
            )
        return inferred.pop()

    def check_all_used(self) -> None:
        unused = [p for p, hit in self.used.items() if not hit]
        if unused:
            raise ValueError(f"batch_dim patterns {unused} match no layer being made editable")


#: What ``make_editable``'s ``batch_dim`` may be, for its errors.
_BATCH_DIM_FORMS = "an int (batch_dim may also be a mapping glob pattern → int, or None)"


def _sequence_first_attention(model: nn.Module) -> str | None:
    """Path of a sequence-first attention outside torch's Transformer layers, if any."""
    for path, module in model.named_modules():
        if isinstance(module, _TORCH_TRANSFORMER_LAYERS):
            continue
        for name, child in module.named_children():
            if isinstance(child, nn.MultiheadAttention) and not child.batch_first:
                return f"{path}.{name}" if path else name
    return None


def _inferred_batch_dim(parent: nn.Module, ambiguous: str | None, path: str) -> int:
    """1 inside a sequence-first torch Transformer layer, 0 where no layer is sequence first."""
    if isinstance(parent, _TORCH_TRANSFORMER_LAYERS):
        return 0 if parent.self_attn.batch_first else 1
    if ambiguous is not None:
        raise ValueError(
            f"cannot tell the batch dim of the layer at {path!r}: the model has a sequence-first "
            f"attention ({ambiguous!r}), so its inputs may be (t, b, k). Pass batch_dim= (an int, "
            "or {pattern: dim} per layer)"
        )
    return 0


# ----------------------------------------------------------------------------- surgery


def _weight_name(module_path: str, local: str) -> str:
    if not local:
        return module_path
    return f"{module_path}.{local}" if module_path else local


@dataclass
class _Candidate:
    """A module that can be made editable, with every place it is used at."""

    module: nn.Module
    entry: EditableEntry | None  # None: already editable
    paths: list[str]


def _candidates(model: nn.Module) -> list[_Candidate]:
    """Every wrappable module once (by identity), with all its paths, in module order."""
    found: dict[int, _Candidate] = {}
    edited_inside: list[str] = []
    for path, module in model.named_modules(remove_duplicate=False):
        if any(path.startswith(prefix + ".") for prefix in edited_inside):
            continue
        entry = _entry_for(module)  # an editable layer matches its base type's row
        editable = isinstance(module, EditableMixin)
        if entry is None and not editable:
            continue
        if entry is not None and entry.edits_children:
            edited_inside.append(path)
        if id(module) in found:
            found[id(module)].paths.append(path)
        else:
            found[id(module)] = _Candidate(module, None if editable else entry, [path])
    return list(found.values())


def _selected(candidate: _Candidate, locals_: list[str], pattern: str) -> list[str]:
    """The local weights ``pattern`` chooses (a pattern naming the module chooses them all)."""
    if any(fnmatch.fnmatchcase(p, pattern) for p in candidate.paths):
        return locals_
    return [
        local
        for local in locals_
        if any(fnmatch.fnmatchcase(_weight_name(p, local), pattern) for p in candidate.paths)
    ]


def make_editable(
    model: nn.Module,
    targets: Sequence[str],
    *,
    split_in_proj: bool = False,
    batch_dim: int | Mapping[str, int] | None = None,
) -> dict[str, tuple[int, int]]:
    """Make the weights of ``model`` named by ``targets`` editable, in place.

    Editable weight names: a linear layer (or HF ``Conv1D``, or conv layer) at path ``p`` is
    ``"p"``; an attention layer at ``p`` has ``"p.in_proj"`` (``(3·e, e)``) or, with
    ``split_in_proj``, ``"p.q_proj"``, ``"p.k_proj"``, ``"p.v_proj"``; and ``"p.out_proj"``. A
    pattern (``fnmatch`` glob, e.g. ``"layers.*.multihead_attn.in_proj"`` or ``"decoder.*"``)
    selects a weight when it matches the weight's name or the path of the module holding it. A
    module used at several places is swapped at every place; its weight is named after the first.

    Args:
        model: any ``nn.Module``; modified in place (parameters are shared, never copied).
        targets: glob patterns; each must select at least one weight.
        split_in_proj: expose q, k, v projections of attention layers separately.
        batch_dim: sample dim of the inputs of linear-like layers (attention layers follow their
            ``batch_first``). An int for all of them, or a mapping glob pattern (over module
            paths) → dim, first match wins. ``None`` (or no matching pattern) infers it: 1 for the
            linears of a sequence-first ``nn.Transformer*Layer``, 0 otherwise — unless the model
            holds another sequence-first ``nn.MultiheadAttention``, where guessing could be silently
            wrong, and this raises instead.

    Returns:
        every selected weight of the model after the call (this call's and earlier calls'),
            name → ``(n, k)``, in module order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``targets`` is a string instead of a
            sequence of patterns or holds a non-string, or ``batch_dim`` has the wrong type.
        ValueError: a pattern selects nothing (the message lists some available names), a
            ``batch_dim`` pattern matches no wrapped layer, or the batch dim cannot be inferred.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(targets, str):
        raise TypeError(f"targets must be a sequence of glob patterns, got the string {targets!r}")
    if not targets:
        raise ValueError("targets must name at least one pattern")
    patterns = list(targets)
    not_str = [p for p in patterns if not isinstance(p, str)]
    if not_str:  # fnmatch would fail on them deep inside, or match nothing
        raise TypeError(f"targets must be glob pattern strings, got {not_str!r}")
    used = dict.fromkeys(patterns, False)
    available: list[str] = []
    chosen: list[tuple[_Candidate, list[str]]] = []
    for candidate in _candidates(model):
        module = candidate.module
        if candidate.entry is None:
            locals_ = list(module.editable_weights)
        else:
            locals_ = candidate.entry.local_names(module, WrapOptions(split_in_proj, 0))
        available.extend(_weight_name(candidate.paths[0], local) for local in locals_)
        picked: set[str] = set()
        for pattern in patterns:
            hits = _selected(candidate, locals_, pattern)
            used[pattern] = used[pattern] or bool(hits)
            picked.update(hits)
        if picked:
            chosen.append((candidate, [n for n in locals_ if n in picked]))
    unused = [p for p, hit in used.items() if not hit]
    if unused:
        raise ValueError(
            f"targets {unused} select no editable weight{_not_editable(model, unused)}; "
            f"available names include {available[:12]}{' ...' if len(available) > 12 else ''}"
        )
    # build (and so validate) every replacement before the model is changed at all
    dims = _BatchDims(batch_dim, model)
    replacements = [(c, _replacement(model, c, split_in_proj, dims), s) for c, s in chosen]
    dims.check_all_used()
    for candidate, replacement, selected in replacements:
        extra = [n for n in selected if n not in replacement.selected_weights]
        replacement.selected_weights += extra
        for path in candidate.paths:
            parent_path, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent_path), child, replacement)
    return {name: shape for name, (_, _, shape) in editable_modules(model).items()}


def _not_editable(model: nn.Module, patterns: list[str]) -> str:
    """What ``patterns`` name instead of an editable layer: e.g. ``" ('norm' is a LayerNorm,
    which make_editable cannot edit: it edits nn.Linear, ...)"``, or ``""``."""
    named = [
        f"{path!r} is of type {type(module).__name__}"
        for path, module in model.named_modules()
        if path and any(fnmatch.fnmatchcase(path, p) for p in patterns)
    ]
    if not named:
        return ""
    kinds = [
        f"{e.base.rpartition(':')[2]} ({e.base.partition('.')[0]})"
        if isinstance(e.base, str)
        else e.base.__name__
        for e in _TABLE
    ]
    more = " ..." if len(named) > 3 else ""
    return (
        f" ({', '.join(named[:3])}{more}, which make_editable cannot edit: it edits "
        f"{', '.join(kinds)} and types added by register_editable)"
    )


def _replacement(
    model: nn.Module, candidate: _Candidate, split_in_proj: bool, dims: _BatchDims
) -> EditableMixin:
    """The editable module for ``candidate``'s places, with nothing selected if it is new."""
    module = candidate.module
    if candidate.entry is None:  # already editable: its selection will be extended
        given = dims.given(candidate.paths) if hasattr(module, "batch_dim") else None
        if given is not None and given != module.batch_dim:
            raise ValueError(
                f"the layer at {candidate.paths[0]!r} is editable already with "
                f"batch_dim={module.batch_dim}; batch_dim= asks for {given}"
            )
        return module
    if "" in candidate.paths:
        raise ValueError("the model itself cannot be swapped; wrap it in a container module")
    dim = 0
    if "batch_dim" in candidate.entry.options:
        parents = [model.get_submodule(p.rpartition(".")[0]) for p in candidate.paths]
        dim = dims.resolve(candidate.paths, parents)
    replacement = candidate.entry.wrap(module, WrapOptions(split_in_proj, dim))
    replacement.selected_weights = []
    return replacement


_Targets = dict[str, tuple[EditableMixin, str, tuple[int, int]]]


def editable_modules(model: nn.Module) -> _Targets:
    """Every selected editable weight of ``model``: name → ``(module, local name, (n, k))``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return _walk(model)[0]


def _walk(model: nn.Module) -> tuple[_Targets, list[str]]:
    """``(editable_modules(model), paths of the layers that hold a merged shift)``."""
    found: _Targets = {}
    merged = []
    for path, module in model.named_modules():
        if isinstance(module, EditableMixin):  # only editable layers merge (see merging.py)
            if module._merged:
                merged.append(path)
            for local in module.selected_weights:
                found[_weight_name(path, local)] = (module, local, module.editable_weights[local])
    return found, merged


# ----------------------------------------------------------------------------- the edit context


class _FastPathSwitch:
    """Keeps PyTorch's fused Transformer fast path off while any edit is open in any thread.

    The fast path reads projection weights directly and would bypass an edit. The switch is
    process-wide, so it is counted: the user's setting comes back when the last edit closes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._saved = True

    def acquire(self) -> None:
        with self._lock:
            if self._open == 0:
                self._saved = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
            self._open += 1

    def release(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                torch.backends.mha.set_fastpath_enabled(self._saved)


_FAST_PATH = _FastPathSwitch()


def _shift_count(shifts: Mapping[str, AnyShift]) -> int:
    counts = {name: delta.num_shifts for name, delta in shifts.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"all shifts must hold the same number l of shifts, got {counts}")
    return next(iter(counts.values()))


def check_shifts(model: nn.Module, shifts: Mapping[str, AnyShift]) -> _Targets:
    """Validate ``shifts`` against the editable weights of ``model``; returns those weights.

    Raises:
        KeyError: a name is not an editable weight of ``model``.
        TypeError: ``shifts`` is not a mapping, or a value is not a shift.
        ValueError: a shift edits a weight of another shape, or shifts disagree on ``l``.
    """
    return _checked_targets(shifts, editable_modules(model))


def _checked_targets(
    shifts: Mapping[str, AnyShift | materialised.EditedWeights],
    targets: _Targets,
    built: bool = False,
) -> _Targets:
    """``targets`` once every shift in ``shifts`` is checked against them (see check_shifts);
    ``built`` also accepts :class:`~weditlib.EditedWeights` s of the targets' own weights."""
    if not isinstance(shifts, Mapping):  # a list of shifts would be read as names below
        raise TypeError(
            f"shifts must be a mapping weight name → shift, got {type(shifts).__name__}"
        )
    unknown = sorted(set(shifts) - set(targets))
    if unknown:
        raise KeyError(
            f"{unknown} are not editable weights of the model; editable: {sorted(targets)}"
        )
    kinds: tuple[type, ...] = SHIFT_KINDS
    allowed = f"a {SHIFT_KIND_NAMES}"
    if built:
        kinds, allowed = (*kinds, materialised.EditedWeights), f"{allowed} or EditedWeights"
    for name, delta in shifts.items():
        if not isinstance(delta, kinds):
            raise TypeError(f"shift {name!r} must be {allowed}, got {type(delta).__name__}")
        expected = targets[name][2]
        got = (delta.out_features, delta.in_features)
        if got != expected:
            raise ValueError(f"shift {name!r} edits a {got} weight, expected {expected}")
        if isinstance(delta, materialised.EditedWeights):
            delta.check_base(_base_weight(targets[name]))  # built from this weight, unchanged
    if shifts:
        _shift_count(shifts)
    return targets


def _base_weight(target: tuple[EditableMixin, str, tuple[int, int]]) -> Tensor:
    """The ``(n, k)`` base weight (a view of the parameter; a conv's kernel itself) of an
    :func:`editable_modules` entry ``(module, local name, (n, k))``."""
    module, local, _ = target
    return module._weight_views(local)[0]


def _block_grouping(
    shifts: Mapping[str, AnyShift], index: Tensor | None, grouping: Grouping | None
) -> Grouping:
    """The grouping every layer of an ``edit()`` block shares: ``grouping``, or ``index``'s."""
    count = _shift_count(shifts)
    device = next(iter(shifts.values())).device
    if grouping is None:
        return Grouping.from_index(index, count, None, device)
    if index is not None:
        raise ValueError("pass index or its grouping to edit(), not both")
    check_grouping(grouping, None, count, device, device_of="the shifts are")  # any batch size
    return grouping


def _edit_targets(model: nn.Module) -> _Targets:
    """:func:`editable_modules` of a model that has no merged shift, in one walk.

    Raises:
        RuntimeError: a layer of ``model`` has a merged shift.
    """
    found, merged = _walk(model)
    if merged:
        raise RuntimeError(
            f"the model has merged shifts (at {merged[:4]}); call weditlib.unmerge(model) "
            "before edit()"
        )
    return found


def edit(
    model: nn.Module,
    shifts: Mapping[str, AnyShift],
    index: Tensor | None = None,
    *,
    grouping: Grouping | None = None,
    materialise: bool = False,
) -> contextlib.AbstractContextManager[nn.Module]:
    """Run ``model`` with ``shifts`` applied inside the ``with`` block.

    The shifts are active for the thread / asyncio task that entered the block, and only for the
    modules of ``model`` (a copy made inside the block is not edited). Blocks nest; an inner
    block's shift for a weight overrides the outer one's. Leaving a block removes exactly its
    shifts, whatever order blocks are left in.

    Args:
        model: a model prepared by :func:`make_editable`.
        shifts: weight name → shift (:class:`~weditlib.DenseShift`,
            :class:`~weditlib.LowRankShift`, :class:`~weditlib.RowScaledShift`) with ``l``
            shifts each (e.g. the output of :class:`~weditlib.hyper.MultiBranchShiftGenerator`), or
            :class:`~weditlib.EditedWeights` s that :func:`materialise_shifts` built for this
            model's weights (edited weights reused across blocks, whatever ``materialise`` says).
        index: ``(b,)`` the shift of each sample of the batch the model will see; ``None``
            means ``l == b``. Its sorted grouping is computed once here and shared by all layers.
        grouping: the :class:`~weditlib.deltas.Grouping` of the index, built beforehand with
            ``Grouping.from_index`` (instead of ``index``): a block entered many times with the
            same index skips validating and sorting it (and its host synchronisation) each time.
        materialise: build ``W ⊕ ΔW`` of every edited weight once, here, and run each edited
            call inside the block as one product on it (a plain ``F.linear`` / ``F.conv*`` when
            ``l == 1``; see :func:`weditlib.materialise`): for loops that call the model many
            times under the same shifts, such as a sampler's steps. Holds ``l·n·k`` values per
            edited weight while the block is open. A call after a base weight changed in place
            inside the block raises ``RuntimeError``; with autograd, one backward pass per block.
            To build them once for many blocks (a sampler's windows), pass the shifts through
            :func:`materialise_shifts` first.

    Returns:
        A context manager for one ``with`` block; entering it returns ``model``.

    Raises:
        KeyError: a name in ``shifts`` is not an editable weight of ``model``.
        TypeError: ``shifts`` is not a mapping, or a shift is not a DenseShift / LowRankShift /
            RowScaledShift / EditedWeights.
        ValueError: shifts disagree on ``l``, or a shift's shape does not match its weight, or
            both ``index`` and ``grouping`` are given, or ``grouping`` is for another ``l`` or
            device than the shifts.
        RuntimeError: ``model`` has a merged shift (see :func:`weditlib.merge`), or the block is
            left in another thread / asyncio task than the one that entered it, or a
            ``EditedWeights`` was built from another weight or one changed since.
    """
    return _EditBlock(model, shifts, index, grouping, materialise)


class _EditBlock(contextlib.AbstractContextManager):
    """The context :func:`edit` returns: checks and opens its scope on entry, once.

    A class rather than a generator so that an exit attempted from another thread / asyncio
    task raises there and leaves the block open for the context that entered it to close.
    """

    def __init__(
        self,
        model: nn.Module,
        shifts: Mapping[str, AnyShift],
        index: Tensor | None,
        grouping: Grouping | None,
        materialise: bool,
    ) -> None:
        self._arguments = (model, shifts, index, grouping, materialise)
        self._scope: edit_state.EditScope | None = None

    def __enter__(self) -> nn.Module:
        if self._scope is not None:
            raise RuntimeError("this edit() block was entered already; call edit() for a new one")
        model, shifts, index, grouping, materialise = self._arguments
        scope = _scope_of(model, shifts, index, grouping, materialise)
        _FAST_PATH.acquire()
        try:
            edit_state.open_scope(scope)
        except BaseException:
            _FAST_PATH.release()
            raise
        self._scope = scope
        return model

    def __exit__(self, *exc_info: object) -> None:
        if self._scope is None:
            raise RuntimeError("this edit() block was never entered")
        edit_state.close_scope(self._scope)  # raises in another context: the block stays open
        _FAST_PATH.release()


def _scope_of(
    model: nn.Module,
    shifts: Mapping[str, AnyShift],
    index: Tensor | None,
    grouping: Grouping | None,
    materialise: bool,
) -> edit_state.EditScope:
    """The validated scope of an ``edit()`` block: module → local weight → (shift, grouping)."""
    targets = _checked_targets(shifts, _edit_targets(model), built=True)
    if shifts:
        grouping = _block_grouping(shifts, index, grouping)
    by_module: dict[nn.Module, dict[str, edit_state.ActiveShift]] = {}
    for name, delta in shifts.items():
        module, local, _ = targets[name]
        if materialise and not isinstance(delta, materialised.EditedWeights):
            delta = materialised.materialise(_base_weight(targets[name]), delta)
        by_module.setdefault(module, {})[local] = (delta, grouping)
    return edit_state.EditScope(by_module)


def materialise_shifts(
    model: nn.Module, shifts: Mapping[str, AnyShift]
) -> dict[str, materialised.EditedWeights]:
    """Build ``W ⊕ ΔW`` of every weight ``shifts`` edit, once, for many :func:`edit` blocks.

    ``edit(model, shifts, materialise=True)`` builds the edited weights when its block opens; a
    loop of blocks under the same shifts (the windows of a streaming sampler, each with its own
    ``edit()``) builds them once here instead and passes the result to each block. Each is
    :func:`weditlib.materialise` of the model's weight: the same outputs, the same snapshot rule
    (a block opened or a call made after that weight changed in place raises ``RuntimeError``).
    Build under ``torch.no_grad()`` for inference: with autograd the built weights serve one
    backward pass.

    Args:
        model: a model prepared by :func:`make_editable`, without merged shifts.
        shifts: weight name → shift with ``l`` shifts each (any kind).

    Returns:
        weight name → :class:`~weditlib.EditedWeights` ``(l, n, k)``, for :func:`edit`.

    Raises:
        KeyError, TypeError, ValueError: as :func:`edit` for the shifts.
        RuntimeError: ``model`` has a merged shift.
    """
    targets = _checked_targets(shifts, _edit_targets(model))
    return {
        name: materialised.materialise(_base_weight(targets[name]), delta)
        for name, delta in shifts.items()
    }


def edited_call(
    model: nn.Module,
    shifts: Mapping[str, AnyShift],
    *args: Any,
    index: Tensor | None = None,
    **kwargs: Any,
) -> Any:
    """Functional form of :func:`edit`: ``model(*args, **kwargs)`` with ``shifts`` applied."""
    with edit(model, shifts, index):
        return model(*args, **kwargs)
