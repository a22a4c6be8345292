"""RowScaledShift (``diag(scale) (W ⊕ ΔW)``, DoRA's weight) in the edited ops, and DoRA's norms."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weditlib import (
    DenseShift,
    LowRankShift,
    RowScaledShift,
    edit,
    edited_conv,
    edited_linear,
    make_editable,
    materialise,
    merge,
    unmerge,
)
from weditlib.peft.dora import row_norms

F64 = torch.float64


def random_shift(g, l, n, k, rank, mode, bias) -> RowScaledShift:
    if rank is None:
        inner = DenseShift(torch.randn(l, n, k, generator=g, dtype=F64) * 0.3, mode=mode)
    else:
        up = torch.randn(l, n, rank, generator=g, dtype=F64) * 0.3
        inner = LowRankShift(up, torch.randn(l, rank, k, generator=g, dtype=F64), mode=mode)
    if bias:
        inner = inner.replace(bias=torch.randn(l, n, generator=g, dtype=F64))
    return RowScaledShift(inner, torch.rand(l, n, generator=g, dtype=F64) + 0.5)


def edited_weights(weight: torch.Tensor, delta: RowScaledShift) -> torch.Tensor:
    """``(l, n, k)`` in float64, the definition."""
    shift = delta.inner.matrix()
    combined = {"add": weight + shift, "scale": weight * (1 + shift), "replace": shift}[delta.mode]
    return delta.scale.unsqueeze(-1) * combined


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    sizes=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
    rank=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(["add", "scale", "replace"]),
    bias=st.booleans(),
    base_bias=st.booleans(),
    tokens=st.integers(1, 3),
)
def test_edited_linear_equals_the_row_scaled_weight_per_sample(
    seed, sizes, rank, mode, bias, base_bias, tokens
):
    g = torch.Generator().manual_seed(seed)
    batch, l, n, k = sizes
    weight = torch.randn(n, k, generator=g, dtype=F64)
    b = torch.randn(n, generator=g, dtype=F64) if base_bias else None
    delta = random_shift(g, l, n, k, rank, mode, bias)
    index = torch.randint(0, l, (batch,), generator=g)
    x = torch.randn(batch, tokens, k, generator=g, dtype=F64)
    effective = edited_weights(weight, delta)[index]  # (b, n, k)
    expected = torch.einsum("btk,bnk->btn", x, effective)
    if b is not None:
        expected = expected + b
    if delta.bias is not None:
        expected = expected + delta.bias[index].unsqueeze(1)
    torch.testing.assert_close(edited_linear(x, weight, b, delta, index), expected)
    torch.testing.assert_close(
        edited_linear(x, weight, b, materialise(weight, delta), index), expected
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), rank=st.sampled_from([None, 2]), bias=st.booleans())
def test_edited_conv_equals_the_row_scaled_kernel_per_sample(seed, rank, bias):
    g = torch.Generator().manual_seed(seed)
    kernel = torch.randn(4, 3, 3, 3, generator=g, dtype=F64)
    base_bias = torch.randn(4, generator=g, dtype=F64)
    delta = random_shift(g, 3, 4, 27, rank, "add", bias)
    index = torch.tensor([2, 0, 2, 1])
    x = torch.randn(4, 3, 6, 5, generator=g, dtype=F64)
    effective = edited_weights(kernel.flatten(1), delta).view(3, *kernel.shape)
    per_shift_bias = base_bias + (delta.bias if delta.bias is not None else 0)
    per_shift_bias = per_shift_bias.expand(3, 4)
    expected = torch.cat(
        [
            F.conv2d(x[i : i + 1], effective[j], per_shift_bias[j], padding=1)
            for i, j in enumerate(index.tolist())
        ]
    )
    got = edited_conv(x, kernel, base_bias, delta, index, padding=1)
    torch.testing.assert_close(got, expected)


def test_gradients_of_the_scale_and_inner_shift_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, generator=g, dtype=F64, requires_grad=True)
    up = torch.randn(2, 4, 2, generator=g, dtype=F64, requires_grad=True)
    down = torch.randn(2, 2, 3, generator=g, dtype=F64, requires_grad=True)
    scale = torch.rand(2, 4, generator=g, dtype=F64, requires_grad=True)
    x = torch.randn(3, 2, 3, generator=g, dtype=F64, requires_grad=True)
    index = torch.tensor([1, 0, 1])

    def run(x, weight, up, down, scale):
        delta = RowScaledShift(LowRankShift(up, down), scale)
        return edited_linear(x, weight, None, delta, index)

    assert torch.autograd.gradcheck(run, (x, weight, up, down, scale))


def test_merge_bakes_the_row_scaled_weight_in_and_unmerge_restores_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4)).double()
    make_editable(model, ["0"])
    original = copy.deepcopy(model[0].weight.detach())
    delta = random_shift(torch.Generator().manual_seed(1), 2, 4, 5, 2, "add", True)
    x = torch.randn(3, 5, dtype=F64)
    with edit(model, {"0": delta}, torch.tensor([1, 1, 1])):
        expected = model(x)
    merge(model, {"0": delta}, which=1)
    torch.testing.assert_close(model(x), expected)
    unmerge(model)
    assert torch.equal(model[0].weight, original)


def test_bad_row_scaled_shifts_are_refused():
    inner = LowRankShift(torch.zeros(2, 4, 1), torch.zeros(2, 1, 3))
    with pytest.raises(
        ValueError, match=r"scale must have shape \(l, n\) = \(2, 4\), got \(2, 3\)"
    ):
        RowScaledShift(inner, torch.ones(2, 3))
    with pytest.raises(TypeError, match=r"scale dtype torch\.float64 does not match"):
        RowScaledShift(inner, torch.ones(2, 4, dtype=F64))
    with pytest.raises(TypeError, match="inner must be a DenseShift or LowRankShift"):
        RowScaledShift(RowScaledShift(inner, torch.ones(2, 4)), torch.ones(2, 4))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 7), st.integers(1, 4)),
    dtype=st.sampled_from([torch.float32, F64]),
)
def test_row_norms_equal_the_norms_of_the_built_weights(seed, sizes, dtype):
    g = torch.Generator().manual_seed(seed)
    l, n, k, rank = sizes
    weight = torch.randn(n, k, generator=g, dtype=F64)
    up = torch.randn(l, n, rank, generator=g, dtype=F64)
    down = torch.randn(l, rank, k, generator=g, dtype=F64)
    expected = torch.linalg.norm(weight + up @ down, dim=-1)
    got = row_norms(weight.to(dtype), up.to(dtype), down.to(dtype))
    assert got.dtype == dtype and not got.requires_grad
    # Rounding error scales with the terms summed, not with their (possibly cancelling) sum.
    magnitude = torch.linalg.norm(weight.abs() + up.abs() @ down.abs(), dim=-1)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(
        got.double(), expected, rtol=0, atol=float(32 * eps * magnitude.max())
    )
