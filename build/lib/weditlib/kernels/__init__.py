"""Backends of :func:`weditlib.functional.edited_linear`.

``reference`` (plain torch, any device) is always present; ``triton_backend`` (fused CUDA kernels)
contributes algorithms that declare themselves supported only for CUDA tensors with Triton
installed.
"""

from __future__ import annotations

from weditlib.kernels.base import Algorithm


def triton_backend_algorithms() -> tuple[Algorithm, ...]:
    """The Triton backend's algorithms, or ``()`` when that backend is not shipped.

    Imported on first use, not with the package: Triton decides between its interpreter and its
    compiler when the kernels are defined (``TRITON_INTERPRET``). A plain ``import`` statement
    (not ``importlib``) so that ``torch.compile`` can trace through it.
    """
    try:
        from weditlib.kernels import triton_backend
    except ModuleNotFoundError as error:
        if error.name != "weditlib.kernels.triton_backend":
            raise
        return ()
    return triton_backend.ALGORITHMS
