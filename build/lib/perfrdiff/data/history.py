"""Where a listener's history comes from when a clip is evaluated (PMAFRG).

The history conditions the personalised model on *who* the listener is; it must not contain the
reaction being scored. :class:`HistoryPicker` applies one deterministic rule:

1. another clip of the same listener in the evaluated split (the first in sorted order);
2. else a clip of the same listener in another split, trying ``train``, ``val``, ``test`` in that
   order (the first in sorted order within a split);
3. else, only when the caller allows it (``allow_same_clip=True``), the evaluated clip itself;
   otherwise :class:`~perfrdiff.data.DataError` names every listener without another clip.

A listener is identified by its ``site/session/role`` path (:func:`~perfrdiff.data.person_of`),
the same in every split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from perfrdiff.data.index import SplitIndex
from perfrdiff.data.layout import SPLITS, DataError, person_of

SAME_SPLIT, OTHER_SPLIT, SAME_CLIP = "same-split", "other-split", "same-clip"
HISTORY_RULE = (
    "first frames of another clip of the same listener: same split first, then train, val, "
    "test; the evaluated clip itself only when allowed"
)


@dataclass(frozen=True)
class HistorySource:
    """The clip a history is read from: ``split``/``clip``, and ``kind`` (``"same-split"``,
    ``"other-split"`` or ``"same-clip"``, the last meaning the evaluated clip itself)."""

    split: str
    clip: str
    kind: str


class HistoryPicker:
    """Chooses the history clip of each evaluated listener clip of ``split`` (rule above).

    Args:
        root: dataset root.
        split: the evaluated split.
        allow_same_clip: use the evaluated clip when its listener has no other clip anywhere.
    """

    def __init__(self, root: str | Path, split: str, allow_same_clip: bool = False) -> None:
        self.root = Path(root)
        self.split = split
        self.allow_same_clip = allow_same_clip
        self._indexes: dict[str, SplitIndex | None] = {}

    def index(self, split: str) -> SplitIndex | None:
        """The :class:`SplitIndex` of ``split`` (read once), or ``None`` if the dataset lacks it."""
        if split not in self._indexes:
            try:
                self._indexes[split] = SplitIndex(self.root, split)
            except FileNotFoundError:
                self._indexes[split] = None  # a dataset may lack a split
        return self._indexes[split]

    def _other_clip(self, clip: str) -> HistorySource | None:
        own = self.index(self.split)
        others = own.other_clips(clip) if own is not None else []
        if others:
            return HistorySource(self.split, others[0], SAME_SPLIT)
        listener = person_of(clip)
        for split in (s for s in SPLITS if s != self.split):
            index = self.index(split)
            if index is not None and index.clips_of.get(listener):
                return HistorySource(split, index.clips_of[listener][0], OTHER_SPLIT)
        return None

    def __call__(self, clip: str) -> HistorySource:
        """The history source of listener clip ``clip`` of the evaluated split.

        Raises:
            DataError: the listener has no other clip and ``allow_same_clip`` is False.
        """
        return self.pick([clip])[0]

    def pick(self, clips: Iterable[str]) -> list[HistorySource]:
        """:meth:`__call__` for many clips; the error names every listener without another clip."""
        clips = list(clips)
        sources = [self._other_clip(clip) for clip in clips]
        missing = sorted({person_of(c) for c, s in zip(clips, sources, strict=True) if s is None})
        if missing and not self.allow_same_clip:
            raise DataError(
                f"{self.root}: listener(s) {missing} of split {self.split!r} have no other clip "
                "in any split, so their history would be the evaluated reaction itself; pass "
                "allow_same_clip=True (config data.allow_same_clip_history=true) to use it anyway"
            )
        return [
            source if source is not None else HistorySource(self.split, clip, SAME_CLIP)
            for clip, source in zip(clips, sources, strict=True)
        ]


def history_summary(sources: Iterable[HistorySource], allow_same_clip: bool) -> dict:
    """What a run records about its histories: the rule and how many items took each path."""
    counts = Counter(source.kind for source in sources)
    return {
        "rule": HISTORY_RULE,
        "allow_same_clip": allow_same_clip,
        "items": {kind: counts.get(kind, 0) for kind in (SAME_SPLIT, OTHER_SPLIT, SAME_CLIP)},
    }
