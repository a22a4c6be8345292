"""Evaluate saved predictions against a split of a REACT-layout dataset and write the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from perfrdiff.data import ClipStore, DataError, SplitIndex
from perfrdiff.metrics.evaluate import evaluate_all, write_report
from perfrdiff.metrics.motion import motion_report


@dataclass
class EvaluateConfig:
    """What ``perfrdiff evaluate`` does; every field has a working default except ``predictions``.

    ``predictions`` is a ``.npy`` array or a ``.npz`` with key ``predictions``, shaped
    ``(n, k, 750, 25)`` in the split's mirrored item order (see :mod:`perfrdiff.data.layout`).
    """

    predictions: Path
    root: Path = Path("data/synthetic")
    split: str = "test"
    output: Path | None = None  # default: the predictions file's folder
    name: str | None = None  # row label; default: the predictions file's stem
    n_jobs: int | None = None
    nan_policy: Literal["ignore", "challenge"] = "ignore"
    # How the predictions were generated, for the motion statistics: windows of ``window``
    # frames every ``stride`` (default: the ``stride`` recorded in the predictions' .json by
    # ``perfrdiff generate``, else ``window``).
    window: int = 50
    stride: int | None = None


def load_predictions(path: Path) -> np.ndarray:
    """Read ``(n, k, t, d)`` predictions from ``.npy`` or ``.npz`` (key ``predictions``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions file is missing")
    if path.suffix == ".npz":
        with np.load(path) as archive:
            if "predictions" not in archive:
                raise DataError(f"{path}: no array named 'predictions' (has {list(archive)})")
            return archive["predictions"]
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    raise DataError(f"{path}: expected a .npy or .npz file")


def load_references(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real listener emotions ``(n, 750, 25)``, speaker emotions ``(n, 750, 25)`` and the
    appropriateness matrix ``(n, n)`` of a split, in mirrored item order."""
    index = SplitIndex(root, split)
    store = ClipStore(root, split)
    listener = np.stack([store.emotion(pair.listener) for pair in index.items])
    speaker = np.stack([store.emotion(pair.speaker) for pair in index.items])
    return listener, speaker, index.neighbours


def recorded_stride(path: Path) -> int | None:
    """The window stride recorded beside saved predictions (``<stem>.json``), if any."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return None
    stride = json.loads(meta.read_text()).get("stride")
    return int(stride) if stride is not None else None


def evaluate_saved_predictions(config: EvaluateConfig) -> tuple[dict[str, float], Path, Path]:
    """Compute the seven metrics and the motion statistics for ``config.predictions``; returns
    them and the report paths."""
    predictions = load_predictions(config.predictions)
    listener, speaker, neighbours = load_references(config.root, config.split)
    if predictions.ndim != 4 or predictions.shape[0] != listener.shape[0]:
        raise ValueError(
            f"predictions: expected (n, k, t, d) with n = {listener.shape[0]} mirrored items of "
            f"split {config.split!r}, got {predictions.shape} from {config.predictions}"
        )
    results = evaluate_all(
        predictions, listener, speaker, neighbours, config.n_jobs, config.nan_policy, True
    )
    stride = config.stride or recorded_stride(config.predictions)
    results.update(motion_report(predictions, listener, config.window, stride))
    name = config.name or config.predictions.stem
    output = config.output or config.predictions.parent
    json_path, markdown_path = write_report({name: results}, output)
    return results, json_path, markdown_path
