"""Train a PerFRDiff stage (emotion-vae, style, gafrg, pwsg) or all of them in order.

Each stage writes <run-dir>/<stage>/{model.safetensors, model.json, metrics.jsonl, checkpoints/}.
Later stages load earlier ones from the same run directory. Multi-process: launch with
`torchrun --nproc_per_node N -m perfrdiff train ...` (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from perfrdiff.config import STAGES, Config, apply_runtime, load_config, save_config
from perfrdiff.training.distributed import init_distributed, shutdown
from perfrdiff.training.resume import check_resume
from perfrdiff.training.rundir import run_dir_lock
from perfrdiff.training.stages import run_training

log = logging.getLogger(__name__)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the commands that build a :class:`~perfrdiff.config.Config`."""
    parser.add_argument(
        "--config", default="tiny", help="preset name (tiny, paper) or YAML path (default: tiny)"
    )
    parser.add_argument(
        "--data-root", default=None, help="dataset root (default: the config's data.root)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.gafrg.steps=200 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    return load_config(args.config, overrides)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=[*STAGES, "all"], help="stage to train, or all in order")
    add_config_arguments(parser)
    parser.add_argument(
        "--run-dir", default="runs/demo/run", help="run directory (default: runs/demo/run)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue each stage from its newest checkpoint"
    )


def train(config: Config, run_dir: str | Path, stages: list[str], resume: bool = False) -> None:
    """Train ``stages`` in order; the library entry point the CLI and the demo share."""
    apply_runtime(config)
    env = init_distributed()
    try:
        run_dir = Path(run_dir)
        with run_dir_lock(run_dir, enabled=env.is_main):
            if resume:
                check_resume(config, run_dir, stages)  # before config.yaml is rewritten
            if env.is_main:
                save_config(config, run_dir / "config.yaml")
            for stage in stages:
                path = run_training(stage, config, run_dir, resume=resume, env=env)
                if env.is_main:
                    log.info("stage %s done: %s", stage, path)
    finally:
        shutdown(env)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    train(config, args.run_dir, stages, args.resume)
    return 0
