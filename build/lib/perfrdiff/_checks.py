"""Integer options checked the same way wherever a user gives one (generation, evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
