"""Time one REACT-test-sized evaluation: vectorised metrics vs a per-speaker Python loop.

Data are synthetic but REACT-shaped: ``n`` speakers x ``k`` samples x ``t`` frames x 25 channels of
smooth emotion-like sequences (AU probabilities, valence/arousal in [-1, 1], expression
probabilities), real reactions of the same kind, and an appropriateness matrix built like the
synthetic dataset's (speaker-behaviour similarity) with ``--appropriate`` reactions per speaker on
average. The fast path runs on everything; the loop baseline (``perfrdiff.metrics.reference``, the
challenge's structure with tslearn's ``dtw``) runs on the first ``--baseline-speakers`` speakers and
its time is scaled by ``n / baseline_speakers`` (every loop is per speaker). Per-speaker values of
both paths are compared on that subset. Wall time and CPU time (including FRdist's worker
processes) are both reported: on a shared machine the CPU-time ratio is the stable one.

    python benchmarks/metrics.py                      # full size (minutes)
    python benchmarks/metrics.py --speakers 40 --baseline-speakers 8   # quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from perfrdiff.data import appropriateness_matrix
from perfrdiff.metrics import (
    frcorr_per_speaker,
    frdist_per_speaker,
    frdiv,
    frdvs,
    frrea,
    frsyn_offsets,
    frvar,
)
from perfrdiff.metrics import reference as loop


def emotion_like(rng: np.random.Generator, rows: int, frames: int) -> np.ndarray:
    """``(rows, frames, 25)`` float32 smooth sequences in the REACT channel ranges."""
    latent = np.empty((rows, frames, 4))
    state = rng.normal(0, 1, (rows, 4))
    for t in range(frames):
        state = 0.95 * state + np.sqrt(1 - 0.95**2) * rng.normal(0, 1, (rows, 4))
        latent[:, t] = state
    mix = np.random.default_rng(12345).normal(0, 1, (4, 25))  # one decoder for all sequences
    z = latent @ mix + rng.normal(0, 0.3, (rows, frames, 25))
    expressions = np.exp(z[..., 17:])
    return np.concatenate(
        [
            1 / (1 + np.exp(-z[..., :15])),
            np.tanh(0.5 * z[..., 15:17]),
            expressions / expressions.sum(axis=-1, keepdims=True),
        ],
        axis=-1,
    ).astype(np.float32)


#: Channel ranges for clipping perturbed reactions: AU and expression probabilities, VA.
LOW = np.array([0.0] * 15 + [-1.0] * 2 + [0.0] * 8, dtype=np.float32)
HIGH = np.ones(25, dtype=np.float32)


def near_appropriate(
    rng: np.random.Generator, listener: np.ndarray, neighbours: np.ndarray, k: int
) -> np.ndarray:
    """``(n, k, t, 25)`` samples that each copy one appropriate reaction of their speaker, delayed
    by 0-19 frames, plus Gaussian noise (sd 0.05): what a model that has learnt the task emits."""
    n, frames, _ = listener.shape
    predictions = np.empty((n, k, frames, 25), dtype=np.float32)
    for speaker in range(n):
        for sample in range(k):
            source = listener[rng.choice(np.flatnonzero(neighbours[speaker]))]
            delay = int(rng.integers(0, 20))
            delayed = np.concatenate([np.repeat(source[:1], delay, axis=0), source])[:frames]
            noisy = delayed + rng.normal(0, 0.05, delayed.shape)
            predictions[speaker, sample] = np.clip(noisy, LOW, HIGH)
    return predictions


def make_inputs(n: int, k: int, frames: int, appropriate: float, seed: int, kind: str):
    """Predictions ``(n, k, t, 25)``, real listener and speaker emotion ``(n, t, 25)`` and the
    appropriateness matrix; ``kind`` is ``independent`` (predictions unrelated to every real
    reaction: the hardest case for FRdist's pruning) or ``near-appropriate``."""
    rng = np.random.default_rng(seed)
    predictions = np.stack([emotion_like(rng, k, frames) for _ in range(n)])
    listener = emotion_like(rng, n, frames)
    speaker = emotion_like(rng, n, frames)
    neighbours = appropriateness_matrix(speaker, min(1.0, max(appropriate - 1, 0) / (n - 1)))
    if kind == "near-appropriate":
        predictions = near_appropriate(rng, listener, neighbours, k)
    return predictions, listener, speaker, neighbours


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the FRdist workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args, **kwargs):
    """``(value, wall seconds, cpu seconds)`` of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=806)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--appropriate", type=float, default=10.0, help="mean set size")
    parser.add_argument("--baseline-speakers", type=int, default=16)
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="FRdist processes (default: one per usable CPU)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--predictions",
        choices=["independent", "near-appropriate"],
        default="independent",
        help="samples unrelated to the real reactions, or each a noisy, delayed copy of one "
        "appropriate reaction",
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/metrics.json"))
    args = parser.parse_args(argv)

    p, g, s, m = make_inputs(
        args.speakers, args.samples, args.frames, args.appropriate, args.seed, args.predictions
    )
    n, b = args.speakers, min(args.baseline_speakers, args.speakers)
    scale = n / b
    print(f"n={n} k={args.samples} t={args.frames}, mean |A_k| = {m.sum(1).mean():.1f}")

    loop.frdist_loop(p[:1, :1, :5], g[:, :5], m[:1])  # compile tslearn's numba code untimed
    fast, fast_time, fast_cpu = {}, {}, {}
    slow, slow_time, slow_cpu = {}, {}, {}
    runs = [
        ("FRCorr", frcorr_per_speaker, (p, g, m), loop.frcorr_loop, (p[:b], g, m[:b])),
        ("FRdist", frdist_per_speaker, (p, g, m, args.n_jobs), loop.frdist_loop, (p[:b], g, m[:b])),
        ("FRDiv", frdiv, (p,), loop.frdiv_loop, (p[:b],)),
        ("FRDvs", frdvs, (p,), loop.frdvs_rows, (p, range(b))),
        ("FRVar", frvar, (p,), loop.frvar_loop, (p[:b],)),
        ("FRSyn", frsyn_offsets, (p, s), loop.frsyn_loop, (p[:b], s[:b])),
        ("FRRea", frrea, (p, g), frrea, (p[:b], g)),
    ]
    for name, fast_function, fast_args, loop_function, loop_args in runs:
        fast[name], fast_time[name], fast_cpu[name] = timed(fast_function, *fast_args)
        slow[name], slow_time[name], slow_cpu[name] = timed(loop_function, *loop_args)
        print(
            f"{name}: fast {fast_time[name]:.1f} s, loop (subset) {slow_time[name]:.1f} s",
            flush=True,
        )
    fast["FRdist"], dtws = fast["FRdist"]

    checks = {
        "FRCorr max |diff|": float(np.abs(fast["FRCorr"][:b] - slow["FRCorr"]).max()),
        "FRdist max |diff|": float(np.abs(fast["FRdist"][:b] - slow["FRdist"]).max()),
        "FRSyn offsets differing": int((fast["FRSyn"][:b] != slow["FRSyn"]).sum()),
        "FRDiv |diff| on subset": abs(frdiv(p[:b]) - slow["FRDiv"]),
        "FRVar |diff| on subset": abs(frvar(p[:b]) - slow["FRVar"]),
    }
    rows = []
    header = f"{'metric':8} {'fast s':>8} {'loop s':>9} {'ratio':>6}"
    header += f" {'fast cpu':>9} {'loop cpu':>9} {'ratio':>6}"
    print(f"\n(loop times scaled by n / baseline speakers = {scale:.1f})\n{header}")
    for name in fast_time:
        row = {
            "metric": name,
            "fast_s": fast_time[name],
            "loop_s": slow_time[name] * scale,
            "fast_cpu_s": fast_cpu[name],
            "loop_cpu_s": slow_cpu[name] * scale,
        }
        rows.append(row)
        wall_ratio = row["loop_s"] / row["fast_s"]
        cpu_ratio = row["loop_cpu_s"] / row["fast_cpu_s"]
        print(
            f"{name:8} {row['fast_s']:8.2f} {row['loop_s']:9.2f} {wall_ratio:6.1f}"
            f" {row['fast_cpu_s']:9.2f} {row['loop_cpu_s']:9.2f} {cpu_ratio:6.1f}"
        )
    totals = {key: sum(row[key] for row in rows) for key in rows[0] if key != "metric"}
    print(
        f"{'total':8} {totals['fast_s']:8.2f} {totals['loop_s']:9.2f}"
        f" {totals['loop_s'] / totals['fast_s']:6.1f} {totals['fast_cpu_s']:9.2f}"
        f" {totals['loop_cpu_s']:9.2f} {totals['loop_cpu_s'] / totals['fast_cpu_s']:6.1f}"
    )
    pairs = int(m.sum()) * args.samples
    share = dtws / (3 * pairs)
    print(f"\nFRdist: {dtws} component DTWs started of {3 * pairs} exhaustive ({share:.1%})")
    for name, value in checks.items():
        print(f"check {name}: {value:.3g}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "mean_appropriate": float(m.sum(1).mean()),
        "rows": rows,
        "totals": totals,
        "total_fast_s": totals["fast_s"],
        "total_loop_s": totals["loop_s"],
        "ratio": totals["loop_s"] / totals["fast_s"],
        "ratio_wall": totals["loop_s"] / totals["fast_s"],
        "ratio_cpu": totals["loop_cpu_s"] / totals["fast_cpu_s"],
        "dtw_started": dtws,
        "dtw_exhaustive": 3 * pairs,
        "checks": checks,
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
