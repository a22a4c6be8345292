"""The REACT 2024 on-disk layout: constants, split index, file paths and validated file readers.

A *clip path* is the relative path that ``{root}/{split}.csv`` stores, e.g.
``NoXI/010_2016-03-25_Paris/Expert_video/3``; the person behind it (the listener identity) is its
parent, ``site/session/role``. Files live at::

    {root}/{split}/Audio_files/<clip>.wav
    {root}/{split}/Emotion/<clip>.csv        (role folder may be named P1/P2 instead)
    {root}/{split}/3D_FV_files/<clip>.npy
    {root}/{split}/Video_files/<clip>.mp4    (optional, never read here)

Evaluation items are *mirrored*: item ``k < R`` is row ``k`` of the CSV (speaker -> listener) and
item ``R + k`` is the same row swapped, so there are ``N = 2 R`` items, in the order of the
neighbour matrix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from perfrdiff.features import EMOTION_DIM, FACE_DIM
from perfrdiff.protocol import REACT2024

SPLITS = ("train", "val", "test")

AUDIO_DIR = "Audio_files"
EMOTION_DIR = "Emotion"
FACE_DIR = "3D_FV_files"
VIDEO_DIR = "Video_files"
#: Frames of a clip that are used: the REACT 2024 protocol's (files hold 751).
CLIP_FRAMES: int = REACT2024.crop_frames


class DataError(ValueError):
    """A data file is unusable; the message names the file and what was wrong with it."""


class MissingFileError(DataError, FileNotFoundError):
    """A data file that the layout requires does not exist."""


@dataclass(frozen=True)
class ClipPair:
    """One evaluation item: the speaker's clip path and the listener's clip path."""

    speaker: str
    listener: str


def person_of(clip: str) -> str:
    """Identity of the person recorded in ``clip``: its ``site/session/role`` parent path."""
    return str(PurePosixPath(clip).parent)


def alternative_role(role: str) -> str | None:
    """The ``P1``/``P2`` role-folder name that some REACT 2024 copies use for emotion files.

    ``P1`` is the expert (NoXI ``Expert_video``) or the first RECOLA participant (odd number: P25,
    P41, P45); ``P2`` is the novice or the second participant (even number). Returns None for roles
    that have no alternative name (including ``P1``/``P2`` themselves).
    """
    if role == "Expert_video":
        return "P1"
    if role == "Novice_video":
        return "P2"
    match = re.fullmatch(r"P(\d+)", role)
    if match is None or role in ("P1", "P2"):
        return None
    return "P1" if int(match.group(1)) % 2 == 1 else "P2"


def _clean_clip(value: str, csv_path: Path, row: int) -> str:
    clip = value.strip().replace("\\", "/").strip("/")
    for suffix in (".wav", ".csv", ".npy", ".mp4"):
        clip = clip.removesuffix(suffix)
    if len(PurePosixPath(clip).parts) < 4:
        raise DataError(
            f"{csv_path}: row {row}: expected a clip path site/session/role/clip, got {value!r}"
        )
    return clip


SPEAKER_COLUMN = "speaker_path"
LISTENER_COLUMN = "listener_path"


def _is_clip_path(value: str) -> bool:
    return len(PurePosixPath(value.strip().replace("\\", "/").strip("/")).parts) >= 4


def _split_columns(first: list[str]) -> tuple[int, int, bool]:
    """``(speaker column, listener column, first row is a header)`` of a split CSV.

    A 3-column header that names ``speaker_path`` and ``listener_path`` decides their columns (so a
    file written with the two swapped is not read with speaker and listener exchanged); without
    it they are columns 1 and 2. A first row whose two path cells are clip paths is data, not
    a header to skip (some exported copies have no header line).
    """
    names = [cell.strip().lstrip("\ufeff") for cell in first]
    if len(names) == 3 and SPEAKER_COLUMN in names and LISTENER_COLUMN in names:
        return names.index(SPEAKER_COLUMN), names.index(LISTENER_COLUMN), True
    is_data = len(first) == 3 and _is_clip_path(first[1]) and _is_clip_path(first[2])
    return 1, 2, not is_data


def read_split_csv(root: str | Path, split: str) -> list[ClipPair]:
    """Read ``{root}/{split}.csv`` and return its rows *mirrored*: all rows, then all rows swapped.

    The file has three columns, ``,speaker_path,listener_path`` (see :func:`_split_columns` for
    how the header is read).

    Returns:
        ``2 R`` pairs for a CSV with ``R`` data rows, in the neighbour matrix's order.
    """
    path = Path(root) / f"{split}.csv"
    if not path.is_file():
        raise MissingFileError(f"{path}: split index file is missing")
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV text file ({error})") from error
    if not rows:
        raise DataError(f"{path}: file is empty, expected a header ',speaker_path,listener_path'")
    speaker, listener, header = _split_columns(rows[0])
    pairs = []
    for number, row in enumerate(rows[int(header) :], start=1 + int(header)):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise DataError(f"{path}: row {number}: expected 3 columns, got {len(row)}")
        clips = (_clean_clip(row[column], path, number) for column in (speaker, listener))
        pairs.append(ClipPair(*clips))
    if not pairs:
        raise DataError(f"{path}: no data rows after the header")
    return pairs + [ClipPair(p.listener, p.speaker) for p in pairs]


def clip_file(root: str | Path, split: str, modality: str, clip: str) -> Path:
    """Path of ``clip``'s file for ``modality`` (``audio``, ``emotion``, ``face``, ``video``).

    For emotion files the CSV's role folder is tried first, then its ``P1``/``P2`` name; if neither
    exists a :class:`MissingFileError` names both candidates.
    """
    base = Path(root) / split
    if modality == "audio":
        path = base / AUDIO_DIR / f"{clip}.wav"
    elif modality == "face":
        path = base / FACE_DIR / f"{clip}.npy"
    elif modality == "video":
        path = base / VIDEO_DIR / f"{clip}.mp4"
    elif modality == "emotion":
        path = base / EMOTION_DIR / f"{clip}.csv"
        if path.is_file():
            return path
        parts = PurePosixPath(clip).parts
        alternative = alternative_role(parts[-2])
        candidates = [path]
        if alternative is not None:
            other = base / EMOTION_DIR / PurePosixPath(*parts[:-2], alternative, parts[-1])
            other = other.with_suffix(".csv")
            if other.is_file():
                return other
            candidates.append(other)
        raise MissingFileError(
            "emotion file is missing; tried " + " and ".join(str(c) for c in candidates)
        )
    else:
        raise ValueError(f"modality: expected audio, emotion, face or video, got {modality!r}")
    if not path.is_file():
        raise MissingFileError(f"{path}: {modality} file is missing")
    return path


def check_feature_dtype(array: np.ndarray, source: str) -> None:
    """Refuse an array that does not hold real-valued features: features are floating point.

    An integer or boolean array is refused rather than cast: quantised features (an ``int16``
    3DMM export, say) are on another scale than the model's, and casting would pass them on
    silently. Complex and non-numeric arrays are refused too.

    Raises:
        DataError: naming ``source`` and the dtype.
    """
    if np.issubdtype(array.dtype, np.floating):
        return
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise DataError(
            f"{source}: expected floating-point features, got dtype {array.dtype}: integer data "
            "(e.g. quantised) is on another scale; convert it to float and undo any "
            "quantisation before use"
        )
    raise DataError(f"{source}: expected a real numeric array, got dtype {array.dtype}")


def check_finite(array: np.ndarray, source: str) -> None:
    """Refuse NaN or infinite values in ``(frames, channels)`` features, naming ``source``,
    their count and the first one's frame and channel.

    Raises:
        DataError: naming ``source``.
    """
    bad = ~np.isfinite(array)
    if bad.any():
        frame, channel = np.argwhere(bad)[0]
        raise DataError(
            f"{source}: contains {int(bad.sum())} NaN or infinite values (first at frame "
            f"{frame}, channel {channel})"
        )


#: Channels of one emotion frame by their range: 15 AU occurrences and 8 expression
#: probabilities in [0, 1], valence and arousal in [-1, 1].
_EMOTION_RANGES = ((0, 15, 0.0, 1.0, "AU"), (15, 17, -1.0, 1.0, "valence/arousal"),
                   (17, EMOTION_DIM, 0.0, 1.0, "expression"))  # fmt: skip
_RANGE_SLACK = 1e-3  # rounding in a written file


def check_emotion_range(array: np.ndarray, source: str) -> None:
    """Refuse emotion values outside their channels' ranges (``(frames, 25·m)``: ``m`` emotion
    blocks side by side): a file in percent or on an intensity scale would otherwise reach the
    model on another scale, silently.

    Raises:
        DataError: naming ``source``, the count, and the first value's frame, channel and range.
    """
    blocks = array.reshape(array.shape[0], -1, EMOTION_DIM)
    for start, stop, low, high, kind in _EMOTION_RANGES:
        part = blocks[..., start:stop]
        bad = (part < low - _RANGE_SLACK) | (part > high + _RANGE_SLACK)
        if bad.any():
            frame, block, channel = np.argwhere(bad)[0]
            value = part[frame, block, channel]
            raise DataError(
                f"{source}: {int(bad.sum())} emotion values outside their range, the first "
                f"{value:.4g} at frame {frame}, channel {block * EMOTION_DIM + start + channel} "
                f"({kind}: [{low:g}, {high:g}]); emotion files hold AU occurrences and "
                "expression probabilities in [0, 1] and valence/arousal in [-1, 1] (rescale "
                "values in percent or on another scale)"
            )


def _check_frames(array: np.ndarray, path: Path, columns: int, what: str) -> np.ndarray:
    check_feature_dtype(array, str(path))
    if array.ndim != 2 or array.shape[1] != columns:
        raise DataError(f"{path}: expected {what} of shape (frames, {columns}), got {array.shape}")
    if array.shape[0] < CLIP_FRAMES:
        raise DataError(f"{path}: truncated: {array.shape[0]} frames, need at least {CLIP_FRAMES}")
    array = array[:CLIP_FRAMES]
    check_finite(array, str(path))
    if what == "emotion":
        check_emotion_range(array, str(path))
    return np.ascontiguousarray(array, dtype=np.float32)


def read_emotion(path: Path) -> np.ndarray:
    """Read a 25-column emotion CSV; returns ``(750, 25)`` float32.

    REACT's files start with a header row (the column names). A file whose first line is
    already numeric has no header, and that line is the first frame, not skipped.
    """
    try:
        with path.open() as handle:
            first = next((line for line in handle if line.strip()), "")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable text file ({error})") from error
    if not first:
        raise DataError(f"{path}: file is empty, expected {EMOTION_DIM} columns per frame")
    header = not _is_numeric_row(first)
    try:
        array = np.loadtxt(path, delimiter=",", skiprows=int(header), dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise DataError(f"{path}: not a numeric CSV ({error})") from error
    return _check_frames(array, path, EMOTION_DIM, "emotion")


def _is_numeric_row(line: str) -> bool:
    try:
        [float(cell) for cell in line.split(",")]
    except ValueError:
        return False
    return True


_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: str | Path) -> np.ndarray:
    """Read a NumPy ``.npy`` file without unpickling anything; errors name the file.

    Raises:
        MissingFileError: no such file.
        DataError: not a ``.npy`` file (e.g. text under a ``.npy`` name), damaged, or holding
            Python objects instead of numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: file is missing")
    with path.open("rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise DataError(
            f"{path}: not a readable .npy array: not a NumPy .npy file (starts with {head!r})"
        )
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(
                f"{path}: holds Python objects (an object array), expected numbers"
            ) from error
        raise DataError(f"{path}: not a readable .npy array ({error})") from error
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from error


