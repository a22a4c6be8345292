"""DDIM sampling of listener windows with classifier-free guidance, generic or personalised.

Per window, :class:`ReactionSampler` binds the listeners' shifts once (one
:func:`weditlib.edit` block around the whole DDIM loop, low-rank shifts multiplied out once, see
:func:`per_window`), computes the cross-attention keys and
values of the memory tokens once (:meth:`~perfrdiff.models.GAFRG.memory_cache`), and then runs
only the step-dependent part of the denoiser at each step: the same arithmetic as calling the
model at every step, minus the repeated work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from perfrdiff.features import EMOTION_DIM
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.personalised import PerFRDiff, Shifts
from perfrdiff.models.schedule import DDIMSchedule
from weditlib import LowRankDelta, edit

#: Low-rank shifts of at most this many values (``l·n·k``) are multiplied out once per window.
DENSE_LIMIT = 2**24


def per_window(shifts: Shifts) -> Shifts:
    """``shifts`` as they are best applied at every DDIM step of a window.

    A low-rank shift ``U V`` is multiplied out to a dense ``ΔW`` once here (when it has at most
    :data:`DENSE_LIMIT` values), so the steps do not recompute ``U V`` each time the planner
    materialises ``W + ΔW``; the edited outputs are equal to float rounding.
    """
    return {
        name: delta.to_dense()
        if isinstance(delta, LowRankDelta)
        and delta.num_shifts * delta.out_features * delta.in_features <= DENSE_LIMIT
        else delta
        for name, delta in shifts.items()
    }


def guided_x0(
    denoise: Callable[[Tensor, Tensor], Tensor], x_t: Tensor, t: Tensor, guidance: float
) -> Tensor:
    """Classifier-free guidance on ``x0``: ``u + g·(c - u)`` (``g = 1``: conditional only).

    The conditional and unconditional passes run as one batch of ``2b``.

    Args:
        denoise: ``(x_t, t) -> x0`` over ``b`` samples when ``g = 1``, else over ``2b``: the
            first ``b`` conditional, the next ``b`` with the conditions dropped.
        x_t: ``(b, w, e)`` noisy windows.
        t: ``(b,)`` timesteps.
        guidance: scale ``g``.
    """
    if guidance == 1.0:
        return denoise(x_t, t)
    b = x_t.shape[0]
    both = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]))
    cond, uncond = both[:b], both[b:]
    return uncond + guidance * (cond - uncond)


@dataclass
class SamplerConfig:
    steps: int = 50
    guidance: float = 1.0


class ReactionSampler:
    """DDIM sampling of ``(b, w, 25)`` windows with a generic or personalised denoiser.

    Args:
        model: :class:`GAFRG` (generic) or :class:`PerFRDiff` (personalised when shifts given).
        schedule: the diffusion schedule the model was trained with.
        config: DDIM steps and guidance scale.
    """

    def __init__(
        self, model: GAFRG | PerFRDiff, schedule: DDIMSchedule, config: SamplerConfig
    ) -> None:
        self.model = model
        self.gafrg = model.gafrg if isinstance(model, PerFRDiff) else model
        self.schedule = schedule
        self.config = config
        self.timesteps = schedule.set_timesteps(config.steps).tolist()

    @property
    def guided(self) -> bool:
        return self.config.guidance != 1.0

    def _bound(
        self, shifts: Shifts | None, index: Tensor | None
    ) -> contextlib.AbstractContextManager:
        """The listeners' shifts, active for the whole window (both guidance branches)."""
        if shifts is None:
            return contextlib.nullcontext()
        if index is None:
            raise ValueError("index is required with shifts (the listener of each sample)")
        return edit(self.gafrg, per_window(shifts), index.repeat(2) if self.guided else index)

    @torch.no_grad()
    def sample(
        self,
        memory: Tensor,
        generator: torch.Generator,
        shifts: Shifts | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        """``memory: (b, m, d)`` -> ``(b, w, 25)`` sampled windows.

        Args:
            generator: source of the initial noise (and of DDIM noise when ``eta > 0``); on the
                CPU or on ``memory``'s device.
            shifts: per-listener shifts from :meth:`PerFRDiff.listener_shifts` (``None``: generic).
            index: ``(b,)`` listener of each sample.
        """
        b, device = memory.shape[0], memory.device
        shape = (b, self.gafrg.window, EMOTION_DIM)
        x = torch.randn(shape, generator=generator, dtype=memory.dtype, device=generator.device)
        x = x.to(device)
        if self.guided:
            memory = torch.cat([memory, memory])
            keep = torch.arange(2 * b, device=device) < b  # conditional, then unconditional
        else:
            keep = None
        t_batches = [torch.full((b,), t, dtype=torch.long, device=device) for t in self.timesteps]
        with self._bound(shifts, index):
            cache = self.gafrg.memory_cache(memory, keep)
            denoise = lambda x_t, t: self.gafrg.denoise(x_t, t, cache)  # noqa: E731
            for t, t_batch in zip(self.timesteps, t_batches, strict=True):
                x0 = guided_x0(denoise, x, t_batch, self.config.guidance)
                x = self.schedule.step(x0, t, x, generator)
        return x
