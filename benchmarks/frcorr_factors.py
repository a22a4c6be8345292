"""What FRCorr's CCC is missing, and does a sampling setting fix it? Generic, personalised and
chance reactions of trained runs, scored and decomposed.

For each trained run and each ``--candidate`` (overrides, ``NAME=KEY=VALUE[,...]``; ``base`` is
the run's own settings), at each sampling seed, on ``--split``. A candidate that changes only
sampling reuses the run's weights; one that changes trained weights (``denoiser.*``, ``pwsg.*``,
...) is trained first, the stages it changes only, in ``<run>-factors/<candidate>/run``:

* MAFRG and PMAFRG FRCorr and FRdist of generic, personalised and chance (real reactions of
  inappropriate items), with ratios and paired bootstrap 95% intervals over listeners (seeds
  averaged per item first): each model against chance, personalised against generic, and each
  model against the same model under ``base``;
* FRCorr's CCC per channel group split into correlation, scale and location factors
  (:func:`perfrdiff.metrics.ccc_factors.frcorr_factors`), and the fraction out of range.

    python benchmarks/frcorr_factors.py --run coupled-latent=runs/coupled/run \\
        --split val --candidate smooth2=generate.smooth_sigma=2 --json out.json

Generated reactions are cached in ``<run>-factors/`` per candidate and seed, reused while the
run's config and weights are those they were made with.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from perfrdiff import Run
from perfrdiff.changes import retrained_stages
from perfrdiff.config import config_to_dict, load_config
from perfrdiff.generation import chance_predictions
from perfrdiff.generation.postprocess import postprocess
from perfrdiff.likeness import label_set_scores, paired_bootstrap
from perfrdiff.metrics.ccc_factors import frcorr_factors
from perfrdiff.metrics.label_sets import label_set_matrices
from perfrdiff.personalisation import variant_run
from perfrdiff.run import CONFIG_FILE

sys.path.insert(0, str(Path(__file__).parent))  # the sibling personalisation benchmark
from personalisation import cached, generation_key, named, split_overrides

MEASURES = ("MAFRG FRCorr", "PMAFRG FRCorr", "MAFRG FRdist", "PMAFRG FRdist")
METHODS = ("generic", "personalised", "chance")
POSTPROCESS_KEYS = ("clamp", "smooth_sigma")


def postprocessed_only(run: Run, base: Run) -> bool:
    """Whether ``run`` differs from ``base`` only in the post-processing of finished clips
    (``generate.clamp``, ``generate.smooth_sigma``): its reactions are then ``base``'s raw ones
    post-processed, the same as generating them again at the same seed."""
    a, b = config_to_dict(run.config), config_to_dict(base.config)
    for config in (a, b):
        for key in POSTPROCESS_KEYS:
            config["generate"].pop(key)
    return a == b and not (base.config.generate.clamp or base.config.generate.smooth_sigma)


def candidate_run(base: Run, overrides: list[str], directory: Path, device: str) -> Run:
    """``base`` under ``overrides``: loaded as it is when they change only how it samples,
    otherwise a variant run in ``directory`` whose changed stages are trained (and kept: a
    rerun reuses them; :func:`perfrdiff.personalisation.variant_run`)."""
    config = load_config(base.directory / CONFIG_FILE, overrides)
    if retrained_stages(base.config, config):
        return variant_run(base, directory, overrides)
    return Run.load(base.directory, device=device, overrides=overrides)


def raw_predictions(run: Run, data, split: str, seed: int, work: Path) -> dict[str, np.ndarray]:
    return cached(
        work / f"{split}-seed{seed}.npz",
        lambda: run.generate(split, data=data, seed=seed),
        generation_key(run) + f" {split} seed {seed}",
    )


def method_scores(predictions: np.ndarray, data, n_jobs: int | None) -> dict[str, np.ndarray]:
    """One method's per-item measures (``(n,)`` each) and its factors, flat: ``"MAFRG FRCorr"``,
    ..., ``"factors|<label set>|<group>|<factor>"`` (0-d)."""
    real = data.listener_emotion
    out = label_set_scores(predictions, real, data.neighbours, data.listeners, n_jobs=n_jobs)
    for name, matrix in label_set_matrices(data.neighbours, data.listeners).items():
        for group, row in frcorr_factors(predictions, real, matrix).items():
            out |= {f"factors|{name}|{group}|{f}": np.array(v) for f, v in row.items()}
    return out


def candidate_scores(
    run: Run, base: Run, data, args: argparse.Namespace, work: Path
) -> dict[str, dict[str, np.ndarray]]:
    """Per method, every :func:`method_scores` entry averaged over the seeds (scores cached in
    ``work``; chance's, which no candidate changes, once per seed beside it)."""
    derived = postprocessed_only(run, base)
    g, split = run.config.generate, args.split
    per_seed: dict[str, list[dict]] = {m: [] for m in METHODS}
    for seed in args.seeds:
        key = generation_key(run) + f" {split} seed {seed}"

        def models(seed=seed):
            if derived:
                raw = raw_predictions(base, data, split, seed, work.with_name("base"))
                return {
                    m: postprocess(torch.from_numpy(p), g.clamp, g.smooth_sigma).numpy()
                    for m, p in raw.items()
                }
            return raw_predictions(run, data, split, seed, work)

        def model_scores(models=models):
            p = models()
            return {
                f"{m}|{k}": v
                for m in METHODS[:2]
                for k, v in method_scores(p[m], data, args.n_jobs).items()
            }

        scores = cached(work / f"{split}-seed{seed}-scores.npz", model_scores, key)
        samples = run.config.generate.samples
        scores |= cached(
            work.with_name("chance") / f"{split}-seed{seed}-scores.npz",
            lambda seed=seed, samples=samples: {
                f"chance|{k}": v
                for k, v in method_scores(
                    chance_predictions(data, samples, seed), data, args.n_jobs
                ).items()
            },
            f"{run.config.data.root} {split} {len(data.clips)} samples {samples} seed {seed}",
        )
        for m in METHODS:
            per_seed[m].append({k[len(m) + 1 :]: v for k, v in scores.items() if k.startswith(m)})
    return {m: {k: np.mean([s[k] for s in per_seed[m]], axis=0) for k in per_seed[m][0]}
            for m in METHODS}  # fmt: skip


def factor_tables(scores: dict[str, np.ndarray]) -> dict:
    """``{label set: {group: {factor: value}}}`` from one method's flat scores."""
    out: dict = {}
    for key, value in scores.items():
        if key.startswith("factors|"):
            _, name, group, factor = key.split("|")
            out.setdefault(name, {}).setdefault(group, {})[factor] = float(value)
    return out


def ratios(a: dict, b: dict, listeners: list[str], rounds: int) -> dict[str, dict]:
    """``a / b`` of every measure, with its interval over listeners."""
    return {k: paired_bootstrap(a[k], b[k], listeners, "ratio", rounds).as_dict() for k in MEASURES}


def benchmark_run(name: str, run_dir: Path, args: argparse.Namespace) -> dict:
    candidates = [("base", ""), *args.candidate]
    base_run = Run.load(run_dir, device=args.device)
    data = base_run.evaluation_set(args.split)
    listeners = list(data.listeners)
    results = {}
    for candidate, overrides in candidates:
        work = run_dir.with_name(f"{run_dir.name}-factors") / candidate
        run = candidate_run(base_run, split_overrides(overrides), work / "run", args.device)
        results[candidate] = candidate_scores(run, base_run, data, args, work)
    role = "held out (reported only)" if name in args.held_out else "choosing"
    report = {"dataset": name, "role": role, "run_dir": str(run_dir), "split": args.split}
    report |= {"items": len(listeners), "listeners": len(set(listeners)), "seeds": args.seeds}
    report["candidates"] = []
    for candidate, overrides in candidates:
        pooled, base = results[candidate], results["base"]
        row = {"candidate": candidate, "overrides": overrides}
        row["values"] = {m: {k: float(pooled[m][k].mean()) for k in MEASURES} for m in METHODS}
        row["vs chance"] = {
            m: ratios(pooled[m], pooled["chance"], listeners, args.rounds)
            for m in ("generic", "personalised")
        }
        row["personalised vs generic"] = ratios(
            pooled["personalised"], pooled["generic"], listeners, args.rounds
        )
        if candidate != "base":
            row["vs base"] = {
                m: ratios(pooled[m], base[m], listeners, args.rounds)
                for m in ("generic", "personalised")
            }
        row["factors"] = {m: factor_tables(pooled[m]) for m in METHODS}
        report["candidates"].append(row)
    return report


def interval(r: dict) -> str:
    return f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def print_report(report: dict, show_factors: bool) -> None:
    print(
        f"\n{report['dataset']} ({report['role']}, {report['split']}): {report['items']} items, "
        f"{report['listeners']} listeners, seeds {report['seeds']}"
    )
    for row in report["candidates"]:
        print(f"\n[{row['candidate']}] {row['overrides']}")
        print(f"  {'method':14}" + "".join(f"{k:>15}" for k in MEASURES))
        for m in METHODS:
            print(f"  {m:14}" + "".join(f"{row['values'][m][k]:15.4f}" for k in MEASURES))
        for m in ("generic", "personalised"):
            for k in MEASURES:
                line = f"  {m}/chance {k}: {interval(row['vs chance'][m][k])}"
                if "vs base" in row:
                    line += f"   vs base {interval(row['vs base'][m][k])}"
                print(line)
        for k in MEASURES:
            print(f"  personalised/generic {k}: {interval(row['personalised vs generic'][k])}")
        if show_factors:
            print_factors(row["factors"])


def print_factors(factors: dict) -> None:
    for label_set in factors[METHODS[0]]:
        print(f"  FRCorr's CCC factors, {label_set} (best appropriate match per sample)")
        first = factors[METHODS[0]][label_set]["all"]
        print(f"    {'method':13}{'group':17}" + "".join(f"{f:>13}" for f in first))
        for m in METHODS:
            for group, row in factors[m][label_set].items():
                print(f"    {m:13}{group:17}" + "".join(f"{v:13.3f}" for v in row.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=named, action="append", required=True, metavar="NAME=RUN_DIR")
    parser.add_argument(
        "--candidate",
        type=named,
        action="append",
        default=[],
        metavar="NAME=KEY=VALUE[,KEY=VALUE]",
        help="overrides to measure beside the run's own (repeatable); stages they change are "
        "trained first",
    )
    parser.add_argument("--split", default="val", help="split to score (default: val)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--held-out",
        action="append",
        default=[],
        metavar="NAME",
        help="a dataset that is only reported, never used to choose settings (repeatable)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-jobs", type=int, default=1, help="FRdist processes (default: 1)")
    parser.add_argument("--factors", action="store_true", help="print the factor tables")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    reports = []
    for name, run_dir in args.run:
        reports.append(benchmark_run(name, Path(run_dir), args))
        print_report(reports[-1], args.factors)
    if args.json:
        # Reports of earlier invocations stay, unless the same dataset and split is measured now.
        measured = {(r["dataset"], r["split"]) for r in reports}
        kept = []
        if args.json.is_file():
            kept = [
                r
                for r in json.loads(args.json.read_text())["datasets"]
                if (r["dataset"], r["split"]) not in measured
            ]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"datasets": kept + reports}, indent=2) + "\n")


if __name__ == "__main__":
    main()
