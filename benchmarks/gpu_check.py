"""One command that checks and measures everything that needs a GPU, and writes one JSON report.

On a CUDA device (one H100/H200: a few minutes) it runs, each step timed and recorded even if a
later one fails:

1. ``kernels``: the fused Triton kernels *compiled* (not under the interpreter) on CUDA tensors,
   dense and low-rank, shift and scale, float32 / bfloat16 / float16, against a float64 reference;
2. ``edit_linear``: ``benchmarks/edit_linear.py`` on the device, with its Triton columns;
   ``planner``: the algorithm the planner picks for each of the model's edited weights at
   sampling shapes, fp32 and bf16 (on CUDA: the fused Triton kernels where they apply);
3. ``training``: steps/s of the ``paper`` config's ``gafrg`` and ``pwsg`` stages in fp32 and bf16
   (autocast, float32 master weights), on random REACT-shaped batches;
4. ``generation``: the real-time factor of streaming personalised and generic generation
   (``tiny`` and ``paper``, M = 10);
5. ``metrics``: the seven metrics of one REACT-test-sized evaluation (``benchmarks/metrics.py``'s
   inputs; the metrics run on the CPU cores);
6. ``react2026_batching``: ``benchmarks/react2026_batching.py`` on the device (tiny config, 8
   listeners x 10 samples, PWSG batch 32): weditlib's batched listeners against the REACT 2026
   baseline's one-listener-per-forward weight assignment, equality checked first.

Without CUDA it runs the same steps at tiny sizes on the CPU (the kernels under Triton's
interpreter, in a subprocess) and says "not measured on a GPU": CI runs that to prove the script
is wired. The report goes to ``benchmarks/results/gpu/gpu_check.json`` on a GPU and to
``cpu_dry_run.json`` beside it otherwise; the docs' benchmark page renders the GPU one.

    python benchmarks/gpu_check.py                 # on the GPU machine
    python benchmarks/gpu_check.py --device cpu    # the dry run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from perfrdiff.config import load_config
from perfrdiff.device import resolve_device
from perfrdiff.features import AUDIO_DIM, EMOTION_DIM, FACE_DIM, history_dim
from perfrdiff.models import build_gafrg, build_perfrdiff, build_schedule
from perfrdiff.training.loop import make_optimizer, optimisation_step
from perfrdiff.training.objectives import GAFRGObjective, PWSGObjective

from weditlib import DenseShift, LowRankShift, edited_linear, plan
from weditlib.kernels import triton_backend_algorithms

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOT_ON_GPU = "not measured on a GPU: CPU dry run at tiny sizes, proves the script is wired"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# 1. kernels --------------------------------------------------------------------------------


def compiled_kernels(device: torch.device) -> dict:
    """Every Triton algorithm on CUDA tensors against a float64 ``W ⊕ ΔW`` reference."""
    names = [a.name for a in triton_backend_algorithms()]
    tolerances = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 1e-2}
    g = torch.Generator().manual_seed(0)
    cases = []
    for dtype, tol in tolerances.items():
        for rank in (None, 8):
            for mode in ("add", "scale"):
                for b, t, n, k, listeners in ((12, 50, 512, 512, 3), (5, 1, 136, 72, 5)):
                    x = torch.randn(b, t, k, generator=g, dtype=torch.float64)
                    weight = torch.randn(n, k, generator=g, dtype=torch.float64) / k**0.5
                    bias = torch.randn(n, generator=g, dtype=torch.float64)
                    if rank is None:
                        parts = (0.1 * torch.randn(listeners, n, k, generator=g).double(),)
                    else:
                        parts = (
                            0.3 * torch.randn(listeners, n, rank, generator=g).double(),
                            0.3 * torch.randn(listeners, rank, k, generator=g).double(),
                        )
                    index = torch.randint(listeners, (b,), generator=g)

                    def delta(tensors, rank=rank, mode=mode):
                        kind = DenseShift if rank is None else LowRankShift
                        return kind(*tensors, mode=mode)

                    expected = edited_linear(x, weight, bias, delta(parts), index)
                    cast = lambda a, dtype=dtype: a.to(device, dtype)  # noqa: E731
                    args = (cast(x), cast(weight), cast(bias), delta(tuple(map(cast, parts))))
                    x_d, weight_d, bias_d, delta_d = args
                    supported = plan(x_d, weight_d, delta_d, index.to(device), bias_d).candidates
                    for name in names:
                        if name not in supported:
                            continue
                        y = edited_linear(*args, index.to(device), algorithm=name)
                        error = (y.double().cpu() - expected).abs().max().item()
                        scale = expected.abs().max().item()
                        cases.append(
                            {
                                "algorithm": name, "dtype": str(dtype).split(".")[-1],
                                "rank": rank, "mode": mode, "shape": [b, t, n, k, listeners],
                                "max_abs_error": error, "passed": error <= tol * max(1, scale),
                            }
                        )  # fmt: skip
    passed = sum(c["passed"] for c in cases)
    return {"algorithms": names, "cases": len(cases), "passed": passed, "details": cases}


def interpreted_kernels() -> dict:
    """CPU: the Triton kernel tests under the interpreter (a quick subset), in a subprocess."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
        str(ROOT / "tests/weditlib/test_triton_backend.py"),
        "-k", "shift_gradient_alone or reads_strided_inputs",
    ]  # fmt: skip
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    tail = result.stdout.strip().splitlines()[-1:] or [result.stderr[-300:]]
    return {"interpreter": True, "returncode": result.returncode, "summary": tail[0]}


