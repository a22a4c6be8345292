"""N PEFT LoRA adapters of one model, served and trained in one mixed batch.

PEFT adds ``scaling · B (A x)`` to a layer's output, i.e. shifts its weight by
``ΔW = scaling · B @ A``: a low-rank shift (with ``lora_bias=True`` it also adds
``scaling · b_B``, a bias shift). :class:`LoraAdapters` keeps each adapter's factors as
parameters in PEFT's shapes and, for a batch where every sample names its adapter, stacks them
into one :class:`~weditlib.LowRankShift` per targeted layer (``up = scaling · B``, ``down = A``,
``bias = scaling · b_B``) with an index. A forward pass inside :meth:`LoraAdapters.edit` then
runs every sample with its adapter in one pass, with autograd to every adapter's factors.

A DoRA adapter (``use_dora=True``) edits the weight into ``m ⊙ (W + ΔW) / ‖W + ΔW‖`` (norm per
output row, detached as PEFT detaches it): where a batch holds one, the layer's stacked shift is a
:class:`~weditlib.RowScaledShift` of that low-rank shift with ``scale = m / ‖W + ΔW‖`` for DoRA
slots and ``1`` for the others (see :mod:`weditlib.peft.dora` for how the norms are computed
without building ``W + ΔW``). LoRA and DoRA adapters mix freely in one batch.

Exactness of the stacking:

* adapters of different ranks are zero-padded to the largest rank (zero columns of ``B`` times
  zero rows of ``A`` add exact zeros);
* a sample with no adapter (``None`` or PEFT's ``"__base__"``), and an adapter that does not
  target a layer (or has no LoRA bias where another has), use an all-zero shift there. Where
  the planner runs the low-rank algorithm (``x Wᵀ + b + (x Aᵀ)(s B)ᵀ``, PEFT's own arithmetic)
  that is the base output plus exact zeros, bit for bit; where it materialises ``W + ΔW`` it
  equals the base output to float rounding.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weditlib.deltas import Grouping, LowRankShift
from weditlib.editing import edit, editable_modules, make_editable
from weditlib.layers import EditableMixin
from weditlib.peft.config import LoraSettings
from weditlib.peft.dora import row_norms
from weditlib.peft.files import (
    Factors,
    read_adapter_dir,
    split_base_tensors,
    split_state_dict,
    write_adapter_dir,
)
from weditlib.peft.layouts import check_factors
from weditlib.row_scaled import RowScaledShift

#: PEFT's name for "no adapter" in ``adapter_names``; ``None`` means the same.
BASE = "__base__"

AdapterSource = str | os.PathLike | tuple[Any, Mapping[str, Tensor]]


class ModuleFactors(NamedTuple):
    """One adapter's factors for one module, flattened to the layer's ``(n, k)`` weight.

    Attributes:
        down: ``(r, k)`` ``lora_A``.
        up: ``(n, r)`` ``lora_B`` (unscaled).
        scaling: PEFT's ``scaling``.
        bias: ``(n,)`` ``lora_B``'s bias, or ``None``.
        magnitude: ``(n,)`` DoRA's magnitude ``m``, or ``None`` for a plain LoRA adapter.
    """

    down: Tensor
    up: Tensor
    scaling: float
    bias: Tensor | None
    magnitude: Tensor | None


class LoraAdapter(nn.Module):
    """One PEFT LoRA adapter: its config and, per targeted module, ``lora_A`` and ``lora_B``.

    Parameters keep PEFT's shapes (linear: ``lora_A (r, k)``, ``lora_B (n, r)``; conv:
    ``lora_A (r, in, *kernel)``, ``lora_B (out, r, 1, ...)``; ``lora_bias (n,)``, see
    :mod:`weditlib.peft.layouts`) and their own dtype, as PEFT keeps them (a float32 adapter
    on a bfloat16 model stays float32 and is applied in float32), on the device of the base
    weight they edit, so that saving writes back what was read, bit for bit.

    Attributes:
        name: the adapter's name.
        settings: its :class:`~weditlib.peft.config.LoraSettings`.
        module_paths: paths of the modules it targets, in state-dict order.
        lora_A: one parameter per module, in ``module_paths`` order.
        lora_B: one parameter per module, in ``module_paths`` order.
        lora_bias: ``lora_B``'s bias per module in ``module_paths`` order when the adapter was
            trained with ``lora_bias=True``, else empty.
        lora_magnitude_vector: DoRA's magnitude per module in ``module_paths`` order when the
            adapter is DoRA (``use_dora=True``), else empty.
    """

    def __init__(
        self,
        name: str,
        settings: LoraSettings,
        factors: Sequence[Factors],
        base_tensors: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        # base model tensors PEFT saved beside the factors (save_embedding_layers), equal to the
        # model's: written back unchanged, never applied
        self._base_tensors = dict(base_tensors or {})
        self.name = name
        self.settings = settings
        self.module_paths = tuple(f.module for f in factors)
        self.lora_A = nn.ParameterList(nn.Parameter(f.lora_a) for f in factors)
        self.lora_B = nn.ParameterList(nn.Parameter(f.lora_b) for f in factors)
        biases = [f.lora_bias for f in factors if f.lora_bias is not None]
        if biases and len(biases) != len(factors):
            raise ValueError(f"adapter {name!r}: some modules have a lora_B bias, others not")
        self.lora_bias = nn.ParameterList(nn.Parameter(bias) for bias in biases)
        magnitudes = [f.magnitude for f in factors if f.magnitude is not None]
        if magnitudes and len(magnitudes) != len(factors):
            raise ValueError(f"adapter {name!r}: some modules have a DoRA magnitude, others not")
        self.lora_magnitude_vector = nn.ParameterList(nn.Parameter(m) for m in magnitudes)
        self._keys = tuple((f.key_a, f.key_b, f.key_bias, f.key_magnitude) for f in factors)
        self._position = {module: i for i, module in enumerate(self.module_paths)}
        self._scaling = tuple(settings.scaling(module) for module in self.module_paths)

    def factors(self, module: str) -> ModuleFactors | None:
        """The factors of ``module`` flattened to its ``(n, k)`` weight, or ``None`` if not
        targeted."""
        position = self._position.get(module)
        if position is None:
            return None
        down = self.lora_A[position].flatten(1)
        bias = self.lora_bias[position] if len(self.lora_bias) else None
        magnitude = None
        if len(self.lora_magnitude_vector):
            magnitude = self.lora_magnitude_vector[position].flatten()
        up = self.lora_B[position].flatten(1)
        return ModuleFactors(down, up, self._scaling[position], bias, magnitude)

    def peft_state_dict(self) -> dict[str, Tensor]:
        """The factors under PEFT's state-dict keys (as read), detached."""
        state = {}
        for position, (key_a, key_b, key_bias, key_magnitude) in enumerate(self._keys):
            state[key_a] = self.lora_A[position].detach()
            state[key_b] = self.lora_B[position].detach()
            if key_bias is not None:
                state[key_bias] = self.lora_bias[position].detach()
            if key_magnitude is not None:
                state[key_magnitude] = self.lora_magnitude_vector[position].detach()
        state.update(self._base_tensors)
        return state

    def extra_repr(self) -> str:
        return f"name={self.name!r}, modules={len(self.module_paths)}"


