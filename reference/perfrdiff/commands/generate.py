"""Generate M reactions per speaker clip of a split, generic and/or personalised, with plots.

Reads the trained stages from --run-dir (and its config.yaml); writes
<out>/<mode>/predictions.npy of shape (n, M, 750, 25) in the split's mirrored item order, a JSON
sidecar (which `perfrdiff evaluate` reads), and PNG plots of the samples' AU12 / valence / arousal
curves against the real reaction. Under protocol react2026 it writes
<out>/<mode>-<track>/predictions.npz instead: one (M, T, 25) array per test dyad, for the
offline and online tracks.

Under `torchrun --nproc-per-node N -m perfrdiff generate …` the N processes share the batches
(one GPU each with NCCL, or gloo on the CPU) and rank 0 writes the same files one process writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from perfrdiff.commands.common import (
    add_config_arguments,
    add_device_arguments,
    add_run_dir_argument,
    check_output_folder,
    overrides_from_args,
)
from perfrdiff.commands.generate_sequences import check_track, generate_sequences
from perfrdiff.device import resolve_device
from perfrdiff.distributed import Distributed, init_distributed, shutdown
from perfrdiff.generation import check_generation_options, read_history, write_generation
from perfrdiff.run import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_dir_argument(parser)
    add_config_arguments(parser, default=None)
    add_device_arguments(parser)
    parser.add_argument("--split", default="test", help="split to generate for (default: test)")
    parser.add_argument(
        "--mode",
        choices=["generic", "personalised", "both"],
        default="both",
        help="MAFRG (generic), PMAFRG (personalised) or both (default: both)",
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="M (default: the config's, 10 in tiny)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="DDIM steps (default: the config's)"
    )
    parser.add_argument(
        "--guidance", type=float, default=None, help="CFG scale (default: the config's)"
    )
    parser.add_argument(
        "--history",
        default=None,
        help="a listener history .npy (h, 58 or 25, per style.input) to personalise every item "
        "to that listener (default: each item's own listener, from another clip)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N items (default: all)"
    )
    parser.add_argument("--plots", type=int, default=3, help="items to plot (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument("--out", default=None, help="output dir (default: <run-dir>/generate)")
    parser.add_argument(
        "--track",
        choices=["offline", "online", "both"],
        default=None,
        help="protocol react2026: offline (750-frame chunks), online (windows) or both "
        "(default: both); each mode and track writes <out>/<mode>-<track>/predictions.npz",
    )


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
    check_output_folder(args.out, "--out")
    env = init_distributed(resolve_device(args.device))  # one process without torchrun
    finished = False
    try:
        generate(args, overrides, env)
        finished = True
    finally:
        shutdown(env, wait_for_peers=finished)
    return 0


def generate(args: argparse.Namespace, overrides: list[str], env: Distributed) -> None:
    """What :func:`run` does in each process: the processes share the work (one GPU each);
    rank 0 writes the files."""
    trained = load_trained_run(args, overrides, env.device)
    # The user's own inputs first (a bad --history file is named before weights are loaded).
    history = read_history(args.history, trained.config.style.input) if args.history else None
    modes = ("generic", "personalised") if args.mode == "both" else (args.mode,)
    check_track(args, trained)
    load_samplers(trained, modes)  # missing weights fail here, before the (slow) features
    if trained.protocol.clip_frames is None:  # REACT 2026: whole sequences, four tracks
        return generate_sequences(args, trained, modes, history, env)
    # Each item's own history only where it is read (not for generic, nor with --history).
    own_histories = "personalised" in modes and history is None
    data = trained.evaluation_set(args.split, args.limit, histories=own_histories)
    predictions = trained.generate(
        args.split, modes, seed=args.seed, data=data, history=history, distributed=env
    )
    if not env.is_main:
        return
    out = Path(args.out) if args.out else Path(args.run_dir) / "generate"
    meta = {
        "run_dir": str(args.run_dir),
        "data_root": str(trained.config.data.root),
        "seed": args.seed,
        **trained.sampling_info(),
    }
    for mode, path in write_generation(
        predictions, data, out, args.split, args.plots, meta
    ).items():
        print(f"{mode}: {path}")


def train_hint(run_dir: str | Path) -> str:
    return f"`perfrdiff train all --run-dir {run_dir}` trains every stage"


def load_trained_run(
    args: argparse.Namespace, overrides: list[str], device: torch.device | None = None
) -> Run:
    """The run in ``--run-dir`` on ``device`` (default: ``--device``).

    Raises:
        FileNotFoundError: it has no config.yaml (and no --config), naming the train command.
    """
    try:
        device = args.device if device is None else device
        return Run.load(args.run_dir, device, args.precision, overrides, args.config)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}; {train_hint(args.run_dir)}") from None


def load_samplers(trained: Run, modes: tuple[str, ...]) -> None:
    """Build the samplers of ``modes`` (their weights are loaded once, then cached by the run).

    Raises:
        FileNotFoundError: a stage they need is not trained, naming the train command.
    """
    for mode in modes:
        try:
            trained.sampler(mode)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}; {train_hint(trained.directory)}") from None
