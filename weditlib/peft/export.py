"""Write weditlib shifts as PEFT LoRA adapter directories.

A row ``i`` of a :class:`~weditlib.LowRankShift` (``mode="add"``) edits a layer exactly as a
PEFT LoRA adapter with ``lora_B = up[i]``, ``lora_A = down[i]`` and ``scaling = 1``
(``lora_alpha = r``) does; its bias shift becomes ``lora_B``'s bias (``lora_bias=True``). A row of
a :class:`~weditlib.RowScaledShift` over such a shift is a DoRA adapter whose magnitude is
``scale ⊙ ‖W + ΔW‖`` (PEFT divides by the same norm). So a generator's output for one user (a
:class:`~weditlib.MultiBranchShiftGenerator`'s shifts, row by row) leaves weditlib as a directory
that ``PeftModel.from_pretrained`` loads and any PEFT-serving stack serves.

Dense shifts (and ``mode="scale"``, whose ``W ⊙ U V`` is not low-rank) are refused unless the
caller asks for a truncated SVD (``svd_rank=``); the relative error of each layer's
approximation is then reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from weditlib.deltas import Shift, as_integer, combine
from weditlib.editing import check_shifts
from weditlib.peft.dora import row_norms
from weditlib.peft.files import write_adapter_dir
from weditlib.peft.layouts import LAYOUTS
from weditlib.row_range import RowRangeShift
from weditlib.row_scaled import AnyShift

_PREFIX = "base_model.model."


@dataclass(frozen=True)
class AdapterExport:
    """What :func:`export_adapter` wrote.

    Attributes:
        directory: the adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``).
        ranks: module path → the rank written.
        relative_errors: module path → ``‖ΔW − B A‖_F / ‖ΔW‖_F`` of the written factors (``0.0``
            for a low-rank shift written exactly; the truncation error of ``svd_rank``).
        use_dora: the adapter is DoRA (the shifts were :class:`~weditlib.RowScaledShift`).
        lora_bias: the adapter carries bias shifts (``lora_bias=True``).
    """

    directory: Path
    ranks: dict[str, int] = field(default_factory=dict)
    relative_errors: dict[str, float] = field(default_factory=dict)
    use_dora: bool = False
    lora_bias: bool = False


@dataclass(frozen=True)
class _ModuleFactors:
    """One module's factors in PEFT's shapes, and the error of writing them."""

    lora_a: Tensor
    lora_b: Tensor
    bias: Tensor | None
    magnitude: Tensor | None
    relative_error: float


def _lora_module(targets: Mapping[str, tuple[Any, str, Any]], path: str) -> nn.Module:
    """The layer of weight ``path`` (an :func:`~weditlib.editing.editable_modules` entry),
    checked to be one PEFT's LoRA edits as a weight shift."""
    module, local, _ = targets[path]
    layout = next((layout for layout in LAYOUTS if layout.matches(module)), None)
    if layout is None or local:
        what = f"the {local!r} weight of" if local else "the weight of"
        raise TypeError(
            f"shift {path!r} edits {what} a {type(module).__name__}, which PEFT LoRA does not "
            f"load as a weight shift; exportable: {', '.join(layout.name for layout in LAYOUTS)}"
        )
    if (reason := layout.refusal(module)) is not None:
        raise ValueError(
            f"shift {path!r}: PEFT's conv LoRA ignores the layer's {reason}, so this shift of its "
            "kernel has no PEFT adapter"
        )
    return module


def _low_rank_row(
    path: str, delta: Shift, which: int, weight: Tensor, svd_rank: int | None
) -> tuple[Tensor, Tensor, float]:
    """``(up (n, r), down (r, k), relative error)`` of shift ``which``'s ``ΔW``."""
    if delta.rank is not None and delta.mode == "add":
        return delta.up[which], delta.down[which], 0.0
    if svd_rank is None:
        kind = "a dense" if delta.rank is None else f"a mode={delta.mode!r}"
        raise ValueError(
            f"shift {path!r} is {kind} shift, not a low-rank W + U V; pass svd_rank=r to export "
            "its truncated SVD (the relative error is reported)"
        )
    matrix = delta.matrix()[which].to(weight.dtype)
    shift = combine(weight, matrix, delta.mode) - weight  # (n, k): what the layer adds
    u, s, vh = torch.linalg.svd(shift.double(), full_matrices=False)
    rank = max(1, min(svd_rank, s.shape[0]))
    up, down = (u[:, :rank] * s[:rank]).to(weight.dtype), vh[:rank].to(weight.dtype)
    total = torch.linalg.norm(s)
    error = float(torch.linalg.norm(s[rank:]) / total) if total > 0 else 0.0
    return up, down, error


