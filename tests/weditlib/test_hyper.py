"""MultiBranchShiftGenerator: shapes, zero initialisation, trainability, parameter report."""

from __future__ import annotations

import pytest
import torch

from weditlib import DenseShift, LowRankShift, MultiBranchShiftGenerator, edited_linear

TARGETS = {"a.in_proj": (24, 8), "b": (5, 8)}


@pytest.mark.parametrize("rank", [None, 3])
def test_shapes_and_kinds(rank):
    generator = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=rank)
    shifts = generator(torch.randn(4, 6))
    assert list(shifts) == list(TARGETS)
    for name, (n, k) in TARGETS.items():
        delta = shifts[name]
        assert isinstance(delta, DenseShift if rank is None else LowRankShift)
        assert (delta.num_shifts, delta.out_features, delta.in_features) == (4, n, k)
        if rank is not None:
            assert delta.rank == rank


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("mode", ["add", "scale"])
def test_heads_start_at_zero_but_learn(rank, mode):
    torch.manual_seed(0)
    generator = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=rank, mode=mode)
    style = torch.randn(3, 6)
    shifts = generator(style)
    assert all(torch.count_nonzero(d.matrix()) == 0 and d.mode == mode for d in shifts.values())
    optimiser = torch.optim.SGD(generator.parameters(), lr=0.1)
    target = torch.randn(3, 24, 8)
    for _ in range(3):
        loss = (generator(style)["a.in_proj"].matrix() - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert torch.count_nonzero(generator(style)["a.in_proj"].matrix()) > 0


def test_parameter_report_counts_every_parameter():
    dense = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=None, trunk_layers=1)
    report = dense.parameter_report()
    assert report["trunk"] == 6 * 10 + 10
    assert report["a.in_proj"] == 10 * 24 * 8 + 24 * 8
    assert report["b"] == 10 * 5 * 8 + 5 * 8
    assert report["total"] == report["trunk"] + report["a.in_proj"] + report["b"]
    low = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=2, trunk_layers=1)
    assert low.parameter_report()["a.in_proj"] == (10 * 24 * 2 + 24 * 2) + (10 * 2 * 8 + 2 * 8)


def test_branch_bottleneck_shrinks_low_rank_heads():
    wide = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=64, rank=2)
    narrow = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=64, rank=2, branch_dim=4)
    assert narrow.parameter_report()["total"] < wide.parameter_report()["total"]


def test_bad_arguments_are_named():
    generator = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10)
    with pytest.raises(ValueError, match=r"style must have shape \(l, 6\), got \(3, 5\)"):
        generator(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"style must have shape \(l, 6\), got \(6,\)"):
        generator(torch.randn(6))
    with pytest.raises(TypeError, match="style must be a Tensor"):
        generator([0.0] * 6)
    with pytest.raises(ValueError, match="mode must be one of"):
        MultiBranchShiftGenerator(6, TARGETS, mode="plus")
    with pytest.raises(ValueError, match="rank must be a positive int"):
        MultiBranchShiftGenerator(6, TARGETS, rank=0)
    with pytest.raises(ValueError, match="targets must name at least one weight"):
        MultiBranchShiftGenerator(6, {})


@pytest.mark.parametrize("rank", [None, 2])
def test_bias_heads_are_off_by_default(rank):
    generator = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=rank)
    assert all(delta.bias is None for delta in generator(torch.randn(3, 6)).values())


@pytest.mark.parametrize("rank", [None, 2])
def test_bias_heads_start_at_zero_so_the_edited_model_is_the_base(rank):
    torch.manual_seed(0)
    generator = MultiBranchShiftGenerator(
        6, {"b": (5, 8)}, hidden_dim=10, rank=rank, bias_shifts=True
    )
    delta = generator(torch.randn(3, 6))["b"]
    assert delta.bias is not None and delta.bias.shape == (3, 5)
    assert torch.count_nonzero(delta.bias) == 0
    x, weight, bias = torch.randn(3, 4, 8), torch.randn(5, 8), torch.randn(5)
    base = torch.nn.functional.linear(x, weight, bias)
    torch.testing.assert_close(edited_linear(x, weight, bias, delta), base)


@pytest.mark.parametrize("rank", [None, 2])
def test_bias_heads_learn_a_bias_shift(rank):
    torch.manual_seed(0)
    generator = MultiBranchShiftGenerator(
        6, {"b": (5, 8)}, hidden_dim=10, rank=rank, bias_shifts=True
    )
    style, x, weight = torch.randn(3, 6), torch.randn(3, 4, 8), torch.randn(5, 8)
    target = torch.nn.functional.linear(x, weight) + torch.randn(3, 1, 5)  # a per-sample offset
    optimiser = torch.optim.Adam(generator.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        y = edited_linear(x, weight, None, generator(style)["b"])
        loss = (y - target).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert torch.count_nonzero(generator(style)["b"].bias) > 0


def test_parameter_report_counts_bias_heads():
    plain = MultiBranchShiftGenerator(6, TARGETS, hidden_dim=10, rank=2, trunk_layers=1)
    biased = MultiBranchShiftGenerator(
        6, TARGETS, hidden_dim=10, rank=2, trunk_layers=1, bias_shifts=True
    )
    extra = biased.parameter_report()["a.in_proj"] - plain.parameter_report()["a.in_proj"]
    assert extra == 10 * 24 + 24
