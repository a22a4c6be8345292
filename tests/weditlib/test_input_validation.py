"""Unusual but legitimate inputs, and wrong ones named clearly (found by an API audit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    EditableLinear,
    Grouping,
    LowRankShift,
    MultiBranchShiftGenerator,
    edit,
    edited_conv,
    make_editable,
    materialise,
    materialise_shifts,
    merge,
    set_machine_model,
    unmerge,
)
from weditlib.planner import machine_model


def channels_last_conv_model() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1)).double()
    model = model.to(memory_format=torch.channels_last)
    make_editable(model, ["0"])
    return model


def conv_shifts() -> dict[str, DenseShift]:
    g = torch.Generator().manual_seed(1)
    weight = 0.1 * torch.randn(3, 6, 4 * 9, dtype=torch.float64, generator=g)
    return {"0": DenseShift(weight, bias=torch.randn(3, 6, dtype=torch.float64, generator=g))}


X = torch.randn(3, 4, 5, 5, dtype=torch.float64)


def test_a_channels_last_conv_materialises_like_edit():
    model, shifts = channels_last_conv_model(), conv_shifts()
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    with edit(model, shifts):
        expected = model(X)
    with edit(model, shifts, materialise=True):
        torch.testing.assert_close(model(X), expected)
    with edit(model, materialise_shifts(model, shifts)):
        torch.testing.assert_close(model(X), expected)
    built = materialise(model[0].weight, shifts["0"])  # the kernel itself is accepted
    y = edited_conv(X, model[0].weight, model[0].bias, built, padding=1)
    torch.testing.assert_close(y, expected)


def test_a_channels_last_conv_merges_and_unmerges():
    model, shifts = channels_last_conv_model(), conv_shifts()
    original = model[0].weight.detach().clone()
    with edit(model, shifts, index=torch.tensor([1, 1, 1])):
        expected = model(X)
    merge(model, shifts, 1)
    torch.testing.assert_close(model(X), expected)
    unmerge(model)
    assert torch.equal(model[0].weight, original)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_copy_of_a_kernel_is_explained_when_refused():
    model, shifts = channels_last_conv_model(), conv_shifts()
    kernel = model[0].weight
    built = materialise(kernel.flatten(1), shifts["0"])  # a copy: no (n, k) view exists
    with pytest.raises(RuntimeError, match="a copy such as flatten"):
        edited_conv(X, kernel, None, built, padding=1)


def test_merge_takes_numpy_and_tensor_integers():
    model = nn.Sequential(nn.Linear(5, 4)).double()
    make_editable(model, ["0"])
    shifts = {"0": DenseShift(torch.randn(3, 4, 5, dtype=torch.float64))}
    x = torch.randn(2, 5, dtype=torch.float64)
    with edit(model, shifts, index=torch.tensor([2, 2])):
        expected = model(x)
    for which in (np.int64(2), torch.tensor(2)):
        merge(model, shifts, which)
        torch.testing.assert_close(model(x), expected)
        unmerge(model)
    for which in (2.0, True, torch.tensor(2.0)):
        with pytest.raises(ValueError, match=r"which must be an int in \[0, 3\)"):
            merge(model, shifts, which)


def test_an_input_without_the_batch_dim_is_named():
    layer = EditableLinear(5, 6, batch_dim=1)
    delta = DenseShift(torch.randn(3, 6, 5))
    for shape in [(5,), (3, 5)]:
        with pytest.raises(ValueError, match=r"sample dim at batch_dim=1 .* at least 3 dims"):
            layer(torch.randn(*shape), delta)
    assert layer(torch.randn(4, 3, 5), delta).shape == (4, 3, 6)


@pytest.mark.parametrize(("batch_dim", "error"), [(-1, ValueError), (1.0, TypeError)])
def test_editable_linear_checks_its_batch_dim(batch_dim, error):
    with pytest.raises(error, match="batch_dim must be"):
        EditableLinear(5, 6, batch_dim=batch_dim)
    with pytest.raises(error, match="batch_dim must be"):
        EditableLinear.from_module(nn.Linear(5, 6), batch_dim=batch_dim)


def test_shifts_that_are_not_a_mapping_are_named():
    model = nn.Sequential(nn.Linear(5, 6))
    make_editable(model, ["0"])
    delta = DenseShift(torch.randn(2, 6, 5))
    for shifts in ([delta], None):
        with pytest.raises(TypeError, match="shifts must be a mapping weight name → shift"):
            edit(model, shifts).__enter__()
        with pytest.raises(TypeError, match="shifts must be a mapping"):
            merge(model, shifts, 0)
    with pytest.raises(TypeError, match="shifts must be a mapping"):
        materialise_shifts(model, [delta])


def test_make_editable_names_a_bad_model_or_pattern():
    with pytest.raises(TypeError, match=r"model must be an nn\.Module, got str"):
        make_editable("model", ["*"])
    with pytest.raises(TypeError, match=r"targets must be glob pattern strings, got \[0\]"):
        make_editable(nn.Sequential(nn.Linear(5, 6)), ["0", 0])


def test_edited_conv_without_a_shift_checks_its_tensors():
    weight = torch.randn(6, 4, 3, 3)
    with pytest.raises(TypeError, match="x must be a Tensor, got list"):
        edited_conv(X.float().tolist(), weight, None, None)
    with pytest.raises(TypeError, match="weight must be a Tensor, got NoneType"):
        edited_conv(X.float(), None, None, None)
    with pytest.raises(ValueError, match="weight must have shape"):
        edited_conv(X.float(), torch.randn(6, 4), None, None)


def test_set_machine_model_refuses_what_is_not_a_machine_model():
    before = machine_model("cpu")
    with pytest.raises(TypeError, match="model must be a MachineModel, got str"):
        set_machine_model("cpu", "fast")
    with pytest.raises(TypeError, match="device_type must be a str"):
        set_machine_model(torch.device("cpu"), before)
    assert machine_model("cpu") is before  # nothing was stored


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"targets": ["a"]}, TypeError, "targets must be a mapping"),
        ({"targets": {"a": (6,)}}, ValueError, r"targets\['a'\] must be \(n, k\)"),
        ({"targets": {"a": (-1, 5)}}, ValueError, r"targets\['a'\] must be \(n, k\)"),
        ({"rank": 2.0}, ValueError, "rank must be a positive int"),
        ({"rank": True}, ValueError, "rank must be a positive int"),
    ],
)
def test_generator_arguments_are_named(kwargs, error, message):
    arguments = {"targets": {"a": (6, 5)}, "hidden_dim": 8, **kwargs}
    with pytest.raises(error, match=message):
        MultiBranchShiftGenerator(4, **arguments)


def test_generator_takes_numpy_sizes():
    generator = MultiBranchShiftGenerator(4, {"a": (np.int64(6), np.int64(5))}, hidden_dim=8)
    assert generator(torch.randn(2, 4))["a"].matrix().shape == (2, 6, 5)


def test_grouping_checks_its_shift_count():
    with pytest.raises(ValueError, match="num_shifts must be >= 0, got -1"):
        Grouping.from_index(torch.tensor([0]), -1, None)
    with pytest.raises(TypeError, match="num_shifts must be an int, got float"):
        Grouping.from_index(torch.tensor([0]), 2.0, None)


def test_a_batch_that_does_not_match_the_edit_index_is_explained():
    model = nn.Sequential(nn.Linear(5, 6))
    make_editable(model, ["0"])
    with (
        pytest.raises(ValueError, match="one entry per sample of the batch"),
        edit(model, {"0": DenseShift(torch.randn(2, 6, 5))}, torch.tensor([0, 1])),
    ):
        model(torch.randn(3, 5))


def test_shifts_and_groupings_compare_by_identity():
    weight = torch.randn(2, 6, 5)
    first, second = DenseShift(weight), DenseShift(weight)  # the same tensor, two shifts
    low_rank = LowRankShift(torch.randn(2, 6, 1), torch.randn(2, 1, 5))
    grouping = Grouping.from_index(torch.tensor([0, 1, 1]), 2, None)
    built = materialise(torch.randn(6, 5), first)
    for value in (first, low_rank, grouping, built):
        assert value == value and value in [second, value]  # no elementwise tensor ==
    assert first != second and len({first: 0, second: 1}) == 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.bfloat16, torch.bool])
def test_a_style_of_another_dtype_is_named_before_the_trunk(dtype):
    generator = MultiBranchShiftGenerator(style_dim=4, targets={"w": (3, 5)}, rank=2)
    style = torch.ones(2, 4).to(dtype)
    with pytest.raises(TypeError, match=rf"style .*{str(dtype).removeprefix('torch.')}"):
        generator(style)


def test_autocast_takes_a_lower_precision_style_as_it_takes_any_linear_input():
    generator = MultiBranchShiftGenerator(style_dim=4, targets={"w": (3, 5)}, rank=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shifts = generator(torch.ones(2, 4, dtype=torch.bfloat16))
        with pytest.raises(TypeError, match="float64"):  # autocast never casts float64
            generator(torch.ones(2, 4, dtype=torch.float64))
    assert shifts["w"].up.shape == (2, 3, 2)


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({"attn_mask": torch.zeros(3, 3, dtype=torch.bool)}, r"attn_mask: expected shape \(5, 7\)"),
        ({"attn_mask": torch.zeros(4, 5, 7)}, r"attn_mask: .* or \(6, 5, 7\), got \(4, 5, 7\)"),
        (
            {"key_padding_mask": torch.zeros(2, 5, dtype=torch.bool)},
            r"key_padding_mask: .*\(3, 7\), got \(2, 5\)",
        ),
    ],
)
def test_edited_attention_names_a_mask_of_the_wrong_shape(masks, message):
    model = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2, batch_first=True)})
    weights = make_editable(model, ["attn"])
    generator = MultiBranchShiftGenerator(style_dim=2, targets=weights, rank=1)
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    with edit(model, generator(torch.randn(3, 2))), pytest.raises(ValueError, match=message):
        model["attn"](q, kv, kv, **masks)
