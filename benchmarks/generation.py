"""Benchmark PerFRDiff's online generation and the size of its shift generator (PWSG).

1. Real-time factor (RTF) of streaming personalised generation, M = 10 samples: compute time per
   generated window divided by the window's duration (w / 25 fps = 2 s). RTF <= 1 means the
   reactions keep up with a live speaker. Measured for the tiny and paper configs on this CPU with
   randomly initialised weights (speed does not depend on training).
2. PWSG parameters and memory for the paper's edit set (cross-attention + output mapping of the
   7-layer d=512 denoiser): dense heads (the authors' release) vs low-rank heads (our default).
   The dense generator is built on the ``meta`` device: counted, never allocated.
3. Optional (--frcorr-run): PMAFRG FRCorr of low-rank vs dense heads on the synthetic test split,
   training a dense-head PWSG in a copy of a finished demo run (minutes on the tiny config).

    python benchmarks/generation.py --json benchmarks/results/generation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from perfrdiff.config import Config, load_config
from perfrdiff.features import AUDIO_DIM, EMOTION_DIM, FACE_DIM, FPS, history_dim
from perfrdiff.generation import ReactionSampler, SamplerConfig, StreamingGenerator
from perfrdiff.models import build_gafrg, build_generator, build_perfrdiff, build_schedule

from weditlib import make_editable


def _speaker(frames: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return tuple(torch.randn(1, frames, c, generator=g) for c in (AUDIO_DIM, FACE_DIM, EMOTION_DIM))


def _sampler(config: Config, device: torch.device, seed: int) -> ReactionSampler:
    torch.manual_seed(seed)
    model = build_perfrdiff(config).to(device).eval()
    return _solver_sampler(model, config)


def _solver_sampler(model: torch.nn.Module, config: Config) -> ReactionSampler:
    """The config's solver, steps, guidance and grid; windows end to end (no overlap), so a
    window's time is that of 2 s of reactions."""
    d = config.diffusion
    sampling = SamplerConfig(
        d.sample_steps, d.guidance, spacing=d.spacing, solver=config.generate.solver
    )
    return ReactionSampler(model, build_schedule(config), sampling)


def _stream(
    sampler: ReactionSampler, config: Config, windows: int, samples: int, chunk: int, seed: int,
    personalised: bool, device: torch.device,
) -> int:  # fmt: skip
    """Stream ``windows`` windows for one speaker; returns how many were produced."""
    frames = windows * config.data.window
    audio, face, emotion = _speaker(frames, device)
    history = None
    if personalised:
        g = torch.Generator().manual_seed(2)
        dims = (1, config.data.history_frames, history_dim(config.style.input))
        history = torch.randn(*dims, generator=g)
    stream = StreamingGenerator(sampler, samples, history, seed, max_frames=frames, batch=1)
    produced = 0
    for at in range(0, frames, chunk):
        part = slice(at, at + chunk)
        produced += len(stream.push(audio[:, part], face[:, part], emotion[:, part]))
    return produced


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds_per_window(
    sampler: ReactionSampler, config: Config, windows: int, samples: int, chunk: int, seed: int,
    personalised: bool, device: torch.device,
) -> float:  # fmt: skip
    """Wall time of streaming ``windows`` windows, divided by the windows produced."""
    _sync(device)
    start = time.perf_counter()
    produced = _stream(sampler, config, windows, samples, chunk, seed, personalised, device)
    _sync(device)
    return (time.perf_counter() - start) / produced


def _steady_seconds(
    sampler: ReactionSampler, config: Config, windows: int, samples: int, chunk: int,
    device: torch.device,
) -> tuple[float, float]:  # fmt: skip
    """A live stream's two costs, timed apart: the listener's one-off setup (history -> style ->
    shifts, when the stream starts) and the steady per-window time of ``windows`` windows after
    an untimed first one. A stream lasts minutes, so its real-time factor is the steady time;
    amortising the setup over a two-window stream would overstate it.

    Returns:
        ``(setup_seconds, seconds_per_window)``.
    """
    w = config.data.window
    # Frames [0, w) make windows 0 and 1 (window k starts once the speaker's frame k·w - 1 has
    # arrived): untimed. Each further w frames make one steady window: timed.
    frames = (windows + 1) * w
    audio, face, emotion = _speaker(frames, device)
    g = torch.Generator().manual_seed(2)
    history = torch.randn(
        1, config.data.history_frames, history_dim(config.style.input), generator=g
    )
    _sync(device)
    start = time.perf_counter()
    stream = StreamingGenerator(sampler, samples, history, 0, batch=1)
    _sync(device)
    setup = time.perf_counter() - start
    stream.push(audio[:, :w], face[:, :w], emotion[:, :w])
    _sync(device)
    start, produced = time.perf_counter(), 0
    for at in range(w, frames, chunk):
        part = slice(at, at + chunk)
        produced += len(stream.push(audio[:, part], face[:, part], emotion[:, part]))
    _sync(device)
    return setup, (time.perf_counter() - start) / max(produced, 1)


