"""Train a PerFRDiff stage (emotion-vae, style, gafrg, pwsg, eeg) or all of a run's in order
(eeg only under protocol react2026 with EEG in the training split).

Each stage writes <run-dir>/<stage>/{model.safetensors, model.json, metrics.jsonl, checkpoints/}.
Later stages load earlier ones from the same run directory. Multi-process: launch with
torchrun --nproc_per_node N -m perfrdiff train ... (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse

from perfrdiff.commands.common import (
    add_config_arguments,
    add_device_arguments,
    add_run_dir_argument,
    check_output_folder,
    config_from_args,
)
from perfrdiff.config import STAGES
from perfrdiff.run import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        choices=[*STAGES, "all"],
        help="stage to train, or all of the run's in order (eeg: only under protocol react2026 "
        "with EEG in the training split)",
    )
    add_config_arguments(parser)
    add_device_arguments(parser)
    add_run_dir_argument(parser, "run directory")
    parser.add_argument(
        "--resume", action="store_true", help="continue each stage from its newest checkpoint"
    )


def run(args: argparse.Namespace) -> int:
    from perfrdiff.training import train_run

    check_output_folder(args.run_dir, "--run-dir")
    run = Run(config_from_args(args), args.run_dir, args.device, args.precision)
    train_run(run, None if args.stage == "all" else [args.stage], args.resume)
    return 0
