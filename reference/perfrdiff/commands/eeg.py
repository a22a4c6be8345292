"""Predict the listener EEG of a MARS split with a run's trained eeg stage, and score it
(REACT 2026).

The head reads each test dyad's whole sequence: the speaker's emotion, 3DMM and audio, and the
listener's reaction: the generated samples in --reactions (a .npz with one (K, T, 25) array
per dyad, keyed <session>/<stem>, as `perfrdiff evaluate --protocol react2026` reads them), or
without it the real reaction (K = 1: an upper bound, not a challenge entry). Writes
<out>/eeg.npz (one (K, T, 14) array per dyad, same keys) and <out>/scores.json: the
challenge's EEG scores (masked CCC, DTW, TLCC, S-MSE, FRVar; perfrdiff.metrics.eeg).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np

from perfrdiff.commands.common import (
    add_device_arguments,
    add_overrides_argument,
    add_run_dir_argument,
    check_output_folder,
)
from perfrdiff.metrics.eeg import CHALLENGE_NAMES, EEG_METRICS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_dir_argument(parser, "run with a trained eeg stage")
    add_device_arguments(parser)
    add_overrides_argument(parser)
    parser.add_argument("--split", default="test", help="split to predict (default: test)")
    parser.add_argument(
        "--reactions",
        type=Path,
        default=None,
        help="generated reactions .npz keyed <session>/<stem> (default: the real listener "
        "reactions, an upper bound)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <run-dir>/eeg_<split>)"
    )


def run(args: argparse.Namespace) -> int:
    from perfrdiff.data.react2026 import MarsStore
    from perfrdiff.data.react2026.store import run_face_stats
    from perfrdiff.generation.eeg import predict_split, score_split
    from perfrdiff.run import Run

    out = args.out if args.out is not None else Path(args.run_dir) / f"eeg_{args.split}"
    check_output_folder(out, "--out")
    run = Run.load(args.run_dir, args.device, args.precision, args.overrides)
    head = run.model("eeg")
    config = run.config
    store = MarsStore(
        config.data.root,
        args.split,
        run.protocol.fps,
        config.eeg.audio,
        personality=False,
        face_stats=run_face_stats(config),
    )
    with contextlib.ExitStack() as stack:
        reactions = None
        if args.reactions is not None:
            reactions = stack.enter_context(np.load(args.reactions, allow_pickle=False))
        items, predictions = predict_split(head, store, reactions)
    scores = score_split(items, predictions)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "eeg.npz", **{i.key: p for i, p in zip(items, predictions, strict=True)})
    record = {
        "scores": scores,
        "challenge_names": CHALLENGE_NAMES,
        "listener": "real" if args.reactions is None else str(args.reactions),
        "split": args.split,
        "data_root": config.data.root,
        "items": len(items),
    }
    (out / "scores.json").write_text(json.dumps(record, indent=1))
    for name in EEG_METRICS:
        print(f"{name:11s} ({CHALLENGE_NAMES[name]:9s}) {scores[name]:.4f}")
    print(f"items with EEG: {scores['EEG_items']} of {len(items)}; written to {out}")
    return 0
