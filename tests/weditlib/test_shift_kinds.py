"""The shift protocol: each kind answers what callers ask, ``W ⊕ ΔW`` is built in one place, so
merge, materialise and the op's ``materialise`` algorithm agree bit for bit; the previous
release's names still work, with a warning."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import weditlib
from weditlib import (
    DenseShift,
    EditedWeights,
    LowRankShift,
    MultiBranchShiftGenerator,
    RowScaledShift,
    edit,
    edited_linear,
    make_editable,
    materialise,
    merge,
    unmerge,
)

F64 = torch.float64
KINDS = ["dense", "low_rank", "row_scaled"]


def make_shift(kind: str, mode: str, count=3, n=5, k=7, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return (0.3 * torch.randn(*shape, generator=g)).to(dtype)

    bias = randn(count, n)
    if kind == "dense":
        return DenseShift(randn(count, n, k), mode=mode, bias=bias)
    low_rank = LowRankShift(randn(count, n, 2), randn(count, 2, k), mode=mode, bias=bias)
    if kind == "low_rank":
        return low_rank
    return RowScaledShift(low_rank, 1 + randn(count, n))


def reference_edited(weight: torch.Tensor, shift) -> torch.Tensor:
    """``(l, n, k)`` ``diag(scale) (W ⊕ ΔW)`` in float64, from the definitions."""
    inner = shift.without_row_scale()
    matrix = inner.matrix().to(F64) if inner.rank is None else inner.up.to(F64) @ inner.down.to(F64)
    w = weight.to(F64)
    built = {"add": w + matrix, "scale": w * (1 + matrix), "replace": matrix}[inner.mode]
    if shift.row_scale is not None:
        built = built * shift.row_scale.to(F64).unsqueeze(-1)
    return built


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    mode=st.sampled_from(["add", "scale", "replace"]),
    count=st.integers(1, 4),
    n=st.integers(1, 6),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_edited_weights_are_w_combined_with_the_shift(kind, mode, count, n, k, seed):
    shift = make_shift(kind, mode, count, n, k, dtype=F64, seed=seed)
    weight = torch.randn(n, k, dtype=F64, generator=torch.Generator().manual_seed(seed + 1))
    torch.testing.assert_close(shift.edited(weight), reference_edited(weight, shift))
    picked = [count - 1, 0, count - 1]
    torch.testing.assert_close(shift.select(picked).edited(weight), shift.edited(weight)[picked])
    tail = shift.rows(1, n)  # empty when n == 1
    torch.testing.assert_close(tail.edited(weight[1:]), shift.edited(weight)[:, 1:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
def test_merge_and_materialise_build_the_same_bits(kind, mode):
    shift = make_shift(kind, mode)
    model = nn.Sequential(nn.Linear(7, 5))
    make_editable(model, ["0"])
    weight = model[0].weight.detach().clone()
    built = materialise(model[0].weight, shift)
    assert isinstance(built, EditedWeights)
    assert torch.equal(built.weight, shift.edited(weight))
    merge(model, {"0": shift}, 1)
    assert torch.equal(model[0].weight.detach(), materialise(weight, shift.select([1])).weight[0])
    assert torch.equal(model[0].weight.detach(), built.weight[1])
    unmerge(model)
    assert torch.equal(model[0].weight.detach(), weight)


@pytest.mark.parametrize("kind", ["dense", "low_rank"])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
def test_the_op_materialise_algorithm_equals_materialised_weights_bitwise(kind, mode):
    shift = make_shift(kind, mode)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 4, 7, generator=g)
    weight, bias = torch.randn(5, 7, generator=g), torch.randn(5, generator=g)
    index = torch.tensor([2, 0, 1, 1, 2, 0])
    by_algorithm = edited_linear(x, weight, bias, shift, index, algorithm="materialise")
    by_built = edited_linear(x, weight, bias, materialise(weight, shift), index)
    assert torch.equal(by_algorithm, by_built)


def test_an_edit_block_materialised_equals_merging_one_shift():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5))
    make_editable(model, ["0"])
    shift = make_shift("low_rank", "scale", count=1)
    x = torch.randn(3, 7)
    with edit(model, {"0": shift}, torch.zeros(3, dtype=torch.long), materialise=True):
        inside = model(x)
    merge(model, {"0": shift}, 0)
    merged = model(x)
    unmerge(model)
    assert torch.equal(inside, merged)


def test_edited_weights_are_not_a_shift():
    built = materialise(torch.randn(5, 7), make_shift("dense", "add"))
    assert not hasattr(built, "mode")
    with pytest.raises(
        TypeError, match="delta must be a DenseShift, LowRankShift, RowScaledShift or RowRangeShift"
    ):
        materialise(torch.randn(5, 7), built)  # type: ignore[arg-type]


OLD_NAMES = [
    (weditlib, "DenseDelta", DenseShift),
    (weditlib, "LowRankDelta", LowRankShift),
    (weditlib, "RowScaledDelta", RowScaledShift),
    (weditlib, "MaterialisedDelta", EditedWeights),
    (weditlib, "MultiBranchDeltaGenerator", MultiBranchShiftGenerator),
    (weditlib.deltas, "DenseDelta", DenseShift),
    (weditlib.deltas, "LowRankDelta", LowRankShift),
    (weditlib.row_scaled, "RowScaledDelta", RowScaledShift),
    (weditlib.materialised, "MaterialisedDelta", EditedWeights),
    (weditlib.hyper, "MultiBranchDeltaGenerator", MultiBranchShiftGenerator),
]


@pytest.mark.parametrize(("module", "old", "new"), OLD_NAMES)
def test_old_names_warn_and_still_work(module, old, new):
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* use .*{new.__name__}"):
        alias = getattr(module, old)
    assert alias is new


def test_old_classes_still_build_working_shifts():
    with pytest.warns(DeprecationWarning):
        from weditlib import DenseDelta
    shift = DenseDelta(torch.zeros(2, 5, 7))
    assert isinstance(shift, DenseShift)
    x, weight = torch.randn(2, 3, 7), torch.randn(5, 7)
    torch.testing.assert_close(edited_linear(x, weight, None, shift), x @ weight.T)


def test_unknown_names_are_still_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchDelta'"):
        weditlib.NoSuchDelta


def test_the_old_mode_name_warns_and_means_add():
    with pytest.warns(DeprecationWarning, match="mode='shift' is deprecated .* use mode='add'"):
        shift = LowRankShift(torch.ones(1, 2, 1), torch.ones(1, 1, 3), mode="shift")
    assert shift.mode == "add"
    torch.testing.assert_close(shift.edited(torch.zeros(2, 3)), torch.ones(1, 2, 3))
    with pytest.warns(DeprecationWarning, match="mode='shift'"):
        generator = MultiBranchShiftGenerator(4, {"w": (2, 3)}, mode="shift")
    assert {s.mode for s in generator(torch.randn(2, 4)).values()} == {"add"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DenseShift(torch.zeros(1, 2, 3), mode="add")  # the new name does not warn


def test_linear_and_conv_algorithms_share_one_protocol():
    from weditlib.kernels import base, conv, reference

    for algorithm in (*reference.ALGORITHMS, *conv.ALGORITHMS):
        assert isinstance(algorithm, base.Algorithm), algorithm.name
    assert conv.ConvAlgorithm.__origin__ is base.Algorithm
