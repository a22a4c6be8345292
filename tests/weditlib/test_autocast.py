"""Edited ops follow torch.autocast like F.linear: inputs cast, result in the region's dtype."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from weditlib import DenseShift, LowRankShift, edited_linear
from weditlib._autocast import autocast_dtype, autocast_inputs, cast, cast_delta
from weditlib.kernels import reference

from .reference_loop import loop_edited_linear

REFERENCE_NAMES = [a.name for a in reference.ALGORITHMS]


def _inputs(kind: str, mode: str = "add"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, generator=g)
    weight = torch.randn(6, 8, generator=g)
    bias = torch.randn(6, generator=g)
    delta_bias = torch.randn(2, 6, generator=g)
    if kind == "dense":
        delta = DenseShift(0.1 * torch.randn(2, 6, 8, generator=g), mode, bias=delta_bias)
    else:
        up, down = torch.randn(2, 6, 2, generator=g), torch.randn(2, 2, 8, generator=g)
        delta = LowRankShift(0.3 * up, 0.3 * down, mode, bias=delta_bias)
    return x, weight, bias, delta, torch.tensor([1, 0, 0, 1])


def test_autocast_dtype_is_none_outside_a_region():
    assert autocast_dtype("cpu") is None
    with torch.autocast("cpu", torch.bfloat16):
        assert autocast_dtype("cpu") == torch.bfloat16
        assert autocast_dtype("cuda") is None


def test_cast_follows_autocast_eligibility():
    half = torch.bfloat16
    assert cast(torch.ones(2), half, "cpu").dtype == half
    assert cast(torch.ones(2, dtype=torch.float64), half, "cpu").dtype == torch.float64
    assert cast(torch.ones(2, dtype=torch.long), half, "cpu").dtype == torch.long
    assert cast(torch.ones(2), half, "cuda").dtype == torch.float32  # other device type
    assert cast(None, half, "cpu") is None


def test_cast_delta_casts_every_tensor_and_keeps_mode():
    _, _, _, delta, _ = _inputs("lowrank", "scale")
    casted = cast_delta(delta, torch.bfloat16, "cpu")
    assert casted.mode == "scale"
    assert all(t.dtype == torch.bfloat16 for t in casted.tensors())
    assert cast_delta(casted, torch.bfloat16, "cpu") is casted


def test_autocast_inputs_is_identity_outside_autocast():
    x, weight, bias, delta, _ = _inputs("dense")
    out = autocast_inputs(x, weight, bias, delta)
    assert all(a is b for a, b in zip(out, (x, weight, bias, delta), strict=True))


@pytest.mark.parametrize("kind", ["dense", "lowrank"])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
def test_edited_linear_under_cpu_bf16_autocast_matches_the_cast_loop(kind, mode):
    x, weight, bias, delta, index = _inputs(kind, mode)
    half = torch.bfloat16
    expected = loop_edited_linear(
        x.to(half), weight.to(half), bias.to(half), cast_delta(delta, half, "cpu"), index
    )
    for name in [n for n in REFERENCE_NAMES if n in _supported(x, weight, bias, delta, index)]:
        with torch.autocast("cpu", half):
            y = edited_linear(x, weight, bias, delta, index, algorithm=name)
        assert y.dtype == half, name
        torch.testing.assert_close(y.double(), expected, atol=0.1, rtol=0.03, msg=name)


def _supported(x, weight, bias, delta, index):
    import weditlib

    return weditlib.plan(x, weight, delta, index, bias).candidates


def test_zero_shift_under_autocast_equals_autocast_f_linear():
    x, weight, bias, _, _ = _inputs("dense")
    delta = DenseShift(torch.zeros(4, 6, 8))
    with torch.autocast("cpu", torch.bfloat16):
        expected = F.linear(x, weight, bias)
        y = edited_linear(x, weight, bias, delta, algorithm="materialise_gather")
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("kind", ["dense", "lowrank"])
def test_gradients_under_autocast_reach_float32_masters(kind):
    x, weight, bias, delta, index = _inputs(kind)
    leaves = [x, weight, bias, *delta.tensors()]
    for leaf in leaves:
        leaf.requires_grad_(True)
    with torch.autocast("cpu", torch.bfloat16):
        y = edited_linear(x, weight, bias, delta, index)
    y.float().square().sum().backward()
    for leaf in leaves:
        assert leaf.grad is not None and leaf.grad.dtype == torch.float32
        assert bool(torch.isfinite(leaf.grad).all()) and bool(leaf.grad.abs().sum() > 0)


def test_float64_inputs_are_not_cast_under_autocast():
    x, weight, bias, _, _ = _inputs("dense")
    x, weight, bias = x.double(), weight.double(), bias.double()
    delta = DenseShift(torch.zeros(4, 6, 8, dtype=torch.float64))
    with torch.autocast("cpu", torch.bfloat16):
        y = edited_linear(x, weight, bias, delta)
    assert y.dtype == torch.float64
