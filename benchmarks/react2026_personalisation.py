"""Personalised online generation on the MARS twin (REACT 2026): shifts from the listener's
history, Big Five personality or both, against the generic model and the mean-offset baseline.

The twin (``perfrdiff make-synthetic --layout react2026``, its defaults: 30 / 4 / 6 sessions,
one listener per session, so the test listeners are held out) lets each listener's Big Five
drive a declared share of their style (``--personality-share``, 0.5). Per seed, one run of the
tiny preset under ``protocol=react2026`` (30-frame windows) trains every stage with
``pwsg.condition=both``; two copies retrain only the shift generator with ``history`` and with
``personality`` (``pwsg.history_stats`` and ``pwsg.listener_prior`` off: the Big Five alone,
no history read). Each generates the online track of the test split (``M`` samples, batch
``b`` seeded ``seed + b``); the generic model generates it once. The mean-offset baseline
(:func:`perfrdiff.personalisation.mean_offset_predictions`) moves each item's generic samples
to the mean of its listener's history emotion (another dyad of the listener, as the
personalised models read it), before the protocol's clamping and AU rounding. Every track is
written as ``perfrdiff generate`` writes it and scored as ``perfrdiff evaluate --protocol
react2026`` scores it (the challenge's appropriate-set draw, AU rounding, sample-0 TLCC).

Two more copies retrain it with the listener prior fitted on the training sequences
(:data:`CONDITIONS`): ``personality+prior`` adds the level the Big Five predict to the centre
(``pwsg.personality_prior``), ``both+priors`` also fits the history's weight per channel
(``pwsg.fit_prior_weight``).

Targets (issue 32), for ``both`` and ``personality`` and for their fitted-prior copies: FRCorr
of ``both`` >= 1.10x generic and >= the offset baseline; ``personality`` > generic; FRdist of
``both`` below generic. A last row, ``both, levelled``, moves ``both``'s samples to the history
mean as the offset moves the generic ones: what the shifts add beyond the level.

    python benchmarks/react2026_personalisation.py --set threads=1 --max-frames 1500 \
        --seeds 0 1 2 --json benchmarks/results/react2026_personalisation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from perfrdiff.cli import main as perfrdiff
from perfrdiff.config import load_config
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.windows import sequence_levels
from perfrdiff.device import autocast
from perfrdiff.generation.mars import (
    MarsSequences,
    read_histories,
    sample_sequences,
    save_sequence_predictions,
)
from perfrdiff.metrics.react2026 import CHALLENGE_SEED, appropriate_sets, evaluate_sequences
from perfrdiff.metrics.report import EvaluateConfig, evaluate_saved_predictions
from perfrdiff.metrics.report_react2026 import load_sequence_predictions
from perfrdiff.models import PersonalityLevel
from perfrdiff.personalisation import mean_offset_predictions, variant_run
from perfrdiff.protocol import Protocol
from perfrdiff.run import CONFIG_FILE, Run
from perfrdiff.rundir import stage_weights
from perfrdiff.stages import upstream
from perfrdiff.training import train_run

BASE = ["protocol=react2026", "data.window=30"]
#: ``pwsg`` overrides of each condition (the base run is ``both``).
CONDITIONS = {
    "both": ["pwsg.condition=both"],
    "history": ["pwsg.condition=history"],
    "personality": [
        "pwsg.condition=personality",
        "pwsg.history_stats=false",
        "pwsg.listener_prior=false",
    ],
}
#: The same conditions with the listener prior fitted on the training sequences: the
#: personality's part of the centre (``pwsg.personality_prior``) and, where a history is read,
#: the history's weight per channel (``pwsg.fit_prior_weight``).
CONDITIONS["personality+prior"] = [*CONDITIONS["personality"], "pwsg.personality_prior=true"]
CONDITIONS["both+priors"] = [
    *CONDITIONS["both"],
    "pwsg.fit_prior_weight=true",
    "pwsg.personality_prior=true",
]
#: ``both``'s samples moved to the history mean as the offset moves the generic ones: what
#: the personalised model adds to the offset beyond the level.
LEVELLED = "both, levelled"
ROWS = ("generic", "offset", *CONDITIONS, LEVELLED)
#: The rows the issue's targets name, as (both, personality) pairs.
TARGET_ROWS = (("both", "personality"), ("both+priors", "personality+prior"))


def base_run(root: Path, folder: Path, seed: int, steps: list[str], device: str) -> Run:
    """The ``both`` run of ``seed`` in ``folder``, its missing stages trained."""
    overrides = [f"data.root={root}", *BASE, f"seed={seed}", *CONDITIONS["both"], *steps]
    if (folder / CONFIG_FILE).is_file():
        run = Run.load(folder, device, overrides=overrides)
    else:
        run = Run(load_config("tiny", overrides), folder, device)
    generator = (*upstream("pwsg"), "pwsg")  # the eeg stage is not scored here
    missing = [s for s in generator if not stage_weights(folder, s).is_file()]
    if missing:
        train_run(run, missing)
    return run


def write(path: Path, run: Run, data: MarsSequences, arrays: list[np.ndarray], seed: int) -> Path:
    """``arrays`` as ``perfrdiff generate`` writes a track (the sidecar ``evaluate`` reads)."""
    meta = {"track": "online", "split": "test", "run_dir": str(run.directory),
            "data_root": str(run.config.data.root), "seed": seed, "items": len(arrays),
            **run.sampling_info()}  # fmt: skip
    return save_sequence_predictions(dict(zip(data.keys, arrays, strict=True)), path, meta)


def online(run: Run, data: MarsSequences, mode: str, samples: int, seed: int) -> list[np.ndarray]:
    """The run's online reactions of ``mode`` before the protocol's post-processing."""
    g = run.config.generate
    context = run.protocol.context_frames(run.config.data.window)
    with autocast(run.device, run.precision):
        return sample_sequences(
            run.sampler(mode), data, "online", samples, context, run.protocol.crop_frames,
            g.clips_per_batch, seed, personalised=mode == "personalised",
        )  # fmt: skip


def offset_arrays(raw: list[np.ndarray], data: MarsSequences) -> list[np.ndarray]:
    """Each item's samples moved to its listener's history emotion mean (the first 25
    channels of an emotion or dyadic history)."""
    return [
        mean_offset_predictions(a[None], h[None, :, :25].mean(axis=1))[0]
        for a, h in zip(raw, data.histories, strict=True)
    ]


def held_out_items(run: Run, histories: bool, max_frames: int | None) -> MarsSequences:
    """The test split's items (those of at most ``max_frames`` frames), with each item's
    history (another dyad of its listener) when ``histories``."""
    data = run.sequence_set("test", histories=False)
    if max_frames is not None:
        keep = [i for i, t in enumerate(data.lengths) if t <= max_frames]
        dyads, lengths = [data.dyads[i] for i in keep], [data.lengths[i] for i in keep]
        data = MarsSequences(data.store, dyads, lengths, personality=data.personality[keep])
    if not histories:
        return data
    d = run.config.data
    return read_histories(data, d.history_frames, run.config.style.input, d.allow_same_clip_history)


def score(path: Path, data: MarsSequences, protocol: Protocol) -> dict[str, float]:
    """What ``perfrdiff evaluate --protocol react2026`` computes
    (:func:`~perfrdiff.metrics.report_react2026.evaluate_mars`), over ``data``'s items only:
    the challenge's seeded appropriate-set draw among them, AU rounding, sample-0 TLCC."""
    store, dyads = data.store, data.dyads
    predictions = load_sequence_predictions(path, data.keys)
    read = [(store.read("emotion", d.listener, 0, t), store.read("emotion", d.speaker, 0, t))
            for d, t in zip(dyads, data.lengths, strict=True)]  # fmt: skip
    sets = appropriate_sets([d.session for d in dyads], protocol.appropriate_others, CHALLENGE_SEED)
    metrics = protocol.metrics
    return evaluate_sequences(
        [protocol.finish(p) for p in predictions], [r[0] for r in read], [r[1] for r in read],
        sets, max_lag=metrics.tlcc_max_lag, first_sample_only=metrics.tlcc_first_sample_only,
    )  # fmt: skip


