"""Editable layers: drop-in subclasses of ``nn.Linear`` and ``nn.MultiheadAttention``.

An editable layer owns (or, built with ``from_module``, *shares*) the base parameters and applies
shifts given at call time or made active by :func:`weditlib.edit` (the layer itself stores no
shift: the edit state belongs to the thread / asyncio task that opened the edit). With no shift
it runs the base class's own forward, so its output is bit-identical to the module it replaced.
Parameter names are the base class's, so state dicts load either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from weditlib import checkpoint_support
from weditlib.deltas import Grouping
from weditlib.edit_state import ActiveShift, current_state
from weditlib.functional import edited_linear
from weditlib.materialised import EditedWeights
from weditlib.row_scaled import AnyShift

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _share_state(cls: type[ModuleT], base: nn.Module) -> ModuleT:
    """An instance of ``cls`` whose parameters, buffers and children *are* ``base``'s."""
    module = cls.__new__(cls)
    for key, value in base.__dict__.items():
        # own containers, same Parameter/Module objects inside: nothing is copied
        module.__dict__[key] = type(value)(value) if isinstance(value, dict) else value
    return module


def check_batch_dim(batch_dim: object, name: str = "batch_dim", expected: str = "an int") -> None:
    """``batch_dim`` is an int ``>= 0``: a dim counted from the front, which stays the sample dim
    whatever token dims follow it (a negative one would count from the feature dim).

    Args:
        name: how errors name the value (e.g. ``batch_dim['h.*.attn']``).
        expected: what errors say it must be.

    Raises:
        TypeError: it is not an int.
        ValueError: it is negative.
    """
    if isinstance(batch_dim, bool) or not isinstance(batch_dim, int):
        raise TypeError(f"{name} must be {expected}, got {type(batch_dim).__name__}")
    if batch_dim < 0:
        raise ValueError(f"{name} must be >= 0 (a dim counted from the front), got {batch_dim}")


def edited_linear_at(
    x: Tensor,
    batch_dim: int,
    weight: Tensor,
    bias: Tensor | None,
    delta: AnyShift | EditedWeights,
    index: Tensor | None = None,
    grouping: Grouping | None = None,
) -> Tensor:
    """:func:`~weditlib.edited_linear` for inputs whose sample dim is ``batch_dim``.

    Shapes: ``x: (..., b, ..., k)`` with ``b`` at ``batch_dim`` → ``(..., b, ..., n)``.

    Raises:
        ValueError: ``x`` has no dim ``batch_dim`` before its feature dim (as :func:`edited_linear`
            otherwise).
    """
    if batch_dim:
        # checked here: movedim would raise an IndexError, or move the feature dim to the front
        if isinstance(x, Tensor) and x.dim() < batch_dim + 2:
            raise ValueError(
                f"x must have its sample dim at batch_dim={batch_dim} and the feature dim k "
                f"after it, i.e. at least {batch_dim + 2} dims, got shape {tuple(x.shape)}"
            )
        x = x.movedim(batch_dim, 0)
    y = edited_linear(x, weight, bias, delta, index, grouping=grouping)
    # Contiguous in the input's order, as F.linear returns it: a dropout after it then draws
    # the same mask element for element.
    return y.movedim(0, batch_dim).contiguous() if batch_dim else y


