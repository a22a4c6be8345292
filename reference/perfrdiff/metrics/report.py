"""Evaluate saved predictions against a split of a REACT-layout dataset and write the report."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perfrdiff._checks import check_at_least, is_integer
from perfrdiff.data import (
    ClipStore,
    DataError,
    MissingFileError,
    SplitIndex,
    check_feature_dtype,
    read_npy,
)
from perfrdiff.distributed import Distributed
from perfrdiff.metrics._inputs import check_n_jobs, predictions_array
from perfrdiff.metrics.evaluate import evaluate_all, write_report
from perfrdiff.metrics.label_sets import item_listeners
from perfrdiff.metrics.motion import motion_report
from perfrdiff.protocol import REACT2024, Protocol, protocol_named


@dataclass
class EvaluateConfig:
    """What ``perfrdiff evaluate`` does; every field has a working default except ``predictions``.

    ``predictions`` is a ``.npy`` array or a ``.npz`` with key ``predictions``, shaped
    ``(n, k, 750, 25)`` in the split's mirrored item order (see :mod:`perfrdiff.data.layout`).
    ``split`` defaults to the one named in the predictions' JSON sidecar (written by
    ``perfrdiff generate``), else ``test``; a different explicit split is an error. ``root``
    defaults to the dataset named in the sidecar, else ``runs/demo/data`` (the demo's).
    """

    predictions: Path
    root: Path | None = None
    split: str | None = None
    output: Path | None = None  # default: the predictions file's folder
    name: str | None = None  # row label; default: the sidecar's mode, else the file's stem
    n_jobs: int | None = None
    nan_policy: Literal["ignore", "challenge"] = "ignore"
    # How the predictions were generated, for the motion statistics: windows of ``window``
    # frames every ``stride`` (default: the ``stride`` recorded in the predictions' .json by
    # ``perfrdiff generate``, else ``window``).
    window: int = 50
    stride: int | None = None
    # The challenge protocol (perfrdiff.protocol) whose metric variant and frame rate apply;
    # default: the one recorded in the predictions' sidecar, else react2024.
    protocol: str | None = None
    # REACT 2026 only: the seed of the appropriate-set draw (the challenge's 1234), and the
    # challenge's quirks switched off: TLCC over all samples, AUs not rounded.
    appropriate_seed: int = 1234
    tlcc_all_samples: bool = False
    no_au_rounding: bool = False


DEFAULT_SPLIT = "test"
#: Where ``perfrdiff make-synthetic`` and the tiny preset put the dataset.
DEFAULT_ROOT = Path("runs/demo/data")


def load_predictions(path: Path) -> np.ndarray:
    """Read ``(n, k, t, d)`` predictions from ``.npy`` or ``.npz`` (key ``predictions``).

    Raises:
        perfrdiff.data.DataError: naming the file, when it is missing, not a NumPy file,
            holds no floating-point 4-d array, or contains NaN / infinite values.
    """
    path = Path(path)
    if path.suffix == ".npz":
        array = _read_npz(path)
    elif path.suffix == ".npy":
        array = read_npy(path)
    else:
        raise DataError(f"{path}: expected a .npy or .npz file")
    check_feature_dtype(array, str(path))  # quantised predictions are on another scale
    try:
        return predictions_array(array)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: {error}") from None


def _read_npz(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MissingFileError(f"{path}: predictions file is missing")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "predictions" not in archive:
                raise DataError(f"{path}: no array named 'predictions' (has {list(archive)})")
            return archive["predictions"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON written next to predictions by ``perfrdiff generate`` (empty if there is none)."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{sidecar}: not readable JSON ({error})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{sidecar}: expected a JSON object, got {type(meta).__name__}")
    return meta


def resolve_split(predictions: Path, split: str | None) -> str:
    """The split to score ``predictions`` against: ``split``, else the sidecar's, else test.

    Raises:
        ValueError: ``split`` contradicts the split named in the predictions' sidecar.
    """
    recorded = read_sidecar(predictions).get("split")
    if split is None:
        return recorded or DEFAULT_SPLIT
    if recorded is not None and recorded != split:
        raise ValueError(
            f"{predictions}: its sidecar {Path(predictions).with_suffix('.json').name} says "
            f"these are predictions for split {recorded!r}, but split {split!r} was asked for "
            f"(--split); pass --split {recorded} or leave it out"
        )
    return split


def resolve_root(predictions: Path, root: Path | None) -> Path:
    """The dataset to score ``predictions`` against: ``root``, else the one recorded in the
    predictions' sidecar, else :data:`DEFAULT_ROOT`."""
    if root is not None:
        return Path(root)
    recorded = read_sidecar(predictions).get("data_root")
    return Path(recorded) if isinstance(recorded, str) else DEFAULT_ROOT


def check_predictions_match(
    predictions: np.ndarray, listener: np.ndarray, path: Path, split: str
) -> None:
    """Check predictions ``(n, k, t, d)`` against the split's real reactions ``(n, t, d)``.

    A mismatch blames the predictions file and says which dimension differs.
    """
    n, t, d = listener.shape
    got_n, _, got_t, got_d = predictions.shape
    differ = [
        f"{what} = {got} (expected {want}{why})"
        for what, got, want, why in (
            ("n", got_n, n, f" mirrored items of split {split!r}"),
            ("t", got_t, t, " frames"),
            ("d", got_d, d, " emotion channels"),
        )
        if got != want
    ]
    if differ:
        raise ValueError(
            f"{path}: predictions of shape (n, k, t, d) = {predictions.shape} do not fit split "
            f"{split!r}: " + ", ".join(differ)
        )


def load_references(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real listener emotions ``(n, 750, 25)``, speaker emotions ``(n, 750, 25)`` and the
    appropriateness matrix ``(n, n)`` of a split, in mirrored item order."""
    index = SplitIndex(root, split)
    store = ClipStore(root, split)
    listener = np.stack([store.emotion(pair.listener) for pair in index.items])
    speaker = np.stack([store.emotion(pair.speaker) for pair in index.items])
    return listener, speaker, index.neighbours


def recorded_stride(path: Path) -> int | None:
    """The window stride recorded beside saved predictions (``<stem>.json``), if any.

    Raises:
        perfrdiff.data.DataError: the sidecar is unreadable or its stride is not an integer
            >= 1.
    """
    stride = read_sidecar(path).get("stride")
    if stride is None:
        return None
    if not is_integer(stride) or stride < 1:
        raise DataError(
            f"{Path(path).with_suffix('.json')}: expected 'stride' to be an integer >= 1, "
            f"got {stride!r}"
        )
    return stride


def resolve_protocol(predictions: Path, protocol: str | None) -> Protocol:
    """The protocol to score ``predictions`` under: ``protocol``, else the one recorded in the
    predictions' sidecar, else REACT 2024.

    Raises:
        ValueError: an unknown protocol, or one that contradicts the sidecar's.
    """
    recorded = read_sidecar(predictions).get("protocol")
    if protocol is None:
        return protocol_named(recorded) if isinstance(recorded, str) else REACT2024
    if isinstance(recorded, str) and recorded != protocol:
        raise ValueError(
            f"{predictions}: its sidecar says these predictions follow protocol {recorded!r}, "
            f"but protocol {protocol!r} was asked for (--protocol); pass --protocol {recorded} "
            "or leave it out"
        )
    return protocol_named(protocol)


def report_name(config: EvaluateConfig) -> str:
    """The report's row label: ``config.name``, else the mode recorded beside the predictions
    (``generic`` / ``personalised``, with its REACT 2026 track: ``personalised online``), else
    the predictions file's stem."""
    sidecar = read_sidecar(config.predictions)
    mode, track = sidecar.get("mode"), sidecar.get("track")
    if isinstance(mode, str) and isinstance(track, str):
        mode = f"{mode} {track}"
    return config.name or (mode if isinstance(mode, str) else config.predictions.stem)


def check_evaluate_options(config: EvaluateConfig) -> None:
    """Reject bad ``window`` / ``stride`` / ``n_jobs`` before the (slow) metrics run.

    Raises:
        ValueError: naming the option.
    """
    check_n_jobs(config.n_jobs)
    for name, value in (("window", config.window), ("stride", config.stride)):
        if value is not None:
            check_at_least(name, value, 1)


def _evaluate_mars(
    config: EvaluateConfig, protocol: Protocol, split: str, distributed: Distributed | None
) -> tuple[dict[str, float], Path, Path]:
    """:func:`evaluate_saved_predictions` of a REACT 2026 ``.npz`` against a MARS split."""
    from perfrdiff.metrics.report_react2026 import evaluate_mars, with_quirks

    protocol = with_quirks(protocol, config.tlcc_all_samples, config.no_au_rounding)
    root = resolve_root(config.predictions, config.root)
    results = evaluate_mars(
        config.predictions,
        root,
        split,
        protocol,
        config.appropriate_seed,
        config.nan_policy,
        distributed,
    )
    return results, *_write_report(config, results, distributed)


def _write_report(
    config: EvaluateConfig, results: dict[str, float], distributed: Distributed | None
) -> tuple[Path, Path]:
    """Write the report of ``config`` (by rank 0 alone when processes share the work)."""
    output = config.output or config.predictions.parent
    reports = {report_name(config): results}
    if distributed is not None and not distributed.is_main:
        return output / "metrics.json", output / "metrics.md"
    return write_report(reports, output)


def evaluate_saved_predictions(
    config: EvaluateConfig, distributed: Distributed | None = None
) -> tuple[dict[str, float], Path, Path]:
    """Compute the seven metrics (FRCorr and FRdist on both label sets, MAFRG and PMAFRG) and
    the motion statistics for ``config.predictions``; returns them and the report paths.

    With ``distributed`` (``torchrun`` processes, each reading the predictions and the split)
    the processes share the per-item scores, every one returns the numbers one process
    computes, and rank 0 writes the report."""
    check_evaluate_options(config)
    protocol = resolve_protocol(config.predictions, config.protocol)
    split = resolve_split(config.predictions, config.split)
    if protocol.appropriate == "session-draw":
        return _evaluate_mars(config, protocol, split, distributed)
    predictions = load_predictions(config.predictions)
    root = resolve_root(config.predictions, config.root)
    listener, speaker, neighbours = load_references(root, split)
    check_predictions_match(predictions, listener, config.predictions, split)
    listeners = item_listeners(SplitIndex(root, split).items)  # for the PMAFRG label set
    results = evaluate_all(
        predictions,
        listener,
        speaker,
        neighbours,
        config.n_jobs,
        config.nan_policy,
        True,
        protocol=protocol,
        listeners=listeners,
        distributed=distributed,
    )
    # An explicit stride wins; `or` would have let --stride 0 fall back silently.
    stride = config.stride if config.stride is not None else recorded_stride(config.predictions)
    results.update(motion_report(predictions, listener, config.window, stride, fps=protocol.fps))
    return results, *_write_report(config, results, distributed)
