"""PyTorch datasets for the three PerFRDiff stages, on :class:`SplitIndex` and :class:`ClipStore`.

* :class:`WindowDataset`: training windows (speaker past -> listener reaction) for the denoiser and
  the shift generator.
* :class:`ClipDataset`: full clips with every appropriate real reaction, for evaluation.
* :class:`ListenerClipDataset`: listener behaviour segments for the contrastive style encoder
  (batched by :class:`~perfrdiff.data.samplers.ListenerBatchSampler`, several segments per
  listener in every batch).

Randomness: random draws use a NumPy generator seeded from ``(seed, torch.initial_seed())``, so they
are reproducible after ``torch.manual_seed`` and differ between DataLoader workers and epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from perfrdiff.data.history import HistoryPicker, history_summary
from perfrdiff.data.index import SplitIndex
from perfrdiff.data.layout import CLIP_FRAMES, DataError, person_of
from perfrdiff.data.store import ClipStore
from perfrdiff.features import HISTORY_DIMS
from perfrdiff.protocol import REACT2024

log = logging.getLogger(__name__)


class _Seeded:
    """Lazily (re)creates a NumPy generator whenever the process's torch seed changes."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._key: int | None = None
        self._rng = np.random.default_rng(seed)

    def rng(self) -> np.random.Generator:
        key = torch.initial_seed()
        if key != self._key:
            self._key = key
            self._rng = np.random.default_rng([self.seed, key % 2**63])
        return self._rng


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def history_features(
    store: ClipStore, clip: str, partner: str, style_input: str, span: slice = slice(None)
) -> np.ndarray:
    """``(f, c)`` frames ``span`` of listener clip ``clip`` as a ``style.input`` history.

    Args:
        store: the clip store of ``clip``'s split.
        clip: the listener clip.
        partner: the clip recorded with it (:attr:`SplitIndex.partner_of`), read for
            ``"dyadic"`` only.
        style_input: ``"face"`` (c = 58), ``"emotion"`` (c = 25) or ``"dyadic"`` (c = 50: the
            listener's emotion, then the partner's at the same frames).
        span: the frames.

    Raises:
        ValueError: ``style_input`` is unknown.
    """
    if style_input == "face":
        return store.face(clip)[span]
    if style_input == "emotion":
        return store.emotion(clip)[span]
    if style_input == "dyadic":
        return np.concatenate([store.emotion(clip)[span], store.emotion(partner)[span]], axis=1)
    raise ValueError(f"style_input must be one of {sorted(HISTORY_DIMS)}, got {style_input!r}")


def _history_tensors(
    store: ClipStore, clip: str, partner: str, span: slice
) -> dict[str, torch.Tensor]:
    """``history_<input>`` for every ``style.input``: ``face (h, 58)``, ``emotion (h, 25)``,
    ``dyadic (h, 50)`` of ``clip`` over ``span``."""
    return {
        f"history_{kind}": _tensor(history_features(store, clip, partner, kind, span))
        for kind in HISTORY_DIMS
    }


def _segment_away_from(rng: np.random.Generator, length: int, avoid: tuple[int, int]) -> int:
    """Start of a ``length``-frame segment of a clip not overlapping ``[avoid[0], avoid[1])``.

    When no such segment exists, the start farthest from the avoided span is used.
    """
    starts = np.arange(CLIP_FRAMES - length + 1)
    free = starts[(starts + length <= avoid[0]) | (starts >= avoid[1])]
    if free.size:
        return int(rng.choice(free))
    centre = (avoid[0] + avoid[1]) / 2
    return int(starts[np.argmax(np.abs(starts + length / 2 - centre))])