class EditableMixin:
    """What every editable layer shares: its editable weights and how it reads the edit state.

    ``editable_weights`` maps the layer's local weight names (``""`` for a layer with one weight;
    ``"in_proj"``, ``"out_proj"``, ... for attention) to their ``(n, k)`` shapes;
    ``selected_weights`` are those that :func:`weditlib.make_editable` was asked to edit (all of
    them for a layer built directly).

    The layer holds no shift itself: :func:`weditlib.edit` makes shifts active for the current
    thread / asyncio task (see :mod:`weditlib.edit_state`), keyed by the layer's identity, so a
    copy of the layer is never edited. Subclasses read that state only through
    :meth:`_active_shift` and :meth:`_is_edited`, and expose their weights for
    :func:`weditlib.merge` through :meth:`_weight_views`.
    """

    editable_weights: dict[str, tuple[int, int]]
    selected_weights: list[str]
    _merged: dict[str, Tensor] | None = None  # original parameters while a shift is merged

    def _init_edit_state(self) -> None:
        self.selected_weights = list(self.editable_weights)

    @property
    def active_shifts(self) -> dict[str, ActiveShift]:
        """Local weight name → ``(shift, grouping)`` active for this layer now."""
        state = current_state()
        return dict(state.by_module.get(id(self), {})) if state is not None else {}

    def _active_shift(self, name: str) -> ActiveShift | None:
        """The shift (and its grouping) active for local weight ``name`` now, or ``None``.

        Layers read the edit state only through this method and :meth:`_is_edited`.
        """
        state = current_state()
        if state is None:
            return None
        active = state.by_module.get(id(self), {}).get(name)
        if active is not None and not torch.compiler.is_compiling():
            checkpoint_support.capture(state)
        return active

    def _is_edited(self) -> bool:
        """Whether any shift is active for this layer now."""
        state = current_state()
        return state is not None and id(self) in state.by_module

    def _weight_views(self, name: str) -> tuple[Tensor, Tensor | None]:
        """``(weight (n, k), bias (n,) or None)`` of local weight ``name``, as views of the
        parameters (writing into them writes the parameters): the hook :func:`weditlib.merge`
        uses to bake a shift in. Layers whose weight is not stored as ``(n, k)`` override it
        (a convolution returns its kernel ``(n, in/groups, *kernel)``, whose rows flatten to
        ``k`` values: it may have no ``(n, k)`` view).
        """
        if name != "":
            raise KeyError(f"{type(self).__name__} has no editable weight {name!r}")
        return self.weight, self.bias

    def _edit_repr(self) -> str:
        """What ``print(model)`` shows of the edit: editable weights, the selected ones."""
        shapes = ", ".join(
            f"{name or 'weight'}{'*' if name in self.selected_weights else ''}={n}x{k}"
            for name, (n, k) in self.editable_weights.items()
        )
        return f"editable({shapes}; *selected)"


class LinearLike(EditableMixin):
    """What every editable layer with one ``(n, k)`` weight applied as ``x Wᵀ + b`` shares:
    wrapping its base module, its sample dim, and its forward with the shift (if any).

    A subclass names the module type it wraps (``base_type``, ``base_name`` for errors) and the
    ``(n, k)`` shape of its weight (``_edited_shape``); ``_weight_views`` gives the weight as
    ``(n, k)`` (a transposed view where it is stored ``(k, n)``).
    """

    base_type: ClassVar[type[nn.Module]]
    base_name: ClassVar[str]
    batch_dim: int

    @classmethod
    def from_module(cls, base: nn.Module, batch_dim: int = 0):
        """Wrap ``base`` without copying: the new layer shares its weight and bias.

        Raises:
            TypeError: ``base`` is not of the wrapped type, or ``batch_dim`` is not an int.
            ValueError: ``batch_dim`` is negative.
        """
        if not isinstance(base, cls.base_type):
            raise TypeError(f"base must be {cls.base_name}, got {type(base).__name__}")
        module = _share_state(cls, base)
        module._configure(batch_dim)
        return module

    def _edited_shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def _configure(self, batch_dim: int) -> None:
        check_batch_dim(batch_dim)
        self.batch_dim = batch_dim
        self.editable_weights = {"": self._edited_shape()}
        self._init_edit_state()

    def _edited_forward(
        self,
        base_forward: Callable[[Tensor], Tensor],
        input: Tensor,
        delta: AnyShift | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        """``base_forward(input)`` with ``delta`` (or the active shift) applied per sample."""
        grouping = None
        if delta is None and (active := self._active_shift("")) is not None:
            delta, grouping = active
        if delta is None:
            return base_forward(input)
        weight, bias = self._weight_views("")
        return edited_linear_at(input, self.batch_dim, weight, bias, delta, index, grouping)


class EditableLinear(LinearLike, nn.Linear):
    """``nn.Linear`` whose weight can be edited per sample.

    Shapes: ``x: (b, *t, k) -> (b, *t, n)`` when ``batch_dim == 0``.

    Args:
        in_features: ``k``.
        out_features: ``n``.
        bias: whether to learn a bias ``(n,)``.
        batch_dim: which dim of the input indexes samples (``1`` inside a sequence-first
            transformer).

    ``device`` and ``dtype`` are passed to ``nn.Linear``. ``EditableLinear.from_module(base,
    batch_dim)`` wraps an existing ``nn.Linear`` without copying it.

    Raises:
        TypeError: ``batch_dim`` is not an int.
        ValueError: ``batch_dim`` is negative.
    """

    base_type = nn.Linear
    base_name = "an nn.Linear"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, batch_dim: int = 0,
                 device=None, dtype=None) -> None:  # fmt: skip
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._configure(batch_dim)

    def _edited_shape(self) -> tuple[int, int]:
        return self.out_features, self.in_features

    def forward(
        self, input: Tensor, delta: AnyShift | None = None, index: Tensor | None = None
    ) -> Tensor:
        """``F.linear`` with ``delta`` (or the active shift) applied per sample.

        Args:
            input: ``(b, *t, k)`` (sample dim at ``batch_dim``).
            delta: ``l`` shifts of the weight; overrides the active one.
            index: ``(b,)`` shift of each sample; ``None`` means one shift per sample.
        """
        return self._edited_forward(super().forward, input, delta, index)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, batch_dim={self.batch_dim}, {self._edit_repr()}"


