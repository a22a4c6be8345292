"""edited_linear: every algorithm equals the per-sample loop, differentiates, rejects bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import weditlib
from weditlib import DenseShift, Grouping, LowRankShift, edited_linear
from weditlib.kernels import reference

from .reference_loop import loop_edited_linear

REFERENCE_NAMES = [a.name for a in reference.ALGORITHMS]


def make_index(pattern: str, batch: int, num_shifts: int, generator: torch.Generator):
    if pattern == "none":
        return None
    if pattern == "empty":
        return torch.zeros(0, dtype=torch.long)
    if pattern == "equal":
        return torch.zeros(batch, dtype=torch.long)
    if pattern == "distinct":
        return torch.randperm(num_shifts, generator=generator)[:batch]
    if pattern == "uniform":  # sorted, every shift used by batch // num_shifts samples
        return torch.arange(num_shifts).repeat_interleave(batch // num_shifts)
    values = torch.randint(0, num_shifts, (batch,), generator=generator)
    return values.sort().values if pattern == "sorted" else values


@st.composite
def problems(draw):
    pattern = draw(st.sampled_from(["none", "equal", "distinct", "sorted", "unsorted"]))
    batch = draw(st.integers(1, 6))
    if pattern == "none":
        num_shifts = batch
    elif pattern == "equal":
        num_shifts = draw(st.integers(1, 3))
    elif pattern == "distinct":
        num_shifts = draw(st.integers(batch, batch + 2))
    else:
        num_shifts = draw(st.integers(1, batch))
    token_dims = draw(st.lists(st.integers(0, 3), min_size=0, max_size=2))
    return {
        "pattern": pattern,
        "batch": batch,
        "num_shifts": num_shifts,
        "token_dims": token_dims,
        "n": draw(st.integers(0, 9)),
        "k": draw(st.integers(0, 9)),
        "rank": draw(st.one_of(st.none(), st.integers(1, 4))),
        "mode": draw(st.sampled_from(["add", "scale", "replace"])),
        "bias": draw(st.booleans()),
        "shift_bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(spec):
    g = torch.Generator().manual_seed(spec["seed"])
    dtype, n, k, num_shifts = spec["dtype"], spec["n"], spec["k"], spec["num_shifts"]
    x = torch.randn(spec["batch"], *spec["token_dims"], k, generator=g, dtype=dtype)
    weight = torch.randn(n, k, generator=g, dtype=dtype)
    bias = torch.randn(n, generator=g, dtype=dtype) if spec["bias"] else None
    shift_bias = None
    if spec.get("shift_bias"):
        shift_bias = torch.randn(num_shifts, n, generator=g, dtype=dtype)
    if spec["rank"] is None:
        shift = torch.randn(num_shifts, n, k, generator=g, dtype=dtype)
        delta = DenseShift(shift, spec["mode"], bias=shift_bias)
    else:
        r = spec["rank"]
        delta = LowRankShift(
            torch.randn(num_shifts, n, r, generator=g, dtype=dtype),
            torch.randn(num_shifts, r, k, generator=g, dtype=dtype),
            spec["mode"],
            bias=shift_bias,
        )
    index = make_index(spec["pattern"], spec["batch"], num_shifts, g)
    return x, weight, bias, delta, index


def supported_names(x, weight, bias, delta, index):
    return list(weditlib.plan(x, weight, delta, index, bias).candidates)


def tolerance(dtype):
    return (
        {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-10}
    )


@settings(max_examples=150, deadline=None)
@given(problems())
def test_every_algorithm_matches_the_per_sample_loop(spec):
    x, weight, bias, delta, index = build(spec)
    expected = loop_edited_linear(x, weight, bias, delta, index)
    names = supported_names(x, weight, bias, delta, index)
    assert "materialise" in names and "materialise_gather" in names
    for name in names:
        y = edited_linear(x, weight, bias, delta, index, algorithm=name)
        assert y.shape == (*x.shape[:-1], weight.shape[0])
        assert y.dtype == x.dtype
        torch.testing.assert_close(y.double(), expected, **tolerance(spec["dtype"]), msg=name)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_planner_choice_matches_the_per_sample_loop(spec):
    x, weight, bias, delta, index = build(spec)
    y = edited_linear(x, weight, bias, delta, index)
    expected = loop_edited_linear(x, weight, bias, delta, index)
    torch.testing.assert_close(y.double(), expected, **tolerance(spec["dtype"]))


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
@pytest.mark.parametrize("pattern", ["none", "unsorted"])
def test_gradcheck_on_every_algorithm(rank, mode, pattern):
    spec = {
        "pattern": pattern, "batch": 4, "num_shifts": 4 if pattern == "none" else 3,
        "token_dims": [2], "n": 3, "k": 4, "rank": rank, "mode": mode, "bias": True,
        "shift_bias": True, "dtype": torch.float64, "seed": 7,
    }  # fmt: skip
    x, weight, bias, delta, index = build(spec)
    if pattern == "unsorted":
        index = torch.tensor([2, 0, 2, 1])  # unequal groups: the padded layout
    for name in supported_names(x, weight, bias, delta, index):
        tensors = [t.clone().requires_grad_() for t in (x, weight, bias, *delta.tensors())]

        def fn(x_, w_, b_, *shift, name=name):
            *factors, shift_bias = shift
            kind = DenseShift if rank is None else LowRankShift
            d = kind(*factors, mode=mode, bias=shift_bias)
            return edited_linear(x_, w_, b_, d, index, algorithm=name)

        assert torch.autograd.gradcheck(fn, tensors), name


def test_gradients_agree_across_algorithms_on_a_larger_problem():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 5, 16, generator=g, dtype=torch.float64)
    weight = torch.randn(12, 16, generator=g, dtype=torch.float64)
    shift = torch.randn(3, 12, 16, generator=g, dtype=torch.float64)
    index = torch.tensor([1, 0, 2, 2, 1, 0, 0, 2])
    grads = {}
    for name in ("materialise", "materialise_gather", "split"):
        tensors = [t.clone().requires_grad_() for t in (x, weight, shift)]
        y = edited_linear(
            tensors[0], tensors[1], None, DenseShift(tensors[2]), index, algorithm=name
        )
        (y.sin().sum()).backward()
        grads[name] = [t.grad for t in tensors]
    for name in ("materialise_gather", "split"):
        for a, b in zip(grads["materialise"], grads[name], strict=True):
            torch.testing.assert_close(a, b)


def test_no_delta_is_plain_linear():
    x, weight, bias = torch.randn(2, 3, 4), torch.randn(5, 4), torch.randn(5)
    assert torch.equal(
        edited_linear(x, weight, bias, None), torch.nn.functional.linear(x, weight, bias)
    )


def test_zero_shift_gives_the_base_output():
    x, weight, bias = torch.randn(4, 3, 6), torch.randn(5, 6), torch.randn(5)
    base = torch.nn.functional.linear(x, weight, bias)
    for name in REFERENCE_NAMES[:3]:
        y = edited_linear(x, weight, bias, DenseShift(torch.zeros(4, 5, 6)), algorithm=name)
        torch.testing.assert_close(y, base)


def test_unused_shifts_are_allowed():
    x, weight = torch.randn(3, 2, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    delta = DenseShift(torch.randn(6, 5, 4, dtype=torch.float64))
    index = torch.tensor([5, 0, 5])
    expected = loop_edited_linear(x, weight, None, delta, index)
    for name in supported_names(x, weight, None, delta, index):
        torch.testing.assert_close(
            edited_linear(x, weight, None, delta, index, algorithm=name), expected
        )


def test_bias_shift_alone_without_base_bias():
    x, weight = torch.randn(3, 2, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    shift_bias = torch.randn(2, 5, dtype=torch.float64)
    delta = DenseShift(torch.zeros(2, 5, 4, dtype=torch.float64), bias=shift_bias)
    index = torch.tensor([1, 0, 1])
    expected = torch.nn.functional.linear(x, weight) + shift_bias[index, None, :]
    for name in supported_names(x, weight, None, delta, index):
        y = edited_linear(x, weight, None, delta, index, algorithm=name)
        torch.testing.assert_close(y, expected, msg=name)


def test_bias_shift_gradient_is_the_output_gradient_summed_per_shift():
    x, weight = torch.randn(4, 3, 6), torch.randn(5, 6)
    shift_bias = torch.zeros(3, 5, requires_grad=True)
    delta = LowRankShift(torch.randn(3, 5, 2), torch.randn(3, 2, 6), bias=shift_bias)
    index = torch.tensor([2, 0, 2, 2])
    dy = torch.randn(4, 3, 5)
    (grad,) = torch.autograd.grad(edited_linear(x, weight, None, delta, index), shift_bias, dy)
    expected = torch.zeros(3, 5).index_add_(0, index, dy.sum(1))
    torch.testing.assert_close(grad, expected)


def test_rows_slices_the_bias_shift():
    delta = LowRankShift(torch.randn(2, 6, 3), torch.randn(2, 3, 4), bias=torch.randn(2, 6))
    part = delta.rows(2, 5)
    assert part.bias is not None and torch.equal(part.bias, delta.bias[:, 2:5])
    assert torch.equal(part.matrix(), delta.matrix()[:, 2:5])


# --- empty batches and zero-size dims ---------------------------------------------------------

ZERO_SIZES = {
    "b=0": {"batch": 0, "num_shifts": 2, "pattern": "empty"},
    "b=0,l=0": {"batch": 0, "num_shifts": 0, "pattern": "empty"},
    "b=0,index=None": {"batch": 0, "num_shifts": 0, "pattern": "none"},
    "t=0": {"token_dims": [0]},
    "t=2x0": {"token_dims": [2, 0]},
    "n=0": {"n": 0},
    "k=0": {"k": 0},
}


@pytest.mark.parametrize("zero", ZERO_SIZES.values(), ids=ZERO_SIZES.keys())
@pytest.mark.parametrize("rank", [None, 2], ids=["dense", "lowrank"])
@pytest.mark.parametrize("mode", ["add", "scale", "replace"])
@pytest.mark.parametrize("pattern", ["unsorted", "uniform"])
@pytest.mark.parametrize("shift_bias", [True, False], ids=["db", "no-db"])
def test_zero_size_dims_match_f_linear_shapes_and_gradients(zero, rank, mode, pattern, shift_bias):
    spec = {
        "pattern": pattern, "batch": 4, "num_shifts": 2, "token_dims": [2], "n": 5, "k": 4,
        "rank": rank, "mode": mode, "bias": True, "shift_bias": shift_bias,
        "dtype": torch.float64, "seed": 11,
    } | zero  # fmt: skip
    x, weight, bias, delta, index = build(spec)
    expected_shape = F_linear_shape(x, weight)
    expected = loop_edited_linear(x, weight, bias, delta, index)
    for name in supported_names(x, weight, bias, delta, index):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias, *delta.tensors())]
        kind = DenseShift if rank is None else LowRankShift
        factors = leaves[3:-1] if shift_bias else leaves[3:]
        rebuilt = kind(*factors, mode=mode, bias=leaves[-1] if shift_bias else None)
        y = edited_linear(leaves[0], leaves[1], leaves[2], rebuilt, index, algorithm=name)
        assert y.shape == expected_shape, name
        torch.testing.assert_close(y, expected, msg=name)
        grads = torch.autograd.grad(y.sum(), leaves, allow_unused=True)
        for leaf, grad in zip(leaves, grads, strict=True):
            assert grad is None or grad.shape == leaf.shape, name
        # what reaches the bias is the output gradient's sum, as for F.linear
        torch.testing.assert_close(grads[2], torch.ones_like(y).flatten(0, -2).sum(0), msg=name)


def F_linear_shape(x, weight):
    return torch.nn.functional.linear(x, weight).shape


def test_empty_batch_is_an_empty_result_like_nn_linear():
    linear = torch.nn.Linear(6, 5)
    x = torch.randn(0, 3, 6)
    delta = DenseShift(torch.randn(2, 5, 6))
    y = edited_linear(x, linear.weight, linear.bias, delta, torch.zeros(0, dtype=torch.long))
    assert y.shape == linear(x).shape == (0, 3, 5)


# --- bad input -------------------------------------------------------------------------------


def args(**override):
    values = {
        "x": torch.randn(4, 3, 6),
        "weight": torch.randn(5, 6),
        "bias": torch.randn(5),
        "delta": DenseShift(torch.randn(2, 5, 6)),
        "index": torch.tensor([0, 1, 1, 0]),
    }
    values.update(override)
    return values


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ({"x": torch.randn(4, 3, 7)}, ValueError, "last dim must equal weight's k=6"),
        ({"x": torch.randn(6)}, ValueError, "at least 2 dims"),
        ({"weight": torch.randn(5, 6, 1)}, ValueError, r"weight must have shape \(n, k\)"),
        ({"weight": torch.randn(4, 6)}, ValueError, r"delta edits a \(5, 6\) weight"),
        ({"bias": torch.randn(4)}, ValueError, r"bias must have shape \(n,\) = \(5,\)"),
        ({"delta": torch.randn(2, 5, 6)}, TypeError, "delta must be a DenseShift"),
        ({"index": torch.tensor([0, 1, 2, 0])}, ValueError, r"index values must lie in \[0, 2\)"),
        ({"index": torch.tensor([0, -1, 1, 0])}, ValueError, r"index values must lie in \[0, 2\)"),
        ({"index": torch.tensor([0, 1, 1])}, ValueError, r"index must have shape \(b,\) = \(4,\)"),
        ({"index": torch.tensor([0.0, 1, 1, 0])}, TypeError, "integer dtype"),
        ({"index": [0, 1, 1, 0]}, TypeError, "index must be an integer Tensor"),
        ({"index": None}, ValueError, r"shift count \(2\) must equal the batch size \(4\)"),
        ({"weight": torch.randn(5, 6, dtype=torch.float64)}, TypeError, "weight dtype"),
        ({"bias": torch.randn(5, dtype=torch.float64)}, TypeError, "bias dtype"),
        (
            {"delta": DenseShift(torch.randn(2, 5, 6, dtype=torch.float64))},
            TypeError,
            "delta dtype torch.float64 does not match x dtype torch.float32",
        ),
        ({"x": torch.randint(0, 3, (4, 3, 6))}, TypeError, "weight dtype"),
    ],
)
def test_bad_input_raises_a_named_error(override, error, match):
    with pytest.raises(error, match=match):
        edited_linear(**args(**override))


def test_device_mismatch_is_named():
    values = args()
    values["delta"] = DenseShift(torch.randn(2, 5, 6, device="meta"))
    with pytest.raises(ValueError, match="delta is on meta but x is on cpu"):
        edited_linear(**values)


def test_unknown_and_unsupported_algorithms_are_named():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        edited_linear(**args(), algorithm="fastest")
    with pytest.raises(ValueError, match="algorithm='lowrank' does not support"):
        edited_linear(**args(), algorithm="lowrank")


def test_delta_constructors_validate_shapes():
    with pytest.raises(ValueError, match=r"DenseShift.weight must have shape \(l, n, k\)"):
        DenseShift(torch.randn(5, 6))
    with pytest.raises(ValueError, match="disagree on l or r"):
        LowRankShift(torch.randn(2, 5, 3), torch.randn(2, 2, 6))
    with pytest.raises(ValueError, match="mode must be one of"):
        DenseShift(torch.randn(2, 5, 6), mode="plus")
    with pytest.raises(TypeError, match="share a dtype"):
        LowRankShift(torch.randn(2, 5, 3), torch.randn(2, 3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"DenseShift.bias must have shape \(l, n\) = \(2, 5\)"):
        DenseShift(torch.randn(2, 5, 6), bias=torch.randn(2, 6))
    with pytest.raises(TypeError, match=r"LowRankShift\.bias dtype torch\.float64 does not match"):
        LowRankShift(
            torch.randn(2, 5, 3), torch.randn(2, 3, 6), bias=torch.randn(2, 5, dtype=torch.float64)
        )
    with pytest.raises(TypeError, match=r"DenseShift\.bias must be a Tensor or None"):
        DenseShift(torch.randn(2, 5, 6), bias=[0.0] * 5)
    with pytest.raises(ValueError, match=r"DenseShift\.bias is on meta"):
        DenseShift(torch.randn(2, 5, 6), bias=torch.randn(2, 5, device="meta"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_shifts_raise_when_checking(bad):
    shift = torch.randn(2, 5, 6)
    shift[1, 2, 3] = bad
    with pytest.raises(ValueError, match="1 non-finite values"):
        edited_linear(**args(delta=DenseShift(shift)), check_finite=True)
    # without checking the value propagates, as in F.linear
    assert not torch.isfinite(edited_linear(**args(delta=DenseShift(shift)))).all()


# --- torch.compile -----------------------------------------------------------------------------


def _compile_inputs(rank, index):
    g = torch.Generator().manual_seed(5)
    x, weight, bias = torch.randn(6, 3, 8, generator=g), torch.randn(5, 8), torch.randn(5)
    shift_bias = torch.randn(3, 5, generator=g)
    if rank is None:
        delta = DenseShift(torch.randn(3, 5, 8, generator=g).requires_grad_(), bias=shift_bias)
    else:
        up, down = torch.randn(3, 5, rank, generator=g), torch.randn(3, rank, 8, generator=g)
        delta = LowRankShift(up.requires_grad_(), down, bias=shift_bias)
    return x, weight, bias, delta, Grouping.from_index(torch.tensor(index), 3, 6)


def _edited_forward(x, weight, bias, delta, grouping):
    return edited_linear(x, weight, bias, delta, grouping=grouping)


def test_compiles_into_one_graph_with_a_precomputed_grouping():
    # Unequal groups (the padded layout) with a bias shift, forward and backward. aot_eager
    # traces with fake tensors, so a data-dependent shape or a host sync fails here as it would
    # under inductor, without inductor's C++ compile time.
    inputs = _compile_inputs(2, [2, 0, 1, 0, 2, 2])
    compiled = torch.compile(_edited_forward, fullgraph=True, backend="aot_eager")
    y = compiled(*inputs)
    torch.testing.assert_close(y, _edited_forward(*inputs))
    (grad,) = torch.autograd.grad(y.sum(), inputs[3].up)
    (expected,) = torch.autograd.grad(_edited_forward(*inputs).sum(), inputs[3].up)
    torch.testing.assert_close(grad, expected)


def test_compiles_with_graph_breaks_when_given_an_index():
    # Building the grouping from the index runs on the host (numpy): dynamo breaks the graph
    # around it instead of failing, and the result is the eager one.
    x, weight, bias, delta, grouping = _compile_inputs(None, [2, 0, 1, 0, 2, 2])
    forward = lambda x, index: edited_linear(x, weight, bias, delta, index)  # noqa: E731
    compiled = torch.compile(forward, backend="aot_eager")
    torch.testing.assert_close(compiled(x, grouping.index), forward(x, grouping.index))


def test_compiles_into_one_graph_under_autocast():
    inputs = _compile_inputs(None, [0, 0, 1, 1, 2, 2])
    compiled = torch.compile(_edited_forward, fullgraph=True, backend="eager")
    with torch.autocast("cpu", torch.bfloat16):
        y = compiled(*inputs)
    assert y.dtype == torch.bfloat16
    # traced, the op runs the gathered algorithm, eager the planner's: they round differently in
    # bfloat16, so both are held to the float32 result within bfloat16's precision
    expected = _edited_forward(*inputs)
    torch.testing.assert_close(y.float(), expected, rtol=2e-2, atol=5e-2)


# --- the planner's decision is cached ------------------------------------------------------------


def test_the_cost_model_runs_once_per_problem(monkeypatch):
    from weditlib import planner

    planner.clear_cache()
    evaluations = []
    evaluate = planner._evaluate
    monkeypatch.setattr(planner, "_evaluate", lambda *a: evaluations.append(a[0]) or evaluate(*a))
    x, weight, delta = torch.randn(4, 3, 6), torch.randn(5, 6), DenseShift(torch.randn(4, 5, 6))
    for _ in range(3):
        edited_linear(x, weight, None, delta)
    assert len(evaluations) == 1
    edited_linear(torch.randn(4, 7, 6), weight, None, delta)  # new shape: planned again
    assert len(evaluations) == 2
    assert weditlib.plan(x, weight, delta).algorithm in weditlib.plan(x, weight, delta).candidates
    assert len(evaluations) == 2


def test_a_new_machine_model_forgets_cached_decisions():
    from weditlib import planner

    x, weight, delta = torch.randn(4, 3, 6), torch.randn(5, 6), DenseShift(torch.randn(4, 5, 6))
    edited_linear(x, weight, None, delta)
    assert planner.cache_size() > 0
    planner.set_machine_model("cpu", planner.machine_model("cpu"))
    assert planner.cache_size() == 0