def edit_plans(config_name: str, device: torch.device, precision: str) -> dict[str, str]:
    """The planner's algorithm for each edited weight of the model at sampling shapes
    (one listener, M = 10 samples, the dtype ``precision`` gives the edited matmuls)."""
    config = load_config(config_name)
    model = build_perfrdiff(config).to(device).eval()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    history = torch.randn(
        1, config.data.history_frames, history_dim(config.style.input), generator=g
    )
    with torch.no_grad():
        shifts = model.listener_shifts(history.to(device))
    index = torch.zeros(10, dtype=torch.long, device=device)
    parameters = dict(model.gafrg.named_parameters())
    plans = {}
    for name, delta in shifts.items():
        weight = parameters.get(f"{name}.weight", parameters.get(f"{name}_weight"))
        x = torch.randn(10, config.data.window, weight.shape[1], device=device, dtype=dtype)
        cast = delta.replace(**{f: getattr(delta, f).to(dtype) for f in delta.tensor_fields()})
        plans[name] = plan(x, weight.to(dtype), cast, index).algorithm
    return plans


# 3. training -------------------------------------------------------------------------------


def random_batch(config, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A REACT-shaped training batch (``WindowDataset`` keys) on ``device``."""
    w, h = config.data.window, config.data.history_frames
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    return {
        "speaker_audio": r(batch_size, w, AUDIO_DIM), "speaker_face": r(batch_size, w, FACE_DIM),
        "speaker_emotion": r(batch_size, w, EMOTION_DIM),
        "listener_emotion": r(batch_size, w, EMOTION_DIM),
        "listener_prev_emotion": r(batch_size, w, EMOTION_DIM),
        "has_past": torch.ones(batch_size, dtype=torch.bool, device=device),
        f"history_{config.style.input}": r(batch_size, h, history_dim(config.style.input)),
    }  # fmt: skip


def training_rate(
    config_name: str,
    stage: str,
    precision: str,
    steps: int,
    device: torch.device,
    overrides: list[str] | None = None,
) -> dict:
    """Optimiser steps per second of ``stage`` (after 2 warm-up steps)."""
    config = load_config(config_name, overrides or [])
    torch.manual_seed(0)
    schedule, d = build_schedule(config), config.diffusion
    if stage == "gafrg":
        objective = GAFRGObjective(build_gafrg(config), schedule, d.cond_drop, d.prev_drop)
    else:
        objective = PWSGObjective(build_perfrdiff(config), schedule, config)
    objective = objective.to(device).train()
    stage_config = config.stage(stage)
    params = [p for p in objective.trained.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, stage_config)
    batch = random_batch(config, stage_config.batch_size, device)
    step = lambda: optimisation_step(  # noqa: E731
        objective, batch, optimizer, params, stage_config.grad_clip, precision
    )
    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss, _, _ = step()
    sync(device)
    elapsed = time.perf_counter() - start
    return {
        "config": config_name, "stage": stage, "precision": precision,
        "batch_size": stage_config.batch_size, "steps": steps, "steps_per_s": steps / elapsed,
        "loss": loss.item(),
    }  # fmt: skip


# 5. metrics --------------------------------------------------------------------------------


def metrics_time(speakers: int, samples: int) -> dict:
    from metrics import make_inputs
    from perfrdiff.metrics import evaluate_all

    p, g, s, m = make_inputs(speakers, samples, 750, 10.0, 0, "independent")
    start = time.perf_counter()
    values = evaluate_all(p, g, s, m)
    return {
        "speakers": speakers, "samples": samples, "seconds": time.perf_counter() - start,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "values": values,
    }  # fmt: skip


# -------------------------------------------------------------------------------------------


def steps(on_gpu: bool, device: torch.device) -> list[tuple[str, Callable[[], object]]]:
    """The steps, at full size on a GPU and at tiny sizes on the CPU."""
    sys.path.insert(0, str(HERE))  # the sibling benchmark scripts
    from edit_linear import CASES, Case
    from edit_linear import run as edit_linear_run
    from generation import streaming_rtf

    config_name = "paper" if on_gpu else "tiny"
    train_steps = 20 if on_gpu else 1
    small = [] if on_gpu else [f"train.{s}.batch_size=4" for s in ("gafrg", "pwsg")]
    linear_cases = CASES if on_gpu else (Case("tiny dense 2x2, T=5", 2, 2, 5, features=16),)
    samples = 10 if on_gpu else 2
    rtf_configs = ("tiny", "paper") if on_gpu else ("tiny",)

    def training() -> list[dict]:
        return [
            training_rate(config_name, stage, precision, train_steps, device, small)
            for stage in ("gafrg", "pwsg")
            for precision in ("fp32", "bf16")
        ]

    def generation() -> list[dict]:
        rows = []
        for name in rtf_configs:
            overrides = [] if on_gpu else ["diffusion.sample_steps=2"]
            config = load_config(name, overrides)
            windows = (15 if name == "tiny" else 4) if on_gpu else 1
            for precision in ("fp32", "bf16"):
                for personalised in (True, False):
                    row = streaming_rtf(
                        config, windows, samples, 25, device=device, precision=precision,
                        personalised=personalised, warmup=1,
                    )  # fmt: skip
                    rows.append({"config": name, **row})
        return rows

    def planner() -> dict:
        return {p: edit_plans(config_name, device, p) for p in ("fp32", "bf16")}

    def batching() -> dict:
        from react2026_batching import Setting, measure

        setting = Setting() if on_gpu else Setting(listeners=2, samples=2, batch=4)
        return measure(setting, 11 if on_gpu else 1, "tiny", device)

    return [
        ("kernels", (lambda: compiled_kernels(device)) if on_gpu else interpreted_kernels),
        ("edit_linear", lambda: edit_linear_run(15 if on_gpu else 1, device, linear_cases)),
        ("planner", planner),
        ("training", training),
        ("generation", generation),
        ("metrics", lambda: metrics_time(806 if on_gpu else 4, 10 if on_gpu else 2)),
        ("react2026_batching", batching),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cuda:N, cpu")
    parser.add_argument(
        "--out", type=Path, default=None, help="report file (default: benchmarks/results/gpu/...)"
    )
    parser.add_argument("--only", nargs="*", default=None, help="run only these steps")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    out = args.out or ROOT / "benchmarks/results/gpu" / (
        "gpu_check.json" if on_gpu else "cpu_dry_run.json"
    )
    report: dict = {
        "measured_on_gpu": on_gpu,
        "device": torch.cuda.get_device_name(device) if on_gpu else platform.processor() or "cpu",
        "torch": torch.__version__,
        "note": "" if on_gpu else NOT_ON_GPU,
        "steps": {},
    }
    if not on_gpu:
        print(NOT_ON_GPU)
    total = time.perf_counter()
    for name, step in steps(on_gpu, device):
        if args.only is not None and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            result = {"ok": True, "result": step()}
        except Exception as error:  # record it and go on: the other steps still measure
            result = {"ok": False, "error": repr(error), "traceback": traceback.format_exc()}
        result["seconds"] = time.perf_counter() - start
        report["steps"][name] = result
        print(f"{name}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']:.1f} s")
        report["total_seconds"] = time.perf_counter() - total
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")  # partial report kept
    print(f"wrote {out} ({report['total_seconds']:.0f} s)")
    return 0 if all(r["ok"] for r in report["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
