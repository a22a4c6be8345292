"""Editable versions of Hugging Face ``transformers`` layers.

This module imports ``transformers``; :func:`weditlib.make_editable` imports it only when
``transformers.pytorch_utils`` is already loaded (i.e. the model being edited is a transformers
model), so ``import weditlib`` never pulls transformers in.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from weditlib.layers import LinearLike


class EditableConv1D(LinearLike, Conv1D):
    """Hugging Face's ``Conv1D`` (GPT-2's transposed linear) whose weight can be edited per sample.

    ``Conv1D(nf=n, nx=k)`` stores its weight as ``(k, n)`` and computes ``y = x @ W + b``. The
    editable weight is its transpose, ``(n, k)``, exactly like ``nn.Linear(k, n)``'s: a shift
    ``ΔW (l, n, k)`` means the same for both, and ``y_b = x_b (Wᵀ ⊕ ΔW_b)ᵀ + b``.
    ``EditableConv1D.from_module(base, batch_dim)`` wraps an existing ``Conv1D`` without copying.

    Shapes: ``x: (b, *t, k) -> (b, *t, n)`` when ``batch_dim == 0``.
    """

    base_type = Conv1D
    base_name = "a transformers.pytorch_utils.Conv1D"

    def _edited_shape(self) -> tuple[int, int]:
        return self.nf, self.nx

    def forward(self, x: Tensor) -> Tensor:
        """``Conv1D.forward`` with the active shift (if any) applied per sample.

        Shapes: ``x: (b, *t, k) -> (b, *t, n)`` (sample dim at ``batch_dim``).
        """
        return self._edited_forward(super().forward, x)

    def _weight_views(self, name: str) -> tuple[Tensor, Tensor | None]:
        super()._weight_views(name)  # validates the name
        return self.weight.T, self.bias

    __repr__ = nn.Module.__repr__  # Conv1D's own __repr__ ignores extra_repr

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx}, batch_dim={self.batch_dim}, {self._edit_repr()}"
