"""Benchmark ``edited_linear`` against the usual ways of running per-sample weights.

For each case it times, in the same run: the planner's choice, naive per-sample materialise
(``W + ΔW[index]`` for every sample, then ``bmm``), ``torch.func.vmap(functional_call)`` over an
``nn.Linear``, and a per-group Python loop (PEFT's mixed-batch strategy). It also measures this
machine's GEMM rate and copy bandwidth and prints each case's floor,
``max(flops / GEMM rate, bytes / bandwidth)``, with ``bytes`` = every distinct shift read once plus
``W``, ``x`` and ``y``; ``paired`` is the same ratio with the floor's rates re-measured in every
round next to the call, which a shared, loaded machine disturbs less. On a CUDA device with
Triton, the fused kernels get a column too (timed by ``triton.testing.do_bench``).

A second table is the LoRA-serving case: two ``512 × 512`` linears in a row, 16 low-rank adapters
(``r = 8``) × 10 samples each, ``T = 50`` and ``T = 1`` tokens per sample, the index sorted by
adapter or shuffled. Each forward builds the index's :class:`~weditlib.Grouping` once and shares it
by both layers (as :func:`weditlib.edit` does); the ratio is against the same two linears with no
adapters.

    python benchmarks/edit_linear.py --json benchmarks/results/edit_linear.json \
        --serving-json benchmarks/results/edit_linear_serving.json
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import weditlib
from weditlib import DenseShift, Grouping, LowRankShift, edited_linear
from weditlib.deltas import Shift
from weditlib.kernels import triton_backend_algorithms


@dataclass(frozen=True)
class Case:
    name: str
    listeners: int
    samples: int
    tokens: int
    features: int = 512
    rank: int | None = None

    @property
    def batch(self) -> int:
        return self.listeners * self.samples


CASES = (
    Case("dense 16x10, T=50", listeners=16, samples=10, tokens=50),
    Case("dense 16x10, T=1", listeners=16, samples=10, tokens=1),
    Case("dense 160x1, T=1", listeners=160, samples=1, tokens=1),
    Case("low-rank r=8 16x10, T=50", listeners=16, samples=10, tokens=50, rank=8),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm up (allocator, kernel selection)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def triton_ms(fn: Callable[[], object], budget_ms: int = 100) -> float:
    """Median ms of a Triton-backed call: ``triton.testing.do_bench`` (warm-up, which also
    autotunes, then as many runs as fit in ``budget_ms`` with the L2 cache flushed between them).
    """
    from triton.testing import do_bench

    return float(do_bench(fn, rep=budget_ms, return_mode="median"))


def paired_ratio(
    base: Callable[[], object], other: Callable[[], object], device: torch.device, repeats: int
) -> tuple[float, float, float]:
    """``(median of other/base per round, median base ms, median other ms)``.

    The two are timed alternately, round by round, so that load from other processes on a shared
    machine slows both sides of a ratio alike.
    """
    base()
    other()
    ratios, base_times, other_times = [], [], []
    for _ in range(repeats):
        times = []
        for fn in (base, other):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
        base_times.append(times[0])
        other_times.append(times[1])
        ratios.append(times[1] / times[0])
    median = statistics.median
    return median(ratios), 1e3 * median(base_times), 1e3 * median(other_times)


def machine_rates(device: torch.device, repeats: int) -> tuple[float, float]:
    """(GEMM flop/s on 1024² matrices, copy bandwidth byte/s on 128 MiB)."""
    a = torch.randn(1024, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)
    gemm_ms = min(median_ms(lambda: a @ b, device, repeats) for _ in range(3))
    big = torch.empty(32 * 2**20, device=device)
    out = torch.empty_like(big)
    copy_ms = min(median_ms(lambda: out.copy_(big), device, repeats) for _ in range(3))
    return 2 * 1024**3 / (gemm_ms / 1e3), 2 * big.numel() * 4 / (copy_ms / 1e3)


def make_inputs(case: Case, device: torch.device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = k = case.features
    x = torch.randn(case.batch, case.tokens, k, generator=g).to(device)
    weight = (torch.randn(n, k, generator=g) / k**0.5).to(device)
    bias = torch.randn(n, generator=g).to(device)
    if case.rank is None:
        delta: Shift = DenseShift(
            (0.01 * torch.randn(case.listeners, n, k, generator=g)).to(device)
        )
    else:
        delta = LowRankShift(
            (0.1 * torch.randn(case.listeners, n, case.rank, generator=g)).to(device),
            (0.1 * torch.randn(case.listeners, case.rank, k, generator=g)).to(device),
        )
    index = torch.arange(case.listeners, device=device).repeat_interleave(case.samples)
    return x, weight, bias, delta, index


def naive_materialise(x: Tensor, weight: Tensor, bias: Tensor, delta: Shift, index: Tensor):
    effective = weight + delta.matrix()[index]  # (b, n, k): one copy per sample
    return torch.baddbmm(bias, x, effective.transpose(1, 2))


def vmap_functional_call(linear: nn.Linear):
    def one(x_b: Tensor, shift_b: Tensor) -> Tensor:
        params = {"weight": linear.weight + shift_b, "bias": linear.bias}
        return torch.func.functional_call(linear, params, (x_b,))

    batched = torch.func.vmap(one)

    def run(x: Tensor, weight: Tensor, bias: Tensor, delta: Shift, index: Tensor):
        return batched(x, delta.matrix()[index])

    return run


def per_group_loop(x: Tensor, weight: Tensor, bias: Tensor, delta: Shift, index: Tensor):
    """PEFT's mixed-batch forward: base output for all, then each group's own adapter."""
    y = F.linear(x, weight, bias)
    for shift in torch.unique(index).tolist():
        rows = (index == shift).nonzero().squeeze(1)
        x_g = x[rows]
        if isinstance(delta, LowRankShift):
            change = (x_g @ delta.down[shift].T) @ delta.up[shift].T
        else:
            change = x_g @ delta.weight[shift].T
        y[rows] += change
    return y


def floor_ms(case: Case, flop_rate: float, bandwidth: float, element_size: int = 4) -> float:
    n = k = case.features
    rows = case.batch * case.tokens
    flops = 2 * rows * n * k
    if case.rank is None:
        shift_elements = case.listeners * n * k
    else:
        flops += 2 * rows * case.rank * (n + k)
        shift_elements = case.listeners * case.rank * (n + k)
    data = element_size * (shift_elements + n * k + rows * (n + k))
    return 1e3 * max(flops / flop_rate, data / bandwidth)


def paired_floor_ratio(
    case: Case, fn: Callable, inputs: tuple, device: torch.device, repeats: int
) -> float:
    """Median over rounds of ``time(fn) / floor``, the floor's GEMM rate and bandwidth measured
    in the same round (as :func:`machine_rates` does), so that load from other processes on a
    shared machine slows the call and its floor alike."""
    a = torch.randn(1024, 1024, device=device)
    b = torch.randn(1024, 1024, device=device)
    big = torch.empty(32 * 2**20, device=device)
    out = torch.empty_like(big)

    def timed(call: Callable[[], object]) -> float:
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        return time.perf_counter() - start

    ratios = []
    for _ in range(repeats):
        call_s = timed(lambda: fn(*inputs))
        gemm_s = timed(lambda: a @ b)
        copy_s = timed(lambda: out.copy_(big))
        rates = (2 * 1024**3 / gemm_s, 2 * big.numel() * 4 / copy_s)
        ratios.append(1e3 * call_s / floor_ms(case, *rates))
    return statistics.median(ratios)


def run(repeats: int, device: torch.device, cases: Sequence[Case] = CASES) -> dict:
    """Time every method on ``cases`` (default: the cases above) on ``device``."""
    torch.manual_seed(0)
    flop_rate, bandwidth = machine_rates(device, repeats)
    triton_names = [a.name for a in triton_backend_algorithms()] if device.type == "cuda" else []
    results = []
    for case in cases:
        x, weight, bias, delta, index = make_inputs(case, device)
        linear = nn.Linear(case.features, case.features).to(device)
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        plan = weditlib.plan(x, weight, delta, index, bias)
        methods: dict[str, Callable] = {
            "planner": lambda *a: edited_linear(*a[:4], a[4]),
            "naive": naive_materialise,
            "vmap": vmap_functional_call(linear),
            "group_loop": per_group_loop,
        }
        for name in triton_names:
            if name in plan.candidates:
                methods[name] = lambda *a, name=name: edited_linear(*a[:4], a[4], algorithm=name)
        reference = naive_materialise(x, weight, bias, delta, index)
        timings = {}
        with torch.no_grad():
            for method, fn in methods.items():
                out = fn(x, weight, bias, delta, index)
                torch.testing.assert_close(out, reference, atol=1e-3, rtol=1e-3)
                call = functools.partial(fn, x, weight, bias, delta, index)
                timed = (
                    triton_ms(call) if method in triton_names else median_ms(call, device, repeats)
                )
                timings[method] = timed
        floor = floor_ms(case, flop_rate, bandwidth)
        with torch.no_grad():
            paired = paired_floor_ratio(case, methods["planner"], (x, weight, bias, delta, index),
                                        device, repeats)  # fmt: skip
        results.append(
            {
                "case": asdict(case) | {"name": case.name},
                "planner_choice": plan.algorithm,
                "median_ms": timings,
                "floor_ms": floor,
                "vmap_over_planner": timings["vmap"] / timings["planner"],
                "naive_over_planner": timings["naive"] / timings["planner"],
                "group_loop_over_planner": timings["group_loop"] / timings["planner"],
                "planner_over_floor": timings["planner"] / floor,
                "planner_over_floor_paired": paired,
            }
        )
    return {
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gemm_gflops": flop_rate / 1e9,
        "copy_gbps": bandwidth / 1e9,
        "triton": "measured" if triton_names else "not measured (no CUDA device with Triton)",
        "results": results,
    }


@dataclass(frozen=True)
class ServingCase:
    """LoRA serving: ``layers`` linears in a row, each with ``adapters`` rank-``rank`` shifts."""

    name: str
    tokens: int
    shuffled: bool = False
    adapters: int = 16
    samples: int = 10
    rank: int = 8
    features: int = 512
    layers: int = 2

    @property
    def batch(self) -> int:
        return self.adapters * self.samples


SERVING_CASES = (
    ServingCase("LoRA 16x10 r=8, T=50", tokens=50),
    ServingCase("LoRA 16x10 r=8, T=50, shuffled", tokens=50, shuffled=True),
    ServingCase("LoRA 16x10 r=8, T=1", tokens=1),
    ServingCase("LoRA 16x10 r=8, T=1, shuffled", tokens=1, shuffled=True),
)


def serving_inputs(case: ServingCase, device: torch.device, seed: int = 0):
    """``(x, [(weight, bias, adapters)] per layer, index)``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = case.features
    x = torch.randn(case.batch, case.tokens, n, generator=g).to(device)
    layers = []
    for _ in range(case.layers):
        weight = (torch.randn(n, n, generator=g) / n**0.5).to(device)
        bias = torch.randn(n, generator=g).to(device)
        up = 0.1 * torch.randn(case.adapters, n, case.rank, generator=g)
        down = 0.1 * torch.randn(case.adapters, case.rank, n, generator=g)
        layers.append((weight, bias, LowRankShift(up.to(device), down.to(device))))
    index = torch.arange(case.adapters).repeat_interleave(case.samples)
    if case.shuffled:
        index = index[torch.randperm(case.batch, generator=g)]
    return x, layers, index.to(device)