def _module_factors(
    path: str, module: nn.Module, delta: AnyShift, which: int, svd_rank: int | None
) -> _ModuleFactors:
    """Shift ``which`` of ``delta`` as PEFT's factors of ``module`` (scaling 1)."""
    kernel = module._weight_views("")[0].detach()  # type: ignore[operator]
    n, k = delta.out_features, delta.in_features
    weight = kernel.reshape(n, k)
    inner = delta.without_row_scale()
    if isinstance(inner, RowRangeShift):  # zero rows outside the range: the same adapter
        inner = inner.padded()
    up, down, error = _low_rank_row(path, inner, which, weight, svd_rank)
    magnitude = None
    if delta.row_scale is not None:
        if delta.bias is not None:
            raise ValueError(
                f"shift {path!r} is row-scaled (DoRA) with a bias shift; PEFT refuses lora_bias "
                "with use_dora, so it has no PEFT adapter"
            )
        norms = row_norms(weight, up.unsqueeze(0), down.unsqueeze(0))[0]
        magnitude = (delta.scale[which] * norms).detach()
    bias = None if delta.bias is None else delta.bias[which].detach()
    if kernel.dim() > 2:  # conv: lora_A (r, in, *kernel), lora_B (out, r, 1, ...)
        ones = (1,) * (kernel.dim() - 2)
        lora_a = down.reshape(down.shape[0], *kernel.shape[1:])
        lora_b = up.reshape(*up.shape, *ones)
        magnitude = None if magnitude is None else magnitude.reshape(1, n, *ones)
    else:
        lora_a, lora_b = down, up
    return _ModuleFactors(lora_a.detach(), lora_b.detach(), bias, magnitude, error)


def _anchored(path: str) -> str:
    """A PEFT pattern (``rank_pattern``/``alpha_pattern`` key) matching exactly ``path``."""
    return "^" + re.escape(path)


def _config(factors: Mapping[str, _ModuleFactors], model: nn.Module) -> dict[str, Any]:
    """The ``adapter_config.json`` of ``factors``: ``lora_alpha = r`` per module (scaling 1)."""
    ranks = {path: f.lora_a.shape[0] for path, f in factors.items()}
    rank = max(ranks.values())
    pattern = {_anchored(path): r for path, r in ranks.items() if r != rank}
    conv1d = [p for p in factors if LAYOUTS[1].matches(model.get_submodule(p))]
    return {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": rank,
        "rank_pattern": pattern,
        "alpha_pattern": dict(pattern),
        # a regex that fullmatches exactly these paths (a list entry would match suffixes)
        "target_modules": "|".join(re.escape(path) for path in factors),
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": False,
        "use_dora": any(f.magnitude is not None for f in factors.values()),
        "lora_bias": any(f.bias is not None for f in factors.values()),
        "fan_in_fan_out": bool(conv1d),
        "init_lora_weights": True,
        "inference_mode": True,
        "task_type": None,
    }


def _state(factors: Mapping[str, _ModuleFactors], lora_bias: bool) -> dict[str, Tensor]:
    state = {}
    for path, f in factors.items():
        state[f"{_PREFIX}{path}.lora_A.weight"] = f.lora_a
        state[f"{_PREFIX}{path}.lora_B.weight"] = f.lora_b
        if lora_bias:  # every module of a lora_bias adapter has one (zero where no shift)
            bias = f.bias if f.bias is not None else f.lora_b.new_zeros(f.lora_b.shape[0])
            state[f"{_PREFIX}{path}.lora_B.bias"] = bias
        if f.magnitude is not None:
            state[f"{_PREFIX}{path}.lora_magnitude_vector"] = f.magnitude
    return state