_version = operator.attrgetter("_version")  # a tensor's in-place update counter


def _as_pattern(path: str) -> str:
    """An ``fnmatch`` pattern matching exactly ``path``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def _stack(
    parts: Sequence[ModuleFactors | None], shape: tuple[int, int], weight: Callable[[], Tensor]
) -> LowRankShift | RowScaledShift:
    """One shift per slot from each slot's factors, or ``None`` (all zero).

    Ranks are zero-padded to the largest; ``up = scaling · B``; the bias shift is
    ``scaling · bias`` (zero for a slot without one), present only if some slot has a bias.
    When some slot is DoRA, the low-rank shift is wrapped in a :class:`RowScaledShift` whose
    scale is that slot's ``m / ‖W + ΔW‖`` (``weight()`` gives the base ``W``) and ``1`` for the
    other slots.
    """
    present = [part for part in parts if part is not None]
    rank = max(part.down.shape[0] for part in present)
    dtype = present[0].down.dtype
    for part in present[1:]:  # adapters of different dtypes stack in the widest of them
        dtype = torch.promote_types(dtype, part.down.dtype)
    like = present[0].down.new_empty((), dtype=dtype)
    has_bias = any(part.bias is not None for part in present)
    zero_bias = like.new_zeros(shape[0]) if has_bias else None
    downs, ups, biases, scalings = [], [], [], []
    for part in parts:
        if part is None:
            downs.append(like.new_zeros(rank, shape[1]))
            ups.append(like.new_zeros(shape[0], rank))
            biases.append(zero_bias)
            scalings.append(0.0)
            continue
        missing = rank - part.down.shape[0]
        down, up = part.down.to(dtype), part.up.to(dtype)
        downs.append(F.pad(down, (0, 0, 0, missing)) if missing else down)
        ups.append(F.pad(up, (0, missing)) if missing else up)
        biases.append(zero_bias if part.bias is None else part.bias.to(dtype))
        scalings.append(part.scaling)
    scale = torch.tensor(scalings, dtype=like.dtype, device=like.device).view(-1, 1, 1)
    bias = torch.stack(biases) * scale[:, :, 0] if has_bias else None
    # up is stored (l, r, n) and viewed as (l, n, r): the expand product x_r Uᵀ then reads a
    # contiguous right operand.
    up_t = torch.stack([up.t() for up in ups]) * scale
    delta = LowRankShift(up_t.transpose(1, 2), torch.stack(downs), bias=bias)
    dora = [i for i, part in enumerate(parts) if part is not None and part.magnitude is not None]
    if not dora:
        return delta
    magnitudes = torch.stack([parts[i].magnitude.to(dtype) for i in dora])  # type: ignore[union-attr]
    return RowScaledShift(delta, _dora_scale(delta, dora, magnitudes, weight()))


def _dora_scale(delta: LowRankShift, dora: list[int], magnitudes: Tensor, weight: Tensor) -> Tensor:
    """``(l, n)``: ``m / ‖W + ΔW‖`` (the norm detached) for the DoRA slots ``dora``, ``1`` for
    the others.

    Args:
        delta: the stacked shifts ``(l, n, r) @ (l, r, k)``.
        dora: the DoRA slots, increasing.
        magnitudes: ``(len(dora), n)`` their magnitudes ``m``.
        weight: the base weight (a conv's kernel is flattened to ``(n, k)``); the norms are
            taken in the shift's dtype, as PEFT takes them in its adapter's.
    """
    slots = torch.tensor(dora, device=delta.device)
    flat = weight.detach().reshape(delta.out_features, delta.in_features).to(delta.dtype)
    norms = row_norms(flat, delta.up[slots], delta.down[slots])  # (len(dora), n)
    ones = magnitudes.new_ones(delta.num_shifts, delta.out_features)
    return ones.index_copy(0, slots, magnitudes / norms)


class LoraAdapters(nn.Module):
    """PEFT LoRA adapters of one model, applied per sample as stacked low-rank shifts.

    Build it with :meth:`load`; run or train a mixed batch inside :meth:`edit`; write the
    adapters back in PEFT's format with :meth:`save_pretrained`. Its parameters are every
    adapter's ``lora_A`` and ``lora_B`` (the base model's are not among them).

    Like ``PeftModel.from_pretrained``, :meth:`load` returns the adapters in eval mode; call
    ``.train()`` before training.

    Args:
        ignore_lora_dropout: train adapters whose config has ``lora_dropout > 0`` without
            dropout. Otherwise that raises in training mode: PEFT drops the LoRA branch's input
            only, which a weight shift cannot express.
    """

    def __init__(self, *, ignore_lora_dropout: bool = False) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.ignore_lora_dropout = ignore_lora_dropout
        self._targets: dict[str, tuple[int, int]] = {}
        # The last stacking done without autograd, reused while the batch's adapter names and
        # every factor's storage and version (bumped by in-place updates) are unchanged.
        self._reusable: tuple[tuple, dict[str, LowRankShift], Grouping] | None = None
        self._factors: tuple[nn.Parameter, ...] = ()  # every lora_A and lora_B, kept by add_adapter
        # the editable layer of each target (a plain dict: not submodules): DoRA reads its weight
        self._layers: dict[str, EditableMixin] = {}
        self._dora = False  # some adapter is DoRA: stackings depend on the base weights too

    @classmethod
    def load(
        cls,
        model: nn.Module,
        sources: Mapping[str, AdapterSource],
        *,
        ignore_lora_dropout: bool = False,
    ) -> LoraAdapters:
        """Load PEFT LoRA adapters for ``model`` and make their target layers editable.

        Args:
            model: the base model the adapters were trained on (not wrapped by PEFT); its
                targeted layers are swapped in place by :func:`~weditlib.make_editable` (call
                it yourself first to choose ``batch_dim``).
            sources: adapter name → a directory written by ``save_pretrained``, or a pair
                ``(config, state_dict)``: a ``peft.LoraConfig`` or its dict, and the adapter's
                state dict as ``peft.get_peft_model_state_dict`` returns it.
            ignore_lora_dropout: see the class.

        Returns:
            the adapters, in eval mode, on the device of the weights they edit, each factor
                in the dtype it was saved in.

        Raises:
            ValueError: no source, a bad adapter name, a config this cannot apply, a module the
                model does not have, a conv geometry PEFT's conv LoRA does not follow, or
                factors whose shapes do not fit the layer (each message names the adapter, the
                module and both shapes).
            TypeError: a source of the wrong type, or a targeted module of a type LoRA does not
                load onto (see :mod:`weditlib.peft.layouts`).
            FileNotFoundError: a directory without ``adapter_config.json`` or weights.
        """
        if not sources:
            raise ValueError("sources must name at least one adapter")
        adapters = cls(ignore_lora_dropout=ignore_lora_dropout)
        for name, source in sources.items():
            adapters.add_adapter(model, name, source)
        return adapters.eval()

    def add_adapter(self, model: nn.Module, name: str, source: AdapterSource) -> LoraAdapter:
        """Load one more adapter (see :meth:`load` for the arguments and errors)."""
        if isinstance(name, str) and name in self.adapters:
            raise ValueError(f"adapter {name!r} is already loaded")
        valid = isinstance(name, str) and name and "." not in name and name != BASE
        if not valid or hasattr(self.adapters, name):  # e.g. "train"
            raise ValueError(
                f"adapter names must be non-empty strings without '.', other than {BASE!r} and "
                f"nn.ModuleDict attributes; got {name!r}"
            )
        config, state = _read_source(name, source)
        settings = LoraSettings.parse(name, config)
        state, base_tensors = split_base_tensors(name, state)
        _check_base_tensors(name, model, base_tensors)
        factors = split_state_dict(name, state)
        if not factors:
            raise ValueError(f"adapter {name!r}: the state dict holds no LoRA factors")
        modules = dict(model.named_modules())
        for f in factors:
            _check_optional_parts(name, settings, f)
            check_factors(
                name, f.module, f.lora_a, f.lora_b, settings.rank(f.module), modules,
                f.lora_bias, f.magnitude,
            )  # fmt: skip
        editable = make_editable(model, [_as_pattern(f.module) for f in factors])
        placed = [_placed(f, modules[f.module].weight) for f in factors]
        kept = {key: tensor for key, (_, tensor) in base_tensors.items()}
        adapter = LoraAdapter(name, settings, placed, kept)
        self.adapters[name] = adapter
        self._factors = tuple(self.parameters())
        layers = editable_modules(model)
        for f in factors:
            self._targets.setdefault(f.module, editable[f.module])
            self._layers.setdefault(f.module, layers[f.module][0])
        self._dora = self._dora or settings.use_dora
        return adapter

    @property
    def names(self) -> list[str]:
        """The adapters' names, in load order."""
        return list(self.adapters)

    def __getitem__(self, name: str) -> LoraAdapter:
        return self.adapters[name]

    def shifts(self, adapter_names: Sequence[str | None]) -> tuple[dict[str, LowRankShift], Tensor]:
        """The stacked shifts and index that run each sample with its adapter.

        Only the adapters named in the batch are stacked, in order of first appearance (so a
        batch sorted by adapter gets the grouped fast paths without any copy). Without autograd
        (``torch.no_grad()`` or frozen factors) the last stacking is reused while the names and
        every factor's storage and version are unchanged; in-place updates (optimiser steps,
        ``load_state_dict``) are seen; replacing a factor's ``Parameter`` object, or writing
        through ``factor.data`` (which bypasses the version counter), is not. A stacking made
        under ``torch.inference_mode()`` is reused only under it.

        Args:
            adapter_names: ``b`` entries, one per sample: an adapter's name, or ``None`` /
                ``"__base__"`` for the base model.

        Returns:
            ``(shifts, index)``: weight name → :class:`~weditlib.LowRankShift` with ``l``
                shifts ``up (l, n, r_max)``, ``down (l, r_max, k)``; ``index: (b,)`` in ``[0, l)``.
                Pass both to :func:`weditlib.edit` (with other shifts if you like).

        Raises:
            TypeError: ``adapter_names`` is a string, or holds something else than
                strings and ``None``.
            ValueError: it is empty, or an adapter with ``lora_dropout > 0`` would be trained
                (see the class).
            KeyError: a name is not a loaded adapter.
        """
        shifts, grouping = self._stacked(adapter_names)
        return shifts, grouping.index

    def _stacked(
        self, adapter_names: Sequence[str | None]
    ) -> tuple[dict[str, LowRankShift], Grouping]:
        """:meth:`shifts` with the index's grouping (reused with the stacking)."""
        key = self._reuse_key(adapter_names)
        if self._reusable is not None and key is not None and self._reusable[0] == key:
            return dict(self._reusable[1]), self._reusable[2]
        slots, index = self._slots(adapter_names)
        if self.training and not self.ignore_lora_dropout:
            for adapter in slots:
                if adapter is not None and adapter.settings.lora_dropout > 0:
                    raise ValueError(
                        f"adapter {adapter.name!r} has lora_dropout="
                        f"{adapter.settings.lora_dropout}, which a weight shift cannot apply "
                        "(PEFT drops the LoRA input only); build LoraAdapters with "
                        "ignore_lora_dropout=True to train without it, or call .eval()"
                    )
        shifts = {}
        for path, shape in self._targets.items():
            parts = [None if a is None else a.factors(path) for a in slots]
            if any(part is not None for part in parts):
                shifts[path] = self._in_layer_dtype(
                    path, _stack(parts, shape, lambda path=path: self._base_weight(path))
                )
        grouping = Grouping.from_index(index, len(slots), None)
        self._reusable = None if key is None else (key, shifts, grouping)
        return dict(shifts), grouping

    def _in_layer_dtype(
        self, path: str, shift: LowRankShift | RowScaledShift
    ) -> LowRankShift | RowScaledShift:
        """``shift`` as the layer at ``path`` can apply it: in its own dtype on a linear layer
        (applied as PEFT applies the adapter), cast to the kernel's dtype on a convolution (whose
        edited op takes shifts of the input's dtype only)."""
        weight = self._base_weight(path)
        if weight.dim() == 2 or shift.dtype == weight.dtype:
            return shift
        return shift.map_tensors(lambda tensor: tensor.to(weight.dtype))

    def _base_weight(self, path: str) -> Tensor:
        """The base weight of target ``path`` as its layer holds it now (a conv's kernel)."""
        return self._layers[path]._weight_views("")[0]

    def _reuse_key(self, adapter_names: Sequence[str | None]) -> tuple | None:
        """What a stacking depends on, or ``None`` when it must carry autograd history."""
        factors = self._factors
        if self._dora:  # DoRA's norms read the base weights
            factors = (*factors, *map(self._base_weight, self._targets))
        if torch.is_grad_enabled() and any(p.requires_grad for p in factors):
            return None
        if isinstance(adapter_names, str) or not isinstance(adapter_names, Sequence):
            return None  # _slots raises
        return (
            tuple(adapter_names),
            self.training,
            # a stacking made under inference_mode holds inference tensors, which autograd
            # outside it cannot save: reuse it only under inference_mode again
            torch.is_inference_mode_enabled(),
            tuple(map(_version, factors)),
            tuple(map(Tensor.data_ptr, factors)),
        )

    def _apply(self, fn, recurse: bool = True):
        self._reusable = None  # .to(), .double(), ...: new storage
        return super()._apply(fn, recurse)

    def _slots(
        self, adapter_names: Sequence[str | None]
    ) -> tuple[list[LoraAdapter | None], Tensor]:
        if isinstance(adapter_names, str) or not isinstance(adapter_names, Sequence):
            raise TypeError(
                "adapter_names must be a sequence with one adapter name (or None) per sample, "
                f"got {type(adapter_names).__name__}"
            )
        if not adapter_names:
            raise ValueError("adapter_names must name the adapter of at least one sample")
        position: dict[str | None, int] = {}
        slots: list[LoraAdapter | None] = []
        index = []
        for name in adapter_names:
            if name is not None and not isinstance(name, str):
                raise TypeError(
                    f"adapter_names entries must be str or None, got {type(name).__name__}"
                )
            key = None if name == BASE else name
            if key not in position:
                if key is not None and key not in self.adapters:
                    raise KeyError(f"no adapter named {key!r}; loaded: {self.names}")
                position[key] = len(slots)
                slots.append(None if key is None else self.adapters[key])
            index.append(position[key])
        return slots, torch.tensor(index, device=self._device())

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def edit(self, model: nn.Module, adapter_names: Sequence[str | None]):
        """Context in which ``model`` runs sample ``i`` with adapter ``adapter_names[i]``.

        ``with adapters.edit(model, ["a", "b", None]): y = model(x)`` is PEFT's
        ``model(x, adapter_names=["a", "b", "__base__"])``, in one pass and differentiable (PEFT
        refuses it in training mode).

        Raises:
            TypeError: as :meth:`shifts`.
            ValueError: as :meth:`shifts`.
            KeyError: as :meth:`shifts`, or ``model`` lacks an editable weight that the
                adapters edit (see :func:`weditlib.edit`).
        """
        shifts, grouping = self._stacked(adapter_names)
        return edit(model, shifts, grouping=grouping)

    def peft_config(self, name: str) -> dict[str, Any]:
        """The adapter's ``adapter_config.json`` content (as loaded)."""
        return dict(self.adapters[name].settings.config)

    def peft_state_dict(self, name: str) -> dict[str, Tensor]:
        """The adapter's state dict in PEFT's keys, for ``peft.set_peft_model_state_dict``."""
        return self.adapters[name].peft_state_dict()

    def save_pretrained(
        self, directory: str | os.PathLike, names: Sequence[str] | None = None
    ) -> None:
        """Write adapters as ``PeftModel.save_pretrained`` does.

        Adapter ``"default"`` goes to ``directory`` itself, any other to ``directory/<name>``
        (``adapter_config.json`` + ``adapter_model.safetensors`` each), so
        ``PeftModel.from_pretrained(base, directory/name)`` loads it unchanged.

        Args:
            directory: where to write (created if missing).
            names: the adapters to write; ``None`` writes all.

        Raises:
            KeyError: a name is not a loaded adapter.
        """
        for name in self.names if names is None else names:
            if name not in self.adapters:
                raise KeyError(f"no adapter named {name!r}; loaded: {self.names}")
            target = Path(directory) if name == "default" else Path(directory) / name
            write_adapter_dir(target, self.peft_config(name), self.peft_state_dict(name))


