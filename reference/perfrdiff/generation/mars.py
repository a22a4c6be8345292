"""A MARS split as generation reads it: its dyads (items keyed ``<session>/<stem>``), memory-
mapped speaker readers, each item's listener history and personality; and the four REACT 2026
tracks (generic / personalised × offline / online) written as one ``.npz`` each.

An item's history is the first ``h`` frames of another dyad of its listener (repeated
cyclically when that dyad is shorter): the first in file order in the same split, else in
``train``, ``val``, ``test``; the evaluated dyad itself only with
``data.allow_same_clip_history`` (the history then holds the target).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from perfrdiff.atomic import atomic_open, atomic_write_text
from perfrdiff.data.layout import SPLITS, DataError
from perfrdiff.data.react2026 import Dyad, MarsStore, person_of
from perfrdiff.data.react2026.layout import PERSONALITY_DIR
from perfrdiff.data.react2026.windows import history_of, padded
from perfrdiff.generation.sampler import ReactionSampler
from perfrdiff.generation.sequences import (
    WindowStream,
    batches_by_length,
    offline_sequences,
    online_sequences,
)
from perfrdiff.models.personalised import PerFRDiff

log = logging.getLogger(__name__)

#: The REACT 2026 tracks of one mode: whole-sequence chunks, and online windows.
TRACKS = ("offline", "online")


@dataclass
class MarsSequences:
    """The items of a MARS split for generation.

    Attributes:
        store: the split.
        dyads: the items (the first ``limit`` dyads of the split, in file order).
        lengths: ``T`` of each item.
        histories: ``(h, c)`` float32 per item (empty when not read).
        personality: ``(n, 5)`` float32 Big Five in ``[0, 1]`` (zeros without a table).
        history_kinds: per item, ``"same-split"``, ``"other-split"`` or ``"same-clip"``.
    """

    store: MarsStore
    dyads: list[Dyad]
    lengths: list[int]
    histories: list[np.ndarray] = field(default_factory=list)
    personality: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    history_kinds: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """``<session>/<stem>`` of every item (its key in a predictions archive)."""
        return [f"{d.session}/{d.stem}" for d in self.dyads]

    def reader(self, items: list[int]):
        """``(begin, end) -> (len(items), end - begin, a + 58 + 25)`` speaker frames of those
        items, zeros outside each sequence (memory-mapped: only those frames are read)."""
        s = self.store
        audio_folder = "audio-features" if s.audio_kind == "features" else "audio"

        def one(i: int, begin: int, end: int) -> np.ndarray:
            clip, frames = self.dyads[i].speaker, self.lengths[i]
            parts = [
                padded(s.audio(clip, frames)[:frames], begin, end, s.path(audio_folder, clip)),
                padded(s.face(clip)[:frames], begin, end, s.path("coefficients", clip)),
                padded(s.emotion(clip)[:frames], begin, end, s.path("facial-attributes", clip)),
            ]
            return np.concatenate(parts, axis=1)

        return lambda begin, end: torch.from_numpy(np.stack([one(i, begin, end) for i in items]))


def _history_source(
    stores: dict[str, MarsStore | None], split: str, dyad: Dyad, allow_same: bool
) -> tuple[MarsStore, Dyad, str] | None:
    """Where ``dyad``'s listener history is read (module docstring), or ``None``."""
    listener = person_of(dyad.listener)
    for other in (split, *(s for s in SPLITS if s != split)):
        store = stores.get(other)
        found = [d for d in (store.dyads if store else []) if person_of(d.listener) == listener]
        found = [d for d in found if d != dyad or other != split]
        if found:
            return store, found[0], "same-split" if other == split else "other-split"
    return (stores[split], dyad, "same-clip") if allow_same else None


def _stores(store: MarsStore) -> dict[str, MarsStore | None]:
    out: dict[str, MarsStore | None] = {store.split: store}
    for split in SPLITS:
        if split != store.split:
            try:
                out[split] = MarsStore(
                    store.root, split, store.fps, "none", False, face_stats=store.face_stats
                )
            except FileNotFoundError:
                out[split] = None  # a dataset may lack a split
    return out


def read_histories(
    data: MarsSequences, frames: int, style_input: str, allow_same: bool = False
) -> MarsSequences:
    """``data`` with each item's ``(frames, c)`` history for ``style_input``.

    Raises:
        DataError: a listener has no other dyad in any split and ``allow_same`` is False.
    """
    stores = _stores(data.store)
    sources = [_history_source(stores, data.store.split, d, allow_same) for d in data.dyads]
    missing = sorted(
        {person_of(d.listener) for d, s in zip(data.dyads, sources, strict=True) if s is None}
    )
    if missing:
        raise DataError(
            f"{data.store.root}: listener(s) {missing} of split {data.store.split!r} have no "
            "other dyad in any split, so their history would be the evaluated reaction; set "
            "data.allow_same_clip_history=true to use it anyway"
        )
    data.histories = [history_of(store, dyad, 0, frames, style_input) for store, dyad, _ in sources]
    data.history_kinds = [kind for _, _, kind in sources]
    if "same-clip" in data.history_kinds:
        log.warning("%d item(s) use their own dyad as history: their personalised scores see "
                    "the target", data.history_kinds.count("same-clip"))  # fmt: skip
    return data


def load_sequences(store: MarsStore, limit: int | None = None) -> MarsSequences:
    """The items of ``store``'s split (the first ``limit``), with their lengths and Big Five."""
    dyads = store.dyads[:limit] if limit is not None else list(store.dyads)
    zeros = np.zeros(5, dtype=np.float32)
    personality = np.stack([store.personality.get(d, zeros) for d in dyads]).astype(np.float32)
    return MarsSequences(store, dyads, [store.frames(d) for d in dyads], personality=personality)


