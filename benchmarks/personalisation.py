"""Does personalisation help? Diagnostics of trained PerFRDiff runs against honest references.

For each trained run (``perfrdiff train all``), on its test split:

* style-encoder listener retrieval top-1 / top-5 from 10 s of history of held-out clips;
* FRCorr (higher is better) and FRdist (lower) of: generic GAFRG (MAFRG), PerFRDiff (PMAFRG), the
  trivial per-listener mean offset of the generic samples, the paper's "input p" (style as an
  extra condition token, trained from the generic denoiser for the shift generator's steps), an
  upper bound (the generic denoiser fine-tuned per listener on the clip its history comes from),
  and any ``--variant`` (the stages that config overrides change retrained, see
  :func:`perfrdiff.personalisation.variant_run`);
* the issue's targets: personalised/generic FRCorr >= 1.10, personalised >= offset, personalised
  FRdist < generic, retrieval top-1 >= 0.9.

    python benchmarks/personalisation.py --run coupled-latent=runs/bench/coupled/run \\
        --run lagged-expressive=runs/bench/expressive/run \\
        --json benchmarks/results/personalisation.json

Predictions, variants and input p are kept in ``<run>-personalisation/`` and reused; predictions
only while the run's config, device, precision and stage weights are those they were made with.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from perfrdiff import Run
from perfrdiff.config import STAGES, config_to_dict
from perfrdiff.personalisation import (
    fine_tuned_predictions,
    history_emotion_means,
    mean_offset_predictions,
    scores,
    style_retrieval,
    train_input_p,
    variant_run,
)
from perfrdiff.weights import stage_weights

TARGETS = {"frcorr_ratio": 1.10, "retrieval_top1": 0.9}
#: Listener retrieval reads 10 s of history (25 fps), whatever ``data.history_frames`` the run
#: conditions generation on.
RETRIEVAL_FRAMES = 250


def named(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name, value


def split_overrides(text: str) -> list[str]:
    """``KEY=VALUE[,KEY=VALUE]`` -> the overrides, split at commas outside brackets, so that a
    list value stays whole: ``a=1,pwsg.targets=["x","y"]`` -> ``["a=1", 'pwsg.targets=["x","y"]']``.
    """
    parts, depth, start = [], 0, 0
    for position, char in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    return [part for part in parts if part]


def generation_key(run: Run) -> str:
    """What a run's predictions depend on, as JSON: its whole config (sampling settings, threads,
    data root...), device, precision, and the size and time of every stage's weights file (a
    stage retrained in place)."""
    weights = {}
    for stage in STAGES:
        path = stage_weights(run.directory, stage)
        if path.is_file():
            status = path.stat()
            weights[stage] = [status.st_size, status.st_mtime_ns]
        else:
            weights[stage] = None
    key = {
        "config": config_to_dict(run.config),
        "device": str(run.device),
        "precision": run.precision,
        "weights": weights,
    }
    return json.dumps(key, sort_keys=True, default=str)


def cached(path: Path, make, key: str) -> dict[str, np.ndarray]:
    """``make()`` (name -> predictions), saved to ``path`` with ``key`` (see
    :func:`generation_key`) beside it, and read back only while the key is the same: a run
    sampled on another grid or retrained since is generated again, not reported stale."""
    stamp = path.with_suffix(".json")
    if path.is_file() and stamp.is_file() and stamp.read_text() == key:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial.npz")
    np.savez(partial, **result)
    stamp.unlink(missing_ok=True)  # the old key must not vouch for the new file
    partial.replace(path)
    stamp.write_text(key)
    return result


def benchmark_run(name: str, run_dir: Path, args: argparse.Namespace) -> dict:
    """Every measurement of one trained run."""
    start = time.perf_counter()
    run = Run.load(run_dir, device=args.device)
    work = run_dir.with_name(f"{run_dir.name}-personalisation")
    data = run.evaluation_set("test")
    report: dict = {
        "dataset": name,
        "run_dir": str(run_dir),
        "test_items": len(data.clips),
        "samples": run.config.generate.samples,
        "history": data.history,
        "retrieval": style_retrieval(run, "test", frames=RETRIEVAL_FRAMES),
    }
    predictions = cached(
        work / "generate.npz", lambda: run.generate("test", data=data), generation_key(run)
    )
    means = history_emotion_means(run.config, "test")
    predictions["offset"] = mean_offset_predictions(predictions["generic"], means)
    if not args.no_input_p:
        input_p = train_input_p(run, work / "input-p")
        predictions["input-p (MAFRG, no style)"] = run.sample("generic", data, model=input_p)
        predictions["input-p"] = run.sample("personalised", data, model=input_p)
    if args.upper_bound_steps:
        predictions["upper bound (fine-tuned per listener)"] = fine_tuned_predictions(
            run, "test", data, args.upper_bound_steps
        )
    for variant, overrides in args.variant:
        trained = variant_run(run, work / variant, split_overrides(overrides))
        # a variant of the history's length reads its own histories; the scores use `data`
        own = data if trained.config.data == run.config.data else trained.evaluation_set("test")
        generated = cached(
            work / variant / "generate.npz",
            lambda trained=trained, own=own: trained.generate("test", ["personalised"], data=own),
            generation_key(trained),
        )
        predictions[f"variant {variant}"] = generated["personalised"]
    report["methods"] = [
        {
            "method": method,
            "task": "MAFRG" if method.startswith(("generic", "input-p (")) else "PMAFRG",
            **values,
        }
        for method, values in scores(predictions, data).items()
    ]
    by = {row["method"]: row for row in report["methods"]}
    generic, personalised, offset = by["generic"], by["personalised"], by["offset"]
    for row in report["methods"]:
        row["FRCorr_over_generic"] = row["FRCorr"] / generic["FRCorr"]
    report["targets"] = {
        "frcorr_over_generic": personalised["FRCorr"] / generic["FRCorr"],
        "frcorr_over_generic_hit": personalised["FRCorr"]
        >= TARGETS["frcorr_ratio"] * generic["FRCorr"],
        "frcorr_over_offset": personalised["FRCorr"] / offset["FRCorr"],
        "frcorr_over_offset_hit": personalised["FRCorr"] >= offset["FRCorr"],
        "frdist_below_generic_hit": personalised["FRdist"] < generic["FRdist"],
        "retrieval_top1_hit": report["retrieval"]["top1"] >= TARGETS["retrieval_top1"],
    }
    report["seconds"] = time.perf_counter() - start
    return report


def print_report(report: dict) -> None:
    r = report["retrieval"]
    print(f"\n{report['dataset']}: {report['test_items']} test items x {report['samples']} samples")
    print(
        f"style retrieval ({r['input']}, {r['frames']} frames, {r['queries']} queries, "
        f"{r['listeners']} listeners): top-1 {r['top1']:.3f}, top-5 {r['top5']:.3f}"
    )
    print(f"{'method':42} {'task':7} {'FRCorr':>8} {'/generic':>9} {'FRdist':>9}")
    for row in report["methods"]:
        print(
            f"{row['method']:42} {row['task']:7} {row['FRCorr']:8.4f} "
            f"{row['FRCorr_over_generic']:9.3f} {row['FRdist']:9.3f}"
        )
    print("targets:", json.dumps(report["targets"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        type=named,
        action="append",
        required=True,
        metavar="NAME=RUN_DIR",
        help="a trained run and its dataset's name",
    )
    parser.add_argument(
        "--variant",
        type=named,
        action="append",
        default=[],
        metavar="NAME=KEY=VALUE[,KEY=VALUE]",
        help="a variant: retrain the stages these overrides change (and those above), e.g. "
        'bias=pwsg.bias_shifts=true or ffn=\'pwsg.targets=["output","decoder.layers.*.linear1"]\' '
        "(repeatable; commas inside brackets stay in the value)",
    )
    parser.add_argument(
        "--upper-bound-steps",
        type=int,
        default=60,
        help="fine-tuning steps per listener for the upper bound (0: skip)",
    )
    parser.add_argument("--no-input-p", action="store_true", help="skip the input-p variant")
    parser.add_argument("--device", default="cpu", help="device (default: cpu)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--notes", default=None, help="a sentence stored with the report")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    reports = []
    for name, run_dir in args.run:
        reports.append(benchmark_run(name, Path(run_dir), args))
        print_report(reports[-1])
    if args.json:
        # Datasets measured in earlier invocations stay, unless measured again now.
        kept = []
        if args.json.is_file():
            names = {r["dataset"] for r in reports}
            kept = [
                r
                for r in json.loads(args.json.read_text())["datasets"]
                if r["dataset"] not in names
            ]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"datasets": kept + reports, "targets": TARGETS}
        if args.notes:
            report["notes"] = args.notes
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