def evaluate(path: Path, data: MarsSequences, protocol: Protocol, every: bool) -> dict:
    """The metrics of one row: through ``perfrdiff evaluate``'s function when ``data`` holds
    every test item, else :func:`score` over the items kept."""
    if not every:
        return score(path, data, protocol)
    config = EvaluateConfig(path, output=path.with_suffix(""), n_jobs=1)
    config.protocol = "react2026"
    return evaluate_saved_predictions(config)[0]


def one_seed(args: argparse.Namespace, seed: int) -> dict:
    """Train, generate and score the five rows of one seed."""
    folder = args.runs / f"seed{seed}"
    timings, paths = {}, {}
    start = time.perf_counter()
    base = base_run(args.root, folder / "both", seed, args.steps, args.device)
    runs = {"both": base}
    for condition in CONDITIONS:
        if condition != "both":
            runs[condition] = variant_run(base, folder / condition, CONDITIONS[condition])
    timings["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    data = held_out_items(base, True, args.max_frames)
    raw = online(base, data, "generic", args.samples, args.generate_seed)
    finished = [base.protocol.finish(a) for a in raw]
    paths["generic"] = write(folder / "generic.npz", base, data, finished, args.generate_seed)
    offset = offset_arrays(raw, data)  # evaluate clamps and rounds, as the protocol submits
    paths["offset"] = write(folder / "offset.npz", base, data, offset, args.generate_seed)
    for condition, run in runs.items():
        reads = run.model("pwsg").needs_history
        own = data if reads else held_out_items(run, False, args.max_frames)
        raw = online(run, own, "personalised", args.samples, args.generate_seed)
        arrays = [run.protocol.finish(a) for a in raw]
        paths[condition] = write(folder / f"{condition}.npz", run, own, arrays, args.generate_seed)
        if condition == "both":
            levelled = offset_arrays(raw, data)  # finished by evaluate, as the offset
            paths[LEVELLED] = write(folder / "both-levelled.npz", run, data, levelled,
                                    args.generate_seed)  # fmt: skip
    timings["generate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    every = len(data.dyads) == len(data.store.dyads)
    metrics = {row: evaluate(paths[row], data, base.protocol, every) for row in ROWS}
    timings["evaluate_s"] = time.perf_counter() - start
    return {"seed": seed, "metrics": metrics, "timings": timings, "items": len(data.dyads),
            "frames": sorted(data.lengths), "all_test_items": every,
            "history_kinds": sorted(set(data.history_kinds))}  # fmt: skip


def cached_seed(args: argparse.Namespace, seed: int) -> dict:
    """:func:`one_seed`, or its result saved by an earlier run with the same settings."""
    path = args.runs / f"seed{seed}" / "result.json"
    settings = {"samples": args.samples, "generate_seed": args.generate_seed,
                "steps": args.steps, "max_frames": args.max_frames, "rows": list(ROWS)}  # fmt: skip
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved
    result = {**one_seed(args, seed), "settings": settings}
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def level_predictability(root: Path) -> dict[str, float]:
    """How much of the listeners' levels their Big Five predict on the twin: the R² (over
    sequences and channels) of the personality's part of the centre
    (:class:`~perfrdiff.models.PersonalityLevel`, as ``pwsg.personality_prior`` fits it) on
    the training split's sequence levels, and on every test sequence's. The most a level read
    from the personality alone can give."""
    train = sequence_levels(MarsStore(root, "train", audio="none"))
    test = sequence_levels(MarsStore(root, "test", audio="none"))
    mean = train[0].mean(axis=0)
    level = PersonalityLevel(train[0].shape[1])
    level.fit(torch.from_numpy(train[1]), torch.from_numpy(train[0] - mean))

    def r2(actual: np.ndarray, personality: np.ndarray) -> float:
        predicted = mean + level(torch.from_numpy(personality)).double().numpy()
        return float(1 - ((actual - predicted) ** 2).sum() / ((actual - mean) ** 2).sum())

    return {"train": r2(*train), "test": r2(*test)}


def summary(seeds: list[dict]) -> dict:
    """Means over seeds, ratios to generic, and the targets."""
    mean = {
        row: {
            m: float(np.mean([s["metrics"][row][m] for s in seeds])) for m in ("FRCorr", "FRdist")
        }
        for row in ROWS
    }
    generic = mean["generic"]
    ratios = {row: mean[row]["FRCorr"] / generic["FRCorr"] for row in ROWS}
    targets = {}
    for both, alone in TARGET_ROWS:
        targets.update({
            f"{both} FRCorr >= 1.10x generic": ratios[both] >= 1.10,
            f"{both} FRCorr >= offset": mean[both]["FRCorr"] >= mean["offset"]["FRCorr"],
            f"{alone} FRCorr > generic": mean[alone]["FRCorr"] > generic["FRCorr"],
            f"{both} FRdist < generic": mean[both]["FRdist"] < generic["FRdist"],
        })  # fmt: skip
    return {"mean": mean, "frcorr_over_generic": ratios, "targets": targets}


def table(result: dict) -> str:
    names = [f"seed {s['seed']}" for s in result["seeds"]]
    lines = [f"{'':18}" + "".join(f"{n + ' FRCorr':>16}{'FRdist':>9}" for n in names)
             + f"{'mean FRCorr':>13}{'/ generic':>10}{'FRdist':>9}"]  # fmt: skip
    s = result["summary"]
    for row in ROWS:
        cells = "".join(
            f"{x['metrics'][row]['FRCorr']:>16.4f}{x['metrics'][row]['FRdist']:>9.2f}"
            for x in result["seeds"]
        )
        m = s["mean"][row]
        ratio = s["frcorr_over_generic"][row]
        lines.append(f"{row:18}{cells}{m['FRCorr']:>13.4f}{ratio:>10.3f}{m['FRdist']:>9.2f}")
    lines += [f"{'met' if ok else 'NOT met'}: {name}" for name, ok in s["targets"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("runs/react2026_personalisation/data"),
                        help="the MARS twin (written with its defaults when missing)")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=Path("runs/react2026_personalisation"),
                        help="runs: seed<s>/<condition> (trained stages are kept)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="config seeds")
    parser.add_argument("--samples", type=int, default=10, help="M samples (default: 10)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="test items of at most this many frames only")  # fmt: skip
    parser.add_argument("--generate-seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--gafrg-steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--pwsg-steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another config override of every run (repeatable)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    steps = (("gafrg", args.gafrg_steps), ("pwsg", args.pwsg_steps))
    args.steps = [f"train.{stage}.steps={n}" for stage, n in steps if n is not None] + args.set
    if not (args.root / "test").is_dir():
        perfrdiff(["make-synthetic", "--layout", "react2026", "--root", str(args.root)])
    seeds = [cached_seed(args, seed) for seed in args.seeds]
    result = {
        "config": {"preset": "tiny", "overrides": [*BASE, *args.steps], "conditions": CONDITIONS,
                   "samples": args.samples, "generate_seed": args.generate_seed,
                   "max_frames": args.max_frames,
                   "data": "perfrdiff make-synthetic --layout react2026 (defaults)"},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "seeds": seeds,
        "summary": summary(seeds),
        "personality_level_r2": level_predictability(args.root),
    }  # fmt: skip
    print(table(result))
    r2 = result["personality_level_r2"]
    print(f"levels the Big Five predict: R² {r2['train']:.3f} (train), {r2['test']:.3f} (test)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