def history_tensor(data: MarsSequences, items: list[int]) -> Tensor:
    """``(len(items), h, c)`` float32 histories of ``items``."""
    return torch.from_numpy(np.stack([data.histories[i] for i in items]))


def save_sequence_predictions(
    predictions: dict[str, np.ndarray], path: str | Path, meta: dict
) -> Path:
    """Write ``key -> (M, T, 25)`` as one ``.npz`` and ``meta`` beside it (``.json``)."""
    path = Path(path)
    with atomic_open(path, "wb") as file:
        np.savez(file, **predictions)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    log.info("predictions of %d items -> %s", len(predictions), path)
    return path


def sequence_batches(data: MarsSequences, clips_per_batch: int) -> list[list[int]]:
    """The items of ``data`` in batches of ``clips_per_batch``, shortest first; batch ``b`` is
    generated with the seed ``seed + b`` (:func:`sample_batches`)."""
    return batches_by_length(data.lengths, clips_per_batch)


def listener_inputs(
    sampler: ReactionSampler, data: MarsSequences, items: list[int]
) -> tuple[Tensor | None, Tensor | None]:
    """``(history (l, h, c), personality (l, 5))`` of ``items`` as the sampler's model reads
    them (``pwsg.condition``, ``pwsg.history_stats``, the listener prior); ``None`` for what
    it does not read."""
    model = sampler.model
    history = history_tensor(data, items) if model.needs_history else None
    personality = (
        torch.from_numpy(data.personality[items]) if model.condition.reads_personality else None
    )
    return history, personality


def check_listeners(sampler: ReactionSampler, data: MarsSequences) -> None:
    """``data`` holds what personalised generation with ``sampler`` reads.

    Raises:
        TypeError: the sampler's model is not a PerFRDiff.
        ValueError: its model reads histories and ``data`` has none, or personality and the
            split has no personality table.
    """
    model = sampler.model
    if not isinstance(model, PerFRDiff):
        raise TypeError(f"personalised generation needs a PerFRDiff, got {type(model).__name__}")
    if model.needs_history and len(data.histories) != len(data.dyads):
        raise ValueError("personalised generation needs each item's history (read_histories)")
    if model.condition.reads_personality and not data.store.personality:
        table = data.store.root / data.store.split / PERSONALITY_DIR / "listener.csv"
        raise ValueError(
            f"pwsg.condition={model.condition.kind!r} reads each listener's Big Five, and "
            f"{table} was not read (missing): generate with a split that has it"
        )


def sample_batches(
    sampler: ReactionSampler,
    data: MarsSequences,
    track: str,
    samples: int,
    context: tuple[int, int],
    chunk: int,
    clips_per_batch: int,
    seed: int = 0,
    personalised: bool = False,
    batches: Sequence[int] | None = None,
) -> list[list[np.ndarray]]:
    """The reactions of the batches numbered ``batches`` (default: all) of
    :func:`sequence_batches`: per batch, one ``(M, T, 25)`` float32 array per item, in the
    batch's order. Batch ``b`` is seeded ``seed + b``, so it does not depend on which other
    batches are generated, nor where (what :func:`perfrdiff.distributed.run_shards` relies on).

    ``track``: ``"online"``, or ``"offline"`` by ``chunk``-frame pieces. ``personalised``
    reads each item's history and/or personality, as the model's ``pwsg`` reads them
    (:func:`listener_inputs`).

    Raises:
        ValueError: an unknown track, or a listener input the model reads is missing
            (:func:`check_listeners`).
        FloatingPointError: the model produced NaN or infinite reactions.
    """
    if track not in TRACKS:
        raise ValueError(f"track must be one of {TRACKS}, got {track!r}")
    if personalised:
        check_listeners(sampler, data)
    groups = sequence_batches(data, clips_per_batch)
    out = []
    for b in range(len(groups)) if batches is None else batches:
        items = groups[b]
        history, personality = (
            listener_inputs(sampler, data, items) if personalised else (None, None)
        )
        make = partial(WindowStream, sampler, samples, context, history, seed=seed + b,
                       personality=personality)  # fmt: skip
        frames, read = max(data.lengths[i] for i in items), data.reader(items)
        if track == "online":
            array = online_sequences(make, read, frames, len(items), samples)
        else:
            array = offline_sequences(make, read, frames, len(items), samples, chunk)
        if not np.isfinite(array).all():
            kind = "personalised" if personalised else "generic"
            raise FloatingPointError(f"{kind} {track} generation produced NaN or inf")
        out.append([array[row, :, : data.lengths[i]] for row, i in enumerate(items)])
    return out


def in_item_order(groups: list[list[int]], parts: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
    """Every batch's arrays (:func:`sample_batches` of all ``groups``) back in item order."""
    out: list[np.ndarray] = [np.empty(0)] * sum(len(g) for g in groups)
    for items, arrays in zip(groups, parts, strict=True):
        for i, array in zip(items, arrays, strict=True):
            out[i] = array
    return out


def sample_sequences(
    sampler: ReactionSampler,
    data: MarsSequences,
    track: str,
    samples: int,
    context: tuple[int, int],
    chunk: int,
    clips_per_batch: int,
    seed: int = 0,
    personalised: bool = False,
) -> list[np.ndarray]:
    """``(M, T, 25)`` float32 reactions of every item of ``data`` on ``track``, in item order
    (:func:`sample_batches` of every batch).

    Raises:
        ValueError, FloatingPointError: as :func:`sample_batches`.
    """
    parts = sample_batches(sampler, data, track, samples, context, chunk, clips_per_batch,
                           seed, personalised)  # fmt: skip
    return in_item_order(sequence_batches(data, clips_per_batch), parts)
