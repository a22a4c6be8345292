"""edited_conv: every algorithm equals a float64 per-sample loop over ``nn.Conv*`` modules,
differentiates, follows autocast, handles empty batches and rejects bad input with named errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import weditlib
from weditlib import DenseShift, LowRankShift, edited_conv, plan_conv
from weditlib.deltas import Grouping

from .test_functional import make_index

CONV_MODULES = {1: nn.Conv1d, 2: nn.Conv2d}


def effective_kernel(weight, delta, shift: int):
    """``W ⊕ ΔW[shift]`` in float64, in the kernel's own shape."""
    change = delta.matrix()[shift].double().reshape(weight.shape)
    base = weight.double()
    return {"add": base + change, "scale": base * (1 + change), "replace": change}[delta.mode]


def loop_edited_conv(x, weight, bias, delta, index, **geometry):
    """``y[b] = ConvNd(W ⊕ ΔW[index[b]], bias + Δb[index[b]])(x[b])``, one sample at a time, with
    a float64 ``nn.Conv*`` module (so padding modes are applied exactly as torch applies them)."""
    dims = weight.dim() - 2
    out_channels, in_per_group = weight.shape[:2]
    groups = geometry.get("groups", 1)
    has_bias = bias is not None or delta.bias is not None
    module = CONV_MODULES[dims](
        in_per_group * groups, out_channels, tuple(weight.shape[2:]), bias=has_bias,
        dtype=torch.float64, **geometry,
    )  # fmt: skip
    outputs = []
    for b in range(x.shape[0]):
        shift = b if index is None else int(index[b])
        with torch.no_grad():
            module.weight.copy_(effective_kernel(weight, delta, shift))
            if has_bias:
                total = torch.zeros(out_channels, dtype=torch.float64)
                total += 0 if bias is None else bias.double()
                total += 0 if delta.bias is None else delta.bias[shift].double()
                module.bias.copy_(total)
        outputs.append(module(x[b : b + 1].double()))
    return torch.cat(outputs)


