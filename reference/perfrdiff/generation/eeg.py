"""Listener EEG of a whole MARS split from a trained EEG head, and its EEG scores.

For each dyad (``<session>/<stem>``, its frames ``T`` the shortest of its files) the head reads
the speaker's emotion, 3DMM and audio over the whole sequence and a listener reaction ``(K, T,
25)``: the ``K`` generated samples of that item (each gives its own EEG, so the K predictions
differ as the challenge's S-MSE and FRVar assume) or, without generated reactions, the real one
(``K = 1``: an upper bound of what a perfect generator would give, not a challenge entry).
Windows go through the encoder ``windows_per_pass`` at a time, so memory does not grow with
``T``. Scores: :func:`perfrdiff.metrics.eeg.evaluate_eeg` against the listener's recorded EEG
and its mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from perfrdiff.data.layout import DataError
from perfrdiff.data.react2026 import Dyad, MarsStore
from perfrdiff.metrics.eeg import evaluate_eeg
from perfrdiff.models.eeg_head import EEGHead

#: Windows per encoder pass when predicting a whole sequence.
WINDOWS_PER_PASS = 256


@dataclass
class EegItem:
    """One dyad's inputs and recorded EEG: ``listener (T, 25)``, ``speaker (T, s)``, ``eeg`` and
    ``mask`` ``(T, 14)``."""

    key: str
    listener: np.ndarray
    speaker: np.ndarray
    eeg: np.ndarray
    mask: np.ndarray


def read_item(store: MarsStore, dyad: Dyad) -> EegItem:
    """The whole sequence of ``dyad`` (its ``T`` frames) as the EEG head reads it."""
    frames = store.frames(dyad)
    speaker = np.concatenate(
        [
            store.read("emotion", dyad.speaker, 0, frames),
            store.read("face", dyad.speaker, 0, frames),
            np.asarray(store.audio(dyad.speaker, frames)[:frames], dtype=np.float32),
        ],
        axis=-1,
    )
    eeg, mask = store.eeg(dyad.listener, 0, frames)
    listener = store.read("emotion", dyad.listener, 0, frames)
    return EegItem(f"{dyad.session}/{dyad.stem}", listener, speaker, eeg, mask)


@torch.no_grad()
def predict_eeg(
    head: EEGHead,
    reactions: np.ndarray,
    speaker: np.ndarray,
    windows_per_pass: int = WINDOWS_PER_PASS,
) -> np.ndarray:
    """EEG ``(K, T, 14)`` float32 of ``K`` listener reactions ``(K, T, 25)`` to one speaker
    sequence ``(T, s)`` (the head's device and mode are used as they are).

    Raises:
        ValueError: naming ``reactions`` or ``speaker`` when their shapes do not fit.
    """
    reactions = np.ascontiguousarray(reactions, dtype=np.float32)
    if reactions.ndim != 3 or len(speaker) != reactions.shape[1]:
        raise ValueError(
            f"reactions: expected (K, T, 25) with T = {len(speaker)} (the speaker's frames), got "
            f"{reactions.shape}"
        )
    device = next(head.parameters()).device
    listener = torch.from_numpy(reactions).to(device)
    seen = torch.from_numpy(np.ascontiguousarray(speaker, dtype=np.float32)).to(device)
    out = head(listener, seen.expand(len(listener), -1, -1), None, windows_per_pass)
    return out.float().cpu().numpy()


def predict_split(
    head: EEGHead,
    store: MarsStore,
    reactions: Mapping[str, np.ndarray] | None = None,
    windows_per_pass: int = WINDOWS_PER_PASS,
) -> tuple[list[EegItem], list[np.ndarray]]:
    """Every dyad of ``store`` and its predicted EEG ``(K, T, 14)``, in the store's order.

    Args:
        reactions: ``<session>/<stem>`` -> ``(K, T, 25)`` generated reactions (e.g. an opened
            predictions ``.npz``); ``None``: the real listener reaction of each dyad.

    Raises:
        perfrdiff.data.DataError: a dyad has no reactions, or they are not ``(K, T, 25)``.
    """
    items, predictions = [], []
    for dyad in store.dyads:
        item = read_item(store, dyad)
        if reactions is None:
            listener = item.listener[None]
        elif item.key not in reactions:
            raise DataError(f"reactions: no array for {item.key!r}")
        else:
            listener = np.asarray(reactions[item.key])
            if listener.shape[1:] != item.listener.shape or not np.isfinite(listener).all():
                raise DataError(
                    f"reactions: {item.key}: expected finite (K, {len(item.listener)}, 25), got "
                    f"{listener.shape}"
                )
        items.append(item)
        predictions.append(predict_eeg(head, listener, item.speaker, windows_per_pass))
    return items, predictions


def score_split(items: list[EegItem], predictions: list[np.ndarray]) -> dict[str, float]:
    """The EEG scores of ``predictions`` against the items' recorded EEG (items without EEG
    count only in ``EEG_FRDiv``; ``EEG_items`` says how many have EEG)."""
    return evaluate_eeg(predictions, [i.eeg for i in items], [i.mask for i in items])
