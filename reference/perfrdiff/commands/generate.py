"""Generate M reactions per speaker clip of a split, generic and/or personalised, with plots.

Reads the trained stages from --run-dir (and its config.yaml); writes
<out>/<mode>/predictions.npy of shape (n, M, 750, 25) in the split's mirrored item order, a JSON
sidecar, and PNG plots of the samples' AU12 / valence / arousal curves against the real reaction.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from perfrdiff.config import Config, apply_runtime, load_config
from perfrdiff.generation import (
    EvaluationSet,
    check_generation_options,
    generate_split,
    load_evaluation_set,
    plot_reactions,
    read_history,
    save_predictions,
    with_listener_history,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", default="runs/demo/run", help="trained run (default: runs/demo/run)"
    )
    parser.add_argument("--config", default=None, help="config (default: the run's config.yaml)")
    parser.add_argument("--data-root", default=None, help="dataset root (default: from config)")
    parser.add_argument("--split", default="test", help="split to generate for (default: test)")
    parser.add_argument(
        "--mode",
        choices=["generic", "personalised", "both"],
        default="both",
        help="MAFRG (generic), PMAFRG (personalised) or both (default: both)",
    )
    parser.add_argument("--samples", type=int, default=None, help="M (default: config, 10)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: config)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: config)")
    parser.add_argument(
        "--history",
        default=None,
        help="a listener history .npy (h, 58 or 25, per style.input) to personalise every item "
        "to that listener (default: each item's own listener, from another clip)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")
    parser.add_argument("--plots", type=int, default=3, help="items to plot (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--out", default=None, help="output dir (default: <run-dir>/generate)")


def run_config(run_dir: str | Path, config: str | None, overrides: list[str]) -> Config:
    """The config a run was trained with (its ``config.yaml``), with ``overrides`` applied."""
    path = Path(config) if config else Path(run_dir) / "config.yaml"
    if config is None and not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the run first or pass --config")
    return load_config(path if config is None else config, overrides)


def generate(
    config: Config,
    run_dir: str | Path,
    out: str | Path,
    split: str = "test",
    modes: tuple[str, ...] = ("generic", "personalised"),
    limit: int | None = None,
    plots: int = 3,
    seed: int = 0,
    data: EvaluationSet | None = None,
    history: np.ndarray | None = None,
) -> dict[str, Path]:
    """Generate, save and plot reactions for ``modes``; returns mode -> predictions path.

    ``data`` is the split, if already loaded (see :func:`load_evaluation_set`); ``history``
    ``(h, c)`` personalises every item to one listener instead of each item's own.
    """
    apply_runtime(config)
    data = data or load_evaluation_set(config, split, limit)
    if history is not None:
        data = with_listener_history(data, history, config)
    out = Path(out)
    paths = {}
    for mode in modes:
        predictions = generate_split(config, run_dir, data, mode, config.generate.samples, seed)
        meta = {
            "mode": mode,
            "split": split,
            "run_dir": str(run_dir),
            "seed": seed,
            "shape": list(predictions.shape),
            "sample_steps": config.diffusion.sample_steps,
            "guidance": config.diffusion.guidance,
        }
        paths[mode] = save_predictions(predictions, out / mode / "predictions.npy", meta)
        for item in range(min(plots, len(predictions))):
            plot_reactions(
                predictions[item],
                data.listener_emotion[item],
                out / mode / f"item_{item:04d}.png",
                title=f"{mode}: {split} item {item}, {predictions.shape[1]} samples vs real",
            )
    return paths


def run(args: argparse.Namespace) -> int:
    check_generation_options(
        args.samples, args.steps, args.guidance, args.limit, args.plots, args.seed
    )
    overrides = []
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.samples is not None:
        overrides.append(f"generate.samples={args.samples}")
    if args.steps is not None:
        overrides.append(f"diffusion.sample_steps={args.steps}")
    if args.guidance is not None:
        overrides.append(f"diffusion.guidance={args.guidance}")
    config = run_config(args.run_dir, args.config, overrides)
    modes = ("generic", "personalised") if args.mode == "both" else (args.mode,)
    out = args.out or Path(args.run_dir) / "generate"
    history = read_history(args.history, config.style.input) if args.history else None
    for mode, path in generate(
        config,
        args.run_dir,
        out,
        args.split,
        modes,
        args.limit,
        args.plots,
        args.seed,
        history=history,
    ).items():
        print(f"{mode}: {path}")
    return 0