@st.composite
def conv_problems(draw):
    dims = draw(st.sampled_from([1, 2]))
    groups = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding_kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    if padding_kind == "same" and any(s != 1 for s in stride):
        padding_kind = "valid"
    if padding_kind == "int":
        padding = draw(st.integers(0, 2))
        pads = [(padding, padding)] * dims
    elif padding_kind == "tuple":
        padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
        pads = [(p, p) for p in padding]
    elif padding_kind == "same":
        padding = "same"
        totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        pads = [(total // 2, total - total // 2) for total in totals]
    else:
        padding, pads = "valid", [(0, 0)] * dims
    padding_mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    # every spatial size large enough for the kernel and for the padding mode
    sizes = []
    for (before, after), k, d in zip(pads, kernel, dilation, strict=True):
        needed = max(d * (k - 1) + 1 - before - after, max(before, after) + 1, 1)
        sizes.append(needed + draw(st.integers(0, 3)))
    pattern = draw(st.sampled_from(["none", "equal", "distinct", "sorted", "unsorted"]))
    batch = draw(st.integers(1, 5))
    num_shifts = {
        "none": batch,
        "equal": draw(st.integers(1, 3)),
        "distinct": batch + draw(st.integers(0, 2)),
    }.get(pattern) or draw(st.integers(1, batch))
    return {
        "dims": dims, "groups": groups, "kernel": kernel, "sizes": tuple(sizes),
        "in_per_group": draw(st.integers(1, 3)), "out_per_group": draw(st.integers(1, 3)),
        "geometry": {
            "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
            "padding_mode": padding_mode,
        },
        "pattern": pattern, "batch": batch, "num_shifts": num_shifts,
        "rank": draw(st.one_of(st.none(), st.integers(1, 3))),
        "mode": draw(st.sampled_from(["add", "scale", "replace"])),
        "bias": draw(st.booleans()), "bias_shift": draw(st.booleans()),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        "seed": draw(st.integers(0, 2**16)),
    }  # fmt: skip


def build(spec):
    g = torch.Generator().manual_seed(spec["seed"])
    dtype, groups, l = spec["dtype"], spec["groups"], spec["num_shifts"]
    c_in, n = spec["in_per_group"] * groups, spec["out_per_group"] * groups
    k = spec["in_per_group"] * int(torch.tensor(spec["kernel"]).prod())

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    x = randn(spec["batch"], c_in, *spec["sizes"])
    weight = randn(n, spec["in_per_group"], *spec["kernel"])
    bias = randn(n) if spec["bias"] else None
    bias_shift = randn(l, n) if spec["bias_shift"] else None
    if spec["rank"] is None:
        delta = DenseShift(randn(l, n, k), spec["mode"], bias=bias_shift)
    else:
        r = spec["rank"]
        delta = LowRankShift(randn(l, n, r), randn(l, r, k), spec["mode"], bias=bias_shift)
    index = make_index(spec["pattern"], spec["batch"], l, g)
    return x, weight, bias, delta, index


def tolerance(dtype):
    if dtype == torch.float32:
        return {"atol": 1e-4, "rtol": 1e-4}
    return {"atol": 1e-10, "rtol": 1e-10}


def candidates(x, weight, bias, delta, index, geometry):
    return list(plan_conv(x, weight, delta, index, bias, **geometry).candidates)


@settings(max_examples=80, deadline=None)
@given(conv_problems())
def test_every_algorithm_matches_the_per_sample_loop(spec):
    x, weight, bias, delta, index = build(spec)
    geometry = spec["geometry"]
    expected = loop_edited_conv(x, weight, bias, delta, index, **geometry)
    names = candidates(x, weight, bias, delta, index, geometry)
    assert {"grouped", "per_shift"} <= set(names)
    assert ("lowrank" in names) == (spec["rank"] is not None and spec["mode"] == "add")
    for name in [*names, None]:  # None: the planner's choice
        y = edited_conv(x, weight, bias, delta, index, algorithm=name, **geometry)
        assert y.shape == expected.shape and y.dtype == x.dtype
        torch.testing.assert_close(y.double(), expected, **tolerance(spec["dtype"]), msg=name)


def gradcheck_problem(dims: int, rank, mode: str, pattern: str):
    spec = {
        "dims": dims, "groups": 2, "kernel": (3,) * dims, "sizes": (5,) * dims,
        "in_per_group": 2, "out_per_group": 1,
        "geometry": {"stride": 2, "padding": 1, "dilation": 1, "groups": 2,
                     "padding_mode": "reflect"},
        "pattern": pattern, "batch": 3, "num_shifts": 3 if pattern == "none" else 2,
        "rank": rank, "mode": mode, "bias": True, "bias_shift": True, "dtype": torch.float64,
        "seed": 5,
    }  # fmt: skip
    x, weight, bias, delta, _ = build(spec)
    index = None if pattern == "none" else torch.tensor([1, 0, 1])
    return x, weight, bias, delta, index, spec["geometry"]


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
@pytest.mark.parametrize("pattern", ["none", "unsorted"])
def test_gradcheck_on_every_algorithm(dims, rank, mode, pattern):
    x, weight, bias, delta, index, geometry = gradcheck_problem(dims, rank, mode, pattern)
    kind = type(delta)
    for name in candidates(x, weight, bias, delta, index, geometry):
        tensors = [t.clone().requires_grad_() for t in (x, weight, bias, *delta.tensors())]

        def fn(x_, w_, b_, *shift, name=name):
            d = kind(*shift[:-1], mode=mode, bias=shift[-1])
            return edited_conv(x_, w_, b_, d, index, algorithm=name, **geometry)

        assert torch.autograd.gradcheck(fn, tensors, fast_mode=True), name


def test_gradients_agree_across_algorithms_on_a_larger_problem():
    # a base bias and no bias shift: the path the gradchecks above (which carry Δb) do not take
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 6, 9, 8, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    up = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    down = torch.randn(3, 2, 27, generator=g, dtype=torch.float64)
    index = torch.tensor([1, 0, 2, 2, 1, 0, 0])
    geometry = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}
    grads = {}
    for name in ("grouped", "per_shift", "lowrank"):
        tensors = [t.clone().requires_grad_() for t in (x, weight, bias, up, down)]
        delta = LowRankShift(tensors[3], tensors[4])
        y = edited_conv(*tensors[:3], delta, index, algorithm=name, **geometry)
        y.sin().sum().backward()
        grads[name] = [t.grad for t in tensors]
    for name in ("per_shift", "lowrank"):
        for a, b in zip(grads["grouped"], grads[name], strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_no_delta_is_the_base_convolution(padding_mode):
    base = nn.Conv2d(4, 6, 3, stride=1, padding="same", dilation=2, groups=2,
                     padding_mode=padding_mode)  # fmt: skip
    x = torch.randn(3, 4, 7, 6)
    y = edited_conv(x, base.weight, base.bias, None, padding="same", dilation=2, groups=2,
                    padding_mode=padding_mode)  # fmt: skip
    torch.testing.assert_close(y, base(x), rtol=0, atol=0)
    # an unbatched input is a plain convolution too
    torch.testing.assert_close(
        edited_conv(x[0], base.weight, base.bias, None, padding="same", dilation=2, groups=2,
                    padding_mode=padding_mode),
        base(x[0]),
    )  # fmt: skip


@pytest.mark.parametrize("name", ["grouped", "per_shift", "lowrank"])
def test_zero_shift_gives_the_base_output(name):
    base = nn.Conv1d(4, 6, 3, padding=1)
    x = torch.randn(5, 4, 9)
    delta = LowRankShift(torch.zeros(5, 6, 2), torch.randn(5, 2, 12))
    torch.testing.assert_close(
        edited_conv(x, base.weight, base.bias, delta, padding=1, algorithm=name), base(x)
    )


def test_unused_shifts_are_allowed_and_a_precomputed_grouping_is_used():
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    weight = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    delta = DenseShift(torch.randn(6, 5, 18, dtype=torch.float64))
    index = torch.tensor([5, 0, 5])
    expected = loop_edited_conv(x, weight, None, delta, index)
    grouping = Grouping.from_index(index, 6, 3)
    for name in candidates(x, weight, None, delta, index, {}):
        torch.testing.assert_close(edited_conv(x, weight, None, delta, index, algorithm=name),
                                   expected)  # fmt: skip
        torch.testing.assert_close(
            edited_conv(x, weight, None, delta, grouping=grouping, algorithm=name), expected
        )


def test_a_grouping_that_does_not_fit_is_a_named_error():
    x, weight = torch.randn(3, 2, 6, 6), torch.randn(5, 2, 3, 3)
    delta = DenseShift(torch.randn(2, 5, 18))
    index = torch.tensor([1, 0, 1])
    short, meta = Grouping.from_index(index[:2], 2, 2), Grouping.from_index(index, 2, 3).to("meta")
    cases = [
        (TypeError, "grouping must be a Grouping or None, got str", "g"),
        (ValueError, "grouping is for b=2, l=2; got b=3, l=2", short),
        (ValueError, "grouping is on meta but x is on cpu", meta),
    ]
    for error, message, grouping in cases:
        with pytest.raises(error, match=message):
            edited_conv(x, weight, None, delta, grouping=grouping)


def test_a_meta_index_is_a_named_error():
    x, weight = torch.randn(3, 2, 6, 6, device="meta"), torch.randn(5, 2, 3, 3, device="meta")
    delta = DenseShift(torch.randn(3, 5, 18, device="meta"))
    with pytest.raises(ValueError, match="index must hold values"):
        edited_conv(x, weight, None, delta, torch.zeros(3, dtype=torch.long, device="meta"))


@pytest.mark.parametrize("name", ["grouped", "per_shift", "lowrank"])
def test_empty_batch_gives_empty_output_and_zero_gradients(name):
    x = torch.randn(0, 4, 6, 5, requires_grad=True)
    weight = torch.randn(6, 2, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    up, down = torch.randn(3, 6, 2, requires_grad=True), torch.randn(3, 2, 18, requires_grad=True)
    bias_shift = torch.randn(3, 6, requires_grad=True)
    delta = LowRankShift(up, down, bias=bias_shift)
    index = torch.zeros(0, dtype=torch.long)
    y = edited_conv(x, weight, bias, delta, index, padding=1, groups=2, algorithm=name)
    assert y.shape == (0, 6, 6, 5)
    y.sum().backward()
    for tensor in (x, weight, bias, up, down, bias_shift):
        assert tensor.grad is not None and tensor.grad.shape == tensor.shape
        assert not tensor.grad.any()


def test_autocast_on_cpu_follows_f_conv2d_in_bfloat16():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 6, 6, generator=g)
    weight = torch.randn(5, 3, 3, 3, generator=g, requires_grad=True)
    bias = torch.randn(5, generator=g, requires_grad=True)
    shift = (0.1 * torch.randn(2, 5, 27, generator=g)).requires_grad_()
    index = torch.tensor([0, 1, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = edited_conv(x, weight, bias, DenseShift(shift), index, padding=1)
        effective = (weight.flatten(1) + shift).reshape(2, *weight.shape)
        expected = torch.cat([F.conv2d(x[b : b + 1], effective[int(index[b])], bias, padding=1)
                              for b in range(4)])  # fmt: skip
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected.float(), atol=0.1, rtol=0.02)
    y.float().sum().backward()  # to the float32 parameters and shift
    assert weight.grad.dtype == shift.grad.dtype == bias.grad.dtype == torch.float32


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_shifts_raise_when_checking(bad):
    shift = torch.randn(2, 5, 6)
    shift[1, 2, 3] = bad
    x, weight = torch.randn(2, 3, 4), torch.randn(5, 3, 2)
    with pytest.raises(ValueError, match="1 non-finite values"):
        edited_conv(x, weight, None, DenseShift(shift), check_finite=True)
    assert not torch.isfinite(edited_conv(x, weight, None, DenseShift(shift))).all()


# --- bad input -------------------------------------------------------------------------------


def conv_args(**override):
    values = {
        "x": torch.randn(4, 4, 6, 6),
        "weight": torch.randn(6, 2, 3, 3),
        "bias": torch.randn(6),
        "delta": DenseShift(torch.randn(2, 6, 18)),
        "index": torch.tensor([0, 1, 1, 0]),
        "groups": 2,
    }
    values.update(override)
    return values


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ({"x": torch.randn(4, 6, 6)}, ValueError, r"x must be a batch \(b, c_in, \*s\) with 2"),
        ({"x": torch.randn(4, 3, 6, 6)}, ValueError, "must have in/groups · groups = 2 · 2 = 4"),
        ({"weight": torch.randn(6, 2, 3, 3, 3)}, ValueError, "1 or 2 kernel dims"),
        ({"weight": torch.randn(6, 2, 3, 2)}, ValueError, r"flattens to .* = \(6, 12\)"),
        ({"groups": 4}, ValueError, "groups=4 must divide the out channels, weight has 6"),
        ({"groups": 0}, ValueError, "groups must be a positive int"),
        ({"bias": torch.randn(5)}, ValueError, r"bias must have shape \(out,\) = \(6,\)"),
        ({"delta": torch.randn(2, 6, 18)}, TypeError, "delta must be a DenseShift"),
        ({"index": torch.tensor([0, 1, 2, 0])}, ValueError, r"index values must lie in \[0, 2\)"),
        ({"index": torch.tensor([0, 1])}, ValueError, r"index must have shape \(b,\) = \(4,\)"),
        ({"index": None}, ValueError, r"shift count \(2\) must equal the batch size \(4\)"),
        ({"stride": 0}, ValueError, "stride must be >= 1"),
        ({"stride": (1, 2, 3)}, ValueError, "stride must be an int or 2 ints"),
        ({"dilation": 1.5}, TypeError, "dilation must be an int or a tuple of 2 ints"),
        ({"padding": -1}, ValueError, "padding must be >= 0"),
        ({"padding": "full"}, ValueError, "padding must be 'same', 'valid'"),
        ({"padding": "same", "stride": 2}, ValueError, "not supported for strided"),
        ({"padding_mode": "mirror"}, ValueError, "padding_mode must be one of"),
        ({"padding": 6, "padding_mode": "reflect"}, ValueError, "needs padding < input size"),
        ({"padding": 7, "padding_mode": "circular"}, ValueError, "needs padding <= input size"),
        ({"dilation": 4}, ValueError, r"padded spatial size \(6, 6\) is smaller than .* \(9, 9\)"),
        ({"weight": torch.randn(6, 2, 3, 3, dtype=torch.float64)}, TypeError, "weight dtype"),
        ({"x": torch.randint(0, 3, (4, 4, 6, 6))}, TypeError, "x must have a floating dtype"),
    ],
)
def test_bad_input_raises_a_named_error(override, error, match):
    with pytest.raises(error, match=match):
        edited_conv(**conv_args(**override))


def test_device_mismatch_is_named():
    values = conv_args(delta=DenseShift(torch.randn(2, 6, 18, device="meta")))
    with pytest.raises(ValueError, match="delta is on meta but x is on cpu"):
        edited_conv(**values)


def test_unknown_and_unsupported_algorithms_are_named():
    with pytest.raises(ValueError, match=r"algorithm must be one of \['grouped', 'per_shift'"):
        edited_conv(**conv_args(), algorithm="fastest")
    with pytest.raises(ValueError, match="algorithm='lowrank' does not support"):
        edited_conv(**conv_args(), algorithm="lowrank")
    assert weditlib.conv_algorithm_names() == ["grouped", "per_shift", "lowrank"]


# --- the planner's decisions -------------------------------------------------------------------


@pytest.fixture
def default_cpu_model():
    """The shipped CPU rates, whatever an earlier test calibrated (restored afterwards)."""
    previous = weditlib.planner.machine_model("cpu")
    weditlib.set_machine_model("cpu", weditlib.MachineModel(1.0e11, 1.0e10, 5e-6))
    yield
    weditlib.set_machine_model("cpu", previous)


@pytest.mark.parametrize(("size", "expected"), [(4, "grouped"), (32, "per_shift")])
def test_planner_prefers_one_grouped_conv_for_small_images_and_a_loop_for_large(
    default_cpu_model, size, expected
):
    # 16 listeners x 10 samples, 64 -> 64 channels, 3 x 3 (the benchmark's cases): at 4 x 4 the
    # launches of 16 convs dominate; at 32 x 32 they are amortised and the grouped conv's layout
    # copies of x and y are what remains
    x = torch.empty(160, 64, size, size)
    delta = DenseShift(torch.empty(16, 64, 64 * 9))
    index = torch.arange(16).repeat_interleave(10)
    plan = plan_conv(x, torch.empty(64, 64, 3, 3), delta, index, padding=1)
    assert plan.algorithm == expected, plan.candidates


def test_planner_prefers_lowrank_when_kernels_outweigh_the_images(default_cpu_model):
    # one rank-4 shift per sample of a 256 -> 256 3 x 3 conv on 4 x 4 images: building 32 dense
    # kernels (32 · 256 · 2304 values) costs more than the convolutions themselves
    x = torch.empty(32, 256, 4, 4)
    delta = LowRankShift(torch.empty(32, 256, 4), torch.empty(32, 4, 256 * 9))
    plan = plan_conv(x, torch.empty(256, 256, 3, 3), delta, padding=1)
    assert plan.algorithm == "lowrank", plan.candidates
    dense = DenseShift(torch.empty(32, 256, 256 * 9))
    assert plan_conv(x, torch.empty(256, 256, 3, 3), dense, padding=1).algorithm == "grouped"
