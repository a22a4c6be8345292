"""Per-clip access to the three modalities of a split, validated and memoised."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perfrdiff.data.audio import CACHE_DIR, audio_features
from perfrdiff.data.index import SplitIndex
from perfrdiff.data.layout import clip_file, read_emotion, read_face


class ClipStore:
    """Reads ``(750, d)`` float32 arrays of a split's clips; keeps the last ``capacity`` in memory.

    Audio features go through the on-disk cache ``{root}/{split}/Audio_features`` unless
    ``cache_audio`` is False.
    """

    def __init__(
        self, root: str | Path, split: str, cache_audio: bool = True, capacity: int = 512
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.cache_audio = cache_audio
        self.capacity = capacity
        self._memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def _get(self, modality: str, clip: str) -> np.ndarray:
        key = (modality, clip)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = clip_file(self.root, self.split, modality, clip)
        if modality == "emotion":
            array = read_emotion(path)
        elif modality == "face":
            array = read_face(path)
        else:
            cache = self.root / self.split / CACHE_DIR / f"{clip}.npz"
            array = audio_features(path, cache if self.cache_audio else None)
        self._memory[key] = array
        if len(self._memory) > self.capacity:
            self._memory.popitem(last=False)
        return array

    def emotion(self, clip: str) -> np.ndarray:
        """``(750, 25)`` emotion of ``clip``."""
        return self._get("emotion", clip)

    def face(self, clip: str) -> np.ndarray:
        """``(750, 58)`` 3DMM coefficients of ``clip``."""
        return self._get("face", clip)

    def audio(self, clip: str) -> np.ndarray:
        """``(750, 78)`` MFCC features of ``clip``'s audio."""
        return self._get("audio", clip)


def warm_audio_cache(root: str | Path, split: str, progress: bool = True) -> int:
    """Compute and cache the audio features of every clip of a split; returns the clip count.

    Run once before training so that DataLoader workers only read ``.npz`` files.
    """
    index = SplitIndex(root, split)
    store = ClipStore(root, split, capacity=0)
    clips = sorted({clip for pair in index.items for clip in (pair.speaker, pair.listener)})
    for clip in tqdm(clips, desc=f"audio features {split}", disable=not progress):
        store.audio(clip)
    return len(clips)
