"""Editable layers equal their base modules, and equal per-sample weight copies when edited."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    EditableFeedForward,
    EditableLinear,
    EditableMultiheadAttention,
    LowRankShift,
    edit,
    make_editable,
)


def test_linear_from_module_shares_parameters():
    base = nn.Linear(6, 4)
    editable = EditableLinear.from_module(base)
    assert editable.weight is base.weight and editable.bias is base.bias
    assert set(editable.state_dict()) == set(base.state_dict())


def test_linear_without_shift_is_bit_identical():
    base = nn.Linear(6, 4)
    x = torch.randn(3, 5, 6)
    assert torch.equal(EditableLinear.from_module(base)(x), base(x))


def test_linear_with_per_sample_shifts_equals_weight_copies():
    base = nn.Linear(6, 4)
    layer = EditableLinear.from_module(base)
    x = torch.randn(3, 5, 6)
    shift = torch.randn(2, 4, 6)
    index = torch.tensor([1, 0, 1])
    y = layer(x, DenseShift(shift), index)
    for b in range(3):
        copy_ = copy.deepcopy(base)
        with torch.no_grad():
            copy_.weight += shift[index[b]]
        torch.testing.assert_close(y[b], copy_(x[b]))


def test_linear_sequence_first_batch_dim():
    base = nn.Linear(6, 4)
    layer = EditableLinear.from_module(base, batch_dim=1)
    x = torch.randn(5, 3, 6)  # (t, b, k)
    shift = torch.randn(3, 4, 6)
    y = layer(x, DenseShift(shift))
    for b in range(3):
        expected = torch.nn.functional.linear(x[:, b], base.weight + shift[b], base.bias)
        torch.testing.assert_close(y[:, b], expected)


def attention_copy_with(base: nn.MultiheadAttention, in_shift=None, out_shift=None):
    clone = copy.deepcopy(base)
    with torch.no_grad():
        if in_shift is not None:
            clone.in_proj_weight += in_shift
        if out_shift is not None:
            clone.out_proj.weight += out_shift
    return clone


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_without_shift_is_bit_identical(batch_first):
    base = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
    editable = EditableMultiheadAttention.from_module(base)
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    if not batch_first:
        q, kv = q.transpose(0, 1), kv.transpose(0, 1)
    out_a, w_a = base(q, kv, kv)
    out_b, w_b = editable(q, kv, kv)
    assert torch.equal(out_a, out_b) and torch.equal(w_a, w_b)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cross", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_attention_with_per_sample_shifts_equals_weight_copies(batch_first, cross, need_weights):
    torch.manual_seed(0)
    base = nn.MultiheadAttention(8, 2, batch_first=batch_first, dtype=torch.float64).eval()
    editable = EditableMultiheadAttention.from_module(base)
    q = torch.randn(3, 5, 8, dtype=torch.float64)
    kv = torch.randn(3, 7, 8, dtype=torch.float64) if cross else q
    in_shift = 0.1 * torch.randn(2, 24, 8, dtype=torch.float64)
    out_shift = 0.1 * torch.randn(2, 8, 8, dtype=torch.float64)
    index = torch.tensor([1, 0, 1])
    padding = torch.zeros(3, kv.shape[1], dtype=torch.bool)
    padding[0, -2:] = True
    layout = (lambda t: t) if batch_first else (lambda t: t.transpose(0, 1))
    shifts = {"m.in_proj": DenseShift(in_shift), "m.out_proj": DenseShift(out_shift)}
    holder = nn.Module()
    holder.m = editable
    with edit(holder, shifts, index):
        out, weights = editable(
            layout(q), layout(kv), layout(kv), key_padding_mask=padding, need_weights=need_weights
        )
    out = layout(out)
    for b in range(3):
        clone = attention_copy_with(base, in_shift[index[b]], out_shift[index[b]])
        ref_out, ref_w = clone(
            layout(q[b : b + 1]), layout(kv[b : b + 1]), layout(kv[b : b + 1]),
            key_padding_mask=padding[b : b + 1],
        )  # fmt: skip
        torch.testing.assert_close(out[b], layout(ref_out)[0])
        if need_weights:
            torch.testing.assert_close(weights[b], ref_w[0])
    assert weights is None or weights.shape == (3, 5, kv.shape[1])


def test_attention_split_in_proj_edits_only_the_named_projection():
    torch.manual_seed(1)
    base = nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    holder = nn.Module()
    holder.attn = base
    names = make_editable(holder, ["attn.k_proj"], split_in_proj=True)
    assert names == {"attn.k_proj": (8, 8)}
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    shift = torch.randn(2, 8, 8, dtype=torch.float64)
    with edit(holder, {"attn.k_proj": DenseShift(shift)}):
        out, _ = holder.attn(x, x, x)
    for b in range(2):
        joint = torch.zeros(24, 8, dtype=torch.float64)
        joint[8:16] = shift[b]
        ref, _ = attention_copy_with(base, joint)(x[b : b + 1], x[b : b + 1], x[b : b + 1])
        torch.testing.assert_close(out[b], ref[0])


def test_attention_with_causal_mask_and_low_rank_shift():
    torch.manual_seed(2)
    base = nn.MultiheadAttention(8, 4, batch_first=True, dtype=torch.float64).eval()
    holder = nn.Module()
    holder.attn = base
    make_editable(holder, ["attn"])
    up, down = torch.randn(2, 24, 2, dtype=torch.float64), torch.randn(2, 2, 8, dtype=torch.float64)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    with edit(holder, {"attn.in_proj": LowRankShift(up, down)}):
        out, _ = holder.attn(x, x, x, attn_mask=mask, need_weights=False)
    for b in range(2):
        ref, _ = attention_copy_with(base, up[b] @ down[b])(
            x[b : b + 1], x[b : b + 1], x[b : b + 1], attn_mask=mask, need_weights=False
        )
        torch.testing.assert_close(out[b], ref[0])


def test_attention_rejects_unsupported_configurations():
    with pytest.raises(ValueError, match="add_bias_kv"):
        EditableMultiheadAttention.from_module(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="use split_in_proj=True"):
        EditableMultiheadAttention.from_module(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(TypeError, match=r"must be an nn\.MultiheadAttention"):
        EditableMultiheadAttention.from_module(nn.Linear(2, 2))


def test_attention_shift_with_wrong_shape_is_rejected():
    layer = EditableMultiheadAttention(8, 2)
    with (
        pytest.raises(ValueError, match=r"edits a \(8, 8\) weight, expected \(24, 8\)"),
        edit(layer, {"in_proj": DenseShift(torch.zeros(1, 8, 8))}),
    ):
        pass
    with (
        pytest.raises(KeyError, match="not editable weights"),
        edit(layer, {"q_proj": DenseShift(torch.zeros(1, 8, 8))}),
    ):
        pass


def test_feed_forward_edits_both_linears():
    torch.manual_seed(3)
    ffn = EditableFeedForward(6, 10).double()
    holder = nn.Module()
    holder.ffn = ffn
    shifts = {
        "ffn.linear1": DenseShift(torch.randn(2, 10, 6, dtype=torch.float64)),
        "ffn.linear2": DenseShift(torch.randn(2, 6, 10, dtype=torch.float64)),
    }
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    with edit(holder, shifts):
        y = ffn(x)
    for b in range(2):
        h = torch.nn.functional.gelu(
            torch.nn.functional.linear(
                x[b], ffn.linear1.weight + shifts["ffn.linear1"].weight[b], ffn.linear1.bias
            )
        )
        ref = torch.nn.functional.linear(
            h, ffn.linear2.weight + shifts["ffn.linear2"].weight[b], ffn.linear2.bias
        )
        torch.testing.assert_close(y[b], ref)
    assert torch.equal(ffn(x), ffn.linear2(torch.nn.functional.gelu(ffn.linear1(x))))
