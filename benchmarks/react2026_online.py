"""Online REACT 2026 generation of a long sequence against a short one: memory and time per frame.

The online generator (:class:`perfrdiff.generation.sequences.WindowStream`) keeps only the
speaker frames a later window can still see and the last generated frames, so a 20,000-frame
sequence should need no more memory than a 750-frame one beyond its output array, and the same
time per frame. Each length runs in a fresh process (its peak resident memory is its own): the
tiny preset under ``protocol=react2026`` (30-frame windows, the preset's overlap and solver),
random weights with visible shifts (speed does not depend on training), one listener's
personalised reactions, ``M`` samples, the speaker read from a memory-mapped ``.npy`` 750
frames at a time, the reactions written into one ``(1, M, T, 25)`` array.

Memory: the peak resident set of each process, and the same before its measured sequence (after
building the model and a warm-up). Time: wall and CPU time per frame, two ways: each process's
own (the short sequence repeated, its median), and, in the long sequence's process, the long
sequence timed between two runs of the short one, so that the load of the same minutes hits
both. The ratios come from one run; on a shared machine CPU time is the steadier clock.

    python benchmarks/react2026_online.py --json benchmarks/results/react2026_online.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from perfrdiff.config import load_config
from perfrdiff.data.react2026.windows import padded
from perfrdiff.features import AUDIO_DIMS, EMOTION_DIM, FACE_DIM, history_dim
from perfrdiff.generation import ReactionSampler, SamplerConfig
from perfrdiff.generation.sequences import WindowStream, stream_sequences
from perfrdiff.models import build_perfrdiff, build_schedule
from perfrdiff.protocol import REACT2026

#: The issue's targets: resident memory within 200 MB, time per frame within ±15%.
MEMORY_LIMIT_MB = 200.0
TIME_TOLERANCE = 0.15
OVERRIDES = ["protocol=react2026", "data.window=30", "threads=1"]


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_sampler(seed: int = 0) -> tuple[ReactionSampler, int, int]:
    """The tiny preset's personalised sampler under REACT 2026 (random weights), its audio
    width and its history width."""
    config = load_config("tiny", OVERRIDES)
    torch.manual_seed(seed)
    model = build_perfrdiff(config).eval()
    for p in model.generator.parameters():  # zero heads would make the shifts vanish
        torch.nn.init.normal_(p, std=0.05)
    d, g = config.diffusion, config.generate
    sampler = ReactionSampler(
        model,
        build_schedule(config),
        SamplerConfig(d.sample_steps, d.guidance, g.overlap, d.spacing, g.solver),
    )
    return sampler, model.gafrg.audio_dim, history_dim(config.style.input)


def generate(sampler: ReactionSampler, speaker: np.ndarray, samples: int, width: int) -> float:
    """Online reactions of one listener to ``speaker (T, c)``; returns the output's size (MB)."""
    frames = speaker.shape[0]
    history = torch.randn(1, 750, width, generator=torch.Generator().manual_seed(1))
    stream = WindowStream(sampler, samples, REACT2026.context_frames(30), history, seed=0)
    out = np.zeros((1, samples, frames, EMOTION_DIM), np.float32)

    def read(begin: int, end: int) -> torch.Tensor:
        return torch.from_numpy(padded(speaker, begin, end, "speaker"))[None]

    stream_sequences(stream, read, frames, out)
    return out.nbytes / 2**20


def timed(sampler: ReactionSampler, speaker: np.ndarray, samples: int, width: int) -> tuple:
    """``(wall s, CPU s, output MB)`` of one generation."""
    wall, cpu = time.perf_counter(), time.process_time()
    output_mb = generate(sampler, speaker, samples, width)
    return time.perf_counter() - wall, time.process_time() - cpu, output_mb


def bracketed(sampler, speaker, short: np.ndarray, samples: int, width: int) -> dict:
    """The long sequence timed between two runs of the short one in the same process, so the
    machine's load of that minute hits both: ms per frame of each, and long / short."""
    before, long, after = (timed(sampler, x, samples, width) for x in (short, speaker, short))
    out = {}
    for k, clock in enumerate(("wall", "cpu")):
        short_ms = 1e3 * (before[k] + after[k]) / (2 * short.shape[0])
        long_ms = 1e3 * long[k] / speaker.shape[0]
        out[clock] = {"short_ms_per_frame": short_ms, "long_ms_per_frame": long_ms,
                      "ratio": long_ms / short_ms}  # fmt: skip
    return out


