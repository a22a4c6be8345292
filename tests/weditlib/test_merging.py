"""merge bakes one shift into the base weights; unmerge restores them bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    LowRankShift,
    edit,
    editable_modules,
    make_editable,
    merge,
    unmerge,
)


def model_with_attention(split_in_proj: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 4), nn.Linear(4, 4, bias=False)
    ).double()
    make_editable(model, ["0", "1", "2"], split_in_proj=split_in_proj)
    return model


def forward(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    h, _ = model[0](x, x, x, need_weights=False)
    return model[2](model[1](h))


def random_shifts(model, low_rank: bool, mode: str = "add", count: int = 3, bias: bool = False):
    """Random shifts of every editable weight; bias shifts where the layer has a bias."""
    shifts = {}
    for name, (module, local, (n, k)) in editable_modules(model).items():
        has_bias = bias and module._weight_views(local)[1] is not None
        bias_shift = torch.randn(count, n, dtype=torch.float64) if has_bias else None
        if low_rank:
            up = 0.1 * torch.randn(count, n, 2, dtype=torch.float64)
            down = torch.randn(count, 2, k, dtype=torch.float64)
            shifts[name] = LowRankShift(up, down, mode, bias=bias_shift)
        else:
            weight = 0.1 * torch.randn(count, n, k, dtype=torch.float64)
            shifts[name] = DenseShift(weight, mode, bias=bias_shift)
    return shifts


X = torch.randn(2, 5, 8, dtype=torch.float64)


@pytest.mark.parametrize("bias", [False, True], ids=["weight", "weight-and-bias"])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
@pytest.mark.parametrize("low_rank", [False, True], ids=["dense", "low-rank"])
@pytest.mark.parametrize("split_in_proj", [False, True], ids=["in_proj", "q-k-v"])
def test_merged_model_equals_the_edit_with_that_shift(split_in_proj, low_rank, mode, bias):
    model = model_with_attention(split_in_proj)
    shifts = random_shifts(model, low_rank, mode, bias=bias)
    with edit(model, shifts, index=torch.tensor([1, 1])):
        expected = forward(model, X)
    merge(model, shifts, which=1)
    torch.testing.assert_close(forward(model, X), expected)


def test_merged_model_runs_the_base_forward_with_no_edit_active():
    model = model_with_attention()
    merge(model, random_shifts(model, low_rank=True), which=0)
    assert not any(m._is_edited() for m in (model[0], model[1], model[2]))


@pytest.mark.parametrize("mode", ["scale", "replace"])
def test_unmerge_restores_bit_identical_weights(mode):
    model = model_with_attention()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    parameters = dict(model.named_parameters())
    merge(model, random_shifts(model, low_rank=False, mode=mode), which=2)
    assert not torch.equal(model[1].weight, before["1.weight"])
    unmerge(model)
    for name, original in before.items():
        assert torch.equal(parameters[name], original)
    assert dict(model.named_parameters()) == parameters  # the same Parameter objects


def test_merging_twice_is_an_error():
    model = model_with_attention()
    shifts = random_shifts(model, low_rank=False)
    merge(model, shifts, which=0)
    with pytest.raises(RuntimeError, match="merged shifts already"):
        merge(model, shifts, which=1)


def test_edit_while_merged_is_an_error():
    model = model_with_attention()
    shifts = random_shifts(model, low_rank=False)
    merge(model, shifts, which=0)
    with (
        pytest.raises(RuntimeError, match=r"call weditlib\.unmerge\(model\) before edit"),
        edit(model, shifts),
    ):
        pass


def test_unmerge_when_nothing_is_merged_is_an_error():
    with pytest.raises(RuntimeError, match="nothing is merged"):
        unmerge(model_with_attention())


@pytest.mark.parametrize("which", [3, -1, 1.0, True])
def test_which_out_of_range_is_an_error(which):
    model = model_with_attention()
    with pytest.raises(ValueError, match=r"which must be an int in \[0, 3\)"):
        merge(model, random_shifts(model, low_rank=False), which=which)


def test_merging_inside_an_edit_of_the_model_is_an_error():
    model = model_with_attention()
    shifts = random_shifts(model, low_rank=False)
    with edit(model, shifts), pytest.raises(RuntimeError, match="inside an edit"):
        merge(model, shifts, which=0)


def test_merging_an_unknown_weight_is_an_error():
    model = model_with_attention()
    with pytest.raises(KeyError, match="not editable weights"):
        merge(model, {"9": DenseShift(torch.zeros(1, 4, 4))}, which=0)


def test_a_bias_shift_for_a_layer_without_bias_cannot_be_merged():
    model = model_with_attention()
    before = model[1].weight.detach().clone()
    shifts = {
        "1": DenseShift(torch.ones(1, 4, 8, dtype=torch.float64)),
        "2": DenseShift(torch.zeros(1, 4, 4, dtype=torch.float64), bias=torch.ones(1, 4).double()),
    }
    with pytest.raises(ValueError, match="'2' has a bias shift, but its layer has no bias"):
        merge(model, shifts, which=0)
    assert torch.equal(model[1].weight, before)  # nothing was merged
