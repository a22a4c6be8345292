"""Validation of generation inputs at the entry points: options and listener histories.

Each check names the argument and what was expected, so a bad value fails before any model is
loaded instead of deep inside NumPy or torch (or, for a NaN history, not at all).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from perfrdiff._checks import check_at_least, check_seed
from perfrdiff.data import check_emotion_range, check_feature_dtype, check_finite, read_npy
from perfrdiff.features import HISTORY_DIMS


def check_generation_options(
    samples: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    limit: int | None = None,
    plots: int = 0,
    seed: int = 0,
) -> None:
    """Reject bad generation options (``None`` means "the config's value" / "all items").

    Args:
        samples: ``M`` reactions per item, >= 1.
        steps: DDIM steps, >= 1 (at most the schedule's ``train_steps``, checked by the config).
        guidance: classifier-free guidance scale, a finite number.
        limit: generate only the first ``limit`` items, >= 1.
        plots: items to plot, >= 0.
        seed: noise seed, in [0, 2³² - 1].

    Raises:
        ValueError: naming the first bad option.
    """
    for name, value, low in (("samples", samples, 1), ("steps", steps, 1), ("limit", limit, 1)):
        if value is not None:
            check_at_least(name, value, low)
    check_at_least("plots", plots, 0)
    check_seed("seed", seed)
    if guidance is not None and (
        isinstance(guidance, bool)
        or not isinstance(guidance, int | float)
        or not math.isfinite(guidance)
    ):
        raise ValueError(f"guidance: expected a finite number, got {guidance!r}")


def check_history(history: Any, style_input: str, source: str = "history") -> np.ndarray:
    """A listener history ``(h, c)`` validated for ``style.input`` and returned as float32.

    Args:
        history: ``(h, c)`` array, ``c`` = 58 (``face``), 25 (``emotion``) or 50 (``dyadic``:
            the listener's emotion, then their partner's), ``h >= 1`` frames.
        style_input: the config's ``style.input``.
        source: what to call the array in messages (e.g. its file name).

    Raises:
        ValueError: wrong shape, empty, not floating point (an integer array is refused, not
            cast: see :func:`perfrdiff.data.check_feature_dtype`), containing NaN / infinite
            values, or emotion values outside their ranges.
    """
    if style_input not in HISTORY_DIMS:
        raise ValueError(
            f"style_input: expected one of {sorted(HISTORY_DIMS)}, got {style_input!r}"
        )
    channels = HISTORY_DIMS[style_input]
    array = np.asarray(history)
    check_feature_dtype(array, source)
    if array.ndim != 2 or array.shape[1] != channels or array.shape[0] == 0:
        raise ValueError(
            f"{source}: history must have shape (h, {channels}) with h >= 1 for "
            f"style.input={style_input!r}, got {array.shape}"
        )
    check_finite(array, source)
    if style_input != "face":  # emotion frames (dyadic: two side by side)
        check_emotion_range(array, source)
    return np.ascontiguousarray(array, dtype=np.float32)


def read_history(path: str | Path, style_input: str) -> np.ndarray:
    """Read and validate a listener history ``.npy`` (see :func:`check_history`).

    Raises:
        perfrdiff.data.DataError: the file is missing or not a ``.npy`` array.
        ValueError: the array is not a valid history; the message names the file.
    """
    return check_history(read_npy(path), style_input, source=str(path))
