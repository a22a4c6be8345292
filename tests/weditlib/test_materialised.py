"""Materialised shifts: ``W ⊕ ΔW`` built once equals the shift applied per call (float64 loops),
differentiates, follows autocast and empty batches, compiles, and refuses a changed weight."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from torch import nn

import weditlib
from weditlib import (
    DenseShift,
    EditedWeights,
    LowRankShift,
    edit,
    edited_conv,
    edited_linear,
    make_editable,
    materialise,
    materialise_shifts,
)
from weditlib.deltas import Grouping

from . import test_conv, test_functional
from .reference_loop import loop_edited_linear

# --- the functional ops --------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(test_functional.problems())
def test_materialised_linear_matches_the_per_sample_loop(spec):
    x, weight, bias, delta, index = test_functional.build(spec)
    built = materialise(weight, delta)
    y = edited_linear(x, weight, bias, built, index)
    assert y.shape == (*x.shape[:-1], weight.shape[0]) and y.dtype == x.dtype
    expected = loop_edited_linear(x, weight, bias, delta, index)
    torch.testing.assert_close(y.double(), expected, **test_functional.tolerance(spec["dtype"]))


@settings(max_examples=60, deadline=None)
@given(test_conv.conv_problems())
def test_materialised_conv_matches_the_per_sample_loop(spec):
    x, weight, bias, delta, index = test_conv.build(spec)
    geometry = spec["geometry"]
    built = materialise(weight.flatten(1), delta)
    expected = test_conv.loop_edited_conv(x, weight, bias, delta, index, **geometry)
    for algorithm in (None, "grouped", "per_shift"):
        y = edited_conv(x, weight, bias, built, index, algorithm=algorithm, **geometry)
        torch.testing.assert_close(
            y.double(), expected, **test_conv.tolerance(spec["dtype"]), msg=str(algorithm)
        )


@pytest.mark.parametrize("num_shifts", [1, 3])
def test_materialised_linear_gradcheck(num_shifts):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
    up = torch.randn(num_shifts, 3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    down = torch.randn(num_shifts, 2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    shift_bias = torch.randn(num_shifts, 3, dtype=torch.float64, generator=g, requires_grad=True)
    index = torch.tensor([0, 0, 0, 0]) if num_shifts == 1 else torch.tensor([2, 0, 2, 1])

    def run(x, weight, bias, up, down, shift_bias):
        delta = LowRankShift(up, down, "scale", bias=shift_bias)
        return edited_linear(x, weight, bias, materialise(weight, delta), index)

    assert torch.autograd.gradcheck(run, (x, weight, bias, up, down, shift_bias))


def test_materialised_conv_gradcheck():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(4, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    shift = torch.randn(2, 4, 18, dtype=torch.float64, generator=g, requires_grad=True)
    index = torch.tensor([1, 0, 1])

    def run(x, weight, bias, shift):
        built = materialise(weight.flatten(1), DenseShift(shift))
        return edited_conv(x, weight, bias, built, index, padding=1, stride=(2, 1))

    assert torch.autograd.gradcheck(run, (x, weight, bias, shift))


@pytest.mark.parametrize("num_shifts", [1, 3])
def test_empty_batch_gives_an_empty_result(num_shifts):
    weight = torch.randn(4, 6)
    built = materialise(weight, DenseShift(torch.randn(num_shifts, 4, 6)))
    empty = torch.zeros(0, dtype=torch.long)
    assert edited_linear(torch.randn(0, 2, 6), weight, None, built, empty).shape == (0, 2, 4)
    kernel = torch.randn(4, 2, 3)
    conv_built = materialise(kernel.flatten(1), DenseShift(torch.randn(num_shifts, 4, 6)))
    y = edited_conv(torch.randn(0, 2, 7), kernel, None, conv_built, empty, padding=1)
    assert y.shape == (0, 4, 7)


def test_follows_autocast_like_the_shift_it_was_built_from():
    weight, bias = torch.randn(8, 16), torch.randn(8)
    delta = DenseShift(0.1 * torch.randn(2, 8, 16))
    x, index = torch.randn(5, 3, 16), torch.tensor([0, 1, 1, 0, 1])
    built = materialise(weight, delta)
    exact = edited_linear(x, weight, bias, delta, index)
    with torch.autocast("cpu", torch.bfloat16):
        y = edited_linear(x, weight, bias, built, index)
        planned = edited_linear(x, weight, bias, delta, index, algorithm="materialise")
    assert y.dtype == planned.dtype == torch.bfloat16
    # W ⊕ ΔW is built in float32 and then cast, where the planner casts W and ΔW before adding:
    # both are bf16 products of the same map, within bf16's precision of the float32 result
    for result in (y, planned):
        torch.testing.assert_close(result.float(), exact, atol=0.1, rtol=0.03)
    assert built.dtype == torch.float32  # built at the weights' precision, cast per call


def test_a_shift_in_another_dtype_is_built_in_the_weights_dtype():
    # a generator under bf16 autocast makes bf16 shifts for float32 weights
    weight = torch.randn(4, 6)
    delta = DenseShift(torch.randn(2, 4, 6).bfloat16(), bias=torch.randn(2, 4).bfloat16())
    built = materialise(weight, delta)
    assert built.dtype == built.bias.dtype == torch.float32
    x, index = torch.randn(3, 6), torch.tensor([1, 0, 1])
    expected = edited_linear(x, weight, None, DenseShift(
        delta.weight.float(), bias=delta.bias.float()), index)  # fmt: skip
    torch.testing.assert_close(edited_linear(x, weight, None, built, index), expected)


def test_compiles_into_one_graph_with_a_precomputed_grouping():
    weight, bias = torch.randn(5, 8), torch.randn(5)
    delta = DenseShift(torch.randn(3, 5, 8), bias=torch.randn(3, 5))
    x, grouping = torch.randn(6, 2, 8), Grouping.from_index(torch.tensor([2, 0, 1, 0, 2, 2]), 3, 6)
    built = materialise(weight, delta)

    def forward(x, weight, bias, built, grouping):
        return edited_linear(x, weight, bias, built, grouping=grouping)

    compiled = torch.compile(forward, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, weight, bias, built, grouping), forward(
        x, weight, bias, built, grouping))  # fmt: skip


def test_a_weight_changed_in_place_or_another_weight_is_refused():
    weight = torch.randn(4, 6)
    built = materialise(weight, DenseShift(torch.randn(1, 4, 6)))
    x = torch.randn(2, 6)
    with pytest.raises(RuntimeError, match="another weight"):
        edited_linear(x, weight.clone(), None, built, torch.zeros(2, dtype=torch.long))
    weight.add_(1.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        edited_linear(x, weight, None, built, torch.zeros(2, dtype=torch.long))


def test_bad_arguments_are_named():
    weight = torch.randn(4, 6)
    with pytest.raises(
        TypeError, match="must be a DenseShift, LowRankShift, RowScaledShift or RowRangeShift"
    ):
        materialise(weight, torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match=r"shift's shape \(n, k\) = \(4, 6\), got \(6, 4\)"):
        materialise(weight.T, DenseShift(torch.randn(1, 4, 6)))
    with pytest.raises(TypeError, match="weight must have a floating dtype"):
        materialise(weight.long(), DenseShift(torch.randn(1, 4, 6)))
    with pytest.raises(ValueError, match=r"EditedWeights.weight must have shape \(l, n, k\)"):
        EditedWeights(torch.randn(4, 6), None, (0, 0))
    built = materialise(weight, DenseShift(torch.randn(2, 4, 6)))
    with pytest.raises(ValueError, match="runs only as algorithm='materialise'"):
        edited_linear(
            torch.randn(2, 6), weight, None, built, torch.tensor([0, 1]), algorithm="split"
        )
    with pytest.raises(ValueError, match=r"index must have shape \(b,\) = \(3,\)"):
        edited_linear(torch.randn(3, 6), weight, None, built, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"x's last dim must equal weight's k=6"):
        edited_linear(torch.randn(2, 5), weight, None, built, torch.tensor([0, 1]))


def test_bad_arguments_of_a_one_shift_call_in_a_block_are_named():
    """The one-shift call with a block's grouping leaves most checks to F.linear; what it
    raises is still the named error of the full checks."""
    weight, bias = torch.randn(4, 6), torch.randn(4)
    built = materialise(weight, DenseShift(torch.randn(1, 4, 6), bias=torch.randn(1, 4)))
    grouping = Grouping.from_index(torch.zeros(2, dtype=torch.long), 1, 2)
    x = torch.randn(2, 3, 6)
    expected = torch.nn.functional.linear(x, built.weight[0], bias + built.bias[0])
    torch.testing.assert_close(edited_linear(x, weight, bias, built, grouping=grouping), expected)
    with pytest.raises(TypeError, match=r"weight dtype torch\.float32 does not match x dtype"):
        edited_linear(x.double(), weight, bias, built, grouping=grouping)
    with pytest.raises(ValueError, match="x's last dim must equal weight's k=6"):
        edited_linear(torch.randn(2, 3, 5), weight, bias, built, grouping=grouping)
    with pytest.raises(ValueError, match=r"bias must have shape \(n,\) = \(4,\), got \(1,\)"):
        edited_linear(x, weight, bias[:1], built, grouping=grouping)  # F.linear would broadcast
    with pytest.raises(TypeError, match=r"bias dtype torch\.float64 does not match x dtype"):
        edited_linear(x, weight, bias.double(), built, grouping=grouping)
    with pytest.raises(ValueError, match="grouping is for b=2, l=1; got b=3"):
        edited_linear(torch.randn(3, 6), weight, bias, built, grouping=grouping)
    with pytest.raises(ValueError, match="at least 2 dims"):
        edited_linear(torch.randn(6), weight, bias, built, grouping=grouping)


# --- edit(..., materialise=True) ----------------------------------------------------------------


def _transformer() -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True).double().eval()
    targets = make_editable(layer, ["self_attn", "multihead_attn", "linear1", "linear2"])
    g = torch.Generator().manual_seed(1)
    shifts = {
        name: LowRankShift(
            0.3 * torch.randn(3, n, 2, generator=g, dtype=torch.float64),
            torch.randn(3, 2, k, generator=g, dtype=torch.float64),
            bias=torch.randn(3, n, generator=g, dtype=torch.float64),
        )
        for name, (n, k) in targets.items()
    }
    return layer, shifts


@pytest.mark.parametrize("index", [[2, 0, 0, 1, 2], [1, 1, 1, 1, 1]])
def test_edit_materialised_equals_edit_on_a_transformer(index):
    layer, shifts = _transformer()
    index = torch.tensor(index)
    x, memory = torch.randn(5, 4, 8, dtype=torch.float64), torch.randn(5, 3, 8, dtype=torch.float64)
    with edit(layer, shifts, index):
        expected = layer(x, memory)
    with edit(layer, shifts, index, materialise=True):
        for _ in range(2):  # reused across calls
            torch.testing.assert_close(layer(x, memory), expected, rtol=0, atol=1e-12)
    one = {name: delta.replace(**{f: getattr(delta, f)[1:2] for f in delta.tensor_fields()})
           for name, delta in shifts.items()}  # fmt: skip
    with edit(layer, one, torch.zeros(5, dtype=torch.long)):
        expected_one = layer(x, memory)
    with edit(layer, one, torch.zeros(5, dtype=torch.long), materialise=True):
        torch.testing.assert_close(layer(x, memory), expected_one, rtol=0, atol=1e-12)


def test_edit_materialised_equals_edit_on_a_conv_model():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).double()
    targets = make_editable(model, ["0", "2"])
    g = torch.Generator().manual_seed(3)
    shifts = {
        name: DenseShift(torch.randn(2, n, k, generator=g, dtype=torch.float64))
        for name, (n, k) in targets.items()
    }
    x, index = torch.randn(3, 3, 6, 6, dtype=torch.float64), torch.tensor([1, 0, 1])
    with edit(model, shifts, index):
        expected = model(x)
    with edit(model, shifts, index, materialise=True):
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-12)


def test_an_optimiser_step_inside_a_materialised_block_is_caught():
    layer, shifts = _transformer()
    index = torch.tensor([0, 1, 2])
    x, memory = torch.randn(3, 4, 8, dtype=torch.float64), torch.randn(3, 3, 8, dtype=torch.float64)
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    with edit(layer, shifts, index, materialise=True):
        layer(x, memory).sum().backward()
        optimiser.step()
        with pytest.raises(RuntimeError, match="changed in place"):
            layer(x, memory)
    with edit(layer, shifts, index, materialise=True):  # reopening builds from the new weights
        layer(x, memory)


def test_gradients_reach_the_generator_through_a_materialised_block():
    layer, shifts = _transformer()
    leaf = shifts["linear1"].up.requires_grad_()
    x, memory = torch.randn(3, 4, 8, dtype=torch.float64), torch.randn(3, 3, 8, dtype=torch.float64)
    index = torch.tensor([0, 1, 2])
    with edit(layer, shifts, index):
        (expected,) = torch.autograd.grad(layer(x, memory).square().sum(), leaf)
    with edit(layer, shifts, index, materialise=True):
        (grad,) = torch.autograd.grad(layer(x, memory).square().sum(), leaf)
    torch.testing.assert_close(grad, expected)


def test_hf_conv1d_materialised_equals_edit():
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(4)
    model = nn.Sequential(Conv1D(6, 5)).double()
    targets = make_editable(model, ["0"])
    (name,) = targets
    shifts = {name: DenseShift(torch.randn(2, 6, 5, dtype=torch.float64))}
    x, index = torch.randn(3, 4, 5, dtype=torch.float64), torch.tensor([1, 0, 1])
    with edit(model, shifts, index):
        expected = model(x)
    with edit(model, shifts, index, materialise=True):
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-12)


def test_shifts_built_once_serve_many_blocks():
    layer, shifts = _transformer()
    index = torch.tensor([2, 0, 0, 1, 2])
    x, memory = torch.randn(5, 4, 8, dtype=torch.float64), torch.randn(5, 3, 8, dtype=torch.float64)
    with edit(layer, shifts, index):
        expected = layer(x, memory)
    with torch.no_grad():
        built = materialise_shifts(layer, shifts)
    assert set(built) == set(shifts)
    assert all(isinstance(delta, EditedWeights) for delta in built.values())
    for materialise_flag in (False, True, False):  # built shifts run as built, whatever the flag
        with edit(layer, built, index, materialise=materialise_flag):
            active = layer.linear1.active_shifts[""][0]
            assert active is built["linear1"]  # not rebuilt by the block
            torch.testing.assert_close(layer(x, memory), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("num_shifts", [1, 3])
def test_a_forward_on_built_shifts_compiles_fullgraph_and_equals_eager(num_shifts):
    """The views built shifts keep (row parts, the one-shift weight) are made inside the graph
    when traced, so the edited forward still compiles into one graph."""
    layer, shifts = _transformer()
    shifts = {name: delta.replace(**{f: getattr(delta, f)[:num_shifts]
                                     for f in delta.tensor_fields()})
              for name, delta in shifts.items()}  # fmt: skip
    index = torch.tensor([0, 2, 1, 0, 2]) % num_shifts
    x, memory = torch.randn(5, 4, 8, dtype=torch.float64), torch.randn(5, 3, 8, dtype=torch.float64)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    with torch.no_grad():
        built = materialise_shifts(layer, shifts)
        with edit(layer, shifts, index):
            expected = layer(x, memory)
        for _ in range(2):
            with edit(layer, built, index):
                torch.testing.assert_close(compiled(x, memory), expected, rtol=0, atol=1e-12)


def test_built_shifts_of_a_changed_or_other_model_are_refused_when_the_block_opens():
    layer, shifts = _transformer()
    built = materialise_shifts(layer, shifts)
    other, _ = _transformer()  # same architecture and values, other parameters
    with pytest.raises(RuntimeError, match="another weight"):
        edit(other, built, torch.tensor([0, 1])).__enter__()
    with torch.no_grad():
        layer.linear2.weight.add_(1.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        edit(layer, built, torch.tensor([0, 1])).__enter__()
    assert not layer.linear1.active_shifts  # nothing was left active


def test_materialise_shifts_checks_like_edit():
    layer, shifts = _transformer()
    with pytest.raises(KeyError, match="not editable weights"):
        materialise_shifts(layer, {"nope": shifts["linear1"]})
    with pytest.raises(ValueError, match="edits a"):
        materialise_shifts(layer, {"linear1": shifts["linear2"]})
    built = materialise_shifts(layer, shifts)
    with pytest.raises(TypeError, match="RowScaledShift or RowRangeShift, got EditedWeights"):
        materialise_shifts(layer, built)  # built once is enough
    with pytest.raises(TypeError, match="RowScaledShift or RowRangeShift, got EditedWeights"):
        weditlib.merge(layer, built, 0)  # merge bakes a shift, not built weights


def test_rows_and_single_reuse_their_views():
    weight, bias = torch.randn(6, 4), torch.randn(6)
    built = materialise(weight, LowRankShift(torch.randn(1, 6, 2), torch.randn(1, 2, 4),
                                             bias=torch.randn(1, 6)))  # fmt: skip
    part = built.rows(2, 5)
    assert built.rows(2, 5) is part
    torch.testing.assert_close(part.weight, built.weight[:, 2:5], rtol=0, atol=0)
    torch.testing.assert_close(part.bias, built.bias[:, 2:5], rtol=0, atol=0)
    edited_weight, edited_bias = built.single(bias)
    torch.testing.assert_close(edited_weight, built.weight[0], rtol=0, atol=0)
    torch.testing.assert_close(edited_bias, bias + built.bias[0], rtol=0, atol=0)
    assert built.single(None)[1] is built.single(None)[1]  # Δb alone: the stored view
    plain = materialise(weight, DenseShift(torch.randn(1, 6, 4)))
    assert plain.single(bias)[1] is bias and plain.single(None)[1] is None
    with pytest.raises(ValueError, match="single\\(\\) needs l == 1 shift, this delta holds 2"):
        materialise(weight, DenseShift(torch.randn(2, 6, 4))).single(bias)


def test_public_names():
    assert weditlib.EditedWeights is EditedWeights
    assert weditlib.materialise is materialise
    assert weditlib.materialise_shifts is materialise_shifts
