"""Backends of :func:`weditlib.functional.edited_linear`.

``reference`` (plain torch, any device) is always present; ``triton_backend`` (fused CUDA kernels)
contributes algorithms that declare themselves supported only for CUDA tensors with Triton
installed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

from weditlib.kernels.base import Algorithm


@functools.cache
def triton_backend_algorithms() -> tuple[Algorithm, ...]:
    """The Triton backend's algorithms, or ``()`` when that backend is not shipped."""
    if importlib.util.find_spec("weditlib.kernels.triton_backend") is None:
        return ()
    return tuple(importlib.import_module("weditlib.kernels.triton_backend").ALGORITHMS)
