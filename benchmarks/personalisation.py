"""Does personalisation help? Diagnostics of trained PerFRDiff runs against honest references.

For each trained run (``perfrdiff train all``), on its test split (``--split``: choose settings on
``val``, report on ``test``), at each sampling seed:

* style-encoder listener retrieval top-1 / top-5 from 10 s of history of held-out clips;
* every method's reactions: generic, personalised (PerFRDiff), the trivial per-listener mean
  offset of the generic samples, chance (real reactions to other speakers), the listener prior
  alone (zero shifts), the shifts alone (the shift generator retrained without the prior), the
  paper's "input p", an upper bound (the generic denoiser fine-tuned per listener) and any
  ``--variant`` (the stages that config overrides change, retrained:
  :func:`perfrdiff.personalisation.variant_run`);
* each scored on both label sets (FRCorr, FRdist on MAFRG and PMAFRG) and by the measures of
  "like this listener" of :mod:`perfrdiff.likeness` (own-reaction CCC and DTW, listener
  identification by the run's style encoder, level and expressivity errors);
* every method against generic, and the personalised model against every reference, as ratios
  (identification: differences) with paired bootstrap 95% intervals over listeners, seeds
  averaged per item first; and the issue's targets.

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
from perfrdiff.config import config_to_dict
from perfrdiff.generation import chance_predictions
from perfrdiff.likeness import (
    identification,
    label_set_scores,
    level_errors,
    own_reaction_scores,
    paired_bootstrap,
)
from perfrdiff.personalisation import (
    fine_tuned_predictions,
    history_emotion_means,
    mean_offset_predictions,
    prior_alone_model,
    shifts_alone_run,
    style_embedder,
    style_retrieval,
    train_input_p,
    variant_run,
)
from perfrdiff.stages import run_stages
from perfrdiff.weights import stage_weights

TARGETS = {"frcorr_ratio": 1.10, "frdist_ratio": 0.90}
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
    for stage in run_stages(run.config):
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


#: Each measure: what the method's value is (``mean`` over items, ``nanmean`` over the items
#: it is defined for, ``listener`` mean over listeners), whether higher is better, and how two
#: methods are compared: by difference where a value can be 0 or change sign (own-reaction CCC,
#: identification), by ratio otherwise.
MEASURES = {
    "MAFRG FRCorr": ("mean", True, "ratio"),
    "PMAFRG FRCorr": ("mean", True, "ratio"),
    "MAFRG FRdist": ("mean", False, "ratio"),
    "PMAFRG FRdist": ("mean", False, "ratio"),
    "own CCC": ("mean", True, "difference"),
    "own DTW": ("mean", False, "ratio"),
    "identification": ("nanmean", True, "difference"),
    "level error": ("listener", False, "ratio"),
    "expressivity error": ("listener", False, "ratio"),
}
#: What each method is given, beside the speaker.
INPUTS = {
    "generic": "speaker",
    "chance": "real reactions to other speakers",
    "offset": "generic + history mean",
}
#: Every method is compared with generic; the personalised model also with each of these.
REFERENCES = ("offset", "prior alone", "shifts alone", "chance", "input-p", "upper bound")


def seed_predictions(
    run: Run, data, work: Path, args: argparse.Namespace, seed: int, extras: dict
) -> dict[str, np.ndarray]:
    """Every method's ``(n, M, T, 25)`` reactions at sampling seed ``seed`` (cached in
    ``work``); what else a method reports (the upper bound's kept steps) goes in ``extras``."""
    split = args.split
    key = generation_key(run) + f" {split} seed {seed}"
    predictions = cached(
        work / f"generate-{split}-seed{seed}.npz",
        lambda: run.generate(split, data=data, seed=seed),
        key,
    )
    samples = run.config.generate.samples
    predictions["offset"] = mean_offset_predictions(
        predictions["generic"], history_emotion_means(run.config, split)
    )
    predictions["chance"] = chance_predictions(data, samples, seed)
    if run.config.pwsg.listener_prior:
        alone = cached(
            work / f"prior-alone-{split}-seed{seed}.npz",
            lambda: {
                "p": run.sample(
                    "personalised", data, seed=seed, model=prior_alone_model(run.model("pwsg"))
                )
            },
            key,
        )
        predictions["prior alone"] = alone["p"]
        if not args.no_shifts_alone:
            shifts = shifts_alone_run(run, work / "shifts-alone")
            predictions["shifts alone"] = cached(
                work / "shifts-alone" / f"generate-{split}-seed{seed}.npz",
                lambda: shifts.generate(split, ["personalised"], data=data, seed=seed),
                generation_key(shifts) + f" {split} seed {seed}",
            )["personalised"]
    if not args.no_input_p:
        model = train_input_p(run, work / "input-p")
        predictions["input-p"] = run.sample("personalised", data, seed=seed, model=model)
    if args.upper_bound_steps:

        def upper_bound() -> dict[str, np.ndarray]:
            bound = fine_tuned_predictions(run, split, data, args.upper_bound_steps, seed=seed)
            return {"p": bound.predictions, "steps": np.asarray(bound.steps)}

        bound = cached(
            work / f"upper-bound-{split}-seed{seed}.npz",
            upper_bound,
            key + f" upper bound {args.upper_bound_steps}",
        )
        predictions["upper bound"] = bound["p"]
        kept = extras.setdefault("upper_bound_steps_kept", {})
        kept[str(seed)] = bound["steps"].tolist()
    for variant, overrides in args.variant:
        trained = variant_run(run, work / variant, split_overrides(overrides))
        # a variant of the history's length reads its own histories; the scores use `data`
        own = data if trained.config.data == run.config.data else trained.evaluation_set(split)
        predictions[f"variant {variant}"] = cached(
            work / variant / f"generate-{split}-seed{seed}.npz",
            lambda trained=trained, own=own: trained.generate(
                split, ["personalised"], data=own, seed=seed
            ),
            generation_key(trained) + f" {split} seed {seed}",
        )["personalised"]
    return predictions


def measures_of(predictions: np.ndarray, data, embed, style_input: str) -> dict[str, np.ndarray]:
    """Every measure of one method: ``(n,)`` per item, or ``(listeners,)`` per listener (in the
    order of their first item) for the level and expressivity errors."""
    out = label_set_scores(predictions, data.listener_emotion, data.neighbours, data.listeners)
    out |= own_reaction_scores(predictions, data.listener_emotion)
    out["identification"] = identification(
        embed,
        predictions,
        data.listener_emotion,
        data.speaker_emotion,
        data.listeners,
        style_input,
    )
    for name, values in level_errors(predictions, data.listener_emotion, data.listeners).items():
        out[name] = np.array(list(values.values()))
    return out


def summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Each measure's value for one method (see :data:`MEASURES`)."""
    return {
        name: float(np.nanmean(values[name]) if how == "nanmean" else np.mean(values[name]))
        for name, (how, _, _) in MEASURES.items()
    }


def compare(per_method: dict, listeners: list[str], rounds: int) -> list[dict]:
    """Paired bootstrap (over listeners) of every method against generic, of the
    personalised model against each reference, and of each variant against the personalised
    model."""
    names = list(dict.fromkeys(listeners))
    pairs = [(m, "generic") for m in per_method if m != "generic"]
    pairs += [("personalised", r) for r in REFERENCES if r in per_method]
    # a variant is a candidate change of the personalised model: is it better than it?
    pairs += [(m, "personalised") for m in per_method if m.startswith("variant ")]
    rows = []
    for method, reference in pairs:
        for measure, (how, _, statistic) in MEASURES.items():
            groups = names if how == "listener" else listeners
            interval = paired_bootstrap(
                per_method[method][measure],
                per_method[reference][measure],
                groups,
                statistic,
                rounds,
            )
            rows.append(
                {
                    "method": method,
                    "reference": reference,
                    "measure": measure,
                    "statistic": statistic,
                    **interval.as_dict(),
                }
            )
    return rows


def targets_of(comparisons: list[dict], values: dict[str, dict[str, float]]) -> dict:
    """The issue's targets, each from a ratio's (or difference's) 95% interval."""
    by = {(r["method"], r["reference"], r["measure"]): r for r in comparisons}
    mine = lambda ref, measure: by.get(("personalised", ref, measure))  # noqa: E731
    out = {}
    for labels in ("MAFRG", "PMAFRG"):
        corr, dist = mine("generic", f"{labels} FRCorr"), mine("generic", f"{labels} FRdist")
        out[f"{labels} FRCorr >= 1.10x generic, interval above 1"] = (
            corr["value"] >= TARGETS["frcorr_ratio"] and corr["low"] > 1
        )
        out[f"{labels} FRdist <= 0.90x generic, interval below 1"] = (
            dist["value"] <= TARGETS["frdist_ratio"] and dist["high"] < 1
        )
        for ref in ("offset", "prior alone"):
            if mine(ref, f"{labels} FRCorr"):
                out[f"{labels} FRCorr above {ref}, interval above 1"] = (
                    mine(ref, f"{labels} FRCorr")["low"] > 1
                )
    out["own CCC above generic, interval above 0"] = mine("generic", "own CCC")["low"] > 0
    out["identification above generic, interval above 0"] = (
        mine("generic", "identification")["low"] > 0
    )
    for method in ("generic", "personalised"):
        v, chance = values[method], values["chance"]
        out[f"{method} MAFRG FRCorr above chance"] = v["MAFRG FRCorr"] > chance["MAFRG FRCorr"]
        out[f"{method} MAFRG FRdist below chance"] = v["MAFRG FRdist"] < chance["MAFRG FRdist"]
    return out


def benchmark_run(name: str, run_dir: Path, args: argparse.Namespace) -> dict:
    """Every measurement of one trained run, over ``args.seeds`` sampling seeds."""
    start = time.perf_counter()
    run = Run.load(run_dir, device=args.device)
    work = run_dir.with_name(f"{run_dir.name}-personalisation")
    data = run.evaluation_set(args.split)
    embed, style_input = style_embedder(run), run.config.style.input
    real = identification(
        embed,
        data.listener_emotion[:, None],
        data.listener_emotion,
        data.speaker_emotion,
        data.listeners,
        style_input,
    )
    by_seed: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    extras: dict = {}
    for seed in args.seeds:
        predictions = seed_predictions(run, data, work, args, seed, extras)
        by_seed[seed] = {
            m: measures_of(p, data, embed, style_input) for m, p in predictions.items()
        }
    methods = list(by_seed[args.seeds[0]])
    # Seeds are averaged per item (or listener) before the bootstrap over listeners.
    pooled = {
        m: {k: np.mean([by_seed[s][m][k] for s in args.seeds], axis=0) for k in MEASURES}
        for m in methods
    }
    values = {m: summary(pooled[m]) for m in methods}
    comparisons = compare(pooled, data.listeners, args.rounds)
    return {
        "dataset": name,
        "role": "held out (reported only)" if name in args.held_out else "choosing",
        "run_dir": str(run_dir),
        "split": args.split,
        "items": len(data.clips),
        "listeners": len(set(data.listeners)),
        "samples": run.config.generate.samples,
        "seeds": list(args.seeds),
        "history": data.history,
        "retrieval": style_retrieval(run, args.split, frames=RETRIEVAL_FRAMES),
        "identification_of_real_reactions": float(np.nanmean(real)),
        "methods": [
            {
                "method": m,
                "input": INPUTS.get(m, "speaker + listener history"),
                **values[m],
                "by_seed": {str(s): summary(by_seed[s][m]) for s in args.seeds},
            }
            for m in methods
        ],
        "comparisons": comparisons,
        "targets": targets_of(comparisons, values),
        **extras,
        "seconds": time.perf_counter() - start,
    }


def print_report(report: dict) -> None:
    r = report["retrieval"]
    print(
        f"\n{report['dataset']} ({report['role']}): {report['items']} {report['split']} items, "
        f"{report['listeners']} listeners x {report['samples']} samples, seeds {report['seeds']}"
    )
    print(
        f"style retrieval ({r['input']}, {r['frames']} frames, {r['queries']} queries): top-1 "
        f"{r['top1']:.3f}; identification of the real reactions "
        f"{report['identification_of_real_reactions']:.3f}"
    )
    short = {k: k.replace("MAFRG ", "M ").replace(" error", " err") for k in MEASURES}
    print(f"{'method':28}" + "".join(f"{short[k]:>13}" for k in MEASURES))
    for row in report["methods"]:
        print(f"{row['method'][:28]:28}" + "".join(f"{row[k]:13.4f}" for k in MEASURES))
    print("\npersonalised / reference, variant / personalised (95% interval over listeners)")
    for row in report["comparisons"]:
        if row["method"] == "personalised" or row["reference"] == "personalised":
            print(
                f"  {row['method'][:20]:20} vs {row['reference']:13} {row['measure']:19} "
                f"{row['statistic']:10} "
                f"{row['value']:8.4f} [{row['low']:.4f}, {row['high']:.4f}]"
            )
    print("targets:", json.dumps(report["targets"], indent=1))


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
        default=300,
        help="most fine-tuning steps per item for the upper bound, early-stopped (0: skip)",
    )
    parser.add_argument("--no-input-p", action="store_true", help="skip the input-p variant")
    parser.add_argument(
        "--no-shifts-alone",
        action="store_true",
        help="skip the shifts-alone row (the shift generator retrained without the prior)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds (default: 0 1 2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2000, help="bootstrap resamples of the listeners"
    )
    parser.add_argument(
        "--held-out",
        action="append",
        default=[],
        metavar="NAME",
        help="a dataset that is only reported, never used to choose settings (repeatable)",
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("val", "test"),
        help="split to score: choose settings on val, report on test (default: test)",
    )
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
