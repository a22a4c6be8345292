"""Motion statistics of reactions: how generated curves move compared with real listeners.

Beside the seven REACT metrics, three numbers say whether generated reactions move like real ones:

* **step**: the mean absolute frame-to-frame change ``mean_d |x_t,d - x_{t-1},d|`` at frame ``t``.
  Online generation produces a clip window by window; *joins* are the frames where a newly
  generated stretch begins (``w, w + s, w + 2s, …`` for windows of ``w`` frames placed every
  ``s``). ``join_ratio`` = mean step at joins / mean step at every other frame (a seamless
  reaction: 1; real reactions: 1 at any set of frames).
* ``inside_vs_real``: mean step at the non-join frames of the predictions / that of the real
  reactions at the same frames (1: as lively as a real listener; below 1: over-smooth).
* **spectrum**: the one-sided power of each channel (its mean removed), summed per frequency band
  and averaged over sequences and channels. The bands of a sequence sum to its variance over
  time, so white noise of variance ``σ²`` puts ``σ² · width / (fps / 2)`` in each band and a sine of
  amplitude ``A`` puts ``A² / 2`` in the band of its frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perfrdiff.metrics._inputs import as_array, predictions_array
from perfrdiff.protocol import REACT2024

FPS = float(REACT2024.fps)  # a default: callers pass their protocol's
# Hz; the last band ends at the Nyquist frequency (12.5 Hz at 25 fps), inclusive.
BANDS: tuple[tuple[float, float], ...] = ((0, 0.5), (0.5, 1), (1, 2), (2, 4), (4, 8), (8, 12.5))


def frame_steps(sequences: np.ndarray) -> np.ndarray:
    """``(..., t, d)`` -> ``(..., t)``: mean absolute change over channels at each frame
    (frame 0, which has no predecessor, gets NaN)."""
    x = np.asarray(sequences, dtype=np.float64)
    steps = np.abs(np.diff(x, axis=-2)).mean(axis=-1)
    return np.concatenate([np.full((*steps.shape[:-1], 1), np.nan), steps], axis=-1)


def join_frames(frames: int, window: int, stride: int | None = None) -> np.ndarray:
    """The first frame of every generated stretch after the first: ``w, w + s, … < frames``.

    Args:
        frames: ``t``, frames per sequence.
        window: ``w``, frames of the first window.
        stride: ``s``, frames each later window adds (default ``w``: windows end to end).
    """
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    return np.arange(window, frames, stride)


def step_sizes(sequences: np.ndarray, joins: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """Mean step at the ``joins`` frames and at every other frame ``t >= 1``.

    Args:
        sequences: ``(..., t, d)``.
        joins: frame indices in ``[1, t)``.

    Returns:
        ``(at joins, inside)``; NaN for an empty set of frames.
    """
    steps = frame_steps(sequences)
    t = steps.shape[-1]
    joins = np.asarray(joins, dtype=np.int64)
    if joins.size and (joins.min() < 1 or joins.max() >= t):
        raise ValueError(f"joins: frames must be in [1, {t}), got {joins.min()}..{joins.max()}")
    at_join = np.zeros(t, dtype=bool)
    at_join[joins] = True
    inside = ~at_join
    inside[0] = False

    def mean(mask: np.ndarray) -> float:
        return float(steps[..., mask].mean()) if mask.any() else float("nan")

    return mean(at_join), mean(inside)


def band_power(
    sequences: np.ndarray, bands: Sequence[tuple[float, float]] = BANDS, fps: float = FPS
) -> np.ndarray:
    """``(n_bands,)`` mean power per frequency band of ``sequences (..., t, d)`` (see module).

    Band ``[lo, hi)`` holds the FFT bins with ``lo <= f < hi``; a band ending at the Nyquist
    frequency also holds it.
    """
    x = np.asarray(sequences, dtype=np.float64)
    t = x.shape[-2]
    x = x - x.mean(axis=-2, keepdims=True)
    spectrum = np.abs(np.fft.rfft(x, axis=-2)) ** 2 / t**2
    # One-sided: every bin but DC and (for even t) Nyquist stands for itself and its mirror.
    spectrum[..., 1 : (t + 1) // 2, :] *= 2
    power = spectrum.reshape(-1, spectrum.shape[-2], spectrum.shape[-1]).mean(axis=(0, 2))
    frequencies = np.arange(spectrum.shape[-2]) * fps / t  # exact at Nyquist (rfftfreq is not)
    nyquist = fps / 2
    out = []
    for lo, hi in bands:
        mask = (frequencies >= lo) & ((frequencies < hi) | ((hi >= nyquist) & (frequencies <= hi)))
        out.append(power[mask].sum())
    return np.asarray(out)


def ratio(a: float, b: float) -> float:
    """``a / b`` as a float, ``inf`` (or NaN for ``0 / 0``) where ``b = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def band_name(band: tuple[float, float]) -> str:
    return f"power {band[0]:g}-{band[1]:g}Hz"


def motion_report(
    predictions: Any,
    listener_emotion: Any,
    window: int = 50,
    stride: int | None = None,
    bands: Sequence[tuple[float, float]] = BANDS,
    fps: float = FPS,
) -> dict[str, float]:
    """Motion statistics of ``predictions (n, k, t, d)`` against real ``listener_emotion``.

    Args:
        listener_emotion: ``(m, t, d)`` real reactions.
        window: frames of each online window the predictions were generated in.
        stride: frames between window starts (default ``window``; see :func:`join_frames`).
        bands: frequency bands in Hz (see :func:`band_power`).
        fps: frames per second.

    Returns:
        ``join_step``, ``inside_step``, ``join_ratio`` (of the predictions), ``real_join_ratio``
            (the real reactions at the same frames), ``inside_vs_real``, and per band
            ``power lo-hiHz`` as generated / real power.
    """
    p = predictions_array(predictions)
    real = as_array("listener_emotion", listener_emotion, 3, "(m, t, d)")
    if real.shape[1:] != p.shape[2:]:
        raise ValueError(
            f"listener_emotion: expected (m, t, d) with (t, d) = {p.shape[2:]}, got {real.shape}"
        )
    joins = join_frames(p.shape[2], window, stride)
    join_step, inside_step = step_sizes(p, joins)
    real_join, real_inside = step_sizes(real, joins)
    generated_power, real_power = band_power(p, bands, fps), band_power(real, bands, fps)
    return {
        "join_step": join_step,
        "inside_step": inside_step,
        "join_ratio": ratio(join_step, inside_step),
        "real_join_ratio": ratio(real_join, real_inside),
        "inside_vs_real": ratio(inside_step, real_inside),
        **{
            band_name(band): ratio(g, r)
            for band, g, r in zip(bands, generated_power, real_power, strict=True)
        },
    }