def _rtf_row(
    sampler: ReactionSampler, config: Config, personalised: bool, device: torch.device,
    precision: str, windows: int, samples: int, per_window: float,
) -> dict:  # fmt: skip
    """One measured row: the settings and the seconds per window as a real-time factor."""
    return {
        "mode": "personalised" if personalised else "generic",
        "device": str(device),
        "precision": precision,
        "windows": windows,
        "samples": samples,
        "solver": config.generate.solver,
        "ddim_steps": config.diffusion.sample_steps,
        "guidance": config.diffusion.guidance,
        "seconds_per_window": per_window,
        "rtf": per_window / (config.data.window / FPS),
        "denoiser_parameters": sum(p.numel() for p in sampler.gafrg.parameters()),
    }


def streaming_rtf(
    config: Config,
    windows: int,
    samples: int,
    chunk: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    personalised: bool = True,
    warmup: int = 0,
) -> dict:
    """Time ``windows`` windows of streaming generation, pushing ``chunk`` speaker frames a time,
    after ``warmup`` untimed windows; personalised (one listener's shifts) or generic."""
    device = torch.device(device)
    sampler = _sampler(config, device, seed)
    timed = (sampler, config, windows, samples, chunk, seed, personalised, device)
    with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
        if warmup:
            _stream(sampler, config, warmup, samples, chunk, seed, personalised, device)
        per_window = _seconds_per_window(*timed)
    return _rtf_row(sampler, config, personalised, device, precision, windows, samples, per_window)


def paired_rtf(
    config: Config, windows: int, samples: int, chunk: int, repeats: int, seed: int = 0
) -> tuple[dict, dict]:
    """Personalised and generic streaming on one sampler, timed alternately on the CPU.

    One untimed window of each first, then ``repeats`` rounds of ``windows`` windows of each,
    alternating, so machine load hits both alike; each RTF is a median over the rounds.

    Returns:
        ``(personalised, generic)`` rows like :func:`streaming_rtf`'s, with ``repeats``.
    """
    device = torch.device("cpu")
    sampler = _sampler(config, device, seed)
    modes = (True, False)  # personalised, generic
    for personalised in modes:
        _stream(sampler, config, 1, samples, chunk, seed, personalised, device)
    seconds: dict[bool, list[float]] = {personalised: [] for personalised in modes}
    for _ in range(repeats):
        for personalised in modes:
            seconds[personalised].append(_seconds_per_window(
                sampler, config, windows, samples, chunk, seed, personalised, device
            ))  # fmt: skip
    rows = []
    for personalised in modes:
        per_window = sorted(seconds[personalised])[repeats // 2]
        row = _rtf_row(sampler, config, personalised, device, "fp32", windows, samples, per_window)
        rows.append(row | {"repeats": repeats})
    return rows[0], rows[1]


def window_flops(config: Config, samples: int) -> int:
    """Floating-point operations of one personalised window (all DDIM steps), counted by
    ``torch.utils.flop_counter`` (matmuls, attention; elementwise work is not counted)."""
    return sum(window_flops_by_kind(config, samples).values())


def window_flops_by_kind(config: Config, samples: int) -> dict[str, int]:
    """:func:`window_flops` split into ``"gemm"`` (matrix products) and ``"attention"``
    (``scaled_dot_product_attention``), the two rates the floors divide them by."""
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device("cpu")
    sampler = _sampler(config, device, 0)
    counter = FlopCounterMode(display=False)
    # Window 1 (the second) is a steady-state window: the shifts are computed before it.
    stream_frames = 2 * config.data.window
    audio, face, emotion = _speaker(stream_frames, device)
    g = torch.Generator().manual_seed(2)
    history = torch.randn(
        1, config.data.history_frames, history_dim(config.style.input), generator=g
    )
    stream = StreamingGenerator(sampler, samples, history, 0, max_frames=stream_frames)
    stream.push(audio[:, :1], face[:, :1], emotion[:, :1])  # window 0
    with counter:
        stream.push(audio[:, 1:], face[:, 1:], emotion[:, 1:])  # window 1
    kinds = {"gemm": 0, "attention": 0}
    for op, flops in counter.get_flop_counts()["Global"].items():
        kinds["attention" if "attention" in str(op) else "gemm"] += flops
    return kinds


def _median_seconds(run, device: torch.device, repeats: int) -> float:
    for _ in range(3):
        run()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def gemm_rate(
    d_model: int,
    rows: int,
    device: torch.device | str = "cpu",
    repeats: int = 20,
    dtype: torch.dtype = torch.float32,
) -> float:
    """FLOP/s of this device on the denoiser's typical matmul ``(rows, d) @ (d, 2d)``."""
    device = torch.device(device)
    a = torch.randn(rows, d_model, device=device, dtype=dtype)
    b = torch.randn(d_model, 2 * d_model, device=device, dtype=dtype)
    return 2 * rows * d_model * 2 * d_model / _median_seconds(lambda: a @ b, device, repeats)


def attention_rate(
    d_model: int,
    heads: int,
    batch: int,
    queries: int,
    keys: int,
    device: torch.device | str = "cpu",
    repeats: int = 20,
    dtype: torch.dtype = torch.float32,
) -> float:
    """FLOP/s of ``scaled_dot_product_attention`` on the denoiser's shapes: ``batch`` windows,
    ``heads`` heads of ``d / heads``, ``queries`` frames attending to ``keys`` tokens
    (``4·b·q·k·d`` flops: two products)."""
    device = torch.device(device)
    g = torch.Generator(device).manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, n, d_model // heads, generator=g, device=device, dtype=dtype)
        for n in (queries, keys, keys)
    )
    seconds = _median_seconds(lambda: F.scaled_dot_product_attention(q, k, v), device, repeats)
    return 4 * batch * queries * keys * d_model / seconds


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def floor_rates(config: Config, samples: int) -> dict[str, dict[str, float]]:
    """GEMM and attention FLOP/s in fp32 and bf16 on the denoiser's shapes, measured in one
    run: ``(M·w, d) @ (d, 2d)`` and ``M`` windows' self-attention (``w`` frames to ``w``)."""
    d, w = config.denoiser.d_model, config.data.window
    return {
        name: {
            "gemm": gemm_rate(d, samples * w, dtype=dtype),
            "attention": attention_rate(d, config.denoiser.heads, samples, w, w, dtype=dtype),
        }
        for name, dtype in PRECISIONS.items()
    }


