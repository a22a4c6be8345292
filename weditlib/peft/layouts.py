"""Which layers PEFT LoRA factors load onto, and the shapes they must have there.

One row per layer type, like PEFT's dispatchers (first match wins). For each, the factors in
PEFT's shapes flatten to the layer's editable ``(n, k)`` weight as ``ΔW = B @ A`` with
``A.flatten(1): (r, k)`` and ``B.flatten(1): (n, r)``:

==========================  =============================  ===========================
layer                       ``lora_A``                     ``lora_B``
==========================  =============================  ===========================
``nn.Linear(k, n)``         ``(r, k)``                     ``(n, r)``
HF ``Conv1D(nf=n, nx=k)``   ``(r, k)``                     ``(n, r)``
``nn.Conv{1,2}d``           ``(r, in, *kernel)``           ``(out, r, 1, ...)``
==========================  =============================  ===========================

(PEFT's ``fan_in_fan_out`` follows from the layer type: it is set for ``Conv1D``.) A conv LoRA
``A`` is a conv with the base's stride and padding but no dilation, groups or padding mode, so it
equals a shift of the base kernel only when the base has none of those either.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


def _hf_conv1d_type() -> type | None:
    """``transformers``' ``Conv1D`` if transformers is loaded (never imported here)."""
    module = sys.modules.get("transformers.pytorch_utils")
    return getattr(module, "Conv1D", None)


@dataclass(frozen=True)
class LoraLayout:
    """How one layer type holds LoRA factors.

    Attributes:
        name: the layer type, for messages.
        matches: whether a module is of this type.
        factor_shapes: ``(module, r) -> (lora_A shape, lora_B shape)`` as PEFT stores them.
        refusal: ``module -> reason`` when this module's LoRA is not a shift of its weight,
            else ``None``.
        magnitude_shape: ``module -> shape`` of DoRA's ``lora_magnitude_vector`` as PEFT stores
            it (``(n,)`` for a linear, ``(1, out, 1, ...)`` for a conv).
    """

    name: str
    matches: Callable[[nn.Module], bool]
    factor_shapes: Callable[[nn.Module, int], tuple[tuple[int, ...], tuple[int, ...]]]
    refusal: Callable[[nn.Module], str | None] = lambda module: None
    magnitude_shape: Callable[[nn.Module], tuple[int, ...]] = lambda module: (
        module.weight.shape[0],
    )


def _conv_refusal(module: nn.Module) -> str | None:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    if module.groups != 1:
        return f"groups={module.groups}"
    if any(d != 1 for d in module.dilation):
        return f"dilation={module.dilation}"
    if module.padding_mode != "zeros":
        return f"padding_mode={module.padding_mode!r}"
    return None


def _conv_factors(module: nn.Module, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    ones = (1,) * len(module.kernel_size)
    return (rank, module.in_channels, *module.kernel_size), (module.out_channels, rank, *ones)


LAYOUTS: tuple[LoraLayout, ...] = (
    LoraLayout(
        "nn.Linear",
        lambda module: isinstance(module, nn.Linear),
        lambda module, rank: ((rank, module.in_features), (module.out_features, rank)),
    ),
    LoraLayout(
        "transformers Conv1D",
        lambda module: (conv1d := _hf_conv1d_type()) is not None and isinstance(module, conv1d),
        lambda module, rank: ((rank, module.nx), (module.nf, rank)),
        magnitude_shape=lambda module: (module.nf,),
    ),
    LoraLayout(
        "nn.Conv1d / nn.Conv2d",
        lambda module: isinstance(module, nn.Conv1d | nn.Conv2d),
        _conv_factors,
        _conv_refusal,
        lambda module: (1, module.out_channels, *(1,) * len(module.kernel_size)),
    ),
)


def check_factors(
    adapter: str,
    path: str,
    lora_a: Tensor,
    lora_b: Tensor,
    rank: int,
    modules: dict[str, nn.Module],
    lora_bias: Tensor | None = None,
    magnitude: Tensor | None = None,
) -> None:
    """Check that the factors of ``adapter`` for module ``path`` fit the model's layer.

    Args:
        adapter: the adapter's name (for messages).
        path: the module's path in the model.
        lora_a: ``lora_A`` as PEFT stores it.
        lora_b: ``lora_B`` as PEFT stores it.
        rank: the rank the adapter's config gives this module.
        modules: the model's ``named_modules()``.
        lora_bias: ``lora_B``'s bias when the adapter has one (``lora_bias=True``).
        magnitude: DoRA's magnitude when the adapter has one (``use_dora=True``).

    Raises:
        ValueError: the model has no such module, a conv layer has a geometry PEFT's conv LoRA
            does not follow, or the shapes do not fit (naming the adapter, the module, the
            factors' shapes and the layer's weight shape).
        TypeError: the module is not a layer type of :data:`LAYOUTS` (or is a linear inside
            ``nn.MultiheadAttention``, which applies its projections itself).
    """
    shapes = f"lora_A {tuple(lora_a.shape)}, lora_B {tuple(lora_b.shape)}"
    module = modules.get(path)
    if module is None:
        raise ValueError(
            f"adapter {adapter!r} targets module {path!r} ({shapes}), which the model does not have"
        )
    layout = next((layout for layout in LAYOUTS if layout.matches(module)), None)
    parent = modules.get(path.rpartition(".")[0])
    if layout is None or isinstance(parent, nn.MultiheadAttention):
        raise TypeError(
            f"adapter {adapter!r} targets module {path!r}, a {type(module).__name__}; "
            f"weditlib.peft loads LoRA onto {', '.join(layout.name for layout in LAYOUTS)} "
            "(not inside nn.MultiheadAttention)"
        )
    if (reason := layout.refusal(module)) is not None:
        raise ValueError(
            f"adapter {adapter!r}, module {path!r}: PEFT's conv LoRA does not follow the base "
            f"layer's {reason}, so it is not a shift of its kernel"
        )
    if lora_a.shape[0] != rank:
        raise ValueError(
            f"adapter {adapter!r}, module {path!r}: the config gives rank {rank} but the "
            f"factors have rank {lora_a.shape[0]} ({shapes})"
        )
    expected_a, expected_b = layout.factor_shapes(module, rank)
    if (tuple(lora_a.shape), tuple(lora_b.shape)) != (expected_a, expected_b):
        raise ValueError(
            f"adapter {adapter!r}, module {path!r}: LoRA factors {shapes} do not fit the "
            f"model's {layout.name} weight {tuple(module.weight.shape)} (expected lora_A "
            f"{expected_a}, lora_B {expected_b})"
        )
    if lora_bias is not None and tuple(lora_bias.shape) != (expected_b[0],):
        raise ValueError(
            f"adapter {adapter!r}, module {path!r}: lora_B bias {tuple(lora_bias.shape)} does "
            f"not fit the layer's {expected_b[0]} outputs (expected ({expected_b[0]},))"
        )
    if magnitude is not None and tuple(magnitude.shape) != layout.magnitude_shape(module):
        raise ValueError(
            f"adapter {adapter!r}, module {path!r}: DoRA magnitude {tuple(magnitude.shape)} does "
            f"not fit the layer (expected {layout.magnitude_shape(module)})"
        )
