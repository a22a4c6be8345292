"""What the viewer shows for one item, read from ``generate``'s output and the dataset's files.

``perfrdiff generate`` writes ``<out>/<mode>/predictions.npy`` of shape ``(n, k, t, 25)`` in the
split's mirrored item order, with a ``predictions.json`` sidecar naming the split (and the run
directory). The viewer takes an item's ``k`` samples from every mode found there, and from the
dataset the item's speaker audio (``.wav``), speaker emotion and real listener emotion
(``.csv``). Nothing is recomputed: metrics are shown only where ``perfrdiff evaluate`` (or the
demo) wrote a ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from perfrdiff.data import (
    ClipPair,
    DataError,
    MissingFileError,
    SplitIndex,
    clip_file,
    read_emotion,
)
from perfrdiff.data.audio import read_wave
from perfrdiff.features import EMOTION_DIM, FPS
from perfrdiff.generation.reactions import MODES
from perfrdiff.metrics.evaluate import METRICS
from perfrdiff.metrics.report import read_sidecar

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.npy"


@dataclass
class ViewerItem:
    """One evaluation item: ``speaker``, ``listener`` ``(t, 25)`` and per mode ``(k, t, 25)``."""

    index: int
    split: str
    speaker_clip: str
    listener_clip: str
    speaker: np.ndarray
    listener: np.ndarray
    generated: dict[str, np.ndarray]
    fps: float
    audio: np.ndarray | None = None  # (samples,) mono float32
    sample_rate: int | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.listener.shape[0]


def find_modes(generate_dir: str | Path) -> dict[str, Path]:
    """``mode -> predictions.npy`` under ``generate_dir`` (generic, personalised, then others).

    Raises:
        MissingFileError: no ``<mode>/predictions.npy`` there.
    """
    generate_dir = Path(generate_dir)
    found = {p.parent.name: p for p in sorted(generate_dir.glob(f"*/{PREDICTIONS_FILE}"))}
    if not found:
        raise MissingFileError(
            f"{generate_dir}: no <mode>/{PREDICTIONS_FILE} here; pass the folder that "
            "`perfrdiff generate --out` wrote (default: <run-dir>/generate)"
        )
    order = [m for m in MODES if m in found] + sorted(m for m in found if m not in MODES)
    return {mode: found[mode] for mode in order}


def open_predictions(path: Path) -> np.ndarray:
    """Memory-map ``(n, k, t, 25)`` predictions (a REACT test split is ~1 GB: read items only).

    Raises:
        DataError: naming the file, when it is not a readable 4-d ``.npy`` of 25 channels.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from error
    if array.ndim != 4 or array.shape[-1] != EMOTION_DIM:
        raise DataError(f"{path}: expected predictions (n, k, t, 25), got {array.shape}")
    return array


def recorded_split(paths: dict[str, Path], split: str | None) -> str:
    """The split the predictions were generated for (their sidecars must agree with ``split``).

    Raises:
        ValueError: two modes, or ``split`` and a sidecar, name different splits.
    """
    recorded = {mode: read_sidecar(path).get("split") for mode, path in paths.items()}
    named = {s for s in recorded.values() if s is not None}
    if len(named) > 1:
        raise ValueError(f"the predictions' sidecars name different splits: {recorded}")
    if split is not None and named and split not in named:
        raise ValueError(
            f"split: {split!r} was asked for, but the predictions are for {named.pop()!r} "
            "(their .json sidecars); leave --split out"
        )
    return split or (named.pop() if named else "test")


def recorded_fps(paths: dict[str, Path]) -> float:
    """Frame rate recorded in the sidecars (``fps``), else REACT 2024's 25."""
    rates = {read_sidecar(path).get("fps") for path in paths.values()} - {None}
    if len(rates) > 1:
        raise ValueError(f"the predictions' sidecars record different frame rates: {rates}")
    return float(rates.pop()) if rates else float(FPS)


