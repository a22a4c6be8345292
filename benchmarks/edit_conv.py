"""Benchmark ``edited_conv`` against the usual ways of running per-sample conv kernels.

16 listeners × 10 samples, each listener with its own dense shift of a 64 → 64-channel 3 × 3
conv (padding 1), at 32 × 32 and at 4 × 4 pixels. In the same run it times the planner's choice,
each of its algorithms forced, ``torch.func.vmap(functional_call)`` over an ``nn.Conv2d`` with
per-sample weights, a per-sample Python loop, and the floor: the same convolution with one shared
weight over all 160 samples (what the edit cannot beat). Two more rows time what layers see
inside an ``edit()`` block: the block's grouping built once (``in_edit_block``), and kernels
``W ⊕ ΔW`` built once too (``edit(..., materialise=True)``: ``materialised``). Methods are
timed round-robin (one call of each per round) so that a change in machine load hits them all
alike; each time is a median.

    python benchmarks/edit_conv.py --json benchmarks/results/edit_conv.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weditlib import DenseShift, Grouping, conv_algorithm_names, edited_conv, materialise, plan_conv


@dataclass(frozen=True)
class Case:
    name: str
    size: int
    listeners: int = 16
    samples: int = 10
    channels: int = 64
    kernel: int = 3
    vmap_over_planner_target: float = 1.0  # at least
    planner_over_floor_target: float = 1.0  # at most

    @property
    def batch(self) -> int:
        return self.listeners * self.samples


CASES = (
    # targets on a 2-core CPU
    Case("64ch 3x3, 32x32", size=32, vmap_over_planner_target=1.5, planner_over_floor_target=1.1),
    Case("64ch 3x3, 4x4", size=4, vmap_over_planner_target=10.0, planner_over_floor_target=1.6),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def round_robin_ms(
    methods: dict[str, Callable[[], object]], device: torch.device, repeats: int
) -> dict[str, float]:
    """Median ms of each method, timing one call of every method per round."""
    for fn in methods.values():
        fn()  # warm up (allocator, oneDNN primitive caches)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def make_inputs(case: Case, device: torch.device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    c, k = case.channels, case.kernel
    x = torch.randn(case.batch, c, case.size, case.size, generator=g).to(device)
    conv = nn.Conv2d(c, c, k, padding=k // 2).to(device)
    shifts = 0.01 * torch.randn(case.listeners, c, c * k * k, generator=g)
    delta = DenseShift(shifts.to(device))
    index = torch.arange(case.listeners, device=device).repeat_interleave(case.samples)
    return x, conv, delta, index


def vmap_functional_call(conv: nn.Conv2d):
    def one(x_b: Tensor, kernel_b: Tensor) -> Tensor:
        params = {"weight": kernel_b, "bias": conv.bias}
        return torch.func.functional_call(conv, params, (x_b.unsqueeze(0),)).squeeze(0)

    batched = torch.func.vmap(one)

    def run(x: Tensor, delta: DenseShift, index: Tensor) -> Tensor:
        kernels = conv.weight + delta.weight[index].reshape(-1, *conv.weight.shape)
        return batched(x, kernels)

    return run


def per_sample_loop(conv: nn.Conv2d):
    def run(x: Tensor, delta: DenseShift, index: Tensor) -> Tensor:
        outputs = []
        for b, shift in enumerate(index.tolist()):
            kernel = conv.weight + delta.weight[shift].reshape(conv.weight.shape)
            outputs.append(F.conv2d(x[b : b + 1], kernel, conv.bias, padding=conv.padding))
        return torch.cat(outputs)

    return run


def case_methods(x: Tensor, conv: nn.Conv2d, delta: DenseShift, index: Tensor, plan) -> dict:
    """Every timed method of one case, as a zero-argument callable."""
    weight, bias, padding = conv.weight, conv.bias, conv.padding
    vmap_run, loop_run = vmap_functional_call(conv), per_sample_loop(conv)
    # Inside an edit() block every layer gets the block's grouping (built once per block), and
    # with edit(..., materialise=True) kernels built once per block too.
    grouping = Grouping.from_index(index, delta.num_shifts, x.shape[0])
    built = materialise(weight.flatten(1), delta)
    methods: dict[str, Callable[[], Tensor]] = {
        "planner": lambda: edited_conv(x, weight, bias, delta, index, padding=padding),
        "in_edit_block": lambda: edited_conv(
            x, weight, bias, delta, grouping=grouping, padding=padding
        ),
        "materialised": lambda: edited_conv(
            x, weight, bias, built, grouping=grouping, padding=padding
        ),
        "floor": lambda: conv(x),
        "vmap": lambda: vmap_run(x, delta, index),
        "sample_loop": lambda: loop_run(x, delta, index),
    }
    for name in conv_algorithm_names():
        if name in plan.candidates:
            methods[name] = lambda name=name: edited_conv(
                x, weight, bias, delta, index, padding=padding, algorithm=name
            )
    return methods


def run(repeats: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    results = []
    for case in CASES:
        x, conv, delta, index = make_inputs(case, device)
        plan = plan_conv(x, conv.weight, delta, index, conv.bias, padding=conv.padding)
        methods = case_methods(x, conv, delta, index, plan)
        with torch.no_grad():
            reference = per_sample_loop(conv)(x, delta, index)
            for name, fn in methods.items():
                if name != "floor":
                    torch.testing.assert_close(fn(), reference, atol=1e-3, rtol=1e-3, msg=name)
            timings = round_robin_ms(methods, device, repeats)
        vmap_ratio = timings["vmap"] / timings["planner"]
        floor_ratio = timings["planner"] / timings["floor"]
        results.append(
            {
                "case": asdict(case) | {"name": case.name},
                "planner_choice": plan.algorithm,
                "estimated_ms": {name: 1e3 * s for name, s in plan.candidates.items()},
                "median_ms": timings,
                "vmap_over_planner": vmap_ratio,
                "sample_loop_over_planner": timings["sample_loop"] / timings["planner"],
                "planner_over_floor": floor_ratio,
                "in_edit_block_over_floor": timings["in_edit_block"] / timings["floor"],
                "materialised_over_floor": timings["materialised"] / timings["floor"],
                "vmap_target_hit": vmap_ratio >= case.vmap_over_planner_target,
                "floor_target_hit": floor_ratio <= case.planner_over_floor_target,
            }
        )
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": repeats,
        # the machine's load when the run ended: small ops suffer most on a shared machine
        "load_average_1min": os.getloadavg()[0],
        "results": results,
    }


def print_table(report: dict) -> None:
    print(f"device {report['device']}, {report['threads']} threads, torch {report['torch']}")
    print(
        f"{'case':<18}{'choice':<11}{'planner':>9}{'floor':>9}{'vmap':>9}{'loop':>9}"
        f"{'vmap/pl':>10}{'target':>8}{'pl/floor':>10}{'target':>8}   (median ms)"
    )
    for r in report["results"]:
        t, case = r["median_ms"], r["case"]
        vmap_mark = "hit" if r["vmap_target_hit"] else "MISSED"
        floor_mark = "hit" if r["floor_target_hit"] else "MISSED"
        print(
            f"{case['name']:<18}{r['planner_choice']:<11}{t['planner']:>9.2f}{t['floor']:>9.2f}"
            f"{t['vmap']:>9.2f}{t['sample_loop']:>9.2f}{r['vmap_over_planner']:>9.2f}x"
            f"{'>=' + str(case['vmap_over_planner_target']):>8}{r['planner_over_floor']:>9.2f}x"
            f"{'<=' + str(case['planner_over_floor_target']):>8}   {vmap_mark}, {floor_mark}"
        )
        for name in ("in_edit_block", "materialised"):
            ratio = r[f"{name}_over_floor"]
            print(f"{'':<18}{name:<15}{t[name]:>9.2f}   ({ratio:.2f}x the floor)")
        forced = {k: v for k, v in t.items() if k in conv_algorithm_names()}
        estimated = r["estimated_ms"]
        for name, ms in forced.items():
            print(f"{'':<18}{name:<11}{ms:>9.2f}   (planner's estimate {estimated[name]:.2f} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = run(args.repeats, torch.device(args.device))
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
