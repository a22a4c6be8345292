"""What do fewer denoising steps cost? Quality per solver, steps and precision on trained runs.

For each trained run (``perfrdiff train all``, tiny config) and its test split: generic (MAFRG)
and personalised (PMAFRG) reactions for DDIM at 50/20/10/5 steps and DPM-Solver++ 2M and UniPC
at 20/10/5/3 steps, in fp32 and bf16, from the same initial noise (the same seeds: the solvers
are deterministic, so the noise is all a seed draws), and per row:

* FRCorr, FRdist, FRDiv, FRVar (means over seeds) and their paired bootstrap 95% intervals of the
  relative difference to DDIM-50 fp32 over test items (resampling items, the same draw for both);
* motion: the frame-to-frame step inside windows over the real one (``inside_vs_real``) and the
  seam ratio (step at window joins over the step inside, ``join_ratio``).

    python benchmarks/solver_quality.py --run coupled-latent=runs/bench/coupled/run \\
        --run lagged-expressive=runs/bench/expressive/run \\
        --json benchmarks/results/solver_quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from perfrdiff import Run
from perfrdiff.generation import MODES, EvaluationSet
from perfrdiff.likeness import paired_bootstrap as likeness_bootstrap
from perfrdiff.metrics import motion_report
from perfrdiff.metrics.ccc import frcorr_per_speaker
from perfrdiff.metrics.dtw import frdist_per_speaker

GRID = [("ddim", 50), ("ddim", 20), ("ddim", 10), ("ddim", 5)] + [
    (solver, steps) for solver in ("dpmpp-2m", "unipc") for steps in (20, 10, 5, 3)
]
PRECISIONS = ("fp32", "bf16")
REFERENCE = ("ddim", 50, "fp32")
ITEM_METRICS = ("FRCorr", "FRdist", "FRDiv", "FRVar")
MOTION = ("inside_vs_real", "join_ratio", "real_join_ratio")
#: The issue's bounds for the real-time preset: FRCorr at most 2% below, FRdist at most 3% above.
BOUNDS = {"FRCorr": -0.02, "FRdist": 0.03}


def per_item(predictions: np.ndarray, data: EvaluationSet) -> dict[str, np.ndarray]:
    """``predictions (n, k, t, d)`` -> per test item ``(n,)`` FRCorr, FRdist (whose means are
    the metrics), FRDiv and FRVar (likewise: the metrics average items of equal size)."""
    _, k, t, d = predictions.shape
    p = predictions.astype(np.float64)
    # Σ_{i≠i'} ‖P_i - P_i'‖² = 2k Σ_i ‖P_i‖² - 2 ‖Σ_i P_i‖²
    squares = (p**2).sum(axis=(1, 2, 3))
    total = (p.sum(axis=1) ** 2).sum(axis=(1, 2))
    frdist, _ = frdist_per_speaker(predictions, data.listener_emotion, data.neighbours, n_jobs=1)
    return {
        "FRCorr": frcorr_per_speaker(predictions, data.listener_emotion, data.neighbours),
        "FRdist": frdist,
        "FRDiv": (2 * k * squares - 2 * total) / (k * (k - 1) * t * d),
        "FRVar": p.var(axis=2, ddof=1).mean(axis=(1, 2)),
    }


def output_difference(bf16: np.ndarray, fp32: np.ndarray) -> dict[str, float]:
    """Mean and max absolute difference of bf16 from fp32 reactions, the mean also over the
    fp32 reactions' std (how large it is next to what the reactions do)."""
    difference = np.abs(bf16.astype(np.float64) - fp32)
    return {"bf16_mean_abs_diff": float(difference.mean()),
            "bf16_max_abs_diff": float(difference.max()),
            "bf16_diff_over_std": float(difference.mean() / fp32.std())}  # fmt: skip


