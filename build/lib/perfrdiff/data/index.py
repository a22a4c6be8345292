"""Split index: the mirrored items of one split, listener identities and appropriateness."""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from pathlib import Path

import numpy as np

from perfrdiff.data.layout import ClipPair, person_of, read_neighbour_matrix, read_split_csv


class SplitIndex:
    """Everything the datasets need to know about ``{root}/{split}.csv`` without reading data files.

    Attributes:
        items: ``n`` mirrored :class:`ClipPair` (original rows, then swapped rows).
        listeners: sorted listener identities (``site/session/role``) of the split.
        listener_ids: ``(n,)`` int64, dense id of each item's listener (index into ``listeners``).
        clips_of: listener identity -> its distinct clip paths, sorted.
        partner_of: listener clip -> the clip recorded with it, of the other person of the
            conversation (the speaker of the first item with that listener): what the partner
            did at the same time.
    """

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        self.items: list[ClipPair] = read_split_csv(self.root, split)
        self.listeners: list[str] = sorted({person_of(p.listener) for p in self.items})
        dense = {name: i for i, name in enumerate(self.listeners)}
        self.listener_ids = np.array(
            [dense[person_of(p.listener)] for p in self.items], dtype=np.int64
        )
        clips: dict[str, set[str]] = defaultdict(set)
        for pair in self.items:
            clips[person_of(pair.listener)].add(pair.listener)
        self.clips_of: dict[str, list[str]] = {k: sorted(v) for k, v in clips.items()}
        self.partner_of: dict[str, str] = {}
        for pair in self.items:
            self.partner_of.setdefault(pair.listener, pair.speaker)

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def neighbours(self) -> np.ndarray:
        """Boolean ``(n, n)`` appropriateness matrix of the split (read on first use)."""
        return read_neighbour_matrix(self.root, self.split, len(self.items))

    def appropriate(self, item: int) -> np.ndarray:
        """Indices ``(m,)`` int64 of the items whose real reaction suits speaker ``item``."""
        return np.flatnonzero(self.neighbours[item]).astype(np.int64)

    def other_clips(self, clip: str) -> list[str]:
        """The same listener's clips other than ``clip`` (empty for a single-clip listener)."""
        return [c for c in self.clips_of[person_of(clip)] if c != clip]
