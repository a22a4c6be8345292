"""Pick the cheapest exact algorithm for one ``edited_linear`` call.

Each candidate reports its :class:`~weditlib.kernels.base.Cost` (flops, bytes, launches, GEMM
rows); a :class:`MachineModel` turns that into seconds with a roofline::

    seconds = max(flops / (peak_flops · efficiency(gemm_rows)), bytes / bandwidth)
              + extra_bytes / bandwidth + launches · launch_overhead

``efficiency`` models that a GEMM with few rows cannot reach peak (it degenerates to a GEMV that is
bandwidth-bound): ``rows / (rows + half_rows)``. The estimate only has to rank the candidates, not
predict wall time; :func:`calibrate` measures the two rates on the current machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from weditlib.kernels import reference, triton_backend_algorithms
from weditlib.kernels.base import Algorithm, Cost, Problem


@dataclass(frozen=True)
class MachineModel:
    """Rates of one device class.

    Attributes:
        peak_flops: sustained GEMM rate for large float32 matrices, flop/s.
        bandwidth: main-memory copy bandwidth, byte/s.
        launch_overhead: fixed cost of one op/kernel, s.
        half_rows: GEMM rows at which half of the peak rate is reached.
        half_precision_flops: GEMM rate for float16/bfloat16 inputs (tensor cores); ``None``
            means the same as ``peak_flops``.
    """

    peak_flops: float
    bandwidth: float
    launch_overhead: float
    half_rows: float = 8.0
    half_precision_flops: float | None = None

    def peak(self, dtype: torch.dtype | None = None) -> float:
        """GEMM rate for inputs of ``dtype``."""
        if dtype in (torch.float16, torch.bfloat16) and self.half_precision_flops is not None:
            return self.half_precision_flops
        return self.peak_flops

    def seconds(self, cost: Cost, dtype: torch.dtype | None = None) -> float:
        efficiency = cost.gemm_rows / (cost.gemm_rows + self.half_rows)
        compute = cost.flops / (self.peak(dtype) * max(efficiency, 1e-6))
        memory = cost.bytes / self.bandwidth
        passes = cost.extra_bytes / self.bandwidth
        return max(compute, memory) + passes + cost.launches * self.launch_overhead


# Conservative defaults; `calibrate` replaces the CPU model with measured rates.
_MACHINES: dict[str, MachineModel] = {
    "cpu": MachineModel(peak_flops=1.0e11, bandwidth=1.0e10, launch_overhead=5e-6),
    # H100 SXM: 3.35 TB/s HBM3, ~60 TFLOP/s fp32 on CUDA cores, ~990 TFLOP/s bf16/fp16 dense.
    "cuda": MachineModel(
        peak_flops=6.0e13,
        bandwidth=3.35e12,
        launch_overhead=4e-6,
        half_rows=64,
        half_precision_flops=9.9e14,
    ),
}


def machine_model(device_type: str) -> MachineModel:
    """The model used for ``device_type`` (``"cpu"``, ``"cuda"``, ...)."""
    return _MACHINES.get(device_type, _MACHINES["cpu"])


def set_machine_model(device_type: str, model: MachineModel) -> None:
    """Replace the model used for ``device_type`` (e.g. with :func:`calibrate`'s result).

    Forgets every cached decision: they were made with the old rates.

    Raises:
        TypeError: ``device_type`` is not a string or ``model`` is not a :class:`MachineModel`.
    """
    # checked now: a bad entry would break every later plan for the device, far from here
    if not isinstance(device_type, str):
        raise TypeError(f"device_type must be a str such as 'cuda', got {device_type!r}")
    if not isinstance(model, MachineModel):
        raise TypeError(f"model must be a MachineModel, got {type(model).__name__}")
    _MACHINES[device_type] = model
    clear_cache()


def calibrate(
    device: str | torch.device = "cpu", size: int = 1024, repeats: int = 5
) -> MachineModel:
    """Measure GEMM rate and copy bandwidth on ``device`` (about a second on a CPU)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    big = torch.empty(32 * 2**20 // 4, device=device)
    out = torch.empty_like(big)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return min(times)

    gemm = best(lambda: torch.mm(a, b))
    copy = best(lambda: out.copy_(big))
    base = machine_model(device.type)
    return replace(base, peak_flops=2 * size**3 / gemm, bandwidth=2 * big.numel() * 4 / copy)


def _all_algorithms() -> tuple[Algorithm, ...]:
    """Every registered algorithm, fused backends first (they win ties)."""
    return (*triton_backend_algorithms(), *reference.ALGORITHMS)


def candidate_algorithms(
    problem: Problem, pool: Sequence[Algorithm] | None = None
) -> list[Algorithm]:
    """Every algorithm of ``pool`` (default: the registered linear algorithms, reference backends
    last on ties) that supports ``problem``."""
    pool = _all_algorithms() if pool is None else pool
    return [algorithm for algorithm in pool if algorithm.supported(problem)]


def algorithm_names() -> list[str]:
    """Names accepted by ``edited_linear(..., algorithm=...)``."""
    return [algorithm.name for algorithm in _all_algorithms()]


@dataclass(frozen=True)
class Plan:
    """The planner's decision for one problem.

    Attributes:
        algorithm: name of the chosen algorithm.
        seconds: its estimated time.
        cost: its cost.
        candidates: estimated seconds of every supported algorithm, by name.
        problem: the sizes the decision was made for.
    """

    algorithm: str
    seconds: float
    cost: Cost
    candidates: dict[str, float] = field(default_factory=dict)
    problem: Problem | None = None


# Decisions by (problem, forced algorithm): a layer called again with the same shapes, dtype and
# device looks its algorithm up instead of evaluating every candidate's cost. Problems are small
# frozen records, so even a model with many distinct shapes keeps this tiny; the bound only
# protects against unbounded shape churn (e.g. a new batch size at every call).
_CHOICES: dict[tuple[object, str | None, tuple | None], tuple[Algorithm, Plan]] = {}
_MAX_CHOICES = 4096


def clear_cache() -> None:
    """Forget every cached decision (the next call of each problem is planned again)."""
    _CHOICES.clear()


def cache_size() -> int:
    """Number of cached decisions."""
    return len(_CHOICES)


def choose(
    problem: Problem, algorithm: str | None = None, pool: Sequence[Algorithm] | None = None
) -> tuple[Algorithm, Plan]:
    """Pick the cheapest supported algorithm, or check and return the one named by the caller.

    ``pool`` is the op's own set of algorithms (``None``: ``edited_linear``'s); any hashable
    problem with ``device_type``, ``dtype``, ``dense`` and ``mode`` works, e.g. a convolution's.
    The decision is cached per ``(problem, algorithm, pool)``: the cost model runs once per
    distinct shape, dtype and device, not at every call.
    """
    key = (problem, algorithm, None if pool is None else tuple(pool))
    cached = _CHOICES.get(key)
    if cached is None:
        if len(_CHOICES) >= _MAX_CHOICES:
            _CHOICES.clear()
        cached = _CHOICES[key] = _evaluate(problem, algorithm, pool)
    return cached


def _evaluate(
    problem: Problem, algorithm: str | None, pool: Sequence[Algorithm] | None
) -> tuple[Algorithm, Plan]:
    """Run the cost model over every candidate (what :func:`choose` caches)."""
    machine = machine_model(problem.device_type)
    candidates = candidate_algorithms(problem, pool)
    estimates = {a.name: machine.seconds(a.cost(problem), problem.dtype) for a in candidates}
    if algorithm is None:
        # A loop, not min(key=...): torch.compile traces this on a cache miss. First wins ties.
        chosen = candidates[0]
        for candidate in candidates[1:]:
            if estimates[candidate.name] < estimates[chosen.name]:
                chosen = candidate
    else:
        by_name = {a.name: a for a in candidates}
        if algorithm not in by_name:
            known = algorithm_names() if pool is None else [a.name for a in pool]
            if algorithm in known:
                raise ValueError(
                    f"algorithm={algorithm!r} does not support this problem "
                    f"(kind={'dense' if problem.dense else 'low-rank'}, mode={problem.mode!r}, "
                    f"device={problem.device_type!r}); supported: {sorted(by_name)}"
                )
            raise ValueError(f"algorithm must be one of {known} or None, got {algorithm!r}")
        chosen = by_name[algorithm]
    cost = chosen.cost(problem)
    return chosen, Plan(chosen.name, estimates[chosen.name], cost, estimates, problem)
