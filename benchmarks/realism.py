"""Benchmark how real generated reactions move: seams between online windows, smoothness inside
them, spectrum, beside the REACT metrics, for sampling variants of one trained run.

Each variant is a set of config overrides applied to the run at generation time (nothing is
retrained), e.g. ``overlap25:generate.overlap=25`` or ``eta1:diffusion.eta=1``. For every
variant and mode the table gives FRCorr, FRdist, FRRea and the motion statistics of
:mod:`perfrdiff.metrics.motion` (join/inside step ratio, inside step / real, power per band
generated / real); a chance row (real reactions of other items) is the baseline.

    python benchmarks/realism.py runs/demo/run --variant base: \\
        --variant overlap25:generate.overlap=25 --json benchmarks/results/realism.json

``benchmarks/results/realism_{demo,lagged}_{x0,v}.json``: the synthetic demo family
(``make-synthetic``, 30/4/6 sessions, seed 0) and the ``lagged-expressive`` family, each trained
in the tiny config with ``x0`` prediction and with ``diffusion.prediction=v`` (same seed), 10
samples per item; the variants' overrides are recorded in each file.
``benchmarks/results/realism_grids_{coupled,lagged}.json``: the DDIM timestep grids (quadratic,
linspace, trailing) on one run of the current tiny preset per family (seed 0, one thread), both
modes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from perfrdiff.generation import chance_predictions
from perfrdiff.metrics import METRICS, markdown_table, motion_table
from perfrdiff.run import Run

SHOWN = ("FRCorr", "FRdist", "FRRea")


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``name:key=value,key=value`` -> ``(name, ["key=value", ...])``."""
    name, _, overrides = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"variant must look like name:key=value,…, got {text!r}")
    return name, [item for item in overrides.split(",") if item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run directory (perfrdiff train all)")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=None,
        help="name:key=value,… config overrides for generation (repeatable; default: base:)",
    )
    parser.add_argument("--split", default="test", help="split (default: test)")
    parser.add_argument("--modes", nargs="+", default=["personalised"], help="generic/personalised")
    parser.add_argument("--samples", type=int, default=10, help="M (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--data-root", default=None, help="dataset root (default: the run's)")
    parser.add_argument("--n-jobs", type=int, default=None, help="FRdist processes")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()

    variants = args.variant or [("base", [])]
    root = [f"data.root={args.data_root}"] if args.data_root else []
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    data = None
    for name, overrides in variants:
        run = Run.load(args.run, "cpu", overrides=[*root, *overrides])
        data = data or run.evaluation_set(args.split)
        start = time.perf_counter()
        predictions = run.generate(
            args.split, args.modes, samples=args.samples, seed=args.seed, data=data
        )
        seconds[name] = time.perf_counter() - start
        for mode, array in predictions.items():
            results[f"{name} {mode}"] = run.evaluate(array, args.split, data, args.n_jobs)
    chance = chance_predictions(data, args.samples, args.seed)
    results["chance"] = run.evaluate(chance, args.split, data, args.n_jobs)

    shown = {name: {k: v for k, v in r.items() if k in SHOWN} for name, r in results.items()}
    print(markdown_table(shown))
    print(motion_table(results))
    print("generation seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "run": str(args.run),
            "variants": {name: overrides for name, overrides in variants},
            "metrics": list(METRICS),
            "results": results,
            "generation_seconds": seconds,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
