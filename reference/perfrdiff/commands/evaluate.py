"""Compute the seven REACT metrics and the motion statistics of saved predictions; writes
metrics.json and metrics.md.

Predictions are a ``.npy`` (or ``.npz`` with key ``predictions``) of shape (n, k, 750, 25) in the
split's mirrored item order: the CSV's rows, then the same rows with speaker and listener swapped.
The metrics run in NumPy on the CPU (there is no model to place on a device). ``--root`` is a
deprecated alias of ``--data-root``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perfrdiff.metrics.report import EvaluateConfig, evaluate_saved_predictions

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path, help="predictions .npy / .npz")
    parser.add_argument(
        "--data-root",
        "--root",  # deprecated spelling, kept so existing scripts keep working
        dest="data_root",
        type=Path,
        default=EvaluateConfig.root,
        help=f"dataset root (default: {EvaluateConfig.root}; --root is a deprecated alias)",
    )
    parser.add_argument(
        "--split",
        default=EvaluateConfig.split,
        help="split (default: the one in the predictions' .json sidecar, else test)",
    )
    parser.add_argument("--output", type=Path, default=None, help="report folder")
    parser.add_argument("--name", default=None, help="row label in the report")
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="FRdist processes (default: one per usable CPU)"
    )
    parser.add_argument(
        "--window", type=int, default=EvaluateConfig.window, help="online window (default: 50)"
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="frames between window starts (default: as recorded by generate, else --window)",
    )
    parser.add_argument(
        "--nan-policy",
        choices=("ignore", "challenge"),
        default=EvaluateConfig.nan_policy,
        help="FRSyn with constant channels: our definition or the challenge code's behaviour",
    )


def run(args: argparse.Namespace) -> int:
    if "--root" in sys.argv[1:]:
        logger.warning("--root is deprecated: use --data-root")
    config = EvaluateConfig(
        predictions=args.predictions,
        root=args.data_root,
        split=args.split,
        output=args.output,
        name=args.name,
        n_jobs=args.n_jobs,
        nan_policy=args.nan_policy,
        window=args.window,
        stride=args.stride,
    )
    results, json_path, markdown_path = evaluate_saved_predictions(config)
    for name, value in results.items():
        logger.info("%s = %.4f", name, value)
    logger.info("wrote %s and %s", json_path, markdown_path)
    return 0
