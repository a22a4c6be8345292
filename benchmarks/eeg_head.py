"""Does the EEG head read the listener's reaction? Its EEG scores on the MARS twin's test split.

Trains the ``eeg`` stage (tiny config, protocol react2026) on a synthetic MARS twin whose EEG is
a function of the listener's reaction (``perfrdiff make-synthetic --layout react2026``), then
scores on the test split, per row:

* ``real``: the head reading each item's real listener reaction (K = 1);
* ``time-reversed``: the same reaction played backwards (the listener's level and spread kept,
  its timing broken): what is left when the head cannot follow the reaction;
* ``train mean``: every frame the training split's mean EEG (no model).

Columns: the challenge's EEG scores (perfrdiff.metrics.eeg) and the masked MSE over the test
cells whose mask is 1.

    python benchmarks/eeg_head.py --json benchmarks/results/eeg_head.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from perfrdiff import Run
from perfrdiff.config import load_config
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.generation.eeg import EegItem, predict_split, score_split
from perfrdiff.metrics.eeg import EEG_METRICS
from perfrdiff.training import train_run
from perfrdiff.training.eeg import eeg_store

COLUMNS = (*EEG_METRICS, "masked_MSE")


def masked_error(items: list[EegItem], predictions: list[np.ndarray]) -> float:
    """Mean squared error of sample 0 over every counted test cell."""
    total = sum(
        ((p[0] - i.eeg) ** 2 * i.mask).sum() for i, p in zip(items, predictions, strict=True)
    )
    return float(total / sum(i.mask.sum() for i in items))


def train_mean(config, items: list[EegItem]) -> list[np.ndarray]:
    """The training split's mean EEG per target (counted cells only), for every frame."""
    store = eeg_store(config, "train")
    rows = [store.eeg(d.listener, 0, store.frames(d)) for d in store.dyads]
    values, masks = (np.concatenate(part) for part in zip(*rows, strict=True))
    mean = (values * masks).sum(0) / masks.sum(0)
    return [np.broadcast_to(mean, (1, len(i.eeg), len(mean))).astype(np.float32) for i in items]


def rows_of(run: Run) -> dict[str, dict[str, float]]:
    """The three rows of the module docstring on the run's test split."""
    config = run.config
    store = MarsStore(
        config.data.root, "test", run.protocol.fps, config.eeg.audio, personality=False
    )
    head = run.model("eeg")
    items, real = predict_split(head, store)
    _, backwards = predict_split(head, store, {i.key: i.listener[None, ::-1] for i in items})
    rows = {}
    for name, predictions in (
        ("real", real),
        ("time-reversed", backwards),
        ("train mean", train_mean(config, items)),
    ):
        rows[name] = {
            **score_split(items, predictions),
            "masked_MSE": masked_error(items, predictions),
        }
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/eeg"), help="data and run")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default: 400)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 0.001)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    write_mars_dataset(args.out / "data", MarsSyntheticConfig())
    train = {"steps": args.steps, "lr": args.lr, "batch_size": args.batch_size, "val_every": 100}
    overrides = ["protocol=react2026", f"data.root={args.out / 'data'}", "threads=1"]
    overrides += [f"train.eeg.{k}={v}" for k, v in train.items()]
    run = Run(load_config("tiny", overrides), args.out / "run", device="cpu")
    start = time.perf_counter()
    train_run(run, ["eeg"])
    seconds = time.perf_counter() - start
    rows = rows_of(run)
    print(f"{'reaction read':14s}" + "".join(f"{c:>12s}" for c in COLUMNS))
    for name, row in rows.items():
        print(f"{name:14s}" + "".join(f"{row[c]:12.4f}" for c in COLUMNS))
    result = {"overrides": overrides, "training_seconds": seconds, "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
