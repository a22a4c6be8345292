"""Score saved predictions with the seven REACT metrics and the motion statistics.

FRCorr and FRdist are scored on both label sets, as the paper's tables: MAFRG (every
appropriate real reaction, the challenge's) and PMAFRG (only the item's own listener's).

Without arguments it scores what `perfrdiff generate` wrote by default
(runs/demo/run/generate/generic and personalised), against the dataset named beside them. Each
predictions file gets metrics.json and metrics.md in its folder (or --output); the table of all
of them is printed.

Predictions are a .npy (or .npz with key predictions) of shape (n, k, 750, 25) in the split's
mirrored item order: the CSV's rows, then the same rows with speaker and listener swapped. The
metrics run in NumPy on the CPU (there is no model to place on a device). --root is a deprecated
alias of --data-root.

With --protocol react2026 the predictions are a .npz with one (k, T, 25) array per test dyad of a
MARS-layout split, keyed <session>/<stem>; each is scored against its own listener and 9 drawn
from its session (seeded), with the challenge's TLCC of sample 0 and AUs rounded to 0/1 unless
switched off (perfrdiff.metrics.react2026).

Under `torchrun --nproc-per-node N -m perfrdiff evaluate …` the N processes (gloo, on CPUs) share
the per-item scores and rank 0 writes and prints the same numbers one process does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from perfrdiff.commands.common import RUN_DIR, check_output_folder
from perfrdiff.distributed import Distributed, init_distributed, shutdown
from perfrdiff.metrics.evaluate import markdown_table
from perfrdiff.metrics.report import (
    DEFAULT_ROOT,
    EvaluateConfig,
    evaluate_saved_predictions,
    report_name,
)
from perfrdiff.protocol import PROTOCOLS

logger = logging.getLogger(__name__)

#: What `perfrdiff generate` writes with its default --run-dir and --out.
DEFAULT_PREDICTIONS = tuple(
    Path(RUN_DIR) / "generate" / mode / "predictions.npy" for mode in ("generic", "personalised")
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "predictions",
        type=Path,
        nargs="*",
        help=f"predictions .npy / .npz (default: those of {Path(RUN_DIR) / 'generate'} that exist)",
    )
    parser.add_argument(
        "--data-root",
        "--root",  # deprecated spelling, kept so existing scripts keep working
        dest="data_root",
        type=Path,
        default=None,
        help=f"dataset root (default: the one recorded beside the predictions, else {DEFAULT_ROOT}"
        "; --root is a deprecated alias)",
    )
    parser.add_argument(
        "--split",
        default=EvaluateConfig.split,
        help="split (default: the one in the predictions' .json sidecar, else test)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="report folder (default: the predictions')"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="row label in the report (default: the mode recorded beside the predictions, else "
        "the file name)",
    )
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="FRdist processes (default: one per usable CPU)"
    )
    parser.add_argument(
        "--window", type=int, default=EvaluateConfig.window, help="online window in frames"
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        help="frames between window starts (default: as recorded by generate, else --window)",
    )
    parser.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default=None,
        help="challenge protocol whose metric variant and frame rate apply (default: the one "
        "recorded beside the predictions, else react2024)",
    )
    parser.add_argument(
        "--appropriate-seed",
        type=int,
        default=EvaluateConfig.appropriate_seed,
        help="react2026: seed of the appropriate-set draw (default: %(default)s, the challenge's)",
    )
    parser.add_argument(
        "--tlcc-all-samples",
        action="store_true",
        help="react2026: FRSyn/TLCC over every sample (default: sample 0, as the challenge)",
    )
    parser.add_argument(
        "--no-au-rounding",
        action="store_true",
        help="react2026: AUs clamped to [0, 1], not rounded (default: rounded to 0/1, as the "
        "challenge)",
    )
    parser.add_argument(
        "--nan-policy",
        choices=("ignore", "challenge"),
        default=EvaluateConfig.nan_policy,
        help="FRSyn with constant channels: our definition or the challenge code's behaviour",
    )


def default_predictions() -> list[Path]:
    """:data:`DEFAULT_PREDICTIONS` that exist.

    Raises:
        FileNotFoundError: none does, naming the generate command that writes them.
    """
    found = [path for path in DEFAULT_PREDICTIONS if path.is_file()]
    if not found:
        raise FileNotFoundError(
            f"no predictions given and none at {DEFAULT_PREDICTIONS[0].parent.parent}: "
            "`perfrdiff generate` writes them there (or pass a predictions file)"
        )
    return found


def run(args: argparse.Namespace) -> int:
    if "--root" in sys.argv[1:]:
        logger.warning("--root is deprecated: use --data-root")
    check_output_folder(args.output, "--output")
    paths = args.predictions or default_predictions()
    if args.name is not None and len(paths) > 1:
        raise ValueError(f"--name labels one predictions file, got {len(paths)}")
    env = init_distributed(torch.device("cpu"))  # the metrics run in NumPy: gloo, any machine
    finished = False
    try:
        table = evaluate_each(args, paths, env if env.enabled else None)
        finished = True
    finally:
        shutdown(env, wait_for_peers=finished)
    if env.is_main:
        print(markdown_table(table))
    return 0


def evaluate_each(
    args: argparse.Namespace, paths: list[Path], distributed: Distributed | None
) -> dict[str, dict[str, float]]:
    """Score each of ``paths`` and write its report; report name -> metrics."""
    table = {}
    for path in paths:
        config = EvaluateConfig(
            predictions=path,
            root=args.data_root,
            split=args.split,
            output=args.output,
            name=args.name,
            n_jobs=args.n_jobs,
            nan_policy=args.nan_policy,
            window=args.window,
            stride=args.stride,
            protocol=args.protocol,
            appropriate_seed=args.appropriate_seed,
            tlcc_all_samples=args.tlcc_all_samples,
            no_au_rounding=args.no_au_rounding,
        )
        results, json_path, markdown_path = evaluate_saved_predictions(config, distributed)
        if distributed is None or distributed.is_main:
            logger.info("wrote %s and %s", json_path, markdown_path)
        table[report_name(config)] = results
    return table
