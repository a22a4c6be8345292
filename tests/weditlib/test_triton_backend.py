"""The Triton backend, run on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``).

Every kernel output is allocated NaN-filled (see the ``poisoned`` fixture) and compared with a
float64 torch reference, so a test fails both on a wrong value and on an element never written.

Tolerances (``torch.testing.assert_close``) against the float64 reference:

* float64 inputs (the kernels accumulate in float64): ``rtol = atol = 1e-10``;
* float32 inputs (float32 accumulation): ``rtol = atol = 1e-4``;
* float16 inputs (float32 accumulation, float16 operands and outputs): ``rtol = atol = 2e-2``.

Not covered here: bfloat16 values (the interpreter stores bfloat16 as uint16 and its ``tl.dot``
multiplies the bit patterns, triton-lang/triton#11584, "not supported yet"; bfloat16 is covered
only by lowering every kernel to Triton IR for sm_90), compiled-mode execution, autotuning and
speed (no GPU).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

# Triton chooses interpreter or compiler when a kernel is *decorated*, i.e. when triton.language
# and the kernel modules are first imported: the switch must be set before that. Other test
# modules are unaffected (no other module defines Triton kernels, and the planner offers the
# backend for CUDA tensors only).
os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton", reason="triton is not installed (CI installs it with the dev extra)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triton.runtime.interpreter import InterpretedFunction

from weditlib import planner
from weditlib.deltas import DenseShift, Grouping, LowRankShift
from weditlib.kernels import triton_backend, triton_dense
from weditlib.kernels.base import Problem, combine

INTERPRETED = isinstance(triton_dense._edited_matmul_kernel.fn, InterpretedFunction)
if not INTERPRETED and not torch.cuda.is_available():
    # Not recoverable in this process: triton.language's own helpers were compiled-mode too.
    raise RuntimeError(
        "triton was imported in compiled mode before this module could set TRITON_INTERPRET=1 "
        "(torch._dynamo imports it, for one), and there is no GPU to compile for: export "
        "TRITON_INTERPRET=1, or set it in tests/conftest.py"
    )
pytestmark = pytest.mark.skipif(
    not INTERPRETED,
    reason="TRITON_INTERPRET is off: these tests run the kernels on CPU in Triton's interpreter",
)

TOLERANCE = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
    torch.float32: {"rtol": 1e-4, "atol": 1e-4},
    torch.float16: {"rtol": 2e-2, "atol": 2e-2},
}
# The interpreter is slow: few examples, tiny shapes (still several 16-wide tiles and masks).
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dense_algorithm = triton_backend.TritonDense()
lowrank_algorithm = triton_backend.TritonLowRank()


@pytest.fixture(autouse=True)
def poisoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel outputs start as NaN, so an element a kernel forgets to write fails the check."""

    def empty_nan(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(triton_dense, "empty", empty_nan)


@st.composite
def problems(draw: st.DrawFn, low_rank: bool) -> dict:
    """Small sizes, a mode and an index: identity (l = b), one shared shift (l = 1), or
    unsorted/repeated values with possibly unused shifts."""
    b = draw(st.integers(1, 6))
    layout = draw(st.sampled_from(["identity", "single", "random"]))
    if layout == "identity":
        num_shifts, index = b, None
    elif layout == "single":
        num_shifts, index = 1, [0] * b
    else:
        num_shifts = draw(st.integers(1, 4))
        index = draw(st.lists(st.integers(0, num_shifts - 1), min_size=b, max_size=b))
    return {
        "b": b,
        "t": draw(st.integers(1, 5)),
        "n": draw(st.integers(1, 40)),
        "k": draw(st.integers(1, 40)),
        "l": num_shifts,
        "index": index,
        "r": draw(st.integers(1, 5)) if low_rank else None,
        "mode": draw(st.sampled_from(["add", "scale"])),
        "bias": draw(st.booleans()),
        "shift_bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def make_inputs(p: dict, dtype: torch.dtype = torch.float64):
    """``(x, weight, bias, delta, grouping)`` for problem ``p``, leaves requiring grad."""
    gen = torch.Generator().manual_seed(p["seed"])

    def leaf(*shape: int, scale: float = 1.0) -> torch.Tensor:
        value = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        return value.to(dtype).requires_grad_()

    x = leaf(p["b"], p["t"], p["k"])
    weight = leaf(p["n"], p["k"], scale=max(p["k"], 1) ** -0.5)
    bias = leaf(p["n"]) if p["bias"] else None
    shift_bias = leaf(p["l"], p["n"]) if p.get("shift_bias") else None
    if p["r"] is None:
        shift = leaf(p["l"], p["n"], p["k"], scale=0.5 * max(p["k"], 1) ** -0.5)
        delta = DenseShift(shift, p["mode"], bias=shift_bias)
    else:
        up = leaf(p["l"], p["n"], p["r"], scale=0.5)
        down = leaf(p["l"], p["r"], p["k"], scale=0.5 * max(p["k"], 1) ** -0.5)
        delta = LowRankShift(up, down, p["mode"], bias=shift_bias)
    index = None if p["index"] is None else torch.tensor(p["index"], dtype=torch.long)
    grouping = Grouping.from_index(index, p["l"], p["b"])
    return x, weight, bias, delta, grouping


def reference(x, weight, bias, delta, grouping) -> torch.Tensor:
    """Float64 ``y_b = x_b (W ⊕ ΔW_index[b])ᵀ + bias + Δb_index[b]``, differentiable."""
    edited = combine(weight.double(), delta.matrix().double(), delta.mode)[grouping.index]
    y = torch.einsum("btk,bnk->btn", x.double(), edited)
    if delta.bias is not None:
        y = y + delta.bias.double()[grouping.index].unsqueeze(1)
    return y if bias is None else y + bias.double()


def leaves(x, weight, bias, delta) -> dict[str, torch.Tensor]:
    """Every differentiable input, by name."""
    named = {"x": x, "weight": weight, "bias": bias}
    if isinstance(delta, DenseShift):
        named["shift"] = delta.weight
    else:
        named["up"], named["down"] = delta.up, delta.down
    named["shift_bias"] = delta.bias
    return {name: tensor for name, tensor in named.items() if tensor is not None}


def check_forward(p: dict, algorithm, dtype: torch.dtype) -> None:
    x, weight, bias, delta, grouping = make_inputs(p, dtype)
    with torch.no_grad():
        y = algorithm.run(x, weight, bias, delta, grouping)
        expected = reference(x, weight, bias, delta, grouping)
    assert y.dtype == dtype and y.shape == expected.shape
    torch.testing.assert_close(y.double(), expected, **TOLERANCE[dtype])


def check_gradients(p: dict, algorithm, dtype: torch.dtype) -> None:
    inputs = make_inputs(p, dtype)
    params = leaves(*inputs[:4])
    gen = torch.Generator().manual_seed(p["seed"] + 1)
    dy = torch.randn(p["b"], p["t"], p["n"], generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(algorithm.run(*inputs), list(params.values()), dy.to(dtype))
    expected = torch.autograd.grad(reference(*inputs), list(params.values()), dy)
    for name, g, e in zip(params, got, expected, strict=True):
        assert g.dtype == dtype, name
        torch.testing.assert_close(
            g.double(), e.double(), **TOLERANCE[dtype], msg=lambda m, name=name: f"d{name}: {m}"
        )


@FEW
@given(problems(low_rank=False))
def test_dense_forward_matches_float64_reference(p: dict) -> None:
    check_forward(p, dense_algorithm, torch.float64)


@FEW
@given(problems(low_rank=True))
def test_lowrank_forward_matches_float64_reference(p: dict) -> None:
    check_forward(p, lowrank_algorithm, torch.float64)


@FEW
@given(problems(low_rank=False))
def test_dense_gradients_match_float64_reference(p: dict) -> None:
    check_gradients(p, dense_algorithm, torch.float64)


@FEW
@given(problems(low_rank=True))
def test_lowrank_gradients_match_float64_reference(p: dict) -> None:
    check_gradients(p, lowrank_algorithm, torch.float64)


FIXED = {
    "b": 5, "t": 3, "n": 37, "k": 21, "l": 3, "index": [2, 0, 2, 2, 0], "bias": True,
    "shift_bias": True,
}  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("mode", ["add", "scale"])
@pytest.mark.parametrize("rank", [None, 4], ids=["dense", "lowrank"])
def test_low_precision_forward_within_tolerance(dtype, mode, rank) -> None:
    algorithm = dense_algorithm if rank is None else lowrank_algorithm
    check_forward({**FIXED, "r": rank, "mode": mode, "seed": 0}, algorithm, dtype)


@pytest.mark.parametrize("mode", ["add", "scale"])
@pytest.mark.parametrize("rank", [None, 4], ids=["dense", "lowrank"])
def test_float32_gradients_within_tolerance(mode, rank) -> None:
    algorithm = dense_algorithm if rank is None else lowrank_algorithm
    check_gradients({**FIXED, "r": rank, "mode": mode, "seed": 1}, algorithm, torch.float32)


@pytest.mark.parametrize("rank", [None, 2], ids=["dense", "lowrank"])
@pytest.mark.parametrize("mode", ["add", "scale"])
def test_gradcheck_float64(mode, rank) -> None:
    # Finite differences launch the kernel twice per input element: keep the problem tiny.
    p = {"b": 3, "t": 1, "n": 3, "k": 2, "l": 2, "index": [1, 0, 1], "bias": True}
    p |= {"shift_bias": True, "r": rank, "mode": mode, "seed": 2}
    x, weight, bias, delta, grouping = make_inputs(p)
    algorithm = dense_algorithm if rank is None else lowrank_algorithm

    def fn(x, weight, bias, *shift):
        *factors, shift_bias = shift
        kind = DenseShift if rank is None else LowRankShift
        rebuilt = kind(*factors, mode, bias=shift_bias)
        return algorithm.run(x, weight, bias, rebuilt, grouping)

    assert torch.autograd.gradcheck(fn, tuple(leaves(x, weight, bias, delta).values()))


def test_shift_gradient_alone_when_base_is_frozen() -> None:
    # Stage 2 of PerFRDiff trains only the shift generator: W, bias and x need no gradient.
    p = {**FIXED, "r": None, "mode": "scale", "seed": 3}
    x, weight, bias, delta, grouping = make_inputs(p)
    for frozen in (x, weight, bias):
        frozen.requires_grad_(False)
    dy = torch.randn(p["b"], p["t"], p["n"], dtype=torch.float64)
    (got,) = torch.autograd.grad(
        dense_algorithm.run(x, weight, bias, delta, grouping), delta.weight, dy
    )
    (expected,) = torch.autograd.grad(reference(x, weight, bias, delta, grouping), delta.weight, dy)
    torch.testing.assert_close(got, expected, **TOLERANCE[torch.float64])


@pytest.mark.parametrize("rank", [None, 3], ids=["dense", "lowrank"])
def test_forward_reads_strided_inputs_without_copies(rank) -> None:
    # edited_linear hands over reshaped views; the kernels take strides instead of copying.
    p = {**FIXED, "r": rank, "mode": "scale", "seed": 6}
    x, weight, bias, delta, grouping = make_inputs(p)
    with torch.no_grad():
        x_view = x.transpose(1, 2).contiguous().transpose(1, 2)  # (b, t, k), stride(2) != 1
        weight_view = weight.t().contiguous().t()  # (n, k), column-major
        algorithm = dense_algorithm if rank is None else lowrank_algorithm
        y = algorithm.run(x_view, weight_view, bias, delta, grouping)
        expected = reference(x, weight, bias, delta, grouping)
    assert x_view.stride(2) != 1 and weight_view.stride(1) != 1
    torch.testing.assert_close(y, expected, **TOLERANCE[torch.float64])


@pytest.mark.parametrize("rank", [None, 3], ids=["dense", "lowrank"])
def test_backward_accepts_a_broadcast_output_gradient(rank) -> None:
    # y.sum() hands backward an expanded dy whose strides are all zero.
    p = {**FIXED, "r": rank, "mode": "add", "seed": 7}
    inputs = make_inputs(p)
    params = list(leaves(*inputs[:4]).values())
    algorithm = dense_algorithm if rank is None else lowrank_algorithm
    got = torch.autograd.grad(algorithm.run(*inputs).sum(), params)
    expected = torch.autograd.grad(reference(*inputs).sum(), params)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, **TOLERANCE[torch.float64])


ZERO_SIZES = {
    "b=0": {"b": 0, "index": []},
    "b=0,l=0": {"b": 0, "l": 0, "index": []},
    "t=0": {"t": 0},
    "n=0": {"n": 0},
    "k=0": {"k": 0},
}


@pytest.mark.parametrize("zero", ZERO_SIZES.values(), ids=ZERO_SIZES.keys())
@pytest.mark.parametrize("mode", ["add", "scale"])
@pytest.mark.parametrize("rank", [None, 2], ids=["dense", "lowrank"])
def test_zero_size_dims_give_empty_results_and_gradients(zero, mode, rank) -> None:
    p = {"b": 3, "t": 2, "n": 5, "k": 4, "l": 2, "index": [1, 0, 1], "bias": True}
    p |= {"shift_bias": True, "r": rank, "mode": mode, "seed": 8} | zero
    algorithm = dense_algorithm if rank is None else lowrank_algorithm
    check_forward(p, algorithm, torch.float64)
    check_gradients(p, algorithm, torch.float64)


@pytest.mark.parametrize("splits", [2, 3, 5])
def test_weight_gradient_is_independent_of_splits(splits: int) -> None:
    p = {**FIXED, "l": 4, "index": [3, 0, 3, 1, 0], "r": None, "mode": "scale", "seed": 4}
    x, weight, _, delta, grouping = make_inputs(p)
    segments = triton_dense.Segments.of(grouping)
    dy = torch.randn(p["b"], p["t"], p["n"], dtype=torch.float64)
    with torch.no_grad():
        args = (dy, x, weight, delta.weight, segments, True)
        one_shift, one_weight = triton_dense.grouped_outer(*args, splits=1)
        many_shift, many_weight = triton_dense.grouped_outer(*args, splits=splits)
    torch.testing.assert_close(many_weight, one_weight, **TOLERANCE[torch.float64])
    torch.testing.assert_close(many_shift, one_shift, rtol=0, atol=0)


def problem(device_type: str, dtype: torch.dtype = torch.float32, rank: int | None = None):
    return Problem(
        batch=160, tokens=50, in_features=512, out_features=512, num_shifts=16, rank=rank,
        mode="add", max_group=10, uniform=True, has_bias=True, dtype=dtype,
        device_type=device_type,
    )  # fmt: skip


def test_backend_is_never_supported_on_cpu() -> None:
    assert not any(
        a.supported(problem("cpu", rank=r)) for a in triton_backend.ALGORITHMS for r in (None, 8)
    )
    names = {a.name for a in planner.candidate_algorithms(problem("cpu"))}
    assert names.isdisjoint(a.name for a in triton_backend.ALGORITHMS)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_backend_is_supported_on_cuda_for_its_dtypes(dtype: torch.dtype) -> None:
    assert dense_algorithm.supported(problem("cuda", dtype))
    assert lowrank_algorithm.supported(problem("cuda", dtype, rank=8))
    assert not dense_algorithm.supported(problem("cuda", dtype, rank=8))
    assert not lowrank_algorithm.supported(problem("cuda", dtype))


@pytest.mark.parametrize("rank", [None, 8], ids=["dense", "lowrank"])
def test_planner_offers_the_fused_kernel_for_cuda_tensors(rank) -> None:
    # Which candidate wins is the planner's cost model's business; being a candidate is ours.
    _, plan = planner.choose(problem("cuda", torch.bfloat16, rank=rank))
    expected = "triton_dense" if rank is None else "triton_lowrank"
    assert expected in plan.candidates


def test_backend_is_not_supported_for_float64_on_cuda() -> None:
    assert not dense_algorithm.supported(problem("cuda", torch.float64))


def test_import_without_triton_disables_the_backend() -> None:
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "from weditlib.kernels import triton_backend as tb\n"
        "from weditlib.kernels.base import Problem\n"
        "import torch\n"
        "p = Problem(2, 3, 4, 5, 2, None, 'shift', 1, True, False, torch.float32, 'cuda')\n"
        "assert not tb.TRITON_AVAILABLE\n"
        "assert not any(a.supported(p) for a in tb.ALGORITHMS)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


# Lowers every kernel variant to Triton IR for an sm_90 target, in a fresh process without the
# interpreter (under it, triton.language's own helpers are interpreted and cannot be lowered).
# The interpreter runs kernels as Python, so it misses what only the compiler rejects: a name
# defined in a loop body used after it, a constexpr branch that does not type-check, ...
LOWER_ALL_VARIANTS = """
import itertools, triton.language as tl
from triton._C.libtriton import ir
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from weditlib.kernels import triton_dense, triton_lowrank

target = GPUTarget("cuda", 90, 32)
backend = make_backend(target)
options = backend.parse_options({})
common = dict(ACC_DTYPE=tl.float32, PRECISION="ieee")
kernels = {
    triton_dense._edited_matmul_kernel: dict(
        HAS_BIAS=True, HAS_SHIFT_BIAS=True, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32
    ),
    triton_dense._grouped_outer_kernel: dict(
        WRITE_SHIFT=True, WRITE_WEIGHT=True, BLOCK_P=64, BLOCK_Q=64, BLOCK_M=32
    ),
    triton_lowrank._lowrank_matmul_kernel: dict(
        HAS_BIAS=True, HAS_SHIFT_BIAS=True, BLOCK_R=16, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32
    ),
}
for (kernel, extra), dtype, scale in itertools.product(
    kernels.items(), ["bf16", "fp16", "fp32"], [False, True]
):
    constants = dict(common, SCALE=scale, **extra)
    fn = kernel.fn  # the JITFunction under the autotuner
    signature, constexprs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constants:
            signature[name], constexprs[(i,)] = "constexpr", constants[name]
        elif name in ("order_ptr", "starts_ptr", "counts_ptr"):
            signature[name] = "*i64"
        elif name == "dw_ptr":
            signature[name] = "*fp32"
        else:
            signature[name] = "*" + dtype if name.endswith("_ptr") else "i32"
    context = ir.context()
    ir.load_dialects(context)
    backend.load_dialects(context)
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    source.make_ir(
        target, options, backend.get_codegen_implementation(options),
        backend.get_module_map(), context,
    )
"""


def test_kernels_lower_to_triton_ir_for_hopper() -> None:
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", LOWER_ALL_VARIANTS], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("rank", [None, 8], ids=["dense", "lowrank"])
def test_replace_mode_is_routed_to_the_reference_backend(rank) -> None:
    # the kernels combine W + ΔW or W ⊙ (1 + ΔW) in registers; ΔW alone is not one of them
    replace = dataclasses.replace(problem("cuda", torch.bfloat16, rank=rank), mode="replace")
    assert not any(a.supported(replace) for a in triton_backend.ALGORITHMS)
    _, plan = planner.choose(replace)
    assert set(plan.candidates) == ({"materialise", "materialise_gather"} | (
        set() if rank is None else {"lowrank"}
    ))  # fmt: skip