def read_face(path: Path) -> np.ndarray:
    """Read a FaceVerse 3DMM ``.npy`` (squeezes to ``(751, 58)``); returns ``(750, 58)`` float32."""
    return _check_frames(np.squeeze(read_npy(path)), path, FACE_DIM, "3DMM coefficients")


def read_neighbour_matrix(root: str | Path, split: str, items: int) -> np.ndarray:
    """Read ``{root}/neighbour_emotion_{split}.npy``: boolean ``(n, n)``, ``n`` = mirrored items.

    ``M[k, j]`` is True when item ``j``'s real listener reaction is appropriate for speaker ``k``.
    """
    path = Path(root) / f"neighbour_emotion_{split}.npy"
    if not path.is_file():
        raise MissingFileError(f"{path}: appropriateness (neighbour) matrix is missing")
    matrix = read_npy(path)
    if matrix.shape != (items, items):
        raise DataError(
            f"{path}: expected shape ({items}, {items}) for {items} mirrored items, "
            f"got {matrix.shape}"
        )
    if matrix.dtype != np.bool_:
        if not np.isin(matrix, (0, 1)).all():
            raise DataError(f"{path}: expected a boolean/0-1 matrix, found other values")
        matrix = matrix.astype(bool)
    if not matrix.any(axis=1).all():
        empty = int(np.flatnonzero(~matrix.any(axis=1))[0])
        raise DataError(f"{path}: row {empty} has no appropriate reaction")
    return matrix
