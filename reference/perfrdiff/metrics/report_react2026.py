"""Score saved REACT 2026 predictions against a MARS-layout split.

Predictions are a ``.npz`` with one array ``(K, T, 25)`` per test item, keyed
``<session>/<stem>`` (the dyad's session folder and file stem), ``T`` the item's frames.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from perfrdiff.data import DataError, MissingFileError
from perfrdiff.data.react2026 import Dyad, MarsStore
from perfrdiff.distributed import Distributed
from perfrdiff.metrics.react2026 import (
    CHALLENGE_SEED,
    appropriate_sets,
    evaluate_sequences,
    predictions_by_item,
)
from perfrdiff.protocol import Protocol


def item_key(dyad: Dyad) -> str:
    """A dyad's key in a predictions archive: ``<session>/<stem>``."""
    return f"{dyad.session}/{dyad.stem}"


def load_sequence_predictions(path: Path, keys: list[str]) -> list[np.ndarray]:
    """The arrays of ``keys`` from a predictions ``.npz``, each ``(K, T, 25)``.

    Raises:
        DataError: naming the file: missing, unreadable, an item without its array, or an
            array that is not ``(K, T, 25)``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: predictions file is missing")
    if path.suffix != ".npz":
        raise DataError(f"{path}: REACT 2026 predictions are a .npz with one array per item")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = predictions_by_item(archive, keys)
    except KeyError as error:
        raise DataError(f"{path}: {error.args[0]}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error
    for key, array in zip(keys, arrays, strict=True):
        if array.ndim != 3 or array.shape[-1] != 25 or not np.isfinite(array).all():
            raise DataError(f"{path}: {key}: expected finite (K, T, 25), got {array.shape}")
    return arrays


def evaluate_mars(
    path: Path,
    root: Path,
    split: str,
    protocol: Protocol,
    seed: int = CHALLENGE_SEED,
    nan_policy: Literal["ignore", "challenge"] = "ignore",
    distributed: Distributed | None = None,
) -> dict[str, float]:
    """The REACT 2026 metrics of the predictions in ``path`` against ``split`` of the MARS
    dataset at ``root``: the protocol's appropriate-set draw (``seed``), its output
    post-processing applied to the predictions, its metric variant. With ``distributed``, the
    ``torchrun`` processes share the items (every one draws the same sets: one seeded draw
    over all items) and each returns the numbers one process computes."""
    store = MarsStore(root, split, fps=protocol.fps, audio="none", personality=False)
    dyads = store.dyads
    predictions = load_sequence_predictions(path, [item_key(d) for d in dyads])
    frames = [store.frames(d) for d in dyads]
    for dyad, array, t in zip(dyads, predictions, frames, strict=True):
        if array.shape[1] != t:
            raise DataError(f"{path}: {item_key(dyad)}: expected {t} frames, got {array.shape[1]}")
    listeners = [
        store.read("emotion", d.listener, 0, t) for d, t in zip(dyads, frames, strict=True)
    ]
    speakers = [store.read("emotion", d.speaker, 0, t) for d, t in zip(dyads, frames, strict=True)]
    sets = appropriate_sets([d.session for d in dyads], protocol.appropriate_others, seed)
    return evaluate_sequences(
        [protocol.finish(p) for p in predictions],
        listeners,
        speakers,
        sets,
        progress=True,
        distributed=distributed,
        max_lag=protocol.metrics.tlcc_max_lag,
        first_sample_only=protocol.metrics.tlcc_first_sample_only,
        nan_policy=nan_policy,
    )


def with_quirks(protocol: Protocol, tlcc_all_samples: bool, no_au_rounding: bool) -> Protocol:
    """``protocol`` with the challenge's quirks switched off as asked."""
    if tlcc_all_samples:
        metrics = dataclasses.replace(protocol.metrics, tlcc_first_sample_only=False)
        protocol = dataclasses.replace(protocol, metrics=metrics)
    if no_au_rounding:
        protocol = dataclasses.replace(protocol, round_aus=False)
    return protocol
