"""Per-channel statistics of a split's listener emotion: the denoiser's standardisation, and how
far a listener's level in one clip carries to another (the fitted listener prior); and of its
speaker frames (the speaker encoder's standardisation)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from perfrdiff.data.index import SplitIndex
from perfrdiff.data.store import ClipStore


def _clips_in_role(root: str | Path, split: str, role: str) -> tuple[ClipStore, list[str]]:
    """A one-clip-cache store of ``split`` and its distinct ``role`` clips, sorted.

    Raises:
        ValueError: the split has no such clip.
    """
    index = SplitIndex(root, split)
    clips = sorted({getattr(pair, role) for pair in index.items})
    if not clips:
        raise ValueError(f"split {split!r} of {root} has no {role} clip to take statistics of")
    return ClipStore(root, split, cache_audio=False, capacity=1), clips


def listener_emotion_statistics(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)``, each ``(25,)`` float32, over every frame of every listener clip of
    ``split`` (each clip counted once, however many speakers it is paired with).

    Raises:
        ValueError: the split has no listener clip.
    """
    store, clips = _clips_in_role(root, split, "listener")
    return frame_moments(store.emotion(clip) for clip in clips)


def frame_moments(sequences: Iterable[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` ``(c,)`` float32 over every row of ``(t, c)`` ``sequences``, summed one
    sequence at a time (the whole split need not fit in memory).

    Raises:
        ValueError: no rows, or sequences of different widths.
    """
    total = square = None
    rows = 0
    for sequence in sequences:
        block = np.asarray(sequence, dtype=np.float64)
        if total is None:
            total, square = np.zeros(block.shape[1]), np.zeros(block.shape[1])
        elif block.shape[1] != total.shape[0]:
            raise ValueError(f"sequences: widths differ, {total.shape[0]} and {block.shape[1]}")
        total += block.sum(0)
        square += (block**2).sum(0)
        rows += block.shape[0]
    if not rows:
        raise ValueError("sequences: no frame to take statistics of")
    mean = total / rows
    std = np.sqrt(np.maximum(square / rows - mean**2, 0.0))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def speaker_frame_statistics(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` ``(78 + 58 + 25,)`` of the speaker frames of ``split`` (audio, 3DMM and
    emotion, in that order), each speaker clip counted once.

    Raises:
        ValueError: the split has no speaker clip.
    """
    store, clips = _clips_in_role(root, split, "speaker")
    return frame_moments(
        np.concatenate([store.audio(c), store.face(c), store.emotion(c)], axis=1) for c in clips
    )


def listener_level_pairs(
    root: str | Path, split: str, frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histories and the levels they should predict, over the listeners of ``split`` with more
    than one clip: for every ordered pair of distinct clips ``(i, j)`` of one listener, the mean
    of clip ``i``'s first ``frames`` frames (a history, taken as at evaluation) and the mean of
    all of clip ``j`` (the level of another conversation).

    Returns:
        ``(history_means, clip_means)``, each ``(p, 25)`` float64, ``p`` = number of pairs.

    Raises:
        ValueError: ``frames`` < 1, or no listener of ``split`` has two clips.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    index = SplitIndex(root, split)
    store = ClipStore(root, split, cache_audio=False, capacity=1)
    histories, levels = [], []
    for clips in index.clips_of.values():
        if len(clips) < 2:
            continue
        emotion = [store.emotion(clip).astype(np.float64) for clip in clips]
        heads = [e[:frames].mean(0) for e in emotion]
        means = [e.mean(0) for e in emotion]
        for i, head in enumerate(heads):
            for j, mean in enumerate(means):
                if i != j:
                    histories.append(head)
                    levels.append(mean)
    if not histories:
        raise ValueError(
            f"split {split!r} of {root} has no listener with two clips: a history's carry-over "
            "to another clip cannot be fitted"
        )
    return torch.from_numpy(np.stack(histories)), torch.from_numpy(np.stack(levels))
