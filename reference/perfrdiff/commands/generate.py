"""Generate M reactions per speaker clip of a split, generic and/or personalised, with plots.

Reads the trained stages from --run-dir (and its config.yaml); writes
<out>/<mode>/predictions.npy of shape (n, M, 750, 25) in the split's mirrored item order, a JSON
sidecar, and PNG plots of the samples' AU12 / valence / arousal curves against the real reaction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from perfrdiff.commands.common import (
    add_config_arguments,
    add_device_arguments,
    overrides_from_args,
)
from perfrdiff.generation import check_generation_options, read_history, write_generation
from perfrdiff.run import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir", default="runs/demo/run", help="trained run (default: runs/demo/run)"
    )
    add_config_arguments(parser, default=None)
    add_device_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
    check_generation_options(
        args.samples, args.steps, args.guidance, args.limit, args.plots, args.seed
    )
    overrides = overrides_from_args(args)
    if args.samples is not None:
        overrides.append(f"generate.samples={args.samples}")
    if args.steps is not None:
        overrides.append(f"diffusion.sample_steps={args.steps}")
    if args.guidance is not None:
        overrides.append(f"diffusion.guidance={args.guidance}")
    trained = Run.load(args.run_dir, args.device, args.precision, overrides, args.config)
    modes = ("generic", "personalised") if args.mode == "both" else (args.mode,)
    data = trained.evaluation_set(args.split, args.limit)
    style_input = trained.config.style.input
    history = read_history(args.history, style_input) if args.history else None
    predictions = trained.generate(args.split, modes, seed=args.seed, data=data, history=history)
    out = Path(args.out) if args.out else Path(args.run_dir) / "generate"
    meta = {"run_dir": str(args.run_dir), "seed": args.seed, **trained.sampling_info()}
    for mode, path in write_generation(
        predictions, data, out, args.split, args.plots, meta
    ).items():
        print(f"{mode}: {path}")
    return 0
