"""Compact encodings for the self-contained page: quantised reactions, resampled audio, and the
rule that keeps long sequences small.

A 30 s REACT 2024 item (750 frames x 25 channels) is 18.75 kB per sequence at one byte per value;
the real listener, the speaker and 2 x 10 samples are ~0.55 MB in base64. Speech audio is
resampled to 16 kHz, 16-bit mono WAV (~1.3 MB in base64 for 30 s): a format every browser plays,
with no encoder to install.
"""

from __future__ import annotations

import base64
import io
import math
from fractions import Fraction

import numpy as np

#: Default cap on the frames embedded per sequence (3 minutes at 25 fps).
MAX_FRAMES = 4500
#: Default sample rate of the embedded audio (speech; Nyquist 8 kHz).
AUDIO_RATE = 16000


def frame_stride(frames: int, max_frames: int = MAX_FRAMES) -> int:
    """Keep every ``s``-th frame, ``s = ceil(frames / max_frames)``: the smallest whole stride
    that embeds at most ``max_frames`` frames (1 for a 30 s REACT 2024 clip; 5 for a 20,000-frame
    MARS session at the default cap). Each kept frame is shown for ``s`` source frames.

    Raises:
        ValueError: ``frames`` or ``max_frames`` below 1.
    """
    if frames < 1 or max_frames < 1:
        raise ValueError(f"frames and max_frames must be >= 1, got {frames} and {max_frames}")
    return math.ceil(frames / max_frames)


def quantise(sequence: np.ndarray) -> dict:
    """One byte per value, per-channel range: ``sequence: (t, c)`` -> ``{"lo", "hi", "data"}``.

    ``value = lo[c] + q / 255 * (hi[c] - lo[c])``; the error is at most ``(hi - lo) / 510`` per
    channel (0.002 for an AU in [0, 1]). ``data`` is the ``(t, c)`` uint8 array, row-major, in
    base64.

    Raises:
        ValueError: ``sequence`` is not 2-d or holds NaN / infinite values.
    """
    sequence = np.asarray(sequence, dtype=np.float64)
    if sequence.ndim != 2:
        raise ValueError(f"sequence: expected (t, c), got shape {sequence.shape}")
    if not np.isfinite(sequence).all():
        raise ValueError("sequence: contains NaN or infinite values")
    lo, hi = sequence.min(axis=0), sequence.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    codes = np.rint((sequence - lo) / span * 255).astype(np.uint8)
    return {
        "lo": np.round(lo, 6).tolist(),
        "hi": np.round(lo + span, 6).tolist(),
        "data": base64.b64encode(codes.tobytes()).decode("ascii"),
    }


def dequantise(encoded: dict, channels: int) -> np.ndarray:
    """Inverse of :func:`quantise`: ``(t, channels)`` float64 (what the page's JavaScript reads)."""
    codes = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint8)
    lo, hi = np.asarray(encoded["lo"]), np.asarray(encoded["hi"])
    return lo + codes.reshape(-1, channels) / 255 * (hi - lo)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wave: (samples,)`` at ``rate`` Hz resampled to ``target`` Hz (polyphase, anti-aliased)."""
    if rate == target:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    return resample_poly(wave, ratio.numerator, ratio.denominator).astype(np.float32)


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV file bytes of ``wave: (samples,)`` in [-1, 1]."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def audio_data_uri(wave: np.ndarray, rate: int, target: int = AUDIO_RATE) -> str:
    """``data:audio/wav;base64,...`` of ``wave`` resampled to ``target`` Hz (never upsampled)."""
    target = min(target, rate)
    return "data:audio/wav;base64," + base64.b64encode(
        wav_bytes(resample(wave, rate, target), target)
    ).decode("ascii")
