"""Speaker audio features: 78-d MFCC per video frame, computed with librosa and cached on disk.

Per video frame (40 ms at REACT 2024's 25 fps; a protocol's ``fps`` in general) we take two
analysis hops of half a frame; each hop gives 13 MFCCs plus their
first and second time derivatives (39 values), and the two hops of a frame are concatenated:
``2 x 39 = 78``. librosa is used because torchaudio has no build for torch 2.13; it is maintained,
already a dependency of the reference, and works at any sample rate.

The cache lives next to the data (``{root}/{split}/Audio_features/<clip>.npz``) and stores the
source file's size and modification time; a changed source invalidates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from perfrdiff.atomic import atomic_open
from perfrdiff.data.layout import DataError, MissingFileError
from perfrdiff.features import AUDIO_DIM
from perfrdiff.protocol import REACT2024

N_MFCC = 13
HOPS_PER_FRAME = 2
CACHE_DIR = "Audio_features"
CACHE_VERSION = 1


_FPS = REACT2024.fps  # the defaults: REACT 2024's 25 fps and 750-frame clips
_FRAMES = REACT2024.crop_frames
#: Below this the 13 MFCC's mel filters are empty (librosa only warns): features of nothing.
MIN_SAMPLE_RATE = 8000


def _hop_length(sample_rate: int, fps: int = _FPS) -> int:
    if sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate: expected at least {MIN_SAMPLE_RATE} Hz for speech features, got "
            f"{sample_rate}"
        )
    samples_per_frame = sample_rate / fps
    if samples_per_frame % HOPS_PER_FRAME:
        raise ValueError(
            f"sample_rate: expected a multiple of {fps * HOPS_PER_FRAME} Hz so that a video "
            f"frame at {fps} fps splits into two whole hops, got {sample_rate}"
        )
    return int(samples_per_frame // HOPS_PER_FRAME)


def min_samples(sample_rate: int, frames: int = _FRAMES, fps: int = _FPS) -> int:
    """Fewest samples that yield ``frames`` video frames of features at ``sample_rate``."""
    return (frames * HOPS_PER_FRAME - 1) * _hop_length(sample_rate, fps) + 1


def mfcc_features(
    wave: np.ndarray, sample_rate: int, frames: int = _FRAMES, fps: int = _FPS
) -> np.ndarray:
    """MFCC features of a mono waveform, one 78-d vector per video frame.

    Args:
        wave: ``(samples,)`` mono audio, any float or int dtype.
        sample_rate: in Hz; a multiple of ``2 fps`` (at 25 fps: 16 kHz, 44.1 kHz and 48 kHz
            all are; at 30 fps: 44.1 kHz and 48 kHz, not 16 kHz).
        frames: number of video frames to return (the first ``frames``).
        fps: video frame rate (the protocol's).

    Returns:
        ``(frames, 78)`` float32: per frame ``[mfcc, delta, delta2]`` of the first 20 ms hop,
            then of the second.
    """
    import librosa  # slow to import (numba); only needed when features are computed

    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"wave: expected a mono signal of shape (samples,), got {wave.shape}")
    if not np.isfinite(wave).all():
        # librosa would stop with its own ParameterError, which names neither file nor value.
        bad = int((~np.isfinite(wave)).sum())
        raise ValueError(f"wave: contains {bad} NaN or infinite samples")
    hop = _hop_length(sample_rate, fps)
    needed = min_samples(sample_rate, frames, fps)
    if wave.shape[0] < needed:
        raise ValueError(
            f"wave: expected at least {needed} samples ({frames} frames at {sample_rate} Hz), "
            f"got {wave.shape[0]}"
        )
    window = 2 * hop
    n_fft = 1 << (window - 1).bit_length()
    mfcc = librosa.feature.mfcc(
        y=wave.astype(np.float32),
        sr=sample_rate,
        n_mfcc=N_MFCC,
        n_fft=n_fft,
        hop_length=hop,
        win_length=window,
    )
    hops = frames * HOPS_PER_FRAME
    stacked = np.concatenate(
        [mfcc, librosa.feature.delta(mfcc, order=1), librosa.feature.delta(mfcc, order=2)], axis=0
    )[:, :hops]
    return np.ascontiguousarray(stacked.T.reshape(frames, AUDIO_DIM), dtype=np.float32)


def read_wave(path: Path) -> tuple[np.ndarray, int]:
    """Read a ``.wav`` file as a mono float32 waveform (channels averaged) and its sample rate."""
    try:
        wave, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise DataError(f"{path}: not a readable audio file ({error})") from error
    return wave.mean(axis=1), int(sample_rate)


def audio_features(path: Path, cache_dir: Path | None) -> np.ndarray:
    """``(750, 78)`` float32 features of the wav file ``path``, through the on-disk cache.

    Args:
        path: the source ``.wav``.
        cache_dir: file to use as cache (``.npz``); None disables caching.

    Raises:
        perfrdiff.data.MissingFileError: there is no file at ``path``.
        perfrdiff.data.DataError: it is not readable audio, too short, or at a sample rate that
            features cannot be computed at; the message names the file.
    """
    if not path.is_file():
        raise MissingFileError(f"{path}: audio file is missing")
    stat = path.stat()
    key = np.array([stat.st_size, stat.st_mtime_ns, CACHE_VERSION], dtype=np.int64)
    if cache_dir is not None and cache_dir.is_file():
        try:
            with np.load(cache_dir) as cached:
                if np.array_equal(cached["key"], key):
                    return cached["features"]
        except (ValueError, OSError, KeyError, EOFError):
            pass  # unreadable or foreign cache file: recompute and overwrite it
    wave, sample_rate = read_wave(path)
    try:
        features = mfcc_features(wave, sample_rate)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from error
    if cache_dir is not None:
        # Several DataLoader workers may fill the cache at once: each writes its own temp file.
        with atomic_open(cache_dir, "wb") as file:
            np.savez(file, features=features, key=key)
    return features