def default_data_root(paths: dict[str, Path]) -> Path:
    """``data.root`` of the run that generated the predictions (sidecar ``run_dir``).

    Raises:
        ValueError: the sidecars name no run, or its ``config.yaml`` has no ``data.root``.
    """
    import yaml

    for path in paths.values():
        run_dir = read_sidecar(path).get("run_dir")
        config = Path(run_dir) / "config.yaml" if run_dir else None
        if config is not None and config.is_file():
            root = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("root")
            if root:
                return Path(root)
    raise ValueError(
        "data_root: the predictions' sidecars name no run whose config.yaml gives data.root; "
        "pass --data-root"
    )


def read_metrics(generate_dir: Path, modes: dict[str, Path]) -> dict[str, dict[str, float]]:
    """The seven REACT metrics of the whole split, as already written beside the predictions:
    ``<mode>/metrics.json`` (``perfrdiff evaluate``) and the demo's ``results/metrics.json``
    (``<out>/run/generate`` beside ``<out>/results``; an older layout put it at
    ``../results``); row label -> metric -> value."""
    found: dict[str, dict[str, float]] = {}
    candidates = [(m, p.parent / "metrics.json") for m, p in modes.items()]
    for folder in (generate_dir.parent.parent, generate_dir.parent):
        candidates.append((None, folder / "results" / "metrics.json"))
    for mode, path in candidates:
        if not path.is_file():
            continue
        try:
            rows = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not readable JSON ({error})") from None
        for name, values in rows.items():
            label = mode if mode is not None and len(rows) == 1 else name
            found.setdefault(label, {k: float(values[k]) for k in METRICS if k in values})
    return found


def load_items(
    generate_dir: str | Path,
    items: list[int],
    data_root: str | Path | None = None,
    split: str | None = None,
    audio: bool = True,
) -> list[ViewerItem]:
    """Read ``items`` (mirrored item indices of the split) for the viewer.

    ``data_root`` defaults to the generating run's (:func:`default_data_root`), ``split`` to the
    predictions' own; ``audio=False`` leaves the speaker's audio out.

    Raises:
        ValueError: an item index outside the predictions, or predictions that do not fit the
            split's real reactions.
        MissingFileError / DataError: a missing or damaged file, named.
    """
    generate_dir = Path(generate_dir)
    paths = find_modes(generate_dir)
    split = recorded_split(paths, split)
    root = Path(data_root) if data_root is not None else default_data_root(paths)
    index = SplitIndex(root, split)
    arrays = {mode: open_predictions(path) for mode, path in paths.items()}
    available = min(len(index), *(a.shape[0] for a in arrays.values()))
    for item in items:
        if not 0 <= item < available:
            raise ValueError(
                f"items: item {item} is outside the {available} items that every mode's "
                f"predictions hold for split {split!r}"
            )
    metrics, fps = read_metrics(generate_dir, paths), recorded_fps(paths)
    loaded = []
    for item in items:
        generated = {mode: np.asarray(a[item], dtype=np.float32) for mode, a in arrays.items()}
        loaded.append(_read_item(root, split, index.items[item], item, generated, audio))
        _check_frames(loaded[-1], paths)
        loaded[-1].fps, loaded[-1].metrics = fps, metrics
    return loaded


def _read_item(
    root: Path, split: str, pair: ClipPair, item: int, generated: dict, audio: bool
) -> ViewerItem:
    def emotion(clip: str) -> np.ndarray:
        return read_emotion(clip_file(root, split, "emotion", clip))

    wave, rate = read_wave(clip_file(root, split, "audio", pair.speaker)) if audio else (None, None)
    return ViewerItem(
        index=item,
        split=split,
        speaker_clip=pair.speaker,
        listener_clip=pair.listener,
        speaker=emotion(pair.speaker),
        listener=emotion(pair.listener),
        generated=generated,
        fps=float(FPS),
        audio=wave,
        sample_rate=rate,
    )


def _check_frames(item: ViewerItem, paths: dict[str, Path]) -> None:
    for mode, samples in item.generated.items():
        if samples.shape[1] != item.frames:
            raise ValueError(
                f"{paths[mode]}: item {item.index} has {samples.shape[1]} frames, the real "
                f"listener {item.frames}"
            )
