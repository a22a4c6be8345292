"""Write a synthetic dataset in the REACT 2024 layout, with listeners of known reaction style.

Three listener style families (--family), documented in perfrdiff.data.synthetic,
perfrdiff.data.synthetic_expressive and perfrdiff.data.synthetic_heldout (written blind, for
reporting only); ground_truth_style.json beside the data lists every person's
style parameters. The default folder and sizes are the ones `perfrdiff train` (tiny preset) and
`perfrdiff demo` read. With --layout react2026 it writes the REACT 2026 (MARS) layout instead:
sequences of many lengths, Big Five scores that drive part of each listener's style, and EEG
(perfrdiff.data.react2026.synthetic).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from perfrdiff.commands.common import DATA_ROOT, DEMO_SESSIONS, check_output_folder
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
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
        "--sample-rate",
        type=int,
        default=None,
        help=f"audio sample rate in Hz (default: {defaults.sample_rate} for react2024, "
        f"{MarsSyntheticConfig().sample_rate} for react2026)",
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
        help="listener style model: coupled-latent (linear coupled latents), lagged-expressive "
        "(lag distributions, AU thresholds, expression preferences, valence bias, arousal gain, "
        "smoothing) or held-out (written blind, for reporting only: turns, bursts, gated "
        f"delayed reactions, low-reactive people) (default: {defaults.family})",
    )

    parser.add_argument(
        "--layout",
        choices=("react2024", "react2026"),
        default="react2024",
        help="react2024 (clips in site/session/role folders) or react2026 (MARS: sequences of "
        "any length paired by stem, personality and EEG; --min-clips/--max-clips count dyads "
        "per session) (default: %(default)s)",
    )
    parser.add_argument(
        "--no-eeg", action="store_true", help="react2026: write no EEG (default: write it)"
    )
    parser.add_argument(
        "--eeg-fraction",
        type=float,
        default=MarsSyntheticConfig().eeg_fraction,
        help="react2026: fraction of listener sequences with an EEG file (default: %(default)s)",
    )
    parser.add_argument(
        "--audio-features",
        action="store_true",
        help="react2026: also write 768-d audio-features (default: wav only)",
    )
    parser.add_argument(
        "--personality-share",
        type=float,
        default=MarsSyntheticConfig().share,
        help="react2026: fraction of the variance of listener offset, gain and delay that the "
        "Big Five explain (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset already in --root that was written with other settings "
        "(default: refuse; the same settings keep it as it is)",
    )


def mars_config_from_args(args: argparse.Namespace) -> MarsSyntheticConfig:
    if args.family != FAMILIES[0] or args.stereo:
        raise ValueError(
            "--layout react2026 writes the coupled-latent family in mono: leave out --family "
            "and --stereo"
        )
    defaults = MarsSyntheticConfig()
    return MarsSyntheticConfig(
        seed=args.seed,
        sessions={
            "train": args.train_sessions,
            "val": args.val_sessions,
            "test": args.test_sessions,
        },
        dyads_per_session=(args.min_clips, args.max_clips),
        sample_rate=defaults.sample_rate if args.sample_rate is None else args.sample_rate,
        noise=args.noise,
        share=args.personality_share,
        eeg=not args.no_eeg,
        eeg_fraction=args.eeg_fraction,
        audio_features=args.audio_features,
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
        sample_rate=SyntheticConfig().sample_rate if args.sample_rate is None else args.sample_rate,
        noise=args.noise,
        stereo=args.stereo,
        family=args.family,
    )


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.root, "--root")
    if args.layout == "react2026":
        write_mars_dataset(args.root, mars_config_from_args(args), overwrite=args.overwrite)
    else:
        write_synthetic_dataset(args.root, config_from_args(args), overwrite=args.overwrite)
    logger.info("wrote a synthetic dataset to %s", args.root)
    print(f"dataset: {args.root}")
    return 0
