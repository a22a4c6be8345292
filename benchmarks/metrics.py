"""Time one REACT-test-sized evaluation: vectorised metrics vs a per-speaker Python loop.

Data are synthetic but REACT-shaped: ``n`` speakers x ``k`` samples x ``t`` frames x 25 channels of
smooth emotion-like sequences (AU probabilities, valence/arousal in [-1, 1], expression
probabilities), real reactions of the same kind, and an appropriateness matrix built like the
synthetic dataset's (speaker-behaviour similarity) with ``--appropriate`` reactions per speaker on
average. The fast path runs on everything; the loop baseline (``perfrdiff.metrics.reference``, the
challenge's structure with tslearn's ``dtw``) runs on the first ``--baseline-speakers`` speakers and
its time is scaled by ``n / baseline_speakers`` (every loop is per speaker). Per-speaker values of
both paths are compared on that subset.

    python benchmarks/metrics.py                      # full size (minutes)
    python benchmarks/metrics.py --speakers 40 --baseline-speakers 8   # quick look
"""

from __future__ import annotations

import argparse
import json
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


def make_inputs(n: int, k: int, frames: int, appropriate: float, seed: int):
    rng = np.random.default_rng(seed)
    predictions = np.stack([emotion_like(rng, k, frames) for _ in range(n)])
    listener = emotion_like(rng, n, frames)
    speaker = emotion_like(rng, n, frames)
    neighbours = appropriateness_matrix(speaker, min(1.0, max(appropriate - 1, 0) / (n - 1)))
    return predictions, listener, speaker, neighbours


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=806)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--appropriate", type=float, default=10.0, help="mean set size")
    parser.add_argument("--baseline-speakers", type=int, default=16)
    parser.add_argument("--n-jobs", type=int, default=None, help="FRdist processes (all CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/metrics.json"))
    args = parser.parse_args(argv)

    p, g, s, m = make_inputs(args.speakers, args.samples, args.frames, args.appropriate, args.seed)
    n, b = args.speakers, min(args.baseline_speakers, args.speakers)
    scale = n / b
    print(f"n={n} k={args.samples} t={args.frames}, mean |A_k| = {m.sum(1).mean():.1f}")

    fast, fast_time = {}, {}
    fast["FRCorr"], fast_time["FRCorr"] = timed(frcorr_per_speaker, p, g, m)
    (fast["FRdist"], dtws), fast_time["FRdist"] = timed(frdist_per_speaker, p, g, m, args.n_jobs)
    fast["FRDiv"], fast_time["FRDiv"] = timed(frdiv, p)
    fast["FRDvs"], fast_time["FRDvs"] = timed(frdvs, p)
    fast["FRVar"], fast_time["FRVar"] = timed(frvar, p)
    fast["FRSyn"], fast_time["FRSyn"] = timed(frsyn_offsets, p, s)
    fast["FRRea"], fast_time["FRRea"] = timed(frrea, p, g)

    slow, slow_time = {}, {}
    slow["FRCorr"], slow_time["FRCorr"] = timed(loop.frcorr_loop, p[:b], g, m[:b])
    slow["FRdist"], slow_time["FRdist"] = timed(loop.frdist_loop, p[:b], g, m[:b])
    slow["FRDiv"], slow_time["FRDiv"] = timed(loop.frdiv_loop, p[:b])
    _, slow_time["FRDvs"] = timed(loop.frdvs_rows, p, range(b))
    slow["FRVar"], slow_time["FRVar"] = timed(loop.frvar_loop, p[:b])
    slow["FRSyn"], slow_time["FRSyn"] = timed(loop.frsyn_loop, p[:b], s[:b])
    _, slow_time["FRRea"] = timed(frrea, p[:b], g)

    checks = {
        "FRCorr max |diff|": float(np.abs(fast["FRCorr"][:b] - slow["FRCorr"]).max()),
        "FRdist max |diff|": float(np.abs(fast["FRdist"][:b] - slow["FRdist"]).max()),
        "FRSyn offsets differing": int((fast["FRSyn"][:b] != slow["FRSyn"]).sum()),
        "FRDiv |diff| on subset": abs(frdiv(p[:b]) - slow["FRDiv"]),
        "FRVar |diff| on subset": abs(frvar(p[:b]) - slow["FRVar"]),
    }
    rows = []
    print(
        f"\n{'metric':8} {'fast s':>9} {'loop s (x' + format(scale, '.1f') + ')':>16} {'ratio':>8}"
    )
    for name in fast_time:
        baseline = slow_time[name] * scale
        rows.append({"metric": name, "fast_s": fast_time[name], "loop_s": baseline})
        print(f"{name:8} {fast_time[name]:9.2f} {baseline:16.2f} {baseline / fast_time[name]:8.1f}")
    total_fast = sum(fast_time.values())
    total_slow = sum(r["loop_s"] for r in rows)
    print(f"{'total':8} {total_fast:9.2f} {total_slow:16.2f} {total_slow / total_fast:8.1f}")
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
        "total_fast_s": total_fast,
        "total_loop_s": total_slow,
        "ratio": total_slow / total_fast,
        "dtw_started": dtws,
        "dtw_exhaustive": 3 * pairs,
        "checks": checks,
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
