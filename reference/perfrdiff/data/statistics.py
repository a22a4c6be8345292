"""Per-channel statistics of a split's listener emotion (the denoiser's standardisation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perfrdiff.data.index import SplitIndex
from perfrdiff.data.store import ClipStore
from perfrdiff.features import EMOTION_DIM


def listener_emotion_statistics(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)``, each ``(25,)`` float32, over every frame of every listener clip of
    ``split`` (each clip counted once, however many speakers it is paired with).

    Raises:
        ValueError: the split has no listener clip.
    """
    index = SplitIndex(root, split)
    store = ClipStore(root, split, cache_audio=False, capacity=1)
    clips = sorted({pair.listener for pair in index.items})
    if not clips:
        raise ValueError(f"split {split!r} of {root} has no listener clip to take statistics of")
    # Sums over clips one at a time: the whole split need not fit in memory at once.
    total, total_sq, frames = np.zeros(EMOTION_DIM), np.zeros(EMOTION_DIM), 0
    for clip in clips:
        emotion = store.emotion(clip).astype(np.float64)
        total += emotion.sum(0)
        total_sq += (emotion**2).sum(0)
        frames += emotion.shape[0]
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean**2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()
