"""Per-clip access to a MARS split: memory-mapped sequences, the dyads and their listeners'
personality, optional EEG, and the 3DMM standardisation."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from perfrdiff.data.layout import DataError, read_npy
from perfrdiff.data.react2026.eeg import EegSource, eeg_frames
from perfrdiff.data.react2026.layout import (
    AUDIO_DIR,
    AUDIO_FEATURES_DIR,
    EMOTION_DIR,
    FACE_DIR,
    PERSONALITY_DIR,
    Dyad,
    clip_path,
    find_dyads,
    read_personality,
    with_personality,
)
from perfrdiff.data.react2026.readers import mfcc_sequence, open_sequence, read_frames
from perfrdiff.features import AUDIO_DIMS, EMOTION_DIM, FACE_DIM, WAV2VEC_DIM
from perfrdiff.protocol import protocol_named

if TYPE_CHECKING:
    from perfrdiff.config import Config

log = logging.getLogger(__name__)

#: ``audio`` choice -> width of the speaker audio per frame (``none``: no audio, 0).
AUDIO_WIDTHS = {**AUDIO_DIMS, "none": 0}
#: Where MFCC features computed from the wavs are cached (memory-mapped ``.npy``).
MFCC_CACHE_DIR = "audio-mfcc"


class MarsStore:
    """One split of a MARS-layout dataset.

    Args:
        root: the dataset root (``{root}/{split}/facial-attributes/...``).
        split: ``train``, ``val`` or ``test``.
        fps: frame rate (the protocol's; 30 for REACT 2026).
        audio: ``"features"`` (the 768-d ``audio-features`` npy, the challenge's default),
            ``"mfcc"`` (78-d MFCC of ``audio`` wavs at ``fps``, cached under
            ``audio-mfcc/``) or ``"none"``.
        personality: read ``personality/listener.csv`` and keep only the dyads whose listener
            has a row (the others are left out with a warning naming them).
        strict_pairs: unpaired files are an error instead of a warning.
        face_stats: ``(mean, std)`` ``(58,)``: :meth:`face` reads the 3DMM as
            ``(x - mean) / std`` (:func:`face_standardisation`); ``None``: as stored.

    Attributes:
        dyads: the split's :class:`Dyad` records, sorted by session and stem.
        personality: dyad -> ``(5,)`` Big Five in ``[0, 1]`` (empty without ``personality``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        fps: int = 30,
        audio: str = "features",
        personality: bool = True,
        strict_pairs: bool = False,
        face_stats: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if audio not in AUDIO_WIDTHS:
            raise ValueError(f"audio: expected one of {sorted(AUDIO_WIDTHS)}, got {audio!r}")
        self.root, self.split, self.fps, self.audio_kind = Path(root), split, fps, audio
        self.dyads: list[Dyad] = find_dyads(root, split, strict_pairs)
        self.personality: dict[Dyad, np.ndarray] = {}
        if personality:
            source = self.root / split / PERSONALITY_DIR / "listener.csv"
            self.dyads, self.personality = with_personality(
                self.dyads, read_personality(source), source
            )
        self.eeg_source = EegSource(root, split)
        self.face_stats = face_stats
        self._open: dict[tuple[str, str], np.ndarray] = {}

    def _sequence(self, modality: str, clip: str, columns: int, what: str) -> np.ndarray:
        key = (modality, clip)
        if key not in self._open:  # a memory map: holding it costs no memory
            path = clip_path(self.root, self.split, modality, clip)
            self._open[key] = open_sequence(path, columns, what)
        return self._open[key]

    def path(self, modality: str, clip: str) -> Path:
        """The file of ``clip`` for ``modality`` (a layout folder name)."""
        return clip_path(self.root, self.split, modality, clip)

    def emotion(self, clip: str) -> np.ndarray:
        """``(t, 25)`` memory-mapped facial attributes of ``clip``."""
        return self._sequence(EMOTION_DIR, clip, EMOTION_DIM, "facial attributes")

    def face(self, clip: str) -> np.ndarray | StandardisedFrames:
        """``(t, 58)`` memory-mapped 3DMM coefficients of ``clip``, standardised by
        ``face_stats`` as frames are read (:class:`StandardisedFrames`) when the store has
        them."""
        coefficients = self._sequence(FACE_DIR, clip, FACE_DIM, "3DMM coefficients")
        if self.face_stats is None:
            return coefficients
        return StandardisedFrames(coefficients, *self.face_stats)

    def audio(self, clip: str, frames: int) -> np.ndarray:
        """``(t, a)`` audio of ``clip``: the 768-d features, or MFCC of ``frames`` frames."""
        if self.audio_kind == "features":
            return self._sequence(AUDIO_FEATURES_DIR, clip, WAV2VEC_DIM, "audio features")
        if self.audio_kind == "none":
            return np.zeros((frames, 0), dtype=np.float32)
        key = (MFCC_CACHE_DIR, clip)
        if key not in self._open:
            cache = self.root / self.split / MFCC_CACHE_DIR / f"{clip}.npy"
            self._open[key] = mfcc_sequence(self.path(AUDIO_DIR, clip), frames, self.fps, cache)
        return self._open[key]

    def frames(self, dyad: Dyad) -> int:
        """Frames of ``dyad``: the shortest of its speaker's and listener's facial attributes
        and 3DMM files (recordings of one conversation may differ by a frame)."""
        return min(
            read.shape[0]
            for clip in (dyad.speaker, dyad.listener)
            for read in (self.emotion(clip), self.face(clip))
        )

    def eeg(self, clip: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, mask)`` of frames ``[start, stop)``, each ``(stop - start, 14)``."""
        values, mask = self.eeg_source.rows(clip)
        return eeg_frames(values, mask, start, stop, self.fps)

    def read(self, modality: str, clip: str, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of ``clip``'s ``modality`` (``emotion``, ``face``)."""
        sequence = self.emotion(clip) if modality == "emotion" else self.face(clip)
        folder = EMOTION_DIR if modality == "emotion" else FACE_DIR
        return read_frames(sequence, start, stop, self.path(folder, clip))


class StandardisedFrames:
    """``(t, c)`` frames read as ``(x - mean) / std`` only when sliced: a slice of rows is
    another lazy view (no frame is read), ``np.asarray`` reads and standardises its rows. So a
    750-frame crop of a memory-mapped 20,000-frame file reads 750 frames, as the raw file does.
    """

    def __init__(self, frames: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        self.frames, self.mean, self.std = frames, mean, std

    @property
    def shape(self) -> tuple[int, ...]:
        return self.frames.shape

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, rows: slice) -> StandardisedFrames:
        if not isinstance(rows, slice):
            raise TypeError(f"rows: expected a slice of frames, got {type(rows).__name__}")
        return StandardisedFrames(self.frames[rows], self.mean, self.std)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = (np.asarray(self.frames, dtype=np.float32) - self.mean) / self.std
        return out if dtype is None else out.astype(dtype, copy=False)


def face_statistics(store: MarsStore, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` ``(58,)`` of every 3DMM frame of ``store``'s dyads (speakers and
    listeners), read ``chunk`` frames at a time; what the 3DMM is standardised with when no
    FaceVerse statistics are given. A channel with std 0 gets std 1."""
    total, square, count = np.zeros(FACE_DIM), np.zeros(FACE_DIM), 0
    for dyad in store.dyads:
        for clip in (dyad.speaker, dyad.listener):
            face = store.face(clip)
            for begin in range(0, face.shape[0], chunk):
                block = store.read("face", clip, begin, begin + chunk).astype(np.float64)
                total, square = total + block.sum(0), square + (block**2).sum(0)
                count += block.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(square / count - mean**2, 0.0))
    log.info("3DMM standardised with split %r's own statistics (%d frames)", store.split, count)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def read_face_statistics(mean: str | Path, std: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """FaceVerse ``(mean, std)`` files, each squeezing to ``(58,)``.

    Raises:
        DataError: naming the file: not ``58`` values, not finite, or a std that is not > 0.
    """
    out = []
    for path in (Path(mean), Path(std)):
        values = np.asarray(read_npy(path), dtype=np.float64).reshape(-1)
        if values.shape != (FACE_DIM,) or not np.isfinite(values).all():
            raise DataError(f"{path}: expected {FACE_DIM} finite values, got {values.shape}")
        out.append(values.astype(np.float32))
    if (out[1] <= 0).any():
        raise DataError(f"{std}: every std must be > 0")
    return out[0], out[1]


@functools.lru_cache(maxsize=8)
def _training_face_statistics(root: Path, fps: int) -> tuple[np.ndarray, np.ndarray]:
    return face_statistics(MarsStore(root, "train", fps, "none", personality=False))


def face_standardisation(
    root: str | Path, fps: int, mean: str | None = None, std: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(mean, std)`` ``(58,)`` a run standardises the 3DMM of every split with: the
    FaceVerse files ``mean`` and ``std`` (``data.face_mean``, ``data.face_std``), or when both
    are ``None`` the training split's own statistics (:func:`face_statistics`, computed once
    per process and logged).

    Raises:
        ValueError: only one of ``mean`` and ``std`` is given.
    """
    if (mean is None) != (std is None):
        raise ValueError(f"mean and std: give both FaceVerse files or neither, got {mean=}, {std=}")
    if mean is not None:
        return read_face_statistics(mean, std)
    mean_, std_ = _training_face_statistics(Path(root).resolve(), fps)
    return mean_.copy(), std_.copy()


def open_store(
    root: str | Path,
    split: str,
    fps: int,
    audio: str,
    face_stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> MarsStore:
    """``split`` of the MARS dataset at ``root`` as a run reads it: the personality table when
    the split has one (else items carry zero personality, logged), the 3DMM standardised by
    ``face_stats`` (:func:`face_standardisation`) when given."""
    table = Path(root) / split / PERSONALITY_DIR / "listener.csv"
    if not table.is_file():
        log.warning("%s: no personality table: items carry zero personality", table)
    return MarsStore(root, split, fps, audio, personality=table.is_file(), face_stats=face_stats)


def run_store(config: Config, split: str) -> MarsStore:
    """The :class:`MarsStore` of ``split`` as a run with ``config`` reads it: the protocol's
    frame rate, ``data.audio`` and the 3DMM standardised (:func:`run_face_stats`)."""
    fps = protocol_named(config.protocol).fps
    return open_store(config.data.root, split, fps, config.data.audio, run_face_stats(config))


def run_face_stats(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The ``(mean, std)`` ``(58,)`` a run with ``config`` standardises the 3DMM with
    (``data.face_mean`` / ``data.face_std``, or the training split's own statistics:
    :func:`face_standardisation`)."""
    d = config.data
    fps = protocol_named(config.protocol).fps
    return face_standardisation(d.root, fps, d.face_mean, d.face_std)
