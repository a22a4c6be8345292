"""Run the whole PerFRDiff pipeline on synthetic data and print the results table.

Writes a synthetic dataset, trains every stage (emotion VAE, style encoder, GAFRG, PWSG) in the
tiny config, generates M reactions per test speaker (generic and personalised), evaluates them and
a chance baseline with the seven REACT metrics, and prints a table plus where the plots and the
offline viewer (faces animated with the speaker's audio, see perfrdiff view) are.
Everything goes under --out (default: runs/demo): the dataset in data/ (reused when there), the
run in run/, reactions in run/generate/, the table in results/. These are the paths that
make-synthetic, train, generate and evaluate use by default.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from perfrdiff.commands.common import (
    DEMO_SESSIONS,
    add_device_arguments,
    add_overrides_argument,
    check_output_folder,
)
from perfrdiff.config import load_config

log = logging.getLogger(__name__)
_SESSIONS = " ".join(map(str, DEMO_SESSIONS.values()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument(
        "--config", default="tiny", help="preset name (tiny, paper) or YAML path (default: tiny)"
    )
    parser.add_argument(
        "--sessions",
        type=int,
        nargs=3,
        default=tuple(DEMO_SESSIONS.values()),
        metavar=("TRAIN", "VAL", "TEST"),
        help=f"synthetic sessions per split (default: {_SESSIONS})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of data and training (default: 0)"
    )
    add_overrides_argument(parser)
    add_device_arguments(parser)


def ensure_dataset(root: Path, sessions: tuple[int, int, int], seed: int) -> None:
    from perfrdiff.data import SyntheticConfig, write_synthetic_dataset

    if (root / "test.csv").is_file():
        log.info("reusing the synthetic dataset in %s", root)
        return
    train_sessions, val_sessions, test_sessions = sessions
    config = SyntheticConfig(
        seed=seed, sessions={"train": train_sessions, "val": val_sessions, "test": test_sessions}
    )
    log.info("writing a synthetic dataset to %s (%s)", root, config.sessions)
    write_synthetic_dataset(root, config)


def demo(
    out: str | Path,
    config_name: str = "tiny",
    sessions: tuple[int, int, int] = tuple(DEMO_SESSIONS.values()),
    seed: int = 0,
    overrides: list[str] | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> dict[str, dict[str, float]]:
    """The README's pipeline; returns ``{"generic" | "personalised" | "chance": metrics}``."""
    from perfrdiff.generation import chance_predictions, write_generation
    from perfrdiff.metrics import markdown_table, motion_table, write_report
    from perfrdiff.run import Run
    from perfrdiff.training import train_run

    start = time.perf_counter()
    out = Path(out)
    data_root = out / "data"
    # Config, overrides and device first: a typo should not cost writing the dataset.
    config = load_config(
        config_name, [f"data.root={data_root}", f"seed={seed}", *(overrides or [])]
    )
    if config.generate.samples < 2:  # checked now, not after training
        raise ValueError(
            f"generate.samples = {config.generate.samples}: the demo's metrics compare a "
            "speaker's samples with each other (FRDiv, FRVar across samples) and need at least 2"
        )
    run = Run(config, out / "run", device, precision)
    ensure_dataset(data_root, sessions, seed)
    timings = {"data": time.perf_counter() - start}
    train_run(run)
    timings["train"] = time.perf_counter() - start - sum(timings.values())
    data = run.evaluation_set("test")
    predictions = run.generate("test", seed=seed, data=data)
    meta = {
        "run_dir": str(run.directory),
        "data_root": str(data_root),
        "seed": seed,
        **run.sampling_info(),
    }
    write_generation(predictions, data, run.directory / "generate", "test", meta=meta)
    timings["generate"] = time.perf_counter() - start - sum(timings.values())
    predictions["chance"] = chance_predictions(data, config.generate.samples, seed)
    results = run.evaluate(predictions, "test", data=data)
    timings["evaluate"] = time.perf_counter() - start - sum(timings.values())
    json_path, _ = write_report(results, out / "results")
    viewer = write_demo_viewer(run.directory / "generate", data_root, len(data.clips), out)
    total = time.perf_counter() - start
    print()
    print(
        f"PerFRDiff demo ({config_name} config, synthetic test split: "
        f"{len(data.clips)} speakers x {config.generate.samples} samples, on {run.device})"
    )
    print(markdown_table(results))
    print("FRDiv/FRDvs/FRVar unscaled (papers print x100); FRRea: see perfrdiff.metrics.realism")
    print()
    print("Motion (perfrdiff.metrics.motion; real reactions: 1 everywhere)")
    print(motion_table(results))
    print(f"results: {json_path}")
    print(f"plots:   {run.directory / 'generate'}/{{generic,personalised}}/item_*.png")
    print(f"viewer:  {viewer} (open it in a browser: faces, audio, curves; offline)")
    print(
        "time:    "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + f", total {total:.0f}s"
    )
    return results


def write_demo_viewer(
    generated: Path, data_root: Path, items: int, out: Path, shown: int = 3
) -> Path:
    """``out/viewer.html``: the offline viewer of the first ``shown`` test items of what
    ``generate`` wrote to ``generated`` (``perfrdiff view``'s page)."""
    from perfrdiff.viewer import load_items, write_viewer

    chosen = list(range(min(shown, items)))
    return write_viewer(load_items(generated, chosen, data_root), out / "viewer.html")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "--out")
    demo(
        args.out,
        args.config,
        tuple(args.sessions),
        args.seed,
        args.overrides,
        args.device,
        args.precision,
    )
    return 0
