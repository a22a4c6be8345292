"""Training items of a MARS split: listener windows with the protocol's speaker context, a
listener history that never holds the window, and listener segments for the style encoder.

A window ``[s, s + w)`` is always inside its sequence: its start is drawn from ``[0, T - w]``,
so no target frame is padding and no loss needs a mask. A sequence shorter than ``w`` frames
has no such window and is left out (logged). What *is* padded is the speaker context: REACT
2026 shows window ``[s, s + w)`` the speaker over ``[s - w, s + w)``, zeros before frame 0 (as
the challenge pads its online windows).

Histories and style segments shorter than asked (a 58-frame sequence) are repeated
cyclically to the asked length: a listener's own frames, never zeros that would read as a
neutral face.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from perfrdiff.data.layout import DataError
from perfrdiff.data.react2026.layout import BIG_FIVE, Dyad, person_of
from perfrdiff.data.react2026.readers import read_frames
from perfrdiff.data.react2026.store import MarsStore
from perfrdiff.data.statistics import frame_moments
from perfrdiff.features import EMOTION_DIM, HISTORY_DIMS
from perfrdiff.protocol import Protocol

log = logging.getLogger(__name__)


def padded(sequence: np.ndarray, begin: int, end: int, source: object) -> np.ndarray:
    """``(end - begin, c)`` float32 frames ``[begin, end)`` of ``sequence (t, c)``, zeros
    where the span leaves ``[0, t)`` (only the frames inside are read)."""
    out = np.zeros((end - begin, sequence.shape[1]), dtype=np.float32)
    lo, hi = max(begin, 0), min(end, sequence.shape[0])
    if hi > lo:
        out[lo - begin : hi - begin] = read_frames(sequence, lo, hi, str(source))
    return out


def cyclic(frames: np.ndarray, length: int) -> np.ndarray:
    """``frames (f, c)`` repeated cyclically (or cut) to ``(length, c)``."""
    return frames[np.arange(length) % frames.shape[0]]


def history_of(
    store: MarsStore, dyad: Dyad, begin: int, frames: int, style_input: str
) -> np.ndarray:
    """``(frames, c)`` history of ``dyad``'s listener read from frame ``begin`` for
    ``style.input`` (``face`` 58, ``emotion`` 25, ``dyadic`` 50: the listener's emotion, then
    the speaker's at the same frames), cyclic when the sequence ends first."""
    end = min(begin + frames, store.frames(dyad))
    if style_input == "face":
        part = store.read("face", dyad.listener, begin, end)
    elif style_input == "emotion":
        part = store.read("emotion", dyad.listener, begin, end)
    elif style_input == "dyadic":
        part = np.concatenate(
            [store.read("emotion", clip, begin, end) for clip in (dyad.listener, dyad.speaker)],
            axis=1,
        )
    else:
        raise ValueError(f"style_input must be one of {sorted(HISTORY_DIMS)}, got {style_input!r}")
    return cyclic(part, frames)


def listener_dyads(store: MarsStore) -> dict[str, list[int]]:
    """Listener (``listener/<session>``) -> the indices of its dyads in ``store.dyads``."""
    groups: dict[str, list[int]] = {}
    for i, dyad in enumerate(store.dyads):
        groups.setdefault(person_of(dyad.listener), []).append(i)
    return groups


class MarsWindows(Dataset):
    """Random ``w``-frame listener windows of a MARS split with the protocol's speaker context.

    Items: ``⌈T / crop⌉`` per dyad of ``T >= w`` frames (``crop``: the protocol's 750), each
    drawing its start ``s`` uniformly from ``[0, T - w]`` (seeded by ``(seed, item)`` without
    ``random_start``, for validation; else by ``torch.initial_seed()`` as well, which
    :class:`~perfrdiff.data.samplers.Reseeded` fixes per step): long sequences give more
    windows, as the challenge's crops do.

    Item keys (float32 unless stated), ``v = before + after`` speaker frames of the context:

    - ``speaker_audio (v, a)``, ``speaker_face (v, 58)``, ``speaker_emotion (v, 25)``: frames
      ``[s - before, s + after)``, zeros outside the sequence;
    - ``listener_emotion (w, 25)``: the target ``[s, s + w)``;
    - ``listener_prev_emotion (w, 25)``: ``[s - w, s)``; ``has_past`` bool: ``s >= w`` (else
      zeros, as at the start of generation);
    - ``listener_id`` int64: dense over the split's listeners; ``personality (5,)`` in
      ``[0, 1]`` (zeros without a personality table);
    - ``history_face (h, 58)``, ``history_emotion (h, 25)``, ``history_dyadic (h, 50)``:
      ``h`` frames of another dyad of the same listener (random one, random start), else of
      the same dyad outside ``[s - w, s + w)`` (the longer free part);
    - ``start``, ``length`` int64: ``s`` and ``T``.

    With ``history_needed`` a listener with one dyad draws only starts that leave at least
    ``min(h, w)`` free frames, and a dyad with none is left out (logged).

    Raises:
        DataError: no dyad has a usable window.
    """

    def __init__(
        self,
        store: MarsStore,
        protocol: Protocol,
        window: int,
        history_frames: int,
        seed: int = 0,
        random_start: bool = True,
        history_needed: bool = False,
    ) -> None:
        self.store, self.window, self.history_frames = store, window, history_frames
        self.context = protocol.context_frames(window)
        self.seed, self.random_start, self.history_needed = seed, random_start, history_needed
        self.groups = listener_dyads(store)
        listeners = sorted(self.groups)
        self.listener_ids = {name: i for i, name in enumerate(listeners)}
        self.lengths = [store.frames(d) for d in store.dyads]
        kept = [i for i in range(len(store.dyads)) if self._starts(i).size]
        left = len(store.dyads) - len(kept)
        if left:
            log.info("%s: %d dyad(s) have no %d-frame window%s and are left out", store.split,
                     left, window, " with a separate history" * history_needed)  # fmt: skip
        if not kept:
            raise DataError(f"{store.root}/{store.split}: no dyad holds a {window}-frame window")
        crop = protocol.crop_frames
        self.items = [i for i in kept for _ in range(math.ceil(self.lengths[i] / crop))]

    def __len__(self) -> int:
        return len(self.items)

    def _others(self, dyad_index: int) -> list[int]:
        listener = person_of(self.store.dyads[dyad_index].listener)
        return [i for i in self.groups[listener] if i != dyad_index]

    def _starts(self, dyad_index: int) -> np.ndarray:
        """The window starts dyad ``dyad_index`` may draw."""
        w, frames = self.window, self.lengths[dyad_index]
        starts = np.arange(max(frames - w + 1, 0))
        if not self.history_needed or self._others(dyad_index):
            return starts
        need = min(self.history_frames, w)
        free = np.maximum(starts - w, frames - starts - w)  # outside [s - w, s + w)
        return starts[free >= need]

    def _rng(self, position: int) -> np.random.Generator:
        if self.random_start:
            return np.random.default_rng([self.seed, position, torch.initial_seed() % 2**63])
        return np.random.default_rng([self.seed, position])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        index = self.items[position]
        dyad, rng = self.store.dyads[index], self._rng(position)
        s, w = int(rng.choice(self._starts(index))), self.window
        before, after = self.context
        speaker = self._speaker(index, s - before, s + after)
        listener = self.store.emotion(dyad.listener)
        path = self.store.path("facial-attributes", dyad.listener)
        has_past = s >= w
        personality = self.store.personality.get(dyad, np.zeros(5, dtype=np.float32))
        return {
            **speaker,
            "listener_emotion": torch.from_numpy(read_frames(listener, s, s + w, path)),
            "listener_prev_emotion": torch.from_numpy(padded(listener, s - w, s, path) * has_past),
            "has_past": torch.tensor(has_past),
            "listener_id": torch.tensor(self.listener_ids[person_of(dyad.listener)]),
            "personality": torch.from_numpy(np.asarray(personality, dtype=np.float32)),
            **self._history(index, s, rng),
            "start": torch.tensor(s, dtype=torch.int64),
            "length": torch.tensor(self.lengths[index], dtype=torch.int64),
        }

    def _speaker(self, index: int, begin: int, end: int) -> dict[str, torch.Tensor]:
        s, clip, frames = self.store, self.store.dyads[index].speaker, self.lengths[index]
        audio_folder = "audio-features" if s.audio_kind == "features" else "audio"
        sources = {
            "audio": (s.audio(clip, frames), s.path(audio_folder, clip)),
            "face": (s.face(clip), s.path("coefficients", clip)),
            "emotion": (s.emotion(clip), s.path("facial-attributes", clip)),
        }
        return {
            f"speaker_{name}": torch.from_numpy(padded(array[:frames], begin, end, path))
            for name, (array, path) in sources.items()
        }

    def _history(self, index: int, s: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``history_<input>`` for every style input, from one source span (see the class)."""
        h, w, others = self.history_frames, self.window, self._others(index)
        if others:
            source = others[int(rng.integers(len(others)))]
            begin = int(rng.integers(0, max(self.lengths[source] - h, 0) + 1))
            return self._history_span(source, begin, h)
        before, after = max(s - w, 0), max(self.lengths[index] - s - w, 0)
        free, offset = (before, 0) if before >= after else (after, s + w)
        if free == 0:  # never read: history_needed only draws starts that leave free frames
            return {f"history_{k}": torch.zeros(h, c) for k, c in HISTORY_DIMS.items()}
        span = min(h, free)
        return self._history_span(index, offset + int(rng.integers(0, free - span + 1)), span)

    def _history_span(self, source: int, begin: int, frames: int) -> dict[str, torch.Tensor]:
        dyad, h = self.store.dyads[source], self.history_frames
        return {
            f"history_{kind}": torch.from_numpy(
                cyclic(history_of(self.store, dyad, begin, frames, kind), h)
            )
            for kind in HISTORY_DIMS
        }


class MarsListenerSegments(Dataset):
    """Segments of listeners' behaviour labelled by listener, for the contrastive style
    encoder: two items per dyad; item ``2k + half`` draws a ``frames``-long segment from half
    ``half`` of dyad ``k`` (from anywhere when a half is shorter; cyclic when the sequence is).

    Item keys: ``face (frames, 58)``, ``emotion (frames, 25)``, ``dyadic (frames, 50)``
    float32; ``label`` int64, the listener's id as in :class:`MarsWindows`.
    """

    def __init__(self, store: MarsStore, frames: int, seed: int = 0) -> None:
        self.store, self.frames, self.seed = store, frames, seed
        groups = listener_dyads(store)
        ids = {name: i for i, name in enumerate(sorted(groups))}
        self.labels = [ids[person_of(d.listener)] for d in store.dyads]

    def __len__(self) -> int:
        return 2 * len(self.store.dyads)

    def items_of_listener(self) -> dict[int, list[int]]:
        """Listener label -> its item indices (two per dyad)."""
        out: dict[int, list[int]] = {}
        for k, label in enumerate(self.labels):
            out.setdefault(label, []).extend((2 * k, 2 * k + 1))
        return out

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        k, half = divmod(item, 2)
        dyad = self.store.dyads[k]
        total = self.store.frames(dyad)
        rng = np.random.default_rng([self.seed, item, torch.initial_seed() % 2**63])
        half_length = total // 2
        if self.frames <= half_length:
            begin = half * half_length + int(rng.integers(0, half_length - self.frames + 1))
        else:
            begin = int(rng.integers(0, max(total - self.frames, 0) + 1))
        out = {
            kind: torch.from_numpy(history_of(self.store, dyad, begin, self.frames, kind))
            for kind in HISTORY_DIMS
        }
        return {**out, "label": torch.tensor(self.labels[k], dtype=torch.int64)}


def listener_emotion_blocks(
    store: MarsStore, dyads: Iterable[Dyad], chunk: int = 4096
) -> Iterator[np.ndarray]:
    """The listener emotion of ``dyads``, whole sequences, ``(≤ chunk, 25)`` blocks at a time
    (a 20,000-frame sequence is never read at once)."""
    for dyad in dyads:
        frames = store.frames(dyad)
        for begin in range(0, frames, chunk):
            yield store.read("emotion", dyad.listener, begin, min(begin + chunk, frames))


def listener_emotion_moments(store: MarsStore, chunk: int = 4096) -> tuple[np.ndarray, ...]:
    """``(mean, std)`` ``(25,)`` float32 over every listener frame of ``store``'s dyads, read
    ``chunk`` frames at a time (what a standardising denoiser is fitted to)."""
    mean, std = frame_moments(listener_emotion_blocks(store, store.dyads, chunk))
    return mean.numpy(), std.numpy()


def listener_level(store: MarsStore, dyad: Dyad, chunk: int = 4096) -> np.ndarray:
    """``(25,)`` float64 mean of ``dyad``'s listener emotion over the whole sequence, read
    ``chunk`` frames at a time."""
    total = np.zeros(EMOTION_DIM, dtype=np.float64)
    for block in listener_emotion_blocks(store, [dyad], chunk):
        total += block.astype(np.float64).sum(0)
    return total / max(store.frames(dyad), 1)


def sequence_levels(store: MarsStore) -> tuple[np.ndarray, np.ndarray]:
    """Every dyad's listener level and personality: ``(levels (n, 25), personality (n, 5))``
    float64 (zeros where the store has no personality table).

    Raises:
        ValueError: ``store`` has no dyad.
    """
    if not store.dyads:
        raise ValueError(f"split {store.split!r} of {store.root} has no dyad to fit levels on")
    zeros = np.zeros(len(BIG_FIVE))
    levels = np.stack([listener_level(store, d) for d in store.dyads])
    personality = np.stack([store.personality.get(d, zeros) for d in store.dyads])
    return levels, personality.astype(np.float64)


def sequence_level_pairs(
    store: MarsStore, frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every ordered pair of distinct dyads ``(i, j)`` of one listener: the mean of dyad
    ``i``'s history as evaluation reads it (its first ``frames`` frames, cyclic when shorter),
    dyad ``j``'s level and its listener's personality, each ``(p, ·)`` float64 (the REACT 2024
    :func:`~perfrdiff.data.listener_level_pairs` for MARS sequences).

    Raises:
        ValueError: ``frames`` < 1, or no listener of the split has two dyads.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    histories, levels, scores = [], [], []
    zeros = np.zeros(len(BIG_FIVE))
    for indices in listener_dyads(store).values():
        if len(indices) < 2:
            continue
        dyads = [store.dyads[i] for i in indices]
        heads = [
            history_of(store, d, 0, frames, "emotion").astype(np.float64).mean(0) for d in dyads
        ]
        means = [listener_level(store, d) for d in dyads]
        for i, head in enumerate(heads):
            for j, mean in enumerate(means):
                if i != j:
                    histories.append(head)
                    levels.append(mean)
                    scores.append(store.personality.get(dyads[j], zeros))
    if not histories:
        raise ValueError(
            f"split {store.split!r} of {store.root} has no listener with two dyads: a history's "
            "carry-over to another sequence cannot be fitted"
        )
    return np.stack(histories), np.stack(levels), np.stack(scores).astype(np.float64)


def speaker_frame_moments(store: MarsStore) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` ``(a + 58 + 25,)`` float32 over every speaker frame of ``store``'s dyads:
    audio, 3DMM (as the store reads it) and emotion (what a standardising speaker encoder is
    fitted to), one dyad at a time."""

    def frames():
        for dyad in store.dyads:
            t, clip = store.frames(dyad), dyad.speaker
            yield np.concatenate(
                [
                    store.audio(clip, t)[:t],
                    np.asarray(store.face(clip)[:t]),
                    np.asarray(store.emotion(clip)[:t]),
                ],
                axis=1,
            )

    return frame_moments(frames())