def solver_rtf(
    name: str, combos: list[tuple[str, int]], windows: int, samples: int, chunk: int,
    repeats: int,
) -> tuple[list[dict], dict[str, dict[str, float]]]:  # fmt: skip
    """Streaming RTF of config ``name`` (personalised) per solver, steps and precision, each with
    its floor: its window's GEMM and attention flops at the rates :func:`floor_rates` measures.

    One model for all rows; rounds alternate over the rows (reversed every other round), so
    machine load hits them alike; each RTF is a median over ``repeats`` rounds.

    Returns:
        the rows, and the rates (FLOP/s) their floors were computed with.
    """
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_perfrdiff(load_config(name)).eval()
    configs = {
        combo: load_config(
            name, [f"generate.solver={combo[0]}", f"diffusion.sample_steps={combo[1]}"]
        )
        for combo in combos
    }
    samplers = {combo: _solver_sampler(model, config) for combo, config in configs.items()}
    keys = [(combo, precision) for combo in combos for precision in PRECISIONS]
    seconds: dict = {key: [] for key in keys}
    setups: dict = {key: [] for key in keys}
    for round_ in range(repeats + 1):  # round 0: untimed warm-up
        for combo, precision in keys if round_ % 2 else keys[::-1]:
            with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
                setup, per_window = _steady_seconds(
                    samplers[combo], configs[combo], windows if round_ else 1, samples, chunk,
                    device,
                )  # fmt: skip
            if round_:
                seconds[(combo, precision)].append(per_window)
                setups[(combo, precision)].append(setup)
    rates = floor_rates(load_config(name), samples)
    flops = {steps: window_flops_by_kind(configs[combo], samples) for combo in combos
             for steps in [combo[1]]}  # fmt: skip
    rows = []
    for combo, precision in keys:
        config = configs[combo]
        per_window = sorted(seconds[(combo, precision)])[repeats // 2]
        kinds = flops[combo[1]]
        floor = sum(kinds[k] / rates[precision][k] for k in kinds)
        row = _rtf_row(samplers[combo], config, True, device, precision, windows, samples,
                       per_window)  # fmt: skip
        rows.append(row | {
            "repeats": repeats,
            "timing": "steady (windows after the first; listener setup apart)",
            "setup_seconds": sorted(setups[(combo, precision)])[repeats // 2],
            "floor_rtf": floor / (config.data.window / FPS),
            "window_gflop": sum(kinds.values()) / 1e9,
            "window_attention_gflop": kinds["attention"] / 1e9,
        })  # fmt: skip
    return rows, rates


def pwsg_size(config: Config, rank: int | None, branch_dim: int | None) -> dict:
    """Parameters, fp32 weight bytes and per-listener shift bytes of a PWSG for ``config``."""
    with torch.device("meta"):
        gafrg = build_gafrg(config)
        targets = make_editable(gafrg, config.pwsg.targets)
        config.pwsg.rank, config.pwsg.branch_dim = rank, branch_dim
        generator = build_generator(config.pwsg, config.style.style_dim, targets)
    report = generator.parameter_report()
    shift_values = sum(n * k if rank is None else rank * (n + k) for n, k in targets.values())
    return {
        "heads": "dense" if rank is None else f"low-rank r={rank}, branch {branch_dim}",
        "parameters": report["total"],
        "weights_bytes_fp32": 4 * report["total"],
        "adam_training_bytes_fp32": 16 * report["total"],  # weights, grads, two moments
        "shift_bytes_per_listener": 4 * shift_values,
        "edited_weights": len(targets),
    }


def frcorr_dense_vs_lowrank(run_dir: Path, out: Path) -> dict:
    """Train a dense-head PWSG next to the low-rank one of ``run_dir``; PMAFRG FRCorr of both."""
    from perfrdiff import Run
    from perfrdiff.training import train_run

    dense_dir = out / "dense_run"
    dense_dir.mkdir(parents=True, exist_ok=True)
    for stage in ("emotion-vae", "style", "gafrg"):
        shutil.copytree(run_dir / stage, dense_dir / stage, dirs_exist_ok=True)
    low_rank = Run.load(run_dir, device="cpu")
    dense_config = load_config(run_dir / "config.yaml", ["pwsg.rank=null"])
    dense = Run(dense_config, dense_dir, device="cpu")
    train_run(dense, ["pwsg"])
    data = low_rank.evaluation_set("test")
    predictions = {
        "low-rank": low_rank.generate("test", ["personalised"], 10, data=data)["personalised"],
        "dense": dense.generate("test", ["personalised"], 10, data=data)["personalised"],
    }
    results = low_rank.evaluate(predictions, "test", data=data)
    return {name: r["FRCorr"] for name, r in results.items()}


def solver_main(args: argparse.Namespace) -> None:
    """``--solvers``: the paper rows per solver, steps and precision, merged into ``--json``."""
    combos = [(text.split(":")[0], int(text.split(":")[1])) for text in args.solvers]
    load = os.getloadavg()
    windows, repeats = args.windows[1], args.repeats[1]
    rows, rates = solver_rtf("paper", combos, windows, args.samples, args.chunk, repeats)
    print(f"\nPaper config, personalised streaming, M = {args.samples}, "
          f"{torch.get_num_threads()} threads, load average {load[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    for precision, rate in rates.items():
        print(f"{precision}: GEMM {rate['gemm'] / 1e9:.1f} GFLOP/s, attention "
              f"{rate['attention'] / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"{'solver':9} {'steps':>5} {'precision':>9} {'s/window':>9} {'RTF':>6} {'floor':>6} "
          f"{'setup s':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['solver']:9} {r['ddim_steps']:>5} {r['precision']:>9} "
              f"{r['seconds_per_window']:>9.3f} {r['rtf']:>6.3f} "
              f"{r['floor_rtf']:>6.3f} {r['setup_seconds']:>8.3f}")  # fmt: skip
    if args.json:
        results = json.loads(args.json.read_text()) if args.json.is_file() else {}
        results["rtf_solvers"] = {
            "config": "paper",
            "threads": torch.get_num_threads(),
            "load_average_before_after": [load[0], os.getloadavg()[0]],
            "rates_gflops": {p: {k: v / 1e9 for k, v in r.items()} for p, r in rates.items()},
            "rows": rows,
        }
        args.json.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--windows",
        type=int,
        nargs=2,
        default=(15, 2),
        metavar=("TINY", "PAPER"),
        help="windows to time per config (default: 15 = a 30 s clip, and 2)",
    )
    parser.add_argument("--samples", type=int, default=10, help="M (default: 10)")
    parser.add_argument(
        "--repeats",
        type=int,
        nargs=2,
        default=(9, 3),
        metavar=("TINY", "PAPER"),
        help="rounds of personalised and generic streaming per config, alternated (median; "
        "default: 9 for tiny, whose windows take milliseconds and whose ratio is noisier, and 3)",
    )
    parser.add_argument("--chunk", type=int, default=25, help="speaker frames per push (1 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--frcorr-run",
        type=Path,
        default=None,
        help="finished demo run dir (runs/demo/run) for the FRCorr comparison",
    )
    parser.add_argument(
        "--paper-steps",
        type=int,
        nargs="*",
        default=[10, 20],
        help="further DDIM step counts to time the paper config at (default: 10 20)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    parser.add_argument(
        "--solvers",
        nargs="*",
        default=None,
        metavar="SOLVER:STEPS",
        help="only time the paper config per solver, steps and precision (e.g. ddim:50 "
        "unipc:5) with floors, and add the rows to --json's existing results",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.solvers is not None:
        solver_main(args)
        return
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rtf": {},
        "rtf_generic": {},
        "personalised_over_generic": {},
        "rtf_by_steps": {},
        "floor": {},
        "pwsg": {},
    }
    for name, windows, repeats in zip(("tiny", "paper"), args.windows, args.repeats, strict=True):
        config = load_config(name)
        if args.threads is None and config.threads:
            torch.set_num_threads(config.threads)
        measure = lambda c, personalised, windows=windows: streaming_rtf(  # noqa: E731
            c, windows, args.samples, args.chunk, personalised=personalised, warmup=1
        )
        personalised, generic = paired_rtf(config, windows, args.samples, args.chunk, repeats)
        results["rtf"][name] = personalised | {"threads": torch.get_num_threads()}
        results["rtf_generic"][name] = generic
        results["personalised_over_generic"][name] = (
            results["rtf"][name]["rtf"] / results["rtf_generic"][name]["rtf"]
        )
        flops = window_flops(config, args.samples)
        rate = gemm_rate(config.denoiser.d_model, args.samples * config.data.window)
        results["floor"][name] = {
            "window_gflop": flops / 1e9,
            "gemm_gflops": rate / 1e9,
            "floor_rtf": flops / rate / (config.data.window / FPS),
        }
        if name == "paper":
            for steps in args.paper_steps:
                fewer = load_config(name, [f"diffusion.sample_steps={steps}"])
                results["rtf_by_steps"][str(steps)] = measure(fewer, True)["rtf"]
        torch.set_num_threads(args.threads or results["threads"])
    paper = load_config("paper")
    results["pwsg"]["dense"] = pwsg_size(load_config("paper"), None, None)
    results["pwsg"]["low-rank"] = pwsg_size(
        load_config("paper"), paper.pwsg.rank, paper.pwsg.branch_dim
    )
    dense, low = results["pwsg"]["dense"], results["pwsg"]["low-rank"]
    results["pwsg"]["low_rank_over_dense"] = low["parameters"] / dense["parameters"]
    if args.frcorr_run is not None:
        results["frcorr"] = frcorr_dense_vs_lowrank(
            args.frcorr_run, args.frcorr_run.parent / "bench"
        )

    print("\nStreaming personalised generation, M =", args.samples)
    print(
        f"{'config':8} {'threads':>7} {'DDIM':>5} {'s/window':>9} {'RTF':>6} {'generic':>8} "
        f"{'pers/gen':>8} {'floor RTF':>9} {'GFLOP/win':>9}"
    )
    for name, r in results["rtf"].items():
        floor = results["floor"][name]
        print(
            f"{name:8} {r['threads']:>7} {r['ddim_steps']:>5} {r['seconds_per_window']:>9.3f} "
            f"{r['rtf']:>6.2f} {results['rtf_generic'][name]['rtf']:>8.2f} "
            f"{results['personalised_over_generic'][name]:>8.3f} {floor['floor_rtf']:>9.2f} "
            f"{floor['window_gflop']:>9.1f}"
        )
    for steps, rtf in results["rtf_by_steps"].items():
        print(f"paper, {steps} DDIM steps: RTF {rtf:.2f}")
    print("\nPWSG for the paper's edit set (cross-attention + output, 7 layers, d=512)")
    print(
        f"{'heads':28} {'parameters':>14} {'weights':>10} {'Adam train':>11} {'shift/listener':>15}"
    )
    for r in (dense, low):
        print(
            f"{r['heads']:28} {r['parameters']:>14,} {r['weights_bytes_fp32'] / 2**30:>8.2f}GB "
            f"{r['adam_training_bytes_fp32'] / 2**30:>9.2f}GB "
            f"{r['shift_bytes_per_listener'] / 2**20:>13.2f}MB"
        )
    print(
        f"low-rank / dense parameters: {results['pwsg']['low_rank_over_dense']:.4%} (target <= 1%)"
    )
    if "frcorr" in results:
        print("PMAFRG FRCorr on synthetic test:", results["frcorr"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
