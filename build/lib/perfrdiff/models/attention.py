"""Cross-attention split in two: keys/values of fixed memory tokens once, queries every step.

In DDIM sampling the memory tokens of a window (speaker tokens, previous window, or the null
tokens of the unconditional branch) are the same at every denoising step; only the time token
and the queries change. :func:`query` and :func:`keys_values` compute an attention layer's
projections exactly as the layer would — through the listener's shift when :func:`weditlib.edit`
made one active — so keys and values can be computed once per window and reused.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from weditlib import EditableMultiheadAttention, edited_linear

_SPLIT_NAMES = ("q_proj", "k_proj", "v_proj")


def _projection(attention: nn.MultiheadAttention, rows: slice, x: Tensor) -> Tensor:
    """``x: (b, t, e)`` through rows ``rows`` of the joint q/k/v projection, edited if active."""
    weight = attention.in_proj_weight[rows]
    bias = None if attention.in_proj_bias is None else attention.in_proj_bias[rows]
    joint = _active(attention, "in_proj")
    if joint is None:
        return F.linear(x, weight, bias)
    delta, grouping = joint
    return edited_linear(x, weight, bias, delta.rows(rows.start, rows.stop), grouping=grouping)


def _separate(attention: nn.MultiheadAttention, which: int, x: Tensor) -> Tensor:
    """``x`` through the separate q (0), k (1) or v (2) projection (``kdim``/``vdim`` != e)."""
    e = attention.embed_dim
    weight = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)[which]
    bias = attention.in_proj_bias
    bias = None if bias is None else bias[which * e : (which + 1) * e]
    shift = _active(attention, _SPLIT_NAMES[which])
    if shift is None:
        return F.linear(x, weight, bias)
    return edited_linear(x, weight, bias, shift[0], grouping=shift[1])


def _heads(attention: nn.MultiheadAttention, y: Tensor) -> Tensor:
    return rearrange(y, "b t (h d) -> b h t d", h=attention.num_heads)


def query(attention: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """Queries of ``x: (b, s, e)`` as ``attention`` computes them (with the shift active on it,
    if any): ``(b, heads, s, e / heads)``."""
    e = attention.embed_dim
    if attention.in_proj_weight is not None:  # joint q/k/v weight
        return _heads(attention, _projection(attention, slice(0, e), x))
    return _heads(attention, _separate(attention, 0, x))


def self_attention(attention: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """``attention(x, x, x)`` without dropout, masks or weights: ``(b, s, e) -> (b, s, e)``,
    with one matmul for queries, keys and values (the joint weight)."""
    e = attention.embed_dim
    if attention.in_proj_weight is None:
        q, (k, v) = query(attention, x), keys_values(attention, x)
    else:
        q, k, v = (
            _heads(attention, y) for y in _projection(attention, slice(0, 3 * e), x).chunk(3, -1)
        )
    return output(attention, F.scaled_dot_product_attention(q, k, v))


def keys_values(attention: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor]:
    """Keys and values of ``x: (b, u, e)`` (one matmul for both with the joint weight):
    two ``(b, heads, u, e / heads)``."""
    e = attention.embed_dim
    if attention.in_proj_weight is not None:
        k, v = _projection(attention, slice(e, 3 * e), x).chunk(2, dim=-1)
    else:
        k, v = _separate(attention, 1, x), _separate(attention, 2, x)
    return _heads(attention, k), _heads(attention, v)


def output(attention: nn.MultiheadAttention, attended: Tensor) -> Tensor:
    """``attended: (b, heads, s, d)`` -> ``(b, s, e)`` through the (possibly edited) out_proj."""
    out = rearrange(attended, "b h s d -> b s (h d)")
    proj = attention.out_proj
    shift = _active(attention, "out_proj")
    if shift is None:
        return F.linear(out, proj.weight, proj.bias)
    return edited_linear(out, proj.weight, proj.bias, shift[0], grouping=shift[1])


def _active(attention: nn.MultiheadAttention, local: str):
    if not isinstance(attention, EditableMultiheadAttention):
        return None
    return attention.active_shifts.get(local)
