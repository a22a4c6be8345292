"""Exact algorithms of :func:`weditlib.edited_conv`, in plain torch (any device, autograd).

A conv weight ``(out, in/groups, *kernel)`` is edited through its flattened ``(n, k)`` view,
``n = out`` and ``k = in/groups · prod(kernel)``. Three ways to compute, for every sample,
``y_b = conv(x_b, W ⊕ ΔW_index[b]) + bias + Δb_index[b]``:

* ``grouped`` — one convolution for the whole batch: the ``l`` kernels ``W ⊕ ΔW`` are folded into
  the channel groups of a single conv over the samples rearranged shift-major,
  ``(max_count, l · in, *s)`` with ``groups = l · groups``. Each kernel is read once; the conv's
  batch is the samples that share it. Best when each shift has few samples or small images
  (few launches matter more than the layout copies).
* ``per_shift`` — build ``W ⊕ ΔW`` per shift and convolve that shift's samples together, one conv
  per used shift. No padding of unequal groups and no layout copy when ``index`` is sorted; pays
  one launch per shift, which large images amortise.
* ``lowrank`` — ``conv(x, W) + conv₁ₓ₁(conv(x, V), U)`` for ``ΔW = U V``: the rank-``r`` factor
  ``V`` is itself a kernel, so the correction is a conv with ``r`` output channels per group
  followed by a pointwise conv; never builds an ``(n, k)`` kernel per shift. Exact for every
  stride, padding, dilation and group count (``V`` is applied to each group's channels). Shift
  mode only: in ``scale`` mode ``U V`` multiplies kernel taps, which no input-side product can
  express.

Inputs reaching ``run`` were validated by :func:`weditlib.edited_conv` and padded already when the
padding mode is not ``zeros`` or the padding is asymmetric: every algorithm sees a symmetric
``padding`` tuple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from weditlib.deltas import OLD_MODES, Grouping, Shift
from weditlib.kernels.base import Algorithm, Cost
from weditlib.kernels.reference import from_groups, shift_bias, to_groups
from weditlib.materialised import EditedWeights

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

#: Launches one convolution call pays: a backend convolution (oneDNN on CPU, cuDNN) reorders its
#: input, kernel and output into its own blocked layout around the product itself, so a conv call
#: costs several kernel launches, not one. This is what makes one grouped conv beat a loop of small
#: ones when images are small.
LAUNCHES_PER_CONV = 4


@dataclass(frozen=True)
class ConvGeometry:
    """How the convolution slides, as the base module's arguments (after normalisation).

    Attributes:
        stride: one int per spatial dim.
        padding: symmetric zero padding, one int per spatial dim (other padding modes and
            asymmetric ``'same'`` padding have been applied to ``x`` beforehand).
        dilation: one int per spatial dim.
        groups: the base conv's channel groups ``g``.
    """

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def spatial_dims(self) -> int:
        return len(self.stride)

    def conv(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        """``F.conv{d}d`` with this geometry and ``groups`` channel groups."""
        return _CONV[self.spatial_dims](
            x, weight, bias, self.stride, self.padding, self.dilation, groups
        )

    def pointwise(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        """A ``1 × … × 1`` conv, stride 1, no padding (mixes channels at each position)."""
        return _CONV[self.spatial_dims](x, weight, bias, 1, 0, 1, groups)


@dataclass(frozen=True)
class ConvProblem:
    """Sizes of one ``edited_conv`` call: everything an algorithm's cost depends on.

    Attributes:
        batch: ``b``.
        in_channels: ``c_in`` of ``x``.
        out_channels: ``n``.
        groups: ``g``.
        kernel_size: ``prod(kernel)``.
        in_positions: spatial positions of one (padded) input channel.
        out_positions: spatial positions of one output channel.
        num_shifts: ``l``.
        rank: ``r`` for low-rank shifts, ``None`` for dense shifts and edited weights.
        mode: ``"add"``, ``"scale"`` or ``"replace"``; ``None`` for
            :class:`~weditlib.EditedWeights` (built already: only the algorithms that convolve
            with built kernels run them).
        max_group: largest number of samples sharing one shift.
        used_shifts: number of shifts used by at least one sample.
        uniform: ``index`` is sorted and every shift has ``max_group`` samples.
        identity: one shift per sample, in order.
        has_bias: a base bias is added.
        has_bias_shift: the shift carries ``Δb``.
        dtype: element type.
        device_type: ``"cpu"``, ``"cuda"``, ...
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel_size: int
    in_positions: int
    out_positions: int
    num_shifts: int
    rank: int | None
    mode: str | None
    max_group: int
    used_shifts: int
    uniform: bool
    identity: bool
    has_bias: bool
    has_bias_shift: bool
    dtype: torch.dtype
    device_type: str

    def __post_init__(self) -> None:
        # the previous release's mode name, as problems written by hand may still spell it
        object.__setattr__(self, "mode", OLD_MODES.get(self.mode, self.mode))

    @property
    def dense(self) -> bool:
        return self.rank is None

    @property
    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    @property
    def in_features(self) -> int:
        """``k = c_in / g · prod(kernel)``: one row of the flattened kernel."""
        return self.in_channels // self.groups * self.kernel_size

    @property
    def out_features(self) -> int:
        return self.out_channels

    @staticmethod
    def describe(
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        delta: Shift | EditedWeights,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> ConvProblem:
        """The problem of the padded ``x: (b, c_in, *s)`` edited by ``delta`` under ``grouping``."""
        built = isinstance(delta, EditedWeights)
        out_sizes = output_sizes(x.shape[2:], weight.shape[2:], geometry)
        used = int((grouping.counts > 0).sum()) if grouping.num_shifts else 0
        return ConvProblem(
            batch=x.shape[0],
            in_channels=x.shape[1],
            out_channels=weight.shape[0],
            groups=geometry.groups,
            kernel_size=math.prod(weight.shape[2:]),
            in_positions=math.prod(x.shape[2:]),
            out_positions=math.prod(out_sizes),
            num_shifts=delta.num_shifts,
            rank=None if built else delta.rank,
            mode=None if built else delta.mode,
            max_group=grouping.max_count,
            used_shifts=used,
            uniform=grouping.uniform,
            identity=grouping.identity,
            has_bias=bias is not None,
            has_bias_shift=delta.bias is not None,
            dtype=x.dtype,
            device_type=x.device.type,
        )


def output_sizes(
    in_sizes: tuple[int, ...] | torch.Size, kernel: tuple[int, ...] | torch.Size, g: ConvGeometry
) -> tuple[int, ...]:
    """Output spatial sizes of a conv (``floor((s + 2p - d (k - 1) - 1) / stride) + 1``)."""
    return tuple(
        (size + 2 * pad - dil * (k - 1) - 1) // step + 1
        for size, k, pad, dil, step in zip(
            in_sizes, kernel, g.padding, g.dilation, g.stride, strict=True
        )
    )


#: What :func:`weditlib.edited_conv` runs: the one algorithm protocol, for conv problems.
ConvAlgorithm = Algorithm[ConvProblem]


# --- shared pieces ----------------------------------------------------------------------------


def shifted_kernels(weight: Tensor, delta: Shift) -> Tensor:
    """``(l, n, c_in / g, *kernel)``: ``W ⊕ ΔW`` for every shift."""
    flat = delta.edited(weight.flatten(1))  # (l, n, k)
    return flat.reshape(delta.num_shifts, *weight.shape)


def _conv_flops(p: ConvProblem, samples: int) -> float:
    """Multiply-adds (×2) of convolving ``samples`` images with ``n × k`` kernels."""
    return 2.0 * samples * p.out_positions * p.out_features * p.in_features


def _image_bytes(p: ConvProblem, samples: int) -> float:
    """Reading ``samples`` input images and writing their outputs once."""
    per_sample = p.in_channels * p.in_positions + p.out_channels * p.out_positions
    return p.element_size * samples * per_sample


def _build(p: ConvProblem) -> tuple[float, float]:
    """``(flops, bytes)`` of building ``l`` kernels ``W ⊕ ΔW`` (reading ``W`` and the shifts)."""
    nk = p.out_features * p.in_features
    flops = 0.0 if p.dense else 2.0 * p.num_shifts * nk * p.rank
    shift_elements = nk if p.dense else p.rank * (p.out_features + p.in_features)
    return flops, p.element_size * (nk + p.num_shifts * (shift_elements + nk))


# --- algorithms -------------------------------------------------------------------------------


class _PrebuiltKernels:
    """A conv algorithm that builds ``W ⊕ ΔW`` per shift and convolves with the result."""

    def run(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        delta: Shift,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> Tensor:
        kernels = shifted_kernels(weight, delta)
        return self.run_kernels(x, kernels, bias, shift_bias(bias, delta), grouping, geometry)

    def run_kernels(
        self,
        x: Tensor,
        kernels: Tensor,
        bias: Tensor | None,
        per_shift: Tensor | None,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> Tensor:
        """The convolution with the edited kernels built already (a materialised shift).

        Shapes: ``x: (b, c_in, *s)``, ``kernels: (l, n, c_in/g, *kernel)``, ``bias: (n,)``,
        ``per_shift: (l, n)`` each shift's ``b + Δb`` (``None``: ``bias`` for all) ->
        ``(b, n, *s')``.
        """
        raise NotImplementedError


class GroupedConv(_PrebuiltKernels):
    """All ``l`` kernels in the groups of one conv over the shift-major batch."""

    name = "grouped"

    def supported(self, problem: ConvProblem) -> bool:
        return True

    def cost(self, p: ConvProblem) -> Cost:
        padded = p.num_shifts * p.max_group
        build_flops, build_bytes = _build(p)
        # shift-major layout: a transpose copy each way, plus the padded gather when not uniform
        copies = 0 if p.identity else (1 if p.uniform else 2)
        return Cost(
            flops=_conv_flops(p, padded) + build_flops,
            bytes=_image_bytes(p, padded)
            + p.element_size * p.num_shifts * p.out_features * p.in_features,
            launches=2 + LAUNCHES_PER_CONV + 2 * copies,
            gemm_rows=p.max_group * p.out_positions,
            extra_bytes=build_bytes + 2 * copies * _image_bytes(p, padded),
        )

    def run_kernels(
        self,
        x: Tensor,
        kernels: Tensor,
        bias: Tensor | None,
        per_shift: Tensor | None,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> Tensor:
        lcount, count = grouping.num_shifts, grouping.max_count
        spatial = x.shape[2:]
        n = kernels.shape[1]
        kernels = kernels.flatten(0, 1)  # (l·n, c_in/g, *kernel)
        if per_shift is None and bias is not None:
            per_shift = bias.expand(lcount, -1)
        biases = None if per_shift is None else per_shift.reshape(-1)  # (l·n,)
        # (b, c_in, *s) -> (l, count, c_in·s) -> (count, l·c_in, *s)
        xg = to_groups(x.reshape(x.shape[0], 1, -1), grouping)
        xg = xg.reshape(lcount, count, -1).transpose(0, 1).reshape(count, -1, *spatial)
        yg = geometry.conv(xg, kernels, biases, lcount * geometry.groups)  # (count, l·n, *s')
        out_spatial = yg.shape[2:]
        yg = yg.reshape(count, lcount, -1).transpose(0, 1).reshape(lcount, count, -1)
        y = from_groups(yg, grouping, 1)  # (b, 1, n·s')
        return y.reshape(x.shape[0], n, *out_spatial)


class PerShiftConv(_PrebuiltKernels):
    """One conv per used shift, over the samples that share it."""

    name = "per_shift"

    def supported(self, problem: ConvProblem) -> bool:
        return True

    def cost(self, p: ConvProblem) -> Cost:
        build_flops, build_bytes = _build(p)
        # gather x by shift and put y back in batch order when unsorted; the outputs' cat
        moved = (0.0 if p.uniform else 2.0 * _image_bytes(p, p.batch)) + (
            p.element_size * p.batch * p.out_channels * p.out_positions
        )
        return Cost(
            flops=_conv_flops(p, p.batch) + build_flops,
            bytes=_image_bytes(p, p.batch)
            + p.element_size * p.used_shifts * p.out_features * p.in_features,
            launches=2 + (1 + LAUNCHES_PER_CONV) * p.used_shifts + (0 if p.uniform else 2),
            gemm_rows=max(p.batch // max(p.used_shifts, 1), 1) * p.out_positions,
            extra_bytes=build_bytes + moved,
        )

    def run_kernels(
        self,
        x: Tensor,
        kernels: Tensor,
        bias: Tensor | None,
        per_shift: Tensor | None,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> Tensor:
        ordered = x if grouping.uniform else x[grouping.order]
        outputs = []
        start = 0
        for shift, count in enumerate(grouping.counts.tolist()):
            if count:
                b = bias if per_shift is None else per_shift[shift]
                outputs.append(
                    geometry.conv(
                        ordered[start : start + count], kernels[shift], b, geometry.groups
                    )
                )
            start += count
        y = torch.cat(outputs)
        if grouping.uniform:
            return y
        return y[torch.argsort(grouping.order)]  # back to batch order


class LowRankConv:
    """``conv(x, W) + b + conv₁ₓ₁(conv(x, V), U) + Δb``, factors gathered per sample."""

    name = "lowrank"

    def supported(self, problem: ConvProblem) -> bool:
        return not problem.dense and problem.mode == "add"

    def cost(self, p: ConvProblem) -> Cost:
        assert p.rank is not None
        rows = p.batch * p.out_positions
        inner = p.groups * p.rank  # channels of conv(x, V) per sample
        factors = p.element_size * p.batch * p.rank * (p.out_features + p.groups * p.in_features)
        return Cost(
            flops=_conv_flops(p, p.batch)
            + 2.0 * rows * inner * p.in_features
            + 2.0 * rows * p.out_features * p.rank,
            bytes=_image_bytes(p, p.batch)
            + p.element_size * p.out_features * p.in_features
            + factors,
            launches=3 + 3 * LAUNCHES_PER_CONV,
            # the correction convolves each sample alone (its factors are per-sample groups):
            # GEMMs of one image's positions, the least efficient of its products
            gemm_rows=p.out_positions,
            # the correction re-reads x, writes and reads its rank-r intermediate, and is added
            # onto y: memory-bound passes
            extra_bytes=p.element_size
            * (
                p.batch * p.in_channels * p.in_positions
                + 2 * rows * inner
                + 3 * rows * p.out_channels
            ),
        )

    def run(
        self,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        delta: Shift,
        grouping: Grouping,
        geometry: ConvGeometry,
    ) -> Tensor:
        assert delta.rank is not None
        batch, groups, rank = x.shape[0], geometry.groups, delta.rank
        kernel = weight.shape[1:]  # (c_in/g, *kernel)
        ones = (1,) * geometry.spatial_dims
        picked = grouping.index if not grouping.identity else slice(None)
        up, down = delta.up[picked], delta.down[picked]  # (b, n, r), (b, r, k)
        # V acts on every channel group: (b, g, r, k) -> (b·g·r, c_in/g, *kernel)
        v_kernels = down.unsqueeze(1).expand(batch, groups, rank, -1).reshape(-1, *kernel)
        # U mixes each group's r channels into that group's outputs: (b·n, r, 1, ...)
        u_kernels = up.reshape(-1, rank, *ones)
        extra = delta.bias
        extra = None if extra is None else extra[picked].reshape(-1)  # (b·n,)
        samples_as_channels = x.reshape(1, -1, *x.shape[2:])  # (1, b·c_in, *s): a free view
        inner = geometry.conv(samples_as_channels, v_kernels, None, batch * groups)
        correction = geometry.pointwise(inner, u_kernels, extra, batch * groups)
        base = geometry.conv(x, weight, bias, groups)  # (b, n, *s')
        return base + correction.reshape(base.shape)


ALGORITHMS: tuple[ConvAlgorithm, ...] = (GroupedConv(), PerShiftConv(), LowRankConv())
