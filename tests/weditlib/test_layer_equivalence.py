"""An edited layer is the layer it replaces: every output, in train and eval mode, under the same
RNG seed (dropout masks included) — exactly with no edit, to float rounding under zero shifts."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import weditlib

SEQ, MEM = 5, 4


def _attention(dim: int, dropout: float, batch_first: bool) -> nn.Module:
    return nn.MultiheadAttention(dim, 2, dropout=dropout, batch_first=batch_first)


CASES = {
    "linear": (lambda d, p, bf: nn.Linear(d, d + 1), lambda m, x, mem, kw: m(x)),
    "attention": (_attention, lambda m, x, mem, kw: m(x, mem, mem, **kw)),
    "decoder layer": (
        lambda d, p, bf: nn.TransformerDecoderLayer(d, 2, 2 * d, p, batch_first=bf),
        lambda m, x, mem, kw: m(x, mem),
    ),
    "encoder layer": (
        lambda d, p, bf: nn.TransformerEncoderLayer(d, 2, 2 * d, p, batch_first=bf),
        lambda m, x, mem, kw: m(x),
    ),
    "conv1d": (lambda d, p, bf: nn.Conv1d(d, 3, 3, padding=1), lambda m, x, mem, kw: m(x.mT)),
}


def _outputs(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _run(model, call, x, mem, kw, seed):
    torch.manual_seed(seed)
    return _outputs(call(model["m"], x, mem, kw))


def _same(a: tuple, b: tuple, exact: bool) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert (left is None) == (right is None)
        if left is None:
            continue
        assert left.shape == right.shape and left.dtype == right.dtype
        if exact:
            assert torch.equal(left, right)
        else:
            torch.testing.assert_close(left, right, atol=1e-6, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    case=st.sampled_from(sorted(CASES)),
    training=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    batch_first=st.booleans(),
    need_weights=st.booleans(),
    average=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_an_edited_layer_returns_what_its_base_returns(
    case, training, dropout, batch_first, need_weights, average, seed
):
    build, call = CASES[case]
    dim, batch = 8, 3
    torch.manual_seed(seed)
    base = nn.ModuleDict({"m": build(dim, dropout, batch_first)})
    edited = copy.deepcopy(base)
    whole = case in ("linear", "attention", "conv1d")
    # Sequence-first layers see the batch on dim 1 (attention finds it from batch_first).
    seq_first = not batch_first and case in ("decoder layer", "encoder layer")
    weights = weditlib.make_editable(
        edited,
        ["m"] if whole else ["m.*attn", "m.linear1", "m.linear2"],
        batch_dim={"m.linear1": 1, "m.linear2": 1} if seq_first else None,
    )
    base.train(training)
    edited.train(training)
    layout = (batch, SEQ, dim) if batch_first or case in ("linear", "conv1d") else (SEQ, batch, dim)
    x = torch.randn(layout)
    mem = torch.randn((batch, MEM, dim) if layout[0] == batch else (MEM, batch, dim))
    kw = {"need_weights": need_weights, "average_attn_weights": average}
    expected = _run(base, call, x, mem, kw, seed)
    _same(expected, _run(edited, call, x, mem, kw, seed), exact=True)  # no edit: the base's op
    generator = weditlib.MultiBranchDeltaGenerator(style_dim=4, targets=weights, rank=2)
    with weditlib.edit(edited, generator(torch.randn(batch, 4))):
        zero_shifts = _run(edited, call, x, mem, kw, seed)  # zero-initialised heads: ΔW = 0
    _same(expected, zero_shifts, exact=False)


@pytest.mark.parametrize("training", [True, False])
def test_dropout_masks_are_drawn_alike_with_and_without_an_edit(training):
    torch.manual_seed(0)
    base = nn.ModuleDict({"m": nn.TransformerDecoderLayer(8, 2, 16, 0.5, batch_first=True)})
    edited = copy.deepcopy(base)
    weights = weditlib.make_editable(edited, ["m.*attn", "m.linear1", "m.linear2"])
    base.train(training)
    edited.train(training)
    x, mem = torch.randn(3, SEQ, 8), torch.randn(3, MEM, 8)
    generator = weditlib.MultiBranchDeltaGenerator(style_dim=4, targets=weights, rank=2)
    torch.manual_seed(5)
    expected = base["m"](x, mem)
    torch.manual_seed(5)
    with weditlib.edit(edited, generator(torch.randn(3, 4))):
        torch.manual_seed(5)
        got = edited["m"](x, mem)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
