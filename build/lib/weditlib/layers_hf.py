"""Editable versions of Hugging Face ``transformers`` layers.

This module imports ``transformers``; :func:`weditlib.make_editable` imports it only when
``transformers.pytorch_utils`` is already loaded (i.e. the model being edited is a transformers
model), so ``import weditlib`` never pulls transformers in.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from weditlib.layers import EditableMixin, _share_state, check_batch_dim, edited_linear_at


class EditableConv1D(EditableMixin, Conv1D):
    """Hugging Face's ``Conv1D`` (GPT-2's transposed linear) whose weight can be edited per sample.

    ``Conv1D(nf=n, nx=k)`` stores its weight as ``(k, n)`` and computes ``y = x @ W + b``. The
    editable weight is its transpose, ``(n, k)``, exactly like ``nn.Linear(k, n)``'s: a shift
    ``ΔW (l, n, k)`` means the same for both, and ``y_b = x_b (Wᵀ ⊕ ΔW_b)ᵀ + b``.

    Shapes: ``x: (b, *t, k) -> (b, *t, n)`` when ``batch_dim == 0``.
    """

    @classmethod
    def from_module(cls, base: Conv1D, batch_dim: int = 0) -> EditableConv1D:
        """Wrap ``base`` without copying: the new layer shares its weight and bias.

        Raises:
            TypeError: ``base`` is not a ``transformers.pytorch_utils.Conv1D``.
        """
        if not isinstance(base, Conv1D):
            raise TypeError(
                f"base must be a transformers.pytorch_utils.Conv1D, got {type(base).__name__}"
            )
        module = _share_state(cls, base)
        module._configure(batch_dim)
        return module

    def _configure(self, batch_dim: int) -> None:
        check_batch_dim(batch_dim)
        self.batch_dim = batch_dim
        self.editable_weights = {"": (self.nf, self.nx)}
        self._init_edit_state()

    def forward(self, x: Tensor) -> Tensor:
        """``Conv1D.forward`` with the active shift (if any) applied per sample.

        Shapes: ``x: (b, *t, k) -> (b, *t, n)`` (sample dim at ``batch_dim``).
        """
        active = self._active_shift("")
        if active is None:
            return super().forward(x)
        delta, grouping = active
        return edited_linear_at(x, self.batch_dim, self.weight.T, self.bias, delta, None, grouping)

    def _weight_views(self, name: str) -> tuple[Tensor, Tensor | None]:
        super()._weight_views(name)  # validates the name
        return self.weight.T, self.bias

    __repr__ = nn.Module.__repr__  # Conv1D's own __repr__ ignores extra_repr

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx}, batch_dim={self.batch_dim}, {self._edit_repr()}"