def child(frames: int, samples: int, repeats: int, folder: Path, short: int | None) -> dict:
    """One length in this process: warm up, then measure (see the module docstring); with
    ``short``, then also :func:`bracketed` against the ``short``-frame sequence."""
    torch.set_num_threads(1)
    sampler, audio_dim, width = build_sampler()
    speaker = np.load(folder / f"speaker_{frames}.npy", mmap_mode="r")
    if speaker.shape[1] != audio_dim + FACE_DIM + EMOTION_DIM:
        raise ValueError(f"speaker file: expected (t, {audio_dim} + 83), got {speaker.shape}")
    generate(sampler, speaker[:90], samples, width)  # warm-up
    before = peak_rss_mb()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu, output_mb = timed(sampler, speaker, samples, width)
        walls.append(wall)
        cpus.append(cpu)
    result = {
        "frames": frames,
        "samples": samples,
        "repeats": repeats,
        "peak_rss_mb_before": before,
        "peak_rss_mb": peak_rss_mb(),
        "output_mb": output_mb,
        "wall_s": walls,
        "cpu_s": cpus,
        "wall_ms_per_frame": 1e3 * statistics.median(walls) / frames,
        "cpu_ms_per_frame": 1e3 * statistics.median(cpus) / frames,
    }
    if short is not None:
        reference = np.load(folder / f"speaker_{short}.npy", mmap_mode="r")
        result["bracketed"] = bracketed(sampler, speaker, reference, samples, width)
    return result


def write_speaker(frames: int, folder: Path) -> None:
    """A random speaker sequence ``(frames, a + 83)`` as ``speaker_<frames>.npy``."""
    rng = np.random.default_rng(frames)
    width = AUDIO_DIMS[load_config("tiny", OVERRIDES).data.audio] + FACE_DIM + EMOTION_DIM
    np.save(folder / f"speaker_{frames}.npy", rng.normal(size=(frames, width)).astype(np.float32))


def run_child(
    frames: int, samples: int, repeats: int, folder: Path, short: int | None = None
) -> dict:
    """:func:`child` in a fresh process, its speaker file(s) written here (not in its memory)."""
    for length in {frames, short} - {None}:
        write_speaker(length, folder)
    argv = [sys.executable, __file__, "--child", str(frames), "--samples", str(samples)]
    argv += ["--repeats", str(repeats), "--folder", str(folder)]
    argv += [] if short is None else ["--bracket", str(short)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(short: dict, long: dict) -> dict:
    """The issue's two measures: resident memory beyond the output, time per frame."""
    grown = (long["peak_rss_mb"] - long["peak_rss_mb_before"]) - (
        short["peak_rss_mb"] - short["peak_rss_mb_before"]
    )
    memory = long["peak_rss_mb"] - short["peak_rss_mb"]
    return {
        "peak_rss_difference_mb": memory,
        "growth_difference_mb": grown,
        "output_difference_mb": long["output_mb"] - short["output_mb"],
        "memory_within_limit": memory <= MEMORY_LIMIT_MB,
        "wall_per_frame_ratio": long["wall_ms_per_frame"] / short["wall_ms_per_frame"],
        "cpu_per_frame_ratio": long["cpu_ms_per_frame"] / short["cpu_ms_per_frame"],
        **{
            f"{clock}_per_frame_ratio_bracketed": long["bracketed"][clock]["ratio"]
            for clock in ("wall", "cpu")
            if "bracketed" in long
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=750, help="frames of the short sequence")
    parser.add_argument("--long", type=int, default=20_000, help="frames of the long sequence")
    parser.add_argument("--samples", type=int, default=10, help="M samples (default: 10)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of the short sequence")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bracket", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.samples, args.repeats, args.folder, args.bracket)))
        return
    with tempfile.TemporaryDirectory() as folder:
        short = run_child(args.short, args.samples, args.repeats, Path(folder))
        long = run_child(args.long, args.samples, 1, Path(folder), short=args.short)
    result = {
        "config": {"preset": "tiny", "overrides": OVERRIDES, "samples": args.samples},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "short": short,
        "long": long,
        "ratios": compare(short, long),
        "targets": {"memory_mb": MEMORY_LIMIT_MB, "time_per_frame": TIME_TOLERANCE},
    }
    r = result["ratios"]
    print(f"{'':28}{short['frames']:>10}{long['frames']:>10}")
    print(
        f"{'peak resident memory (MB)':28}{short['peak_rss_mb']:>10.1f}{long['peak_rss_mb']:>10.1f}"
    )
    print(f"{'output array (MB)':28}{short['output_mb']:>10.1f}{long['output_mb']:>10.1f}")
    for clock in ("wall", "cpu"):
        row = f"{clock} ms per frame"
        print(
            f"{row:28}{short[f'{clock}_ms_per_frame']:>10.3f}{long[f'{clock}_ms_per_frame']:>10.3f}"
        )
    print(
        f"memory difference {r['peak_rss_difference_mb']:.1f} MB (limit {MEMORY_LIMIT_MB:.0f}); "
        f"time per frame long/short, separate processes: wall {r['wall_per_frame_ratio']:.3f}, "
        f"cpu {r['cpu_per_frame_ratio']:.3f}; bracketed in one process: wall "
        f"{r['wall_per_frame_ratio_bracketed']:.3f}, cpu {r['cpu_per_frame_ratio_bracketed']:.3f}"
        f" (target 1 ± {TIME_TOLERANCE})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
