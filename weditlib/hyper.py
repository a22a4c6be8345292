"""Hypernetwork that maps a style vector to weight shifts for many named layers (the paper's PWSG).

A shared MLP trunk embeds the style; one branch per edited weight turns the embedding into that
weight's shift. Heads are zero-initialised so the edited model equals the base model at step 0.

* Dense heads (paper fidelity): ``Linear(hidden, n·k)`` per branch — ``hidden·n·k`` parameters.
* Low-rank heads (default): ``ΔW = U V`` with ``U = Linear(h_b, n·r)`` (zero-initialised) and
  ``V = Linear(h_b, r·k)`` (random, so gradients reach ``U`` from the first step, as in LoRA);
  ``h_b`` is an optional per-branch bottleneck. ``r·(n+k)`` instead of ``n·k`` outputs per branch.
* Bias heads (optional, ``bias_shifts=True``): ``Linear(h_b, n)`` per branch, zero-initialised,
  giving each shift a bias shift ``Δb: (l, n)`` (added to the layer's output in both modes). Off
  by default: the paper edits weights only, and a weight named in ``targets`` need not belong to
  a layer that has a bias.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from weditlib._autocast import autocast_dtype
from weditlib._deprecation import renamed_names
from weditlib.deltas import DenseShift, LowRankShift, Shift, as_integer, check_mode


def _is_shape(shape: object) -> bool:
    """``shape`` is ``(n, k)``: two ints ``>= 0`` (any sequence, e.g. a ``torch.Size``)."""
    return (
        isinstance(shape, Sequence)
        and len(shape) == 2
        and all(as_integer(size) is not None and size >= 0 for size in shape)
    )


def _check_sizes(**sizes: int | None) -> None:
    """Each size is ``None`` or an int ``>= 1`` (torch would build an empty or a failing layer)."""
    for name, size in sizes.items():
        if size is not None and (as_integer(size) is None or size < 1):
            raise ValueError(f"{name} must be a positive int, got {size!r}")


def _zero_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """A ``Linear`` whose output is zero until it is trained (edited model == base at step 0)."""
    head = nn.Linear(in_dim, out_dim)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def _bias_head(in_dim: int, n: int, enabled: bool) -> nn.Linear | None:
    """``(l, h) -> (l, n)`` bias shifts, or ``None`` when the branch has none."""
    return _zero_linear(in_dim, n) if enabled else None


def _mlp(in_dim: int, hidden_dim: int, layers: int) -> nn.Sequential:
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(dim, hidden_dim), nn.GELU()]
        dim = hidden_dim
    return nn.Sequential(*blocks)


class DenseBranch(nn.Module):
    """``(l, h) -> DenseShift (l, n, k)`` (with ``bias (l, n)`` when ``bias_shift``)."""

    def __init__(
        self, hidden_dim: int, shape: tuple[int, int], mode: str, bias_shift: bool = False
    ) -> None:
        super().__init__()
        self.shape = shape
        self.mode = mode
        self.head = _zero_linear(hidden_dim, shape[0] * shape[1])
        self.bias_head = _bias_head(hidden_dim, shape[0], bias_shift)

    def forward(self, h: Tensor) -> Shift:
        n, k = self.shape
        weight = rearrange(self.head(h), "l (n k) -> l n k", n=n, k=k)
        bias = None if self.bias_head is None else self.bias_head(h)
        return DenseShift(weight, mode=self.mode, bias=bias)


class LowRankBranch(nn.Module):
    """``(l, h) -> LowRankShift``: ``up (l, n, r)``, ``down (l, r, k)`` (and ``bias (l, n)``)."""

    def __init__(
        self,
        hidden_dim: int,
        shape: tuple[int, int],
        rank: int,
        mode: str,
        branch_dim: int | None,
        bias_shift: bool = False,
    ) -> None:
        super().__init__()
        self.shape = shape
        self.rank = rank
        self.mode = mode
        if branch_dim is None:
            self.bottleneck: nn.Module = nn.Identity()
            branch_dim = hidden_dim
        else:
            self.bottleneck = nn.Sequential(nn.Linear(hidden_dim, branch_dim), nn.GELU())
        self.up = _zero_linear(branch_dim, shape[0] * rank)
        self.down = nn.Linear(branch_dim, rank * shape[1])
        self.bias_head = _bias_head(branch_dim, shape[0], bias_shift)

    def forward(self, h: Tensor) -> Shift:
        n, k = self.shape
        h = self.bottleneck(h)
        up = rearrange(self.up(h), "l (n r) -> l n r", n=n, r=self.rank)
        down = rearrange(self.down(h), "l (r k) -> l r k", r=self.rank, k=k)
        bias = None if self.bias_head is None else self.bias_head(h)
        return LowRankShift(up, down, mode=self.mode, bias=bias)


class MultiBranchShiftGenerator(nn.Module):
    """Style vectors ``(l, d)`` → ``{name: shift with l entries}`` for the given weights.

    Args:
        style_dim: ``d``.
        targets: weight name → ``(n, k)``, e.g. the result of :func:`weditlib.make_editable`.
        hidden_dim: width of the shared trunk.
        trunk_layers: number of ``Linear + GELU`` layers of the trunk.
        rank: rank ``r`` of low-rank heads; ``None`` builds dense heads (the paper's PWSG).
        mode: ``"add"`` (``W + ΔW``) or ``"scale"`` (``W ⊙ (1 + ΔW)``); the previous
            release's ``"shift"`` is read as ``"add"``, with a ``DeprecationWarning``.
        branch_dim: optional per-branch bottleneck width before low-rank heads.
        bias_shifts: also give every branch a zero-initialised bias head, so each shift carries
            a bias shift ``Δb: (l, n)``; ``n`` more outputs per branch. Off by default.

    Shapes: ``style: (l, d)`` → each shift holds ``l`` edits of its ``(n, k)`` weight (and
    ``bias: (l, n)`` with ``bias_shifts``).

    Raises:
        TypeError: ``targets`` is not a mapping.
        ValueError: empty ``targets``, a shape that is not two ints ``>= 0``, unknown ``mode``,
            ``rank``, ``style_dim``, ``hidden_dim`` or ``branch_dim`` not a positive int,
            ``trunk_layers`` negative, or ``branch_dim`` with dense heads.
    """

    def __init__(
        self,
        style_dim: int,
        targets: Mapping[str, tuple[int, int]],
        *,
        hidden_dim: int = 256,
        trunk_layers: int = 2,
        rank: int | None = 8,
        mode: str = "add",
        branch_dim: int | None = None,
        bias_shifts: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(targets, Mapping):
            raise TypeError(
                f"targets must be a mapping weight name → (n, k), got {type(targets).__name__}"
            )
        if not targets:
            raise ValueError("targets must name at least one weight")
        for name, shape in targets.items():
            if not _is_shape(shape):
                raise ValueError(f"targets[{name!r}] must be (n, k), two ints >= 0, got {shape!r}")
        mode = check_mode(mode)
        if rank is not None and (as_integer(rank) is None or rank < 1):
            raise ValueError(f"rank must be a positive int or None (dense heads), got {rank!r}")
        if branch_dim is not None and rank is None:
            raise ValueError("branch_dim applies to low-rank heads only (rank is None)")
        _check_sizes(style_dim=style_dim, hidden_dim=hidden_dim, branch_dim=branch_dim)
        if as_integer(trunk_layers) is None or trunk_layers < 0:
            raise ValueError(f"trunk_layers must be an int >= 0, got {trunk_layers!r}")
        self.style_dim = style_dim
        self.rank = rank
        self.bias_shifts = bias_shifts
        self.names = list(targets)
        self.trunk = _mlp(style_dim, hidden_dim, trunk_layers)
        trunk_out = hidden_dim if trunk_layers else style_dim
        self.branches = nn.ModuleList(
            DenseBranch(trunk_out, tuple(shape), mode, bias_shifts)
            if rank is None
            else LowRankBranch(trunk_out, tuple(shape), rank, mode, branch_dim, bias_shifts)
            for shape in targets.values()
        )

    def forward(self, style: Tensor) -> dict[str, Shift]:
        """Shifts for every target weight.

        Args:
            style: ``(l, d)`` one style vector per shift to produce.

        Returns:
            name → :class:`DenseShift` ``(l, n, k)`` or :class:`LowRankShift`.

        Raises:
            TypeError: ``style`` is not a floating tensor of the generator's dtype (outside
                ``torch.autocast``, which casts it as it casts any linear input).
            ValueError: ``style`` is not ``(l, d)``, or is on another device than the generator.
        """
        if not isinstance(style, Tensor):
            raise TypeError(f"style must be a Tensor, got {type(style).__name__}")
        if style.dim() != 2 or style.shape[1] != self.style_dim:
            raise ValueError(
                f"style must have shape (l, {self.style_dim}), got {tuple(style.shape)}"
            )
        self._check_dtype(style)
        if style.device != (device := next(self.parameters()).device):
            raise ValueError(f"style is on {style.device} but the generator is on {device}")
        h = self.trunk(style)
        return {name: branch(h) for name, branch in zip(self.names, self.branches, strict=True)}

    def _check_dtype(self, style: Tensor) -> None:
        dtype = next(self.parameters()).dtype
        if not style.is_floating_point():
            raise TypeError(f"style must be a floating-point tensor ({dtype}), got {style.dtype}")
        # autocast casts a style to its dtype as it casts any linear input (float64 excepted)
        autocast = autocast_dtype(style.device.type) is not None
        if style.dtype != dtype and (not autocast or style.dtype == torch.float64):
            raise TypeError(
                f"style dtype {style.dtype} does not match the generator's parameters ({dtype}): "
                f"pass style.to({dtype}), or run under torch.autocast"
            )

    def parameter_report(self) -> dict[str, int]:
        """Parameter count of the trunk, of each branch (by weight name), and the total."""
        report = {"trunk": sum(p.numel() for p in self.trunk.parameters())}
        for name, branch in zip(self.names, self.branches, strict=True):
            report[name] = sum(p.numel() for p in branch.parameters())
        report["total"] = sum(p.numel() for p in self.parameters())
        return report


@torch.no_grad()
def shift_norms(shifts: Mapping[str, Shift]) -> dict[str, Tensor]:
    """Frobenius norm of each shift: name → ``(l,)``; handy to monitor edit sizes."""
    return {name: torch.linalg.matrix_norm(delta.matrix()) for name, delta in shifts.items()}


__getattr__ = renamed_names(
    __name__, {"MultiBranchDeltaGenerator": "MultiBranchShiftGenerator"}, globals()
)
