"""Flags shared by the commands, parsed into the arguments of :class:`perfrdiff.Run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfrdiff.config import Config, load_config
from perfrdiff.device import DEVICES_HELP, PRECISIONS

# The defaults chain: make-synthetic writes DATA_ROOT (the tiny preset's data.root), train writes
# RUN_DIR, generate writes <RUN_DIR>/generate, evaluate reads it; demo does all four in runs/demo.
DATA_ROOT = "runs/demo/data"
RUN_DIR = "runs/demo/run"
#: Synthetic sessions per split of the demo's dataset (make-synthetic's default too).
DEMO_SESSIONS = {"train": 30, "val": 4, "test": 6}


def add_config_arguments(parser: argparse.ArgumentParser, default: str | None = "tiny") -> None:
    """``--config``, ``--data-root`` and repeatable ``--set key=value``."""
    parser.add_argument(
        "--config",
        default=default,
        help="preset name (tiny, paper) or YAML path"
        + (f" (default: {default})" if default else " (default: the run's config.yaml)"),
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help=f"dataset root (default: the config's data.root; {DATA_ROOT} in tiny)",
    )
    add_overrides_argument(parser)


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """Repeatable ``--set key.sub=value``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.gafrg.steps=200 (repeatable)",
    )


def add_run_dir_argument(parser: argparse.ArgumentParser, what: str = "trained run") -> None:
    """``--run-dir``, default :data:`RUN_DIR`."""
    parser.add_argument("--run-dir", default=RUN_DIR, help=f"{what} (default: {RUN_DIR})")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``."""
    parser.add_argument("--device", default="auto", help=f"{DEVICES_HELP} (default: auto)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32, or bf16 autocast with float32 weights (default: fp32)",
    )


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides plus ``--data-root`` as ``data.root=...``."""
    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    return overrides


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, overrides_from_args(args))


def _file_in_the_way(folder: Path) -> Path | None:
    """The existing non-folder at ``folder`` or above it (the nearest existing path), if any."""
    for part in (folder, *folder.parents):
        if part.exists():
            return None if part.is_dir() else part
    return None


def check_output_folder(path: str | Path | None, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be one (an existing file, or a
    path below a file): otherwise the command fails only when it writes, its work lost.

    Raises:
        ValueError: naming ``option``, the path and the file in the way.
    """
    if path is None:
        return
    path = Path(path)
    if (blocking := _file_in_the_way(path)) is not None:
        raise ValueError(
            f"{option} {path}: {blocking} is a file, not a folder; choose another {option}"
        )


def check_output_file(path: str | Path | None, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written: an existing folder at
    ``path``, or a file where a folder above it should be.

    Raises:
        ValueError: naming ``option``, the path and what is in the way.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder, not a file; choose another {option}")
    if (blocking := _file_in_the_way(path.parent)) is not None:
        raise ValueError(
            f"{option} {path}: {blocking} is a file, not a folder; choose another {option}"
        )
