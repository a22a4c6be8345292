"""Editable convolutions: drop-in subclasses of ``nn.Conv1d`` and ``nn.Conv2d``.

Like :class:`~weditlib.layers.EditableLinear`, an editable conv owns (or, built with
``from_module``, *shares*) the base parameters and applies shifts given at call time or made active
by :func:`weditlib.edit`; with no shift it runs the base class's own ``forward`` (bit-identical).
Its one editable weight, local name ``""``, is the kernel flattened to
``(out, in/groups · prod(kernel))``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from weditlib.conv import edited_conv
from weditlib.layers import EditableMixin, _share_state
from weditlib.row_scaled import AnyShift


class _EditableConv(EditableMixin):
    """What both editable convs add to their ``nn.Conv*`` base: edit state and ``forward``."""

    # provided by the nn.Conv* base class
    weight: Tensor
    bias: Tensor | None
    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, ...]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._configure()

    @classmethod
    def _wrap(cls, base: nn.Module, base_type: type[nn.Module]):
        if not isinstance(base, base_type):
            raise TypeError(f"base must be an nn.{base_type.__name__}, got {type(base).__name__}")
        module = _share_state(cls, base)
        module._configure()
        return module

    def _configure(self) -> None:
        k = self.in_channels // self.groups * math.prod(self.kernel_size)
        self.editable_weights = {"": (self.out_channels, k)}
        self._init_edit_state()

    def forward(
        self, input: Tensor, delta: AnyShift | None = None, index: Tensor | None = None
    ) -> Tensor:
        """The base convolution with ``delta`` (or the active shift) applied per sample.

        Args:
            input: ``(b, c_in, *s)``; unbatched inputs are allowed only without a shift.
            delta: ``l`` shifts of the flattened kernel ``(out, in/groups · prod(kernel))``;
                overrides the active one.
            index: ``(b,)`` shift of each sample; ``None`` means one shift per sample.

        Returns:
            ``(b, out, *s_out)``.
        """
        grouping = None
        if delta is None and (active := self._active_shift("")) is not None:
            delta, grouping = active
        if delta is None:
            return super().forward(input)  # type: ignore[misc]
        return edited_conv(
            input,
            self.weight,
            self.bias,
            delta,
            index,
            stride=self.stride,  # type: ignore[attr-defined]
            padding=self.padding,  # type: ignore[attr-defined]
            dilation=self.dilation,  # type: ignore[attr-defined]
            groups=self.groups,
            padding_mode=self.padding_mode,  # type: ignore[attr-defined]
            grouping=grouping,
        )

    def _weight_views(self, name: str) -> tuple[Tensor, Tensor | None]:
        super()._weight_views(name)  # validates the name
        # The kernel itself, not its (n, k) view: a channels_last kernel has none (its k values
        # per output channel are not evenly strided), so merge and materialise flatten it.
        return self.weight, self.bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._edit_repr()}"  # type: ignore[misc]


class EditableConv1d(_EditableConv, nn.Conv1d):
    """``nn.Conv1d`` whose kernel can be edited per sample.

    Shapes: ``x: (b, c_in, w) -> (b, out, w_out)``; editable weight ``(out, in/groups · k_w)``.
    Takes ``nn.Conv1d``'s arguments.
    """

    @classmethod
    def from_module(cls, base: nn.Conv1d) -> EditableConv1d:
        """Wrap ``base`` without copying: the new layer shares its weight and bias.

        Raises:
            TypeError: ``base`` is not an ``nn.Conv1d``.
        """
        return cls._wrap(base, nn.Conv1d)


class EditableConv2d(_EditableConv, nn.Conv2d):
    """``nn.Conv2d`` whose kernel can be edited per sample.

    Shapes: ``x: (b, c_in, h, w) -> (b, out, h_out, w_out)``; editable weight
    ``(out, in/groups · k_h · k_w)``. Takes ``nn.Conv2d``'s arguments.
    """

    @classmethod
    def from_module(cls, base: nn.Conv2d) -> EditableConv2d:
        """Wrap ``base`` without copying: the new layer shares its weight and bias.

        Raises:
            TypeError: ``base`` is not an ``nn.Conv2d``.
        """
        return cls._wrap(base, nn.Conv2d)
