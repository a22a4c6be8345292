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
import platform
import shutil
import time
from pathlib import Path

import torch
from perfrdiff.config import Config, load_config
from perfrdiff.features import history_dim
from perfrdiff.generation import ReactionSampler, SamplerConfig, StreamingGenerator
from perfrdiff.models import build_gafrg, build_generator, build_perfrdiff, build_schedule

from weditlib import make_editable

FPS = 25


def streaming_rtf(config: Config, windows: int, samples: int, chunk: int, seed: int = 0) -> dict:
    """Time ``windows`` windows of streaming generation, pushing ``chunk`` speaker frames a time."""
    torch.manual_seed(seed)
    model = build_perfrdiff(config).eval()
    schedule = build_schedule(config)
    sampler = ReactionSampler(
        model, schedule, SamplerConfig(config.diffusion.sample_steps, config.diffusion.guidance)
    )
    w = config.data.window
    frames = windows * w
    history = torch.randn(1, config.data.history_frames, history_dim(config.style.input))
    audio, face, emotion = (
        torch.randn(1, frames, 78),
        torch.randn(1, frames, 58),
        torch.randn(1, frames, 25),
    )
    start = time.perf_counter()
    stream = StreamingGenerator(sampler, samples, history, seed, max_frames=frames)
    produced = 0
    for at in range(0, frames, chunk):
        produced += len(
            stream.push(
                audio[:, at : at + chunk], face[:, at : at + chunk], emotion[:, at : at + chunk]
            )
        )
    elapsed = time.perf_counter() - start
    per_window = elapsed / produced
    return {
        "windows": produced,
        "samples": samples,
        "ddim_steps": config.diffusion.sample_steps,
        "guidance": config.diffusion.guidance,
        "seconds_per_window": per_window,
        "rtf": per_window / (w / FPS),
        "denoiser_parameters": sum(p.numel() for p in model.gafrg.parameters()),
    }


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

    dense_dir = out / "dense_run"
    dense_dir.mkdir(parents=True, exist_ok=True)
    for stage in ("emotion-vae", "style", "gafrg"):
        shutil.copytree(run_dir / stage, dense_dir / stage, dirs_exist_ok=True)
    low_rank = Run.load(run_dir, device="cpu")
    dense_config = load_config(run_dir / "config.yaml", ["pwsg.rank=null"])
    dense = Run(dense_config, dense_dir, device="cpu")
    dense.train(["pwsg"])
    data = low_rank.evaluation_set("test")
    predictions = {
        "low-rank": low_rank.generate("test", ["personalised"], 10, data=data)["personalised"],
        "dense": dense.generate("test", ["personalised"], 10, data=data)["personalised"],
    }
    results = low_rank.evaluate(predictions, "test", data=data)
    return {name: r["FRCorr"] for name, r in results.items()}


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
    parser.add_argument("--chunk", type=int, default=25, help="speaker frames per push (1 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--frcorr-run",
        type=Path,
        default=None,
        help="finished demo run dir (runs/demo/run) for the FRCorr comparison",
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "rtf": {},
        "pwsg": {},
    }
    for name, windows in zip(("tiny", "paper"), args.windows, strict=True):
        config = load_config(name)
        if args.threads is None and config.threads:
            torch.set_num_threads(config.threads)
        results["rtf"][name] = streaming_rtf(config, windows, args.samples, args.chunk)
        results["rtf"][name]["threads"] = torch.get_num_threads()
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
    print(f"{'config':8} {'threads':>7} {'DDIM':>5} {'s/window':>9} {'RTF':>6}  (target <= 1)")
    for name, r in results["rtf"].items():
        print(
            f"{name:8} {r['threads']:>7} {r['ddim_steps']:>5} {r['seconds_per_window']:>9.3f} "
            f"{r['rtf']:>6.2f}"
        )
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