def run_serving(repeats: int, device: torch.device) -> dict:
    """Edited two-layer forward against the same layers without adapters, per case."""
    rows = []
    for case in SERVING_CASES:
        x, layers, index = serving_inputs(case, device)

        def base(x=x, layers=layers) -> Tensor:
            for weight, bias, _ in layers:
                x = F.linear(x, weight, bias)
            return x

        def edited(x=x, layers=layers, index=index, case=case) -> Tensor:
            grouping = Grouping.from_index(index, case.adapters, case.batch)  # once per pass
            for weight, bias, delta in layers:
                x = edited_linear(x, weight, bias, delta, grouping=grouping)
            return x

        def loop(x=x, layers=layers, index=index) -> Tensor:
            for weight, bias, delta in layers:
                x = per_group_loop(x, weight, bias, delta, index)
            return x

        with torch.no_grad():
            reference = x
            for weight, bias, delta in layers:
                reference = naive_materialise(reference, weight, bias, delta, index)
            torch.testing.assert_close(edited(), reference, atol=1e-3, rtol=1e-3)
            ratio, base_ms, edited_ms = paired_ratio(base, edited, device, repeats)
            loop_ms = median_ms(loop, device, repeats)
        weight, bias, delta = layers[0]
        choice = weditlib.plan(x, weight, delta, index, bias).algorithm
        rows.append(
            {
                "case": case.name,
                "tokens": case.tokens,
                "shuffled": case.shuffled,
                "planner_choice": choice,
                "base_ms": base_ms,
                "edited_ms": edited_ms,
                "group_loop_ms": loop_ms,
                "edited_over_base": ratio,
            }
        )
    return {
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "what": "two 512x512 linears, 16 adapters x 10 samples, rank 8; ratio vs no adapters",
        "ratio": "median over rounds of edited/base, the two timed alternately in each round",
        "results": rows,
    }


