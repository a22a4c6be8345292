"""Names of the previous release that still work for one release, with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any


def renamed_names(
    module: str, renamed: Mapping[str, str], namespace: Mapping[str, Any]
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that serves each old name of ``renamed`` as its new one.

    Reading an old name warns (``DeprecationWarning`` naming the new name) and returns the new
    name's object, so ``isinstance`` checks and subclasses keep working.

    Args:
        module: the module's ``__name__``, for the messages.
        renamed: old name → new name.
        namespace: the module's ``globals()``, where the new names are looked up.
    """

    def __getattr__(name: str) -> Any:
        new = renamed.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; use "
            f"{module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__
