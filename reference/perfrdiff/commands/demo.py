"""Run the whole PerFRDiff pipeline on synthetic data and print the results table.

Writes a synthetic dataset, trains every stage (emotion VAE, style encoder, GAFRG, PWSG) in the
tiny config, generates M reactions per test speaker (generic and personalised), evaluates them and
a chance baseline with the seven REACT metrics, and prints a table plus where the plots and the
offline viewer (faces animated with the speaker's audio, see perfrdiff view) are.
Everything goes under --out (default: runs/demo); a dataset already there is reused.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from perfrdiff.commands.common import add_device_arguments, add_overrides_argument
from perfrdiff.config import STAGES, load_config

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--config", default="tiny", help="preset or YAML (default: tiny)")
    parser.add_argument(
        "--sessions",
        type=int,
        nargs=3,
        default=(30, 4, 6),
        metavar=("TRAIN", "VAL", "TEST"),
        help="synthetic sessions per split (default: 30 4 6)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data and training")
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
    sessions: tuple[int, int, int] = (30, 4, 6),
    seed: int = 0,
    overrides: list[str] | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> dict[str, dict[str, float]]:
    """The README's pipeline; returns ``{"generic" | "personalised" | "chance": metrics}``."""
    from perfrdiff.generation import chance_predictions, write_generation
    from perfrdiff.metrics import markdown_table, motion_table, write_report
    from perfrdiff.run import Run

    start = time.perf_counter()
    out = Path(out)
    data_root = out / "data"
    # Config, overrides and device first: a typo should not cost writing the dataset.
    config = load_config(
        config_name, [f"data.root={data_root}", f"seed={seed}", *(overrides or [])]
    )
    run = Run(config, out / "run", device, precision)
    ensure_dataset(data_root, sessions, seed)
    timings = {"data": time.perf_counter() - start}
    run.train(STAGES)
    timings["train"] = time.perf_counter() - start - sum(timings.values())
    data = run.evaluation_set("test")
    predictions = run.generate("test", seed=seed, data=data)
    meta = {"run_dir": str(run.directory), "seed": seed, **run.sampling_info()}
    write_generation(predictions, data, out / "generate", "test", meta=meta)
    timings["generate"] = time.perf_counter() - start - sum(timings.values())
    predictions["chance"] = chance_predictions(data, config.generate.samples, seed)
    results = run.evaluate(predictions, "test", data=data)
    timings["evaluate"] = time.perf_counter() - start - sum(timings.values())
    json_path, _ = write_report(results, out / "results")
    viewer = write_demo_viewer(out, data_root, len(data.clips))
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
    print(f"plots:   {out / 'generate'}/{{generic,personalised}}/item_*.png")
    print(f"viewer:  {viewer} (open it in a browser: faces, audio, curves; offline)")
    print(
        "time:    "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + f", total {total:.0f}s"
    )
    return results


def write_demo_viewer(out: Path, data_root: Path, items: int, shown: int = 3) -> Path:
    """The offline viewer of the first ``shown`` test items (``perfrdiff view``'s page)."""
    from perfrdiff.viewer import load_items, write_viewer

    chosen = list(range(min(shown, items)))
    return write_viewer(load_items(out / "generate", chosen, data_root), out / "viewer.html")


def run(args: argparse.Namespace) -> int:
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
