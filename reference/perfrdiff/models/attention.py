"""Cross-attention split in two: keys/values of fixed memory tokens once, queries every step.

In DDIM sampling the memory tokens of a window (speaker tokens, previous window, or the null
tokens of the unconditional branch) are the same at every denoising step; only the time token
and the queries change. :func:`project` computes one of an attention layer's q/k/v projections
exactly as the layer would — through the listener's shift when :func:`weditlib.edit` made one
active — so keys and values can be computed once per window and reused.
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from weditlib import EditableMultiheadAttention, edited_linear

_SPLIT_NAMES = ("q_proj", "k_proj", "v_proj")


def project(attention: nn.MultiheadAttention, which: int, x: Tensor) -> Tensor:
    """Query (``which = 0``), key (1) or value (2) projection of ``x: (b, t, e)`` by
    ``attention``, with the shift active on it if any; returns ``(b, heads, t, e / heads)``."""
    e = attention.embed_dim
    if attention.in_proj_weight is not None:  # joint q/k/v weight
        weight = attention.in_proj_weight[which * e : (which + 1) * e]
    else:
        weight = (attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight)[which]
    bias = attention.in_proj_bias
    bias = None if bias is None else bias[which * e : (which + 1) * e]
    shift = _active(attention, _SPLIT_NAMES[which])
    if shift is None and (joint := _active(attention, "in_proj")) is not None:
        shift = (joint[0].rows(which * e, (which + 1) * e), joint[1])
    if shift is None:
        y = F.linear(x, weight, bias)
    else:
        y = edited_linear(x, weight, bias, shift[0], grouping=shift[1])
    return rearrange(y, "b t (h d) -> b h t d", h=attention.num_heads)


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
