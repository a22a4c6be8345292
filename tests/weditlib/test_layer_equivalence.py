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
from weditlib import editing

transformers = pytest.importorskip("transformers", reason="the HF Conv1D cases need transformers")

SEQ, MEM = 5, 4


def _attention(dim: int, dropout: float, batch_first: bool) -> nn.Module:
    return nn.MultiheadAttention(dim, 2, dropout=dropout, batch_first=batch_first)


def _attention_kv(dim: int, dropout: float, batch_first: bool) -> nn.Module:
    """Keys and values of other widths: only its split projections are editable."""
    return nn.MultiheadAttention(
        dim, 2, dropout=dropout, batch_first=batch_first, kdim=dim // 2, vdim=dim + 2
    )


def _kv(mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return mem[..., : mem.shape[-1] // 2], torch.cat([mem, mem[..., :2]], -1)


def _image(x: torch.Tensor) -> torch.Tensor:
    """``(b, t, d) -> (b, d, t, 2)``: a small 2-d input for the conv2d layers."""
    return torch.stack([x.mT, x.mT.flip(-1)], -1)


def _conv2d_grouped(dim: int, dropout: float, batch_first: bool) -> nn.Module:
    return nn.Conv2d(
        dim, 4, (3, 1), padding=(2, 0), dilation=(2, 1), groups=2, padding_mode="reflect"
    )


def _hf_conv1d(dim: int, dropout: float, batch_first: bool) -> nn.Module:
    return transformers.pytorch_utils.Conv1D(dim + 1, dim)


# name -> (build(d, dropout, batch_first), call(module, x, mem, kw), make_editable keywords)
CASES = {
    "linear": (lambda d, p, bf: nn.Linear(d, d + 1), lambda m, x, mem, kw: m(x), {}),
    "linear without bias": (
        lambda d, p, bf: nn.Linear(d, d + 1, bias=False),
        lambda m, x, mem, kw: m(x),
        {},
    ),
    "attention": (_attention, lambda m, x, mem, kw: m(x, mem, mem, **kw), {}),
    "attention, split q/k/v": (
        _attention,
        lambda m, x, mem, kw: m(x, mem, mem, **kw),
        {"split_in_proj": True},
    ),
    "attention, kdim/vdim": (
        _attention_kv,
        lambda m, x, mem, kw: m(x, *_kv(mem), **kw),
        {"split_in_proj": True},
    ),
    "decoder layer": (
        lambda d, p, bf: nn.TransformerDecoderLayer(d, 2, 2 * d, p, batch_first=bf),
        lambda m, x, mem, kw: m(x, mem),
        {},
    ),
    "encoder layer": (
        lambda d, p, bf: nn.TransformerEncoderLayer(d, 2, 2 * d, p, batch_first=bf),
        lambda m, x, mem, kw: m(x),
        {},
    ),
    "conv1d": (lambda d, p, bf: nn.Conv1d(d, 3, 3, padding=1), lambda m, x, mem, kw: m(x.mT), {}),
    "conv1d, strided circular": (
        lambda d, p, bf: nn.Conv1d(d, 4, 3, stride=2, padding=1, padding_mode="circular"),
        lambda m, x, mem, kw: m(x.mT),
        {},
    ),
    "conv2d": (
        lambda d, p, bf: nn.Conv2d(d, 3, 3, padding=1),
        lambda m, x, mem, kw: m(_image(x)),
        {},
    ),
    "conv2d, groups reflect dilated": (_conv2d_grouped, lambda m, x, mem, kw: m(_image(x)), {}),
    "transformers Conv1D": (_hf_conv1d, lambda m, x, mem, kw: m(x), {}),
}
#: Layers edited as a whole (the others: their attention and feed-forward linears).
WHOLE = {name for name in CASES if "layer" not in name}
SEQUENCE_FIRST = {"decoder layer", "encoder layer"}


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
        assert left.stride() == right.stride()  # the memory layout a later op sees
        if exact:
            assert torch.equal(left, right)
        else:
            torch.testing.assert_close(left, right, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=6, deadline=None)
@given(
    dropout=st.sampled_from([0.0, 0.3]),
    batch_first=st.booleans(),
    need_weights=st.booleans(),
    average=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_an_edited_layer_returns_what_its_base_returns(
    case, training, dropout, batch_first, need_weights, average, seed
):
    build, call, options = CASES[case]
    dim, batch = 8, 3
    torch.manual_seed(seed)
    base = nn.ModuleDict({"m": build(dim, dropout, batch_first)})
    edited = copy.deepcopy(base)
    # Sequence-first layers see the batch on dim 1 (attention finds it from batch_first).
    seq_first = not batch_first and case in SEQUENCE_FIRST
    weights = weditlib.make_editable(
        edited,
        ["m"] if case in WHOLE else ["m.*attn", "m.linear1", "m.linear2"],
        batch_dim={"m.linear1": 1, "m.linear2": 1} if seq_first else None,
        **options,
    )
    base.train(training)
    edited.train(training)
    attention = "attention" in case or case in SEQUENCE_FIRST
    layout = (SEQ, batch, dim) if attention and not batch_first else (batch, SEQ, dim)
    x = torch.randn(layout)
    mem = torch.randn((batch, MEM, dim) if layout[0] == batch else (MEM, batch, dim))
    kw = {"need_weights": need_weights, "average_attn_weights": average}
    expected = _run(base, call, x, mem, kw, seed)
    _same(expected, _run(edited, call, x, mem, kw, seed), exact=True)  # no edit: the base's op
    generator = weditlib.MultiBranchShiftGenerator(style_dim=4, targets=weights, rank=2)
    with weditlib.edit(edited, generator(torch.randn(batch, 4))):
        zero_shifts = _run(edited, call, x, mem, kw, seed)  # zero-initialised heads: ΔW = 0
    _same(expected, zero_shifts, exact=False)


def test_every_editable_layer_type_is_a_case():
    """A layer type added to make_editable's table must join the cases above."""
    built = [build(8, 0.0, True) for build, _, _ in CASES.values()]
    # the built-in rows (other tests, the docs' examples among them, register rows of their own)
    torch_or_hf = [
        entry
        for entry in editing._TABLE
        if isinstance(entry.base, str) or entry.base.__module__.startswith("torch.")
    ]
    assert len(torch_or_hf) >= 5
    for entry in torch_or_hf:
        assert any(entry.matches(module) for module in built), f"no case for {entry.base}"


@pytest.mark.parametrize("training", [True, False])
def test_a_gpt2_with_dropout_returns_every_output_of_the_unedited_model(training):
    config = transformers.GPT2Config(
        vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.3,
        embd_pdrop=0.3, attn_pdrop=0.3,
    )  # fmt: skip
    torch.manual_seed(0)
    base = transformers.GPT2Model(config).train(training)
    edited = copy.deepcopy(base)
    weights = weditlib.make_editable(edited, ["h.*.attn.c_attn", "h.*.attn.c_proj", "h.*.mlp.*"])
    ids = torch.randint(0, 40, (3, 7))

    def outputs(model) -> tuple:
        torch.manual_seed(11)
        out = model(ids, output_attentions=True, output_hidden_states=True)
        return (out.last_hidden_state, *out.hidden_states, *out.attentions)

    expected = outputs(base)
    _same(expected, outputs(edited), exact=True)
    generator = weditlib.MultiBranchShiftGenerator(style_dim=4, targets=weights, rank=2)
    with weditlib.edit(edited, generator(torch.randn(3, 4))):
        _same(expected, outputs(edited), exact=False)


@pytest.mark.parametrize("training", [True, False])
def test_dropout_masks_are_drawn_alike_with_and_without_an_edit(training):
    torch.manual_seed(0)
    base = nn.ModuleDict({"m": nn.TransformerDecoderLayer(8, 2, 16, 0.5, batch_first=True)})
    edited = copy.deepcopy(base)
    weights = weditlib.make_editable(edited, ["m.*attn", "m.linear1", "m.linear2"])
    base.train(training)
    edited.train(training)
    x, mem = torch.randn(3, SEQ, 8), torch.randn(3, MEM, 8)
    generator = weditlib.MultiBranchShiftGenerator(style_dim=4, targets=weights, rank=2)
    torch.manual_seed(5)
    expected = base["m"](x, mem)
    torch.manual_seed(5)
    with weditlib.edit(edited, generator(torch.randn(3, 4))):
        torch.manual_seed(5)
        got = edited["m"](x, mem)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
