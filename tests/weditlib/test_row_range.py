"""``RowRangeShift``: editing output rows ``[start, stop)`` of a weight (part of a fused
projection), in every mode, against a per-sample float64 reference; through the op, its
algorithms, materialise, merge and an edited ``nn.MultiheadAttention``."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import weditlib
from weditlib import (
    DenseShift,
    LowRankShift,
    RowRangeShift,
    edit,
    edited_linear,
    make_editable,
    materialise,
    merge,
    unmerge,
)

F64 = torch.float64
MODES = ["add", "scale", "replace"]


def inner_shift(rank, mode, count, m, k, g, bias=True, dtype=F64):
    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    shift_bias = randn(count, m) if bias else None
    if rank is None:
        return DenseShift(randn(count, m, k), mode, bias=shift_bias)
    return LowRankShift(randn(count, m, rank), randn(count, rank, k), mode, bias=shift_bias)


def reference_weights(weight, delta: RowRangeShift) -> torch.Tensor:
    """``(l, n, k)`` float64: ``W`` with rows ``[start, stop)`` edited, from the definitions."""
    w = weight.to(F64)
    rows, change = w[delta.start : delta.stop], delta.inner.matrix().to(F64)
    edited = {"add": rows + change, "scale": rows * (1 + change), "replace": change}[delta.mode]
    full = w.expand(delta.num_shifts, *w.shape).clone()
    full[:, delta.start : delta.stop] = edited
    return full


def reference_linear(x, weight, bias, delta: RowRangeShift, index) -> torch.Tensor:
    """The per-sample float64 loop."""
    built = reference_weights(weight, delta)
    outputs = []
    for b, i in enumerate(index.tolist()):
        y = x[b].to(F64) @ built[i].T
        if bias is not None:
            y = y + bias.to(F64)
        if delta.inner.bias is not None:
            y[..., delta.start : delta.stop] += delta.inner.bias[i].to(F64)
        outputs.append(y)
    return torch.stack(outputs)


@settings(max_examples=60, deadline=None)
@given(
    rank=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(MODES),
    rows=st.tuples(st.integers(1, 7), st.integers(0, 7), st.integers(0, 7)),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 5), st.integers(1, 3)),
    base_bias=st.booleans(),
    shift_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_every_path_matches_the_per_sample_loop(
    rank, mode, rows, sizes, base_bias, shift_bias, seed
):
    g = torch.Generator().manual_seed(seed)
    n, a, b = rows
    start, stop = min(a, b, n), min(max(a, b), n)
    batch, count, k, tokens = sizes
    delta = RowRangeShift(inner_shift(rank, mode, count, stop - start, k, g, shift_bias), start, n)
    weight = torch.randn(n, k, generator=g, dtype=F64)
    bias = torch.randn(n, generator=g, dtype=F64) if base_bias else None
    x = torch.randn(batch, tokens, k, generator=g, dtype=F64)
    index = torch.randint(0, count, (batch,), generator=g)
    expected = reference_linear(x, weight, bias, delta, index)
    torch.testing.assert_close(delta.edited(weight), reference_weights(weight, delta))
    if mode != "replace":  # the same edit as a full-size shift with zero rows outside
        full = delta.padded()
        assert full.rank == delta.rank and full.out_features == n
        torch.testing.assert_close(full.edited(weight), delta.edited(weight))
    torch.testing.assert_close(edited_linear(x, weight, bias, delta, index), expected)
    plan = weditlib.plan(x, weight, delta, index, bias)
    assert plan.problem.out_features == stop - start  # costed on the edited rows alone
    for name in plan.candidates:
        y = edited_linear(x, weight, bias, delta, index, algorithm=name)
        torch.testing.assert_close(y, expected, msg=name)
    built = materialise(weight, delta)
    torch.testing.assert_close(edited_linear(x, weight, bias, built, index), expected)
    # a part of the range, as an attention layer takes its q, k and v rows of a fused shift
    low, high = min(a, n), n
    part = delta.rows(low, high)
    torch.testing.assert_close(part.edited(weight[low:high]), delta.edited(weight)[:, low:high])


@pytest.mark.parametrize("rank", [None, 2], ids=["dense", "lowrank"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_with_respect_to_x_weight_bias_and_the_shift(rank, mode):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 2, 3, generator=g, dtype=F64)
    weight, bias = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, generator=g, dtype=F64)
    delta = RowRangeShift(inner_shift(rank, mode, 3, 3, 3, g), 2, 6)
    index = torch.tensor([2, 0, 2, 1])
    kind = DenseShift if rank is None else LowRankShift
    for name in weditlib.plan(x, weight, delta, index, bias).candidates:
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias, *delta.tensors())]

        def fn(x_, w_, b_, *shift, name=name):
            d = RowRangeShift(kind(*shift[:-1], mode=mode, bias=shift[-1]), 2, 6)
            return edited_linear(x_, w_, b_, d, index, algorithm=name)

        assert torch.autograd.gradcheck(fn, leaves), name


@pytest.mark.parametrize("mode", MODES)
def test_under_bf16_autocast_the_result_is_bf16_like_f_linear(mode):
    g = torch.Generator().manual_seed(6)
    delta = RowRangeShift(inner_shift(2, mode, 2, 3, 5, g, True, torch.float32), 1, 6)
    x, weight = torch.randn(2, 4, 5, generator=g), torch.randn(6, 5, generator=g)
    bias, index = torch.randn(6, generator=g), torch.tensor([1, 0])
    half = delta.map_tensors(lambda t: t.to(torch.bfloat16))
    expected = reference_linear(x.bfloat16(), weight.bfloat16(), bias.bfloat16(), half, index)
    with torch.autocast("cpu", torch.bfloat16):
        y = edited_linear(x, weight, bias, delta, index)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.double(), expected, atol=0.1, rtol=0.03)


@pytest.mark.parametrize("mode", MODES)
def test_merge_equals_the_edit_and_unmerge_restores_the_weights(mode):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6))
    make_editable(model, ["0"])
    before = [p.detach().clone() for p in model.parameters()]
    shift = RowRangeShift(inner_shift(2, mode, 3, 2, 4, torch.Generator().manual_seed(1), True,
                                      torch.float32), 3, 6)  # fmt: skip
    x = torch.randn(2, 5, 4)
    with edit(model, {"0": shift}, torch.tensor([1, 1])):
        expected = model(x)
    merge(model, {"0": shift}, 1)
    torch.testing.assert_close(model(x), expected)
    unmerge(model)
    for parameter, original in zip(model.parameters(), before, strict=True):
        assert torch.equal(parameter, original)


@pytest.mark.parametrize("mode", MODES)
def test_only_the_key_and_value_rows_of_cross_attention_are_edited(mode):
    torch.manual_seed(0)
    e, heads, count = 8, 2, 3
    attention = nn.MultiheadAttention(e, heads, batch_first=True, dtype=F64)
    model = nn.Sequential(attention)
    make_editable(model, ["0"])
    g = torch.Generator().manual_seed(3)
    inner = inner_shift(2, mode, count, 2 * e, e, g)
    kv = RowRangeShift(inner.map_tensors(lambda t: 0.3 * t), e, 3 * e)  # rows of W_k and W_v
    query, memory = torch.randn(4, 5, e, dtype=F64), torch.randn(4, 7, e, dtype=F64)
    index = torch.tensor([2, 0, 2, 1])
    with edit(model, {"0.in_proj": kv}, index):
        y, _ = model[0](query, memory, memory, need_weights=False)
    # the hand-built reference: one plain nn.MultiheadAttention per sample, its K and V rows set
    expected = []
    edited = reference_weights(attention.in_proj_weight.detach(), kv)
    for b, i in enumerate(index.tolist()):
        plain = copy.deepcopy(attention)
        with torch.no_grad():
            plain.in_proj_weight.copy_(edited[i])
            plain.in_proj_bias[e:] += kv.inner.bias[i]
        out, _ = nn.MultiheadAttention.forward(
            plain, query[b : b + 1], memory[b : b + 1], memory[b : b + 1], need_weights=False
        )
        expected.append(out[0])
    torch.testing.assert_close(y, torch.stack(expected))


def test_bad_ranges_and_kinds_are_refused():
    inner = DenseShift(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"rows \[start, start \+ m\) = \[4, 7\)"):
        RowRangeShift(inner, 4, 6)
    with pytest.raises(ValueError, match=r"\[-1, 2\)"):
        RowRangeShift(inner, -1, 6)
    with pytest.raises(TypeError, match=r"RowRangeShift\.start must be an int"):
        RowRangeShift(inner, 1.0, 6)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inner must be a DenseShift or LowRankShift"):
        RowRangeShift(RowRangeShift(inner, 0, 3), 0, 6)  # type: ignore[arg-type]
    replace = RowRangeShift(DenseShift(torch.randn(2, 3, 4), "replace"), 1, 6)
    with pytest.raises(ValueError, match="has no full-size ΔW"):
        replace.matrix()
    shift = RowRangeShift(inner, 1, 6)
    with pytest.raises(TypeError, match="edits linear weights only"):
        weditlib.edited_conv(torch.randn(1, 2, 5), torch.randn(6, 2, 2), None, shift)
    with pytest.raises(ValueError, match=r"delta edits a \(6, 4\) weight"):
        edited_linear(torch.randn(2, 4), torch.randn(5, 4), None, shift)


def test_a_low_rank_row_range_exports_as_the_same_peft_adapter(tmp_path):
    pytest.importorskip("peft", reason="PEFT is not installed: pip install weditlib[peft]")
    from peft import PeftModel

    from weditlib.peft import export_adapter

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(6, 8)).eval()
    model = copy.deepcopy(base)
    make_editable(model, ["0"])
    g = torch.Generator().manual_seed(5)
    shift = RowRangeShift(inner_shift(2, "add", 2, 3, 6, g, True, torch.float32), 4, 8)
    x = torch.randn(1, 3, 6)
    with torch.no_grad(), edit(model, {"0": shift}, torch.tensor([1])):
        expected = model(x)
    export = export_adapter(tmp_path, model, {"0": shift}, which=1)
    assert export.relative_errors == {"0": 0.0}
    with torch.no_grad():
        got = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path).eval()(x)
    torch.testing.assert_close(got, expected)
