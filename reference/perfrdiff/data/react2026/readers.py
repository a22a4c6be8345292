"""Memory-mapped readers of MARS sequences (any length) and zero-padded crops of them.

A sequence file is opened with ``np.load(mmap_mode="r")``: only its header is read, and a crop
copies the frames it needs, so a 750-frame crop of a 20,000-frame file reads 750 frames. Every
error names the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from perfrdiff.atomic import atomic_open, atomic_write_text
from perfrdiff.data.audio import mfcc_features, read_wave
from perfrdiff.data.layout import DataError, MissingFileError, check_feature_dtype, check_finite

_NPY_MAGIC = b"\x93NUMPY"
MFCC_CACHE_VERSION = 1


def open_sequence(path: str | Path, columns: int, what: str) -> np.ndarray:
    """``(t, columns)`` memory-mapped view of a ``.npy`` sequence (nothing is read but the
    header); a ``(1, t, c)`` or ``(t, 1, c)`` array is squeezed to ``(t, c)``.

    Raises:
        MissingFileError: no such file.
        DataError: naming the file: not a ``.npy``, damaged, Python objects, not floating
            point, or not ``(t, columns)`` with ``t >= 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: {what} file is missing")
    with path.open("rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise DataError(f"{path}: not a NumPy .npy file (starts with {head!r})")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:  # object arrays cannot be memory-mapped
        raise DataError(f"{path}: not a readable numeric .npy array ({error})") from error
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from error
    check_feature_dtype(array, str(path))
    if array.ndim == 3 and 1 in array.shape[:2]:
        array = array[0] if array.shape[0] == 1 else array[:, 0]
    if array.ndim != 2 or array.shape[1] != columns or array.shape[0] < 1:
        raise DataError(f"{path}: expected {what} of shape (frames, {columns}), got {array.shape}")
    return array


def read_frames(sequence: np.ndarray, start: int, stop: int, source: str | Path) -> np.ndarray:
    """``(stop - start, c)`` float32 copy of frames ``[start, stop)`` of ``sequence``, checked
    finite (an error names ``source``)."""
    frames = np.array(sequence[start:stop], dtype=np.float32)
    check_finite(frames, str(source))
    return frames


def crop(
    sequence: np.ndarray, start: int, length: int, source: str | Path
) -> tuple[np.ndarray, int]:
    """``(length, c)`` float32 frames ``[start, start + length)`` of ``sequence`` (t, c),
    zero-padded past its end, and how many frames are real."""
    if not 0 <= start < sequence.shape[0]:
        raise ValueError(f"start: expected in [0, {sequence.shape[0]}), got {start}")
    real = read_frames(sequence, start, start + length, source)
    out = np.zeros((length, sequence.shape[1]), dtype=np.float32)
    out[: real.shape[0]] = real
    return out, real.shape[0]


def _cache_key(source: Path, frames: int, fps: int) -> dict[str, int]:
    stat = source.stat()
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "frames": frames,
        "fps": fps,
        "version": MFCC_CACHE_VERSION,
    }


def mfcc_sequence(wav: Path, frames: int, fps: int, cache: Path | None) -> np.ndarray:
    """``(frames, 78)`` MFCC features of a whole ``.wav`` at ``fps``, through an on-disk
    ``.npy`` cache (memory-mapped, with a ``.json`` key of the source's size and time) so that
    later crops read only their frames.

    Raises:
        MissingFileError: no such wav.
        DataError: naming the wav: unreadable, too short for ``frames`` frames, or a sample
            rate that ``fps`` does not divide into whole hops.
    """
    if not wav.is_file():
        raise MissingFileError(f"{wav}: audio file is missing")
    key = _cache_key(wav, frames, fps)
    key_path = cache.with_suffix(".json") if cache is not None else None
    if cache is not None and key_path is not None and cache.is_file() and key_path.is_file():
        try:
            if json.loads(key_path.read_text()) == key:
                return open_sequence(cache, 78, "MFCC cache")
        except (OSError, ValueError):
            pass  # unreadable or foreign cache: recompute and overwrite it
    wave, rate = read_wave(wav)
    try:
        features = mfcc_features(wave, rate, frames, fps)
    except ValueError as error:
        raise DataError(f"{wav}: {error}") from error
    if cache is None or key_path is None:
        return features
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(cache, "wb") as file:
        np.save(file, features)
    atomic_write_text(key_path, json.dumps(key))
    return open_sequence(cache, 78, "MFCC cache")