def paired_bootstrap(
    values: np.ndarray, reference: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Relative difference of the means ``mean(values) / mean(reference) - 1`` over items
    ``(n,)``, and its 95% interval from resampling the items (the same draw for both):
    :func:`perfrdiff.likeness.paired_bootstrap` with every item its own group."""
    ratio = likeness_bootstrap(
        values, reference, [str(i) for i in range(len(values))], "ratio", resamples, seed
    )
    return ratio.value - 1, ratio.low - 1, ratio.high - 1


def sample_row(
    run: Run, data: EvaluationSet, seeds: list[int], samples: int, modes: list[str]
) -> dict:
    """Per mode: item metrics averaged over ``seeds`` ``(n,)`` and motion averaged over them."""
    out: dict = {}
    window = run.config.data.window
    stride = window - run.config.generate.overlap
    start = time.perf_counter()
    for seed in seeds:
        predictions = run.generate("test", modes, samples, seed, data=data)
        if seed == seeds[0]:
            out["first"] = predictions
        for mode, p in predictions.items():
            items = per_item(p, data)
            motion = motion_report(p, data.listener_emotion, window, stride)
            row = out.setdefault(mode, {"items": {m: 0.0 for m in ITEM_METRICS},
                                        "motion": {m: 0.0 for m in MOTION}})  # fmt: skip
            for m in ITEM_METRICS:
                row["items"][m] = row["items"][m] + items[m] / len(seeds)
            for m in MOTION:
                row["motion"][m] += motion[m] / len(seeds)
    out["seconds"] = time.perf_counter() - start
    return out


def family_rows(name: str, directory: Path, grid, seeds, samples, limit, modes=MODES) -> list[dict]:
    """Every row of ``grid`` x precisions for one trained run, against DDIM-50 fp32."""
    keys = [(solver, steps, precision) for solver, steps in grid for precision in PRECISIONS]
    keys.remove(REFERENCE)
    keys.insert(0, REFERENCE)
    data = None
    measured = {}
    for solver, steps, precision in keys:
        overrides = [f"generate.solver={solver}", f"diffusion.sample_steps={steps}", "threads=1"]
        run = Run.load(directory, "cpu", precision, overrides)
        if data is None:
            data = run.evaluation_set("test", limit, histories="personalised" in modes)
        result = sample_row(run, data, seeds, samples, modes)
        first = result.pop("first")
        if precision == "fp32":
            fp32 = first  # of the same solver and steps: bf16 is measured right after it
        else:  # the outputs' difference from fp32, from the same noise
            result["bf16_vs_fp32"] = {mode: output_difference(first[mode], fp32[mode])
                                      for mode in modes}  # fmt: skip
        measured[(solver, steps, precision)] = result
        print(f"{name} {solver} {steps} {precision}: "
              f"{measured[(solver, steps, precision)]['seconds']:.0f} s", flush=True)  # fmt: skip
    rows = []
    for (solver, steps, precision), result in measured.items():
        for mode in modes:
            reference = measured[REFERENCE][mode]["items"]
            items = result[mode]["items"]
            row = {"family": name, "mode": mode, "solver": solver, "steps": steps,
                   "precision": precision, "items": len(items["FRCorr"]),
                   **{m: float(items[m].mean()) for m in ITEM_METRICS},
                   **result[mode]["motion"],
                   **result.get("bf16_vs_fp32", {}).get(mode, {})}  # fmt: skip
            for m in ITEM_METRICS:
                diff, low, high = paired_bootstrap(items[m], reference[m])
                row[f"{m}_vs_ref"], row[f"{m}_ci"] = diff, [low, high]
            rows.append(row)
    return rows


def within_bounds(row: dict) -> bool:
    """FRCorr at most 2% below DDIM-50 fp32 and FRdist at most 3% above, by the point estimate."""
    return row["FRCorr_vs_ref"] >= BOUNDS["FRCorr"] and row["FRdist_vs_ref"] <= BOUNDS["FRdist"]


def interval(row: dict, metric: str) -> str:
    low, high = row[f"{metric}_ci"]
    return f"{row[f'{metric}_vs_ref']:+.1%} [{low:+.1%}, {high:+.1%}]"


def print_table(rows: list[dict]) -> None:
    print(f"\n{'family':18} {'mode':12} {'solver':9} {'steps':>5} {'prec':>4} "
          f"{'FRCorr':>7} {'vs ref [95% CI]':>24} {'FRdist':>7} {'vs ref [95% CI]':>24} "
          f"{'FRDiv':>6} {'FRVar':>6} {'motion':>6} {'seams':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['family']:18} {r['mode']:12} {r['solver']:9} {r['steps']:>5} "
              f"{r['precision']:>4} {r['FRCorr']:>7.4f} {interval(r, 'FRCorr'):>24} "
              f"{r['FRdist']:>7.2f} "
              f"{interval(r, 'FRdist'):>24} {r['FRDiv']:>6.4f} {r['FRVar']:>6.4f} "
              f"{r['inside_vs_real']:>6.2f} {r['join_ratio']:>5.2f}")  # fmt: skip


def parse_grid(texts: list[str] | None) -> list[tuple[str, int]]:
    if not texts:
        return GRID
    grid = [(text.split(":")[0], int(text.split(":")[1])) for text in texts]
    if ("ddim", 50) not in grid:
        grid.insert(0, ("ddim", 50))  # the reference
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                        help="a trained run, named by its style family (repeatable)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds (default: 3)")
    parser.add_argument("--samples", type=int, default=10, help="M per item (default: 10)")
    parser.add_argument("--limit", type=int, default=None, help="first test items only")
    parser.add_argument("--grid", nargs="*", default=None, metavar="SOLVER:STEPS",
                        help="rows (default: DDIM 50/20/10/5, DPM-Solver++ 2M and UniPC "
                        "20/10/5/3); DDIM 50 is always added")  # fmt: skip
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="generic, personalised or both (default: both)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    for text in args.run:
        name, directory = text.split("=", 1)
        rows += family_rows(name, Path(directory), parse_grid(args.grid),
                            list(range(args.seeds)), args.samples, args.limit,
                            args.modes)  # fmt: skip
    print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"reference": "ddim 50 fp32", "seeds": args.seeds, "samples": args.samples,
                  "bounds": BOUNDS, "load_average": [load, os.getloadavg()[0]],
                  "rows": rows}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