def print_serving(report: dict) -> None:
    print(f"{'serving case':<34}{'choice':<14}{'base':>9}{'edited':>9}{'loop':>9}{'ed/base':>9}")
    for r in report["results"]:
        print(
            f"{r['case']:<34}{r['planner_choice']:<14}{r['base_ms']:>9.2f}{r['edited_ms']:>9.2f}"
            f"{r['group_loop_ms']:>9.2f}{r['edited_over_base']:>8.2f}x"
        )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or "cpu"


def print_table(report: dict) -> None:
    print(
        f"device {report['device']}, {report['threads']} threads, torch {report['torch']}: "
        f"GEMM {report['gemm_gflops']:.1f} GFLOP/s, copy {report['copy_gbps']:.1f} GB/s"
    )
    header = (
        f"{'case':<26}{'choice':<20}{'planner':>9}{'naive':>9}{'vmap':>9}{'loop':>9}"
        f"{'floor':>9}{'vmap/pl':>9}{'pl/floor':>9}{'paired':>9}"
    )
    print(header + "   (median ms)")
    for r in report["results"]:
        t = r["median_ms"]
        print(
            f"{r['case']['name']:<26}{r['planner_choice']:<20}{t['planner']:>9.2f}{t['naive']:>9.2f}"
            f"{t['vmap']:>9.2f}{t['group_loop']:>9.2f}{r['floor_ms']:>9.2f}"
            f"{r['vmap_over_planner']:>8.1f}x{r['planner_over_floor']:>8.2f}x"
            f"{r['planner_over_floor_paired']:>8.2f}x"
        )
        extra = {k: v for k, v in t.items() if k not in {"planner", "naive", "vmap", "group_loop"}}
        for name, ms in extra.items():
            print(f"{'':<26}{name:<20}{ms:>9.2f}")
    print(f"Triton backend: {report['triton']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per method (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 keeps ratios meaningful on a shared, loaded "
        "machine, where multi-threaded GEMMs stall on preempted threads",
    )
    parser.add_argument(
        "--serving-json", type=Path, default=None, help="write the LoRA-serving report here"
    )
    parser.add_argument(
        "--only",
        choices=("all", "cases", "serving"),
        default="all",
        help="run the per-layer cases, the serving cases, or both",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reports = []
    if args.only in ("all", "cases"):
        report = run(args.repeats, device)
        print_table(report)
        reports.append((args.json, report))
    if args.only in ("all", "serving"):
        serving = run_serving(args.repeats, device)
        print_serving(serving)
        reports.append((args.serving_json, serving))
    for path, content in reports:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