def _check_base_tensors(
    name: str, model: nn.Module, base_tensors: Mapping[str, tuple[str, Tensor]]
) -> None:
    """Base model tensors saved beside the factors equal the model's own (so that ignoring them
    computes what PEFT computes after loading them into the model)."""
    own = dict(model.state_dict(keep_vars=True))
    for key, (parameter, tensor) in base_tensors.items():
        current = own.get(parameter)
        same = (
            current is not None
            and current.shape == tensor.shape
            and torch.equal(current.detach().to("cpu", tensor.dtype), tensor.cpu())
        )
        if not same:
            state = "is not in the model" if current is None else "differs from the model's"
            raise ValueError(
                f"adapter {name!r} holds the base model's {parameter!r} ({key!r}), which "
                f"{state}: PEFT's save_embedding_layers (on by default when target_modules names "
                "an embedding layer or lm_head) saved it; load it into the model first, or save "
                "the adapter with save_embedding_layers=False"
            )


def _check_optional_parts(name: str, settings: LoraSettings, factors: Factors) -> None:
    """The config's ``lora_bias`` and ``use_dora`` agree with the tensors the state dict holds."""
    module = factors.module
    for field, wanted, present, key in (
        ("lora_bias", settings.lora_bias, factors.lora_bias is not None, "lora_B.bias"),
        ("use_dora", settings.use_dora, factors.magnitude is not None, "lora_magnitude_vector"),
    ):
        if wanted != present:
            raise ValueError(
                f"adapter {name!r}, module {module!r}: the config sets {field}={wanted} but the "
                f"state dict {'lacks' if wanted else 'holds'} '{module}.{key}'"
            )


def _placed(factors: Factors, weight: Tensor) -> Factors:
    """``factors`` detached, on the device of the weight they edit, in their own dtype (PEFT
    keeps an adapter's dtype: a float32 adapter on a bfloat16 model is applied in float32)."""

    def place(tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.detach().to(weight.device)

    return dataclasses.replace(
        factors,
        lora_a=place(factors.lora_a),
        lora_b=place(factors.lora_b),
        lora_bias=place(factors.lora_bias),
        magnitude=place(factors.magnitude),
    )


def _read_source(name: str, source: AdapterSource) -> tuple[Any, Mapping[str, Tensor]]:
    if isinstance(source, str | os.PathLike):
        return read_adapter_dir(source)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], Mapping):
        return source
    raise TypeError(
        f"adapter {name!r}: source must be a directory or a (config, state_dict) pair, "
        f"got {type(source).__name__}"
    )
