"""Validation of metric inputs at the public entry points; internals trust what passes here."""

from __future__ import annotations

from typing import Any

import numpy as np

from perfrdiff._checks import is_integer


def _tensor_to_numpy(name: str, value: Any) -> Any:
    """A torch tensor as a numpy array; anything else unchanged."""
    if not hasattr(value, "detach"):
        return value
    import torch  # only reached with a tensor, so torch is already imported

    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
        value = value.float()  # NumPy has no bfloat16, what bf16 generation produces
    try:
        return value.numpy()
    except TypeError:  # e.g. float8: torch's message names neither argument nor dtype
        raise TypeError(f"{name}: expected a real numeric dtype, got {value.dtype}") from None


def as_array(name: str, value: Any, ndim: int, layout: str) -> np.ndarray:
    """``value`` (numpy array or torch tensor) as a finite real array with ``ndim`` dimensions."""
    value = _tensor_to_numpy(name, value)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}: expected a numpy array or torch tensor, got {type(value).__name__}"
        )
    if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
        raise TypeError(f"{name}: expected a real numeric dtype, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name}: expected shape {layout}, got {tuple(value.shape)}")
    if 0 in value.shape:
        raise ValueError(f"{name}: expected non-empty {layout}, got {tuple(value.shape)}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return value


def predictions_array(predictions: Any) -> np.ndarray:
    """``predictions`` validated as ``(n, k, t, d)``."""
    return as_array("predictions", predictions, 4, "(n, k, t, d)")


def sequences_array(name: str, value: Any, predictions: np.ndarray) -> np.ndarray:
    """A per-item sequence array ``(n, t, d)`` matching ``predictions`` ``(n, k, t, d)``."""
    array = as_array(name, value, 3, "(n, t, d)")
    n, _, t, d = predictions.shape
    if array.shape != (n, t, d):
        # Neither side is known to be the wrong one: say which dimension disagrees.
        differ = [
            f"{what} = {a} vs {p}"
            for what, a, p in zip("ntd", array.shape, (n, t, d), strict=True)
            if a != p
        ]
        raise ValueError(
            f"{name} {tuple(array.shape)} and predictions {tuple(predictions.shape)} disagree "
            f"on (n, t, d): " + ", ".join(differ)
        )
    return array


def neighbour_array(neighbours: Any, n: int) -> np.ndarray:
    """The appropriateness matrix validated as boolean ``(n, n)`` with no empty row."""
    neighbours = np.asarray(_tensor_to_numpy("neighbours", neighbours))
    if neighbours.shape != (n, n):
        raise ValueError(f"neighbours: expected shape (n, n) = {(n, n)}, got {neighbours.shape}")
    if neighbours.dtype != np.bool_:
        if not np.isin(neighbours, (0, 1)).all():
            raise ValueError("neighbours: expected a boolean or 0/1 matrix")
        neighbours = neighbours.astype(bool)
    empty = np.flatnonzero(~neighbours.any(axis=1))
    if empty.size:
        raise ValueError(f"neighbours: row {int(empty[0])} has no appropriate reaction")
    return neighbours


def check_n_jobs(n_jobs: Any) -> None:
    """``n_jobs`` of FRdist: None (one process per usable CPU) or an integer >= 1."""
    if n_jobs is not None and not (is_integer(n_jobs) and n_jobs >= 1):
        raise ValueError(
            f"n_jobs: expected None (one process per usable CPU) or an integer >= 1, got {n_jobs!r}"
        )