class WindowDataset(Dataset):
    """Random ``w``-frame listener windows with the speaker's behaviour of the ``w`` frames before.

    Item ``k`` is mirrored item ``k`` of the split with a window start ``s`` drawn from
    ``[0, 750 - w]`` (fixed per item when ``random_start`` is False, for validation). Online
    setting with a 2 s delay: the listener window ``[s, s + w)`` is conditioned on speaker frames
    ``[s - w, s)``.

    Item keys (float32 unless stated):

    - ``speaker_audio (w, 78)``, ``speaker_face (w, 58)``, ``speaker_emotion (w, 25)``: speaker
      frames ``[s - w, s)``;
    - ``listener_emotion (w, 25)``: target frames ``[s, s + w)``;
    - ``listener_prev_emotion (w, 25)``: the listener's frames ``[s - w, s)``;
    - ``has_past`` bool scalar: False when ``s < w``; then the four past tensors are all zeros
      (padding at the clip start, not a substitute for bad data);
    - ``listener_id`` int64 scalar (dense over the split's listeners);
    - ``history_face (h, 58)``, ``history_emotion (h, 25)``, ``history_dyadic (h, 50)`` (that
      emotion, then the conversation partner's at the same frames): ``h = history_frames``
      frames of the same listener from a different clip when one exists, else from a part of
      the same clip that does not overlap ``[s - w, s + w)``;
    - ``start`` int64 scalar ``s``.

    With ``history_needed`` (a stage that reads the history), the window of a listener with a
    single clip is drawn where such a part exists, and when none can (``history_frames > 750 -
    w``) the listener's items are left out with a warning: their history would contain the
    target. Without it, items and draws are as described above (the history is not read).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        window: int = REACT2024.window,
        history_frames: int = 250,
        seed: int = 0,
        random_start: bool = True,
        cache_audio: bool = True,
        history_needed: bool = False,
    ) -> None:
        if not 0 < window <= CLIP_FRAMES:
            raise ValueError(f"window: expected in [1, {CLIP_FRAMES}], got {window}")
        if not 0 < history_frames <= CLIP_FRAMES:
            raise ValueError(
                f"history_frames: expected in [1, {CLIP_FRAMES}], got {history_frames}"
            )
        self.index = SplitIndex(root, split)
        self.store = ClipStore(root, split, cache_audio=cache_audio)
        self.window = window
        self.history_frames = history_frames
        self.seed = seed
        self.random_start = random_start
        self.history_needed = history_needed
        self._seeded = _Seeded(seed)
        #: The mirrored items this dataset serves (all, unless a history cannot avoid a target).
        self.items = list(range(len(self.index)))
        if history_needed and history_frames > CLIP_FRAMES - window:
            self.items = self._items_with_separate_history(split)

    def _items_with_separate_history(self, split: str) -> list[int]:
        single = [
            i for i, p in enumerate(self.index.items) if not self.index.other_clips(p.listener)
        ]
        if not single:
            return self.items
        people = sorted({person_of(self.index.items[i].listener) for i in single})
        problem = (
            f"data.history_frames = {self.history_frames} with window {self.window} leaves no "
            f"part of a clip outside the target window, and {len(people)} listener(s) of "
            f"{split} have a single clip ({', '.join(people[:3])}{', ...' * (len(people) > 3)})"
        )
        kept = [i for i in self.items if i not in set(single)]
        if not kept:
            raise DataError(f"{self.index.root}: {problem}: no item is left to train on")
        log.warning("%s: their %d items are left out (a history would hold the target)", problem,
                    len(single))  # fmt: skip
        return kept

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, item: int) -> np.random.Generator:
        if self.random_start:
            return self._seeded.rng()
        return np.random.default_rng([self.seed, item])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        item = self.items[position]
        pair = self.index.items[item]
        rng = self._rng(item)
        w = self.window
        start = self._start(pair.listener, rng)
        has_past = start >= w
        past = slice(start - w, start)

        def past_of(array: np.ndarray) -> torch.Tensor:
            if not has_past:
                return torch.zeros(w, array.shape[1])
            return _tensor(array[past])

        listener_emotion = self.store.emotion(pair.listener)
        return {
            "speaker_audio": past_of(self.store.audio(pair.speaker)),
            "speaker_face": past_of(self.store.face(pair.speaker)),
            "speaker_emotion": past_of(self.store.emotion(pair.speaker)),
            "listener_emotion": _tensor(listener_emotion[start : start + w]),
            "listener_prev_emotion": past_of(listener_emotion),
            "has_past": torch.tensor(has_past),
            "listener_id": torch.tensor(self.index.listener_ids[item]),
            **self._history(pair.listener, start, rng),
            "start": torch.tensor(start, dtype=torch.int64),
        }

    def _start(self, clip: str, rng: np.random.Generator) -> int:
        """The window start ``s``; for a single-clip listener whose history is read, one that
        leaves ``history_frames`` of the clip outside ``[s - w, s + w)``."""
        w, h = self.window, self.history_frames
        if not (self.history_needed and not self.index.other_clips(clip)):
            return int(rng.integers(0, CLIP_FRAMES - w + 1))
        starts = np.arange(CLIP_FRAMES - w + 1)
        return int(rng.choice(starts[(starts - w >= h) | (starts + w + h <= CLIP_FRAMES)]))

    def _history(self, clip: str, start: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        h = self.history_frames
        others = self.index.other_clips(clip)
        if others:
            source = others[int(rng.integers(len(others)))]
            begin = int(rng.integers(0, CLIP_FRAMES - h + 1))
        else:
            source = clip
            begin = _segment_away_from(rng, h, (start - self.window, start + self.window))
        span = slice(begin, begin + h)
        return _history_tensors(self.store, source, self.index.partner_of[source], span)


class ClipDataset(Dataset):
    """Full clips of a split, in mirrored order, for evaluation.

    Item keys (float32 unless stated): ``speaker_audio (750, 78)``, ``speaker_face (750, 58)``,
    ``speaker_emotion (750, 25)``, ``listener_emotion (750, 25)`` (the real reaction),
    ``listener_face (750, 58)``, ``listener_id`` int64 scalar, ``history_face (h, 58)``,
    ``history_emotion (h, 25)`` and ``history_dyadic (h, 50)`` (the first ``h`` frames of the clip
    :class:`~perfrdiff.data.history.HistoryPicker` chooses: another clip of the same listener,
    never the evaluated one unless ``allow_same_clip_history``), ``appropriate (m,)`` int64
    indices of the items whose real reaction is appropriate for this speaker, and ``index`` int64
    scalar. Use :func:`collate_clips` in a DataLoader (``appropriate`` has a different length per
    item).

    With ``histories=False`` (generic generation, which reads no history) the items hold no
    ``history_*`` keys and no listener needs another clip.

    Attributes:
        history_sources: the :class:`~perfrdiff.data.history.HistorySource` of every item
            (empty without histories).

    Raises:
        DataError: with histories, a listener has no other clip in any split and
            ``allow_same_clip_history`` is False.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        history_frames: int = 250,
        cache_audio: bool = True,
        allow_same_clip_history: bool = False,
        histories: bool = True,
    ) -> None:
        if not 0 < history_frames <= CLIP_FRAMES:
            raise ValueError(
                f"history_frames: expected in [1, {CLIP_FRAMES}], got {history_frames}"
            )
        self.root = Path(root)
        self.index = SplitIndex(root, split)
        self.store = ClipStore(root, split, cache_audio=cache_audio)
        self.history_frames = history_frames
        self.allow_same_clip_history = allow_same_clip_history
        self._picker = HistoryPicker(root, split, allow_same_clip_history)
        self.history_sources = (
            self._picker.pick(pair.listener for pair in self.index.items) if histories else []
        )
        self._stores = {split: self.store}
        self._cache_audio = cache_audio

    def __len__(self) -> int:
        return len(self.index)

    def history_summary(self) -> dict:
        """The history rule and how many items took each path (recorded beside results)."""
        return history_summary(self.history_sources, self.allow_same_clip_history)

    def _history_store(self, split: str) -> ClipStore:
        if split not in self._stores:
            self._stores[split] = ClipStore(self.root, split, cache_audio=self._cache_audio)
        return self._stores[split]

    def _history(self, item: int) -> dict[str, torch.Tensor]:
        if not self.history_sources:
            return {}
        source = self.history_sources[item]
        partner = self._picker.index(source.split).partner_of[source.clip]
        span = slice(0, self.history_frames)
        return _history_tensors(self._history_store(source.split), source.clip, partner, span)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        pair = self.index.items[item]
        history = self._history(item)
        return {
            "speaker_audio": _tensor(self.store.audio(pair.speaker)),
            "speaker_face": _tensor(self.store.face(pair.speaker)),
            "speaker_emotion": _tensor(self.store.emotion(pair.speaker)),
            "listener_emotion": _tensor(self.store.emotion(pair.listener)),
            "listener_face": _tensor(self.store.face(pair.listener)),
            "listener_id": torch.tensor(self.index.listener_ids[item]),
            **history,
            "appropriate": torch.from_numpy(self.index.appropriate(item)),
            "index": torch.tensor(item, dtype=torch.int64),
        }


