"""Integer options checked the same way wherever a user gives one (generation, evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: The largest seed: NumPy seeds take 32 bits (torch takes 64, but a training seeds each rank
#: with ``seed * 1000 + rank``), so a larger one would fail deep inside with an overflow.
SEED_MAX = 2**32 - 1


def is_integer(value: Any) -> bool:
    """A Python or NumPy integer; not a bool (which Python counts as one) or a float."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def check_at_least(name: str, value: Any, low: int) -> None:
    """``value`` is an integer ``>= low``.

    Raises:
        ValueError: ``{name}: expected an integer >= {low}, got {value!r}``.
    """
    if not is_integer(value) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def check_seed(name: str, value: Any) -> None:
    """``value`` is an integer in ``[0, SEED_MAX]``.

    Raises:
        ValueError: ``{name}: expected an integer in [0, 4294967295], got {value!r}``.
    """
    if not is_integer(value) or not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name}: expected an integer in [0, {SEED_MAX}], got {value!r}")
