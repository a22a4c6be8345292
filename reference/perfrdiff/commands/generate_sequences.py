"""``perfrdiff generate`` under a protocol of sequences of any length (REACT 2026): the four
tracks, each written as ``<out>/<mode>-<track>/predictions.npz`` (one ``(M, T, 25)`` array per
test dyad, keyed ``<session>/<stem>``) with a JSON sidecar that ``perfrdiff evaluate`` reads,
and PNG plots of the first ``--plots`` items' first :data:`PLOT_SECONDS` against the real
reaction (``item_<k>.png`` beside the predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from perfrdiff.distributed import Distributed
from perfrdiff.generation.mars import TRACKS, save_sequence_predictions
from perfrdiff.generation.plots import plot_reactions
from perfrdiff.run import Run

#: A plot shows at most a sequence's first minute: 20,000 frames would be unreadable.
PLOT_SECONDS = 60


def generate_sequences(
    args: argparse.Namespace,
    trained: Run,
    modes: tuple[str, ...],
    history: np.ndarray | None,
    env: Distributed,
) -> int:
    """Generate ``modes`` × ``--track`` for ``--split`` and write them (module docstring).

    Under ``torchrun`` the processes share each track's batches; rank 0 writes the files, the
    same bytes one process writes.
    """
    tracks = TRACKS if args.track in (None, "both") else (args.track,)
    personalised = "personalised" in modes
    reads_history = personalised and trained.model("pwsg").needs_history
    # Each item's own history only where it is read (not for generic, nor with --history,
    # nor by a personality-only condition).
    data = trained.sequence_set(args.split, args.limit, histories=reads_history and history is None)
    if history is not None and reads_history:
        data.histories = [history] * len(data.dyads)
    predictions = trained.generate_sequences(data, modes, tracks, seed=args.seed, distributed=env)
    if not env.is_main:
        return 0
    out = Path(args.out) if args.out else Path(args.run_dir) / "generate"
    for name, arrays in predictions.items():
        mode, track = name.split("-")
        meta = {
            "mode": mode,
            "track": track,
            "split": args.split,
            "run_dir": str(args.run_dir),
            "data_root": str(trained.config.data.root),
            "seed": args.seed,
            "items": len(arrays),
            **trained.sampling_info(),
        }
        if mode == "personalised":
            kinds = data.history_kinds
            given = "given" if reads_history else "not read"
            meta["history"] = {k: kinds.count(k) for k in sorted(set(kinds))} or given
            meta["condition"] = trained.config.pwsg.condition
        path = save_sequence_predictions(
            dict(zip(data.keys, arrays, strict=True)), out / name / "predictions.npz", meta
        )
        plot_items(arrays, data, args.plots, out / name, f"{name}: {args.split}", trained)
        print(f"{name}: {path}")
    return 0


def plot_items(
    arrays: list[np.ndarray], data, count: int, folder: Path, title: str, trained: Run
) -> None:
    """``folder/item_<k>.png`` for the first ``count`` items: each ``(M, T, 25)`` array's
    first :data:`PLOT_SECONDS` against its listener's real reaction."""
    fps = trained.protocol.fps
    for item in range(min(count, len(arrays))):
        frames = min(arrays[item].shape[1], PLOT_SECONDS * fps)
        dyad = data.dyads[item]
        real = np.asarray(data.store.emotion(dyad.listener)[:frames], dtype=np.float32)
        plot_reactions(
            arrays[item][:, :frames],
            real,
            folder / f"item_{item:04d}.png",
            title=f"{title} item {item} ({dyad.session}/{dyad.stem}), first {frames} frames, "
            f"{arrays[item].shape[0]} samples vs real",
            fps=fps,
        )


def check_track(args: argparse.Namespace, trained: Run) -> None:
    """``--track`` is a REACT 2026 choice.

    Raises:
        ValueError: it was given under a protocol of fixed clips.
    """
    if args.track is not None and trained.protocol.clip_frames is not None:
        raise ValueError(
            f"--track: protocol {trained.protocol.name!r} generates online clips only; "
            "--track is for protocol react2026"
        )