class EditableFeedForward(nn.Module):
    """Transformer feed-forward block ``linear2(dropout(act(linear1(x))))`` with editable linears.

    Shapes: ``x: (b, *t, d_model) -> (b, *t, d_model)``; editable weights ``linear1``
    ``(d_ff, d_model)`` and ``linear2`` ``(d_model, d_ff)`` (through :func:`weditlib.edit` or
    :func:`weditlib.make_editable` names).
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: Callable[[Tensor], Tensor] = F.gelu,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.linear1 = EditableLinear(d_model, d_ff)
        self.linear2 = EditableLinear(d_ff, d_model)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class EditableMultiheadAttention(EditableMixin, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose projections can be edited per sample.

    Editable weights: ``in_proj`` ``(3·e, e)`` (joint q/k/v, when q, k and v share the embedding
    size) or ``q_proj`` ``(e, e)``, ``k_proj`` ``(e, kdim)``, ``v_proj`` ``(e, vdim)`` when
    ``split_in_proj``; and ``out_proj`` ``(e, e)``. Works for self- and cross-attention and both
    ``batch_first`` layouts. With no active shift, ``forward`` is ``nn.MultiheadAttention``'s.

    Raises:
        ValueError: ``add_bias_kv`` or ``add_zero_attn`` is set, or the joint ``in_proj`` is
            requested while ``kdim``/``vdim`` differ from ``embed_dim`` (use ``split_in_proj``).
    """

    def __init__(self, *args, split_in_proj: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._configure(split_in_proj)

    @classmethod
    def from_module(
        cls, base: nn.MultiheadAttention, split_in_proj: bool = False
    ) -> EditableMultiheadAttention:
        """Wrap ``base`` without copying its parameters.

        Raises:
            TypeError: ``base`` is not an ``nn.MultiheadAttention``.
            ValueError: as the class.
        """
        if not isinstance(base, nn.MultiheadAttention):
            raise TypeError(f"base must be an nn.MultiheadAttention, got {type(base).__name__}")
        module = _share_state(cls, base)
        module._configure(split_in_proj)
        return module

    def _configure(self, split_in_proj: bool) -> None:
        if self.bias_k is not None or self.add_zero_attn:
            raise ValueError(
                "EditableMultiheadAttention does not support add_bias_kv=True or add_zero_attn=True"
            )
        if not split_in_proj and not self._qkv_same_embed_dim:
            raise ValueError(
                "the joint in_proj is not editable when kdim/vdim differ from embed_dim; "
                "use split_in_proj=True"
            )
        e = self.embed_dim
        if split_in_proj:
            self.editable_weights = {
                "q_proj": (e, e),
                "k_proj": (e, self.kdim),
                "v_proj": (e, self.vdim),
            }
        else:
            self.editable_weights = {"in_proj": (3 * e, e)}
        self.editable_weights["out_proj"] = (e, e)
        self._init_edit_state()

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"batch_first={self.batch_first}, {self._edit_repr()}"
        )

    def _weight_views(self, name: str) -> tuple[Tensor, Tensor | None]:
        e = self.embed_dim
        if name == "out_proj":
            return self.out_proj.weight, self.out_proj.bias
        if name == "in_proj":
            return self.in_proj_weight, self.in_proj_bias
        projections = ("q_proj", "k_proj", "v_proj")
        if name not in projections or name not in self.editable_weights:
            raise KeyError(f"{type(self).__name__} has no editable weight {name!r}")
        which = projections.index(name)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[which * e : (which + 1) * e]
        return self._projection_weights()[which], bias

    def _projection_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._qkv_same_embed_dim:
            return tuple(self.in_proj_weight.chunk(3))  # type: ignore[return-value]
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def _project(self, which: int, x: Tensor) -> Tensor:
        """Project ``x: (b, t, ·)`` to queries (0), keys (1) or values (2), edited if active."""
        e = self.embed_dim
        weight = self._projection_weights()[which]
        bias = None if self.in_proj_bias is None else self.in_proj_bias[which * e : (which + 1) * e]
        local = ("q_proj", "k_proj", "v_proj")[which]
        if (active := self._active_shift(local)) is not None:
            delta, grouping = active
        elif (joint_active := self._active_shift("in_proj")) is not None:
            joint, grouping = joint_active
            delta = joint.rows(which * e, (which + 1) * e)
        else:
            return F.linear(x, weight, bias)
        return edited_linear(x, weight, bias, delta, grouping=grouping)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """As ``nn.MultiheadAttention.forward``; active shifts edit the projections.

        Shapes: ``query (b, s, e)``, ``key (b, u, kdim)``, ``value (b, u, vdim)`` when
        ``batch_first`` (else sequence first); returns ``(b, s, e)`` and the attention weights
        ``(b, s, u)`` (or ``(b, heads, s, u)`` when not averaged) if ``need_weights``.
        """
        if not self._is_edited():
            return super().forward(
                query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights, is_causal,
            )  # fmt: skip
        if query.dim() != 3:
            raise ValueError(
                f"edited attention needs batched 3-d inputs, got query shape {tuple(query.shape)}"
            )
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, s, _ = query.shape
        u = key.shape[1]
        heads = self.num_heads
        q, k, v = (
            rearrange(self._project(i, t), "b t (h d) -> b h t d", h=heads)
            for i, t in enumerate((query, key, value))
        )
        mask = _merge_masks(attn_mask, key_padding_mask, (b, heads, s, u), q, is_causal)
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1)
            if dropout:  # returned after dropout, as torch returns them
                weights = F.dropout(weights, dropout)
            attended = weights @ v
        else:
            weights = None
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = rearrange(attended, "b h t d -> b t (h d)")
        out_delta = self._active_shift("out_proj")
        if out_delta is None:
            out = F.linear(out, self.out_proj.weight, self.out_proj.bias)
        else:
            delta, grouping = out_delta
            out = edited_linear(
                out, self.out_proj.weight, self.out_proj.bias, delta, grouping=grouping
            )
        # torch's output is (s, b, e) in memory (a view (b, s, e) when batch_first): the same
        # layout, so that a dropout after it draws the same mask element for element.
        out = out.transpose(0, 1).contiguous()
        if self.batch_first:
            out = out.transpose(0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        return out, weights


def _merge_masks(
    attn_mask: Tensor | None,
    key_padding_mask: Tensor | None,
    sizes: tuple[int, int, int, int],
    like: Tensor,
    is_causal: bool,
) -> Tensor | None:
    """One additive float mask ``(b, h, s, u)`` (or broadcastable) from MHA's mask arguments.

    Boolean masks follow ``nn.MultiheadAttention``: ``True`` means *not allowed*.
    """
    batch, heads, queries, keys = sizes
    dtype = like.dtype

    def additive(mask: Tensor) -> Tensor:
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                mask, float("-inf")
            )
        return mask.to(dtype)

    if attn_mask is None and is_causal:
        attn_mask = torch.ones(queries, keys, dtype=torch.bool, device=like.device).triu(1)
    _check_mask_shape("attn_mask", attn_mask, [(queries, keys), (batch * heads, queries, keys)])
    _check_mask_shape("key_padding_mask", key_padding_mask, [(batch, keys)])
    merged = None
    if attn_mask is not None:
        merged = additive(attn_mask)
        if merged.dim() == 3:  # (b·h, s, u)
            merged = merged.reshape(batch, heads, queries, keys)
    if key_padding_mask is not None:
        padding = additive(key_padding_mask).reshape(batch, 1, 1, keys)
        merged = padding if merged is None else merged + padding
    return merged


def _check_mask_shape(name: str, mask: Tensor | None, allowed: list[tuple[int, ...]]) -> None:
    """Refuse a mask of another shape (a reshape would fail later, or silently regroup it)."""
    if mask is not None and tuple(mask.shape) not in allowed:
        expected = " or ".join(str(shape) for shape in allowed)
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(mask.shape)}")
