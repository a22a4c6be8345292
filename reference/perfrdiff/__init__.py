"""PerFRDiff reference implementation built on :mod:`weditlib`.

:class:`perfrdiff.Run` is the entry point: a run's config, directory, device and precision, its
training stages and its samplers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Run"]

if TYPE_CHECKING:
    from perfrdiff.run import Run


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a torch-free part (e.g. perfrdiff.metrics in FRdist worker
    # processes) does not import torch.
    if name == "Run":
        from perfrdiff._extra import require_reference_extra

        require_reference_extra()  # names the extra to install instead of a raw import error
        from perfrdiff.run import Run

        return Run
    raise AttributeError(f"module 'perfrdiff' has no attribute {name!r}")
