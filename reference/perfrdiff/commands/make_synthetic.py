"""Write a synthetic dataset in the REACT 2024 layout, with listeners of known reaction style.

Two listener style families (--family), documented in perfrdiff.data.synthetic and
perfrdiff.data.synthetic_expressive; ground_truth_style.json beside the data lists every person's
style parameters. The default folder and sizes are the ones `perfrdiff train` (tiny preset) and
`perfrdiff demo` read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from perfrdiff.commands.common import DATA_ROOT, DEMO_SESSIONS, check_output_folder
from perfrdiff.data.synthetic import FAMILIES, SyntheticConfig, write_synthetic_dataset

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SyntheticConfig()
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(DATA_ROOT),
        help="output folder; the tiny preset reads this one (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    for split, count in DEMO_SESSIONS.items():
        parser.add_argument(
            f"--{split}-sessions",
            type=int,
            default=count,
            help=f"dyadic sessions in the {split} split",
        )
    low, high = defaults.clips_per_session
    parser.add_argument("--min-clips", type=int, default=low, help="fewest clips per session")
    parser.add_argument("--max-clips", type=int, default=high, help="most clips per session")
    parser.add_argument(
        "--sample-rate", type=int, default=defaults.sample_rate, help="audio sample rate in Hz"
    )
    parser.add_argument(
        "--noise", type=float, default=defaults.noise, help="std of the noise on the emotions"
    )
    parser.add_argument(
        "--stereo", action="store_true", help="write stereo wav files (default: mono)"
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=defaults.family,
        help="listener style model: coupled-latent (linear coupled latents) or lagged-expressive "
        "(lag distributions, AU thresholds, expression preferences, valence bias, arousal gain, "
        f"smoothing) (default: {defaults.family})",
    )

    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset already in --root that was written with other settings "
        "(default: refuse; the same settings keep it as it is)",
    )


def config_from_args(args: argparse.Namespace) -> SyntheticConfig:
    return SyntheticConfig(
        seed=args.seed,
        sessions={
            "train": args.train_sessions,
            "val": args.val_sessions,
            "test": args.test_sessions,
        },
        clips_per_session=(args.min_clips, args.max_clips),
        sample_rate=args.sample_rate,
        noise=args.noise,
        stereo=args.stereo,
        family=args.family,
    )


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.root, "--root")
    write_synthetic_dataset(args.root, config_from_args(args), overwrite=args.overwrite)
    logger.info("wrote a synthetic dataset to %s", args.root)
    print(f"dataset: {args.root}")
    return 0
