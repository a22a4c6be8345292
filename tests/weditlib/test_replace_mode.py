"""Mode ``replace``: the shift is the edited weight (``y_b = x_b ΔW_bᵀ + b + Δb_b``), on every
path the other modes take; the algorithms that rely on the shared ``W`` are never offered.

The per-sample float64 loop (``reference_loop.py``) covers it in ``test_functional``,
``test_conv``, ``test_row_scaled``, ``test_shift_kinds`` and ``test_merging`` too.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import weditlib
from weditlib import DenseShift, LowRankShift, edit, edited_linear, make_editable, materialise
from weditlib.deltas import Grouping
from weditlib.kernels.base import Problem
from weditlib.kernels.traced import run_traced

from .reference_loop import loop_edited_linear

F64 = torch.float64


def replace_shift(rank: int | None, count: int, n: int, k: int, g: torch.Generator):
    bias = torch.randn(count, n, generator=g, dtype=F64)
    if rank is None:
        return DenseShift(torch.randn(count, n, k, generator=g, dtype=F64), "replace", bias=bias)
    up = torch.randn(count, n, rank, generator=g, dtype=F64)
    down = torch.randn(count, rank, k, generator=g, dtype=F64)
    return LowRankShift(up, down, "replace", bias=bias)


def names_for(x, weight, bias, delta, index):
    return list(weditlib.plan(x, weight, delta, index, bias).candidates)


@settings(max_examples=40, deadline=None)
@given(
    rank=st.sampled_from([None, 1, 3]),
    sizes=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
    tokens=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_every_path_ignores_the_base_weight(rank, sizes, tokens, seed):
    g = torch.Generator().manual_seed(seed)
    batch, count, n, k = sizes
    x = torch.randn(batch, tokens, k, generator=g, dtype=F64)
    bias = torch.randn(n, generator=g, dtype=F64)
    delta = replace_shift(rank, count, n, k, g)
    index = torch.randint(0, count, (batch,), generator=g)
    expected = torch.einsum("btk,bnk->btn", x, delta.matrix()[index])
    expected = expected + bias + delta.bias[index].unsqueeze(1)
    ones = x.new_ones(n, k)
    torch.testing.assert_close(loop_edited_linear(x, ones, bias, delta, index), expected)
    for weight in (torch.randn(n, k, generator=g, dtype=F64), torch.zeros(n, k, dtype=F64)):
        for name in names_for(x, weight, bias, delta, index):
            y = edited_linear(x, weight, bias, delta, index, algorithm=name)
            torch.testing.assert_close(y, expected, msg=name)
        # the traced algorithms (what torch.compile runs): any index, and the uniform view
        uniform = torch.arange(count).repeat_interleave(2)
        x2 = torch.randn(2 * count, tokens, k, generator=g, dtype=F64)
        for xs, ix in ((x, index), (x2, uniform)):
            grouping = Grouping.from_index(ix, count, xs.shape[0])
            want = loop_edited_linear(xs, weight, bias, delta, ix)
            torch.testing.assert_close(run_traced(xs, weight, bias, delta, grouping), want)
        built = materialise(weight, delta)
        torch.testing.assert_close(edited_linear(x, weight, bias, built, index), expected)


@pytest.mark.parametrize("rank", [None, 2], ids=["dense", "lowrank"])
def test_gradcheck_with_respect_to_x_and_the_shift(rank):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 2, 5, generator=g, dtype=F64)
    weight, bias = torch.randn(3, 5, generator=g, dtype=F64), torch.randn(3, generator=g, dtype=F64)
    delta = replace_shift(rank, 3, 3, 5, g)
    index = torch.tensor([2, 0, 2, 1])  # unequal groups: the padded layout
    kind = DenseShift if rank is None else LowRankShift
    for name in names_for(x, weight, bias, delta, index):
        leaves = [t.clone().requires_grad_() for t in (x, *delta.tensors())]

        def fn(x_, *shift, name=name):
            d = kind(*shift[:-1], mode="replace", bias=shift[-1])
            return edited_linear(x_, weight, bias, d, index, algorithm=name)

        assert torch.autograd.gradcheck(fn, leaves), name
        # the base weight takes no part: no gradient reaches it
        w, x_ = weight.clone().requires_grad_(), x.clone().requires_grad_()
        y = edited_linear(x_, w, bias, delta, index, algorithm=name)
        grad, _ = torch.autograd.grad(y.sum(), (w, x_), allow_unused=True)
        assert grad is None or not grad.any(), name


def problem(rank: int | None, mode: str) -> Problem:
    return Problem(
        batch=64, tokens=32, in_features=256, out_features=256, num_shifts=8, rank=rank,
        mode=mode, max_group=8, uniform=True, has_bias=True, dtype=torch.float32,
        device_type="cpu",
    )  # fmt: skip


def test_the_planner_never_offers_an_algorithm_built_on_the_shared_weight():
    for rank in (None, 4):
        names = {a.name for a in weditlib.planner.candidate_algorithms(problem(rank, "replace"))}
        assert names.isdisjoint({"split", "lowrank_scale"})
        assert {"materialise", "materialise_gather"} <= names
        assert ("lowrank" in names) == (rank is not None)


def test_costs_drop_the_work_of_the_shared_weight():
    by_name = {a.name: a for a in weditlib.planner.candidate_algorithms(problem(4, "add"))}
    add, replace = problem(4, "add"), problem(4, "replace")
    lowrank = by_name["lowrank"]
    assert lowrank.cost(replace).flops < lowrank.cost(add).flops  # no base GEMM
    dense_add, dense_replace = problem(None, "add"), problem(None, "replace")
    materialise_ = by_name["materialise"]
    assert materialise_.cost(dense_replace).extra_bytes < materialise_.cost(dense_add).extra_bytes


def test_a_dense_replace_shift_is_its_own_edited_weight():
    delta = DenseShift(torch.randn(2, 3, 4), "replace")
    assert delta.edited(torch.randn(3, 4)) is delta.weight  # nothing built, nothing copied


def test_edit_block_replaces_the_layer_weight_and_adds_the_bias_shift():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    make_editable(model, ["0", "2"])
    first = DenseShift(torch.randn(2, 3, 4), "replace", bias=torch.randn(2, 3))
    second = LowRankShift(torch.randn(2, 2, 1), torch.randn(2, 1, 3), "replace")
    x, index = torch.randn(3, 4), torch.tensor([1, 0, 1])
    with edit(model, {"0": first, "2": second}, index):
        y = model(x)
    expected = []
    for b, i in enumerate(index.tolist()):
        h = torch.tanh(x[b] @ first.weight[i].T + model[0].bias + first.bias[i])
        expected.append(h @ second.matrix()[i].T + model[2].bias)
    torch.testing.assert_close(y, torch.stack(expected))


def test_a_replace_shift_of_a_row_scaled_kind_scales_the_generated_weight():
    up, down = torch.randn(2, 3, 2, dtype=F64), torch.randn(2, 2, 4, dtype=F64)
    inner = LowRankShift(up, down, "replace")
    delta = weditlib.RowScaledShift(inner, torch.rand(2, 3, dtype=F64) + 0.5)
    x, weight = torch.randn(2, 5, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    expected = torch.einsum("btk,bnk->btn", x, delta.scale.unsqueeze(-1) * inner.matrix())
    torch.testing.assert_close(edited_linear(x, weight, None, delta), expected)