def export_adapter(
    directory: str | os.PathLike,
    model: nn.Module,
    shifts: Mapping[str, AnyShift],
    which: int = 0,
    *,
    svd_rank: int | None = None,
) -> AdapterExport:
    """Write shift number ``which`` of every shift in ``shifts`` as one PEFT LoRA adapter.

    ``PeftModel.from_pretrained(base, directory)`` then computes what
    ``edit(model, shifts, index=full(which))`` computes: the factors are written with scaling 1
    (``lora_alpha = r``, per module through ``rank_pattern``/``alpha_pattern`` when ranks differ),
    ``lora_A = down[which]``, ``lora_B = up[which]`` (a conv's in PEFT's conv shapes), bias shifts
    as ``lora_B``'s bias (``lora_bias=True``; zero for modules without one), and a
    :class:`~weditlib.RowScaledShift` as DoRA (``use_dora=True``, magnitude
    ``scale ⊙ ‖W + ΔW‖``, which needs the base weights of ``model``).

    Args:
        directory: where to write (created if missing).
        model: the base model the shifts edit, prepared by :func:`~weditlib.make_editable` (the
            base weights and layer types are read from it; nothing is changed).
        shifts: weight name → shift with ``l`` rows (as for :func:`~weditlib.edit`); each name
            must be the path of a ``nn.Linear``, HF ``Conv1D``, ``nn.Conv1d`` or ``nn.Conv2d``.
        which: the row to write, in ``[0, l)``.
        svd_rank: export dense shifts (and ``mode="scale"`` ones) as their rank-``svd_rank``
            truncated SVD; without it they are refused.

    Returns:
        an :class:`AdapterExport` with each module's rank and relative error.

    Raises:
        KeyError, TypeError, ValueError: as :func:`~weditlib.edit` for ``shifts``; ValueError
            also for an empty ``shifts``, ``which`` out of range, a dense shift without
            ``svd_rank``, a row-scaled shift with a bias shift (PEFT refuses ``lora_bias`` with
            DoRA) or a conv geometry PEFT's conv LoRA does not follow; TypeError for a weight of
            a layer PEFT LoRA does not load (attention projections).
    """
    targets = check_shifts(model, shifts)
    if not shifts:
        raise ValueError("shifts is empty: nothing to export")
    count = next(iter(shifts.values())).num_shifts
    position = as_integer(which)
    if position is None or not 0 <= position < count:
        raise ValueError(
            f"which must be an int in [0, {count}) (the number of shifts), got {which!r}"
        )
    if svd_rank is not None and (as_integer(svd_rank) is None or svd_rank < 1):
        raise ValueError(f"svd_rank must be a positive int or None, got {svd_rank!r}")
    with torch.no_grad():
        factors = {
            path: _module_factors(path, _lora_module(targets, path), delta, position, svd_rank)
            for path, delta in shifts.items()
        }
    config = _config(factors, model)
    write_adapter_dir(directory, config, _state(factors, config["lora_bias"]))
    return AdapterExport(
        Path(directory),
        {path: f.lora_a.shape[0] for path, f in factors.items()},
        {path: f.relative_error for path, f in factors.items()},
        config["use_dora"],
        config["lora_bias"],
    )


def export_adapters(
    directory: str | os.PathLike,
    model: nn.Module,
    shifts: Mapping[str, AnyShift],
    rows: Mapping[str, int],
    *,
    svd_rank: int | None = None,
) -> dict[str, AdapterExport]:
    """Write several rows of ``shifts`` as named PEFT adapters, as ``save_pretrained`` lays
    them out: adapter ``"default"`` in ``directory`` itself, any other in ``directory/<name>``.

    Args:
        directory: where to write.
        model: as :func:`export_adapter`.
        shifts: as :func:`export_adapter`.
        rows: adapter name → the row of ``shifts`` it is (e.g. ``{"alice": 0, "bob": 3}``).
        svd_rank: as :func:`export_adapter`.

    Returns:
        adapter name → its :class:`AdapterExport`.

    Raises:
        ValueError: an adapter name is empty, holds a path separator or ``"."`` only, or as
            :func:`export_adapter`.
    """
    exports = {}
    for name, which in rows.items():
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name:
            raise ValueError(f"adapter names must be plain directory names, got {name!r}")
        target = Path(directory) if name == "default" else Path(directory) / name
        exports[name] = export_adapter(target, model, shifts, which, svd_rank=svd_rank)
    return exports
