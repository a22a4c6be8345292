"""The planner picks by cost: the regimes of DESIGN.md section 3."""

from __future__ import annotations

import torch

import weditlib
from weditlib import DenseShift, LowRankShift
from weditlib.deltas import Grouping
from weditlib.kernels.base import Problem
from weditlib.planner import MachineModel, choose

CPU = MachineModel(peak_flops=1e11, bandwidth=1e10, launch_overhead=5e-6)


def problem(batch, tokens, shifts, rank=None, mode="add", uniform=True):
    return Problem(
        batch=batch, tokens=tokens, in_features=512, out_features=512, num_shifts=shifts,
        rank=rank, mode=mode, max_group=batch // shifts, uniform=uniform, has_bias=True,
        dtype=torch.float32, device_type="cpu",
    )  # fmt: skip


def test_many_tokens_per_shift_materialise():
    _, plan = choose(problem(160, 50, 16))
    assert plan.algorithm == "materialise"
    assert set(plan.candidates) == {"materialise", "materialise_gather", "split"}


def test_one_token_per_shift_splits():
    _, plan = choose(problem(160, 1, 160))
    assert plan.algorithm == "split"


def test_low_rank_with_few_tokens_per_shift_never_builds_full_matrices():
    _, plan = choose(problem(160, 1, 160, rank=8))
    assert plan.algorithm == "lowrank"


def test_low_rank_with_many_tokens_per_shift_stays_low_rank():
    # 500 rows share each adapter (LoRA serving): the rank-r path re-reads x once and the
    # shared GEMM accumulates onto y, which is cheaper than building 16 full matrices
    for uniform in (True, False):
        _, plan = choose(problem(160, 50, 16, rank=8, uniform=uniform))
        assert plan.algorithm == "lowrank", uniform


def test_forced_algorithm_is_reported():
    _, plan = choose(problem(160, 1, 160), algorithm="materialise")
    assert plan.algorithm == "materialise"
    assert plan.seconds == plan.candidates["materialise"]


def test_estimates_follow_the_roofline():
    machine = MachineModel(peak_flops=1e9, bandwidth=1e9, launch_overhead=0.0, half_rows=0.0)
    from weditlib.kernels.base import Cost

    assert machine.seconds(Cost(flops=2e9, bytes=1e9, launches=0, gemm_rows=10)) == 2.0
    assert machine.seconds(Cost(flops=1e9, bytes=3e9, launches=0, gemm_rows=10)) == 3.0
    passes = Cost(flops=1e9, bytes=3e9, launches=0, gemm_rows=10, extra_bytes=1e9)
    assert machine.seconds(passes) == 4.0


def test_plan_describes_the_call():
    x = torch.randn(6, 4, 8)
    delta = LowRankShift(torch.randn(3, 5, 2), torch.randn(3, 2, 8))
    plan = weditlib.plan(x, torch.randn(5, 8), delta, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert plan.problem.tokens == 4 and plan.problem.rank == 2 and plan.problem.uniform
    assert plan.problem.max_group == 2
    assert plan.algorithm in plan.candidates


def test_grouping_detects_uniform_sorted_indices():
    assert Grouping.from_index(torch.tensor([0, 0, 1, 1]), 2, 4).uniform
    assert not Grouping.from_index(torch.tensor([1, 1, 0, 0]), 2, 4).uniform
    assert not Grouping.from_index(torch.tensor([0, 0, 0, 1]), 2, 4).uniform
    assert Grouping.from_index(None, 3, 3).identity


def test_dense_planner_choice_is_exact_on_a_benchmark_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, 32, generator=g, dtype=torch.float64)
    weight = torch.randn(24, 32, generator=g, dtype=torch.float64)
    delta = DenseShift(torch.randn(4, 24, 32, generator=g, dtype=torch.float64))
    index = torch.arange(4).repeat_interleave(5)
    y = weditlib.edited_linear(x, weight, None, delta, index)
    expected = torch.einsum("btk,bnk->btn", x, weight + delta.weight[index])
    torch.testing.assert_close(y, expected)


def test_half_precision_uses_the_tensor_core_rate():
    machine = MachineModel(
        peak_flops=1e12, bandwidth=1e15, launch_overhead=0.0, half_rows=0.0,
        half_precision_flops=1e13,
    )  # fmt: skip
    from weditlib.kernels.base import Cost

    cost = Cost(flops=1e12, bytes=0.0, launches=0, gemm_rows=10)
    assert machine.seconds(cost, torch.float32) == 1.0
    assert machine.seconds(cost, torch.bfloat16) == 0.1


def test_backends_never_import_the_dispatcher():
    # Data flows one way: functional -> planner -> kernels. Timing code lives in benchmarks/.
    import ast
    from pathlib import Path

    import weditlib.kernels

    upstream = {"weditlib.functional", "weditlib.planner", "weditlib.editing", "weditlib.layers"}
    for path in Path(weditlib.kernels.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            assert not names & upstream, f"{path.name} imports {sorted(names & upstream)}"