def collate_clips(items: Sequence[dict[str, torch.Tensor]]) -> dict:
    """Stack :class:`ClipDataset` items; ``appropriate`` stays a list of ``(m_b,)`` tensors."""
    batch: dict = {
        key: torch.stack([item[key] for item in items]) for key in items[0] if key != "appropriate"
    }
    batch["appropriate"] = [item["appropriate"] for item in items]
    return batch


class ListenerClipDataset(Dataset):
    """Segments of listeners' behaviour labelled by listener, for the contrastive style encoder.

    There are two items per distinct listener clip: item ``2 c + half`` draws a random
    ``frames``-long segment from half ``half`` of clip ``c`` (from anywhere in the clip when
    ``frames > 375``), so the two items of a single-clip listener are different segments.

    Item keys: ``face (frames, 58)``, ``emotion (frames, 25)``, ``dyadic (frames, 50)`` (that
    emotion, then the conversation partner's at the same frames) float32; ``label`` int64 scalar,
    the same dense listener id as :class:`WindowDataset`'s ``listener_id``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        frames: int = 250,
        seed: int = 0,
        cache_audio: bool = True,
    ) -> None:
        if not 0 < frames <= CLIP_FRAMES:
            raise ValueError(f"frames: expected in [1, {CLIP_FRAMES}], got {frames}")
        self.index = SplitIndex(root, split)
        self.store = ClipStore(root, split, cache_audio=cache_audio)
        self.frames = frames
        dense = {name: i for i, name in enumerate(self.index.listeners)}
        self.clips = sorted({p.listener for p in self.index.items})
        self.labels = np.array([dense[person_of(c)] for c in self.clips], dtype=np.int64)
        self._seeded = _Seeded(seed)

    def __len__(self) -> int:
        return 2 * len(self.clips)

    def items_of_listener(self) -> dict[int, list[int]]:
        """Listener label -> its item indices (two per clip)."""
        result: dict[int, list[int]] = {}
        for c, label in enumerate(self.labels):
            result.setdefault(int(label), []).extend((2 * c, 2 * c + 1))
        return result

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        clip_number, half = divmod(item, 2)
        clip = self.clips[clip_number]
        rng = self._seeded.rng()
        half_length = CLIP_FRAMES // 2
        if self.frames <= half_length:
            start = half * half_length + int(rng.integers(0, half_length - self.frames + 1))
        else:
            start = int(rng.integers(0, CLIP_FRAMES - self.frames + 1))
        span = slice(start, start + self.frames)
        segments = _history_tensors(self.store, clip, self.index.partner_of[clip], span)
        return {
            **{key.removeprefix("history_"): value for key, value in segments.items()},
            "label": torch.tensor(self.labels[clip_number]),
        }
