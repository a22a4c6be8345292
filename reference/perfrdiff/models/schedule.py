"""Cosine noise schedule and DDIM sampler for an ``x0``-predicting model (diffusers style).

A standalone object with no network inside: :meth:`add_noise` for training, :meth:`set_timesteps`
and :meth:`step` for sampling, :meth:`inverse_step` for DDIM inversion.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def cosine_alphas_cumprod(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """``(num_steps,)`` float64 ``ᾱ_t`` of the cosine schedule (Nichol & Dhariwal, 2021).

    Betas are capped at ``max_beta`` so the last step is not a pure-noise singularity.
    """

    def f(t: float) -> float:
        return math.cos((t / num_steps + s) / (1 + s) * math.pi / 2) ** 2

    betas = torch.tensor(
        [min(1 - f(i + 1) / f(i), max_beta) for i in range(num_steps)], dtype=torch.float64
    )
    return torch.cumprod(1 - betas, dim=0)


PREDICTIONS = ("x0", "v")
# DDIM timestep grids (see DDIMSchedule.set_timesteps); "linspace" and "trailing" are diffusers'
# names for the same grids.
SPACINGS = ("uniform", "quadratic", "linspace", "trailing")


def timestep_grid(num_train_steps: int, num_steps: int, spacing: str = "uniform") -> Tensor:
    """``(s,)`` descending integer timesteps of a ``num_steps`` sampling grid (see
    :meth:`DDIMSchedule.set_timesteps` for the spacings); every solver samples on these grids.

    Raises:
        ValueError: ``num_steps`` is not in ``[1, num_train_steps]``, or ``spacing`` is not one
            of :data:`SPACINGS`.
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be in [1, {num_train_steps}], got {num_steps}")
    last = num_train_steps - 1
    if spacing == "uniform":
        ratio = num_train_steps // num_steps
        ascending = torch.arange(num_steps) * ratio
    elif spacing == "quadratic":
        grid = torch.linspace(0, 1, num_steps, dtype=torch.float64) ** 2 * last
        steps = grid.floor().long().tolist()
        for i in range(1, num_steps):  # distinct steps, leaving room for the ones after
            room = last - (num_steps - 1 - i)
            steps[i] = min(max(steps[i], steps[i - 1] + 1), room)
        ascending = torch.tensor(steps)
    elif spacing == "linspace":
        # from T - 1 (one step: a single jump from pure noise) to 0; gaps of (T - 1) / (s - 1)
        # >= 1 for s < T, and exactly 1 for s = T, so rounding keeps the steps distinct
        descending = torch.linspace(last, 0, num_steps, dtype=torch.float64).round().long()
        ascending = descending.flip(0)
    elif spacing == "trailing":
        # T (i + 1) / s - 1 for i < s: gaps of T / s >= 1, so rounding keeps them distinct
        fraction = torch.arange(1, num_steps + 1, dtype=torch.float64) / num_steps
        ascending = (fraction * num_train_steps).round().long() - 1
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return ascending.flip(0).long()


class DDIMSchedule:
    """Cosine schedule with ``num_train_steps`` steps and DDIM sampling over a subset of them.

    Args:
        num_train_steps: diffusion steps used in training (the paper: 1000).
        eta: DDIM stochasticity (0: deterministic DDIM, 1: DDPM-like).
        prediction: what the network predicts: ``"x0"`` (the paper) or ``"v"``
            (``v = √ᾱ ε - √(1-ᾱ) x0``, Salimans & Ho, 2022). With ``x0``, the MSE of a small
            network is dominated by the noisy steps and its prediction at low noise is
            over-smooth; ``x0 = √ᾱ x_t - √(1-ᾱ) v`` passes ``x_t``'s detail through as the noise
            vanishes, and the ``v`` loss weighs low-noise steps by ``1 / (1 - ᾱ)`` in ``x0`` terms.
    """

    def __init__(
        self, num_train_steps: int = 1000, eta: float = 0.0, prediction: str = "x0"
    ) -> None:
        if num_train_steps < 2:
            raise ValueError(f"num_train_steps must be >= 2, got {num_train_steps}")
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.num_train_steps = num_train_steps
        self.eta = eta
        self.prediction = prediction
        self.alphas_cumprod = cosine_alphas_cumprod(num_train_steps)
        self.set_timesteps(num_train_steps)
        # ᾱ of one timestep on a device, in a dtype: sampling reuses them every window, so the
        # DDIM loop does no host-to-device copy after the first window.
        self._scalar_alphas: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}

    def set_timesteps(self, num_steps: int, spacing: str = "uniform") -> Tensor:
        """Choose ``num_steps`` timesteps, descending; returns them as ``(s,)``.

        With ``T = num_train_steps``:

        * ``"uniform"``: every ``⌊T / s⌋``-th step from 0 (DDIM's linear selection; diffusers'
          "leading"). The first step is ``T - ⌊T / s⌋``, not ``T - 1``: sampling starts from
          pure noise as if some signal were left.
        * ``"quadratic"``: ``t_i ∝ i²`` from 0 to ``T - 1`` (DDIM's quadratic selection): the same
          number of steps, spent where the noise is small. The last step of a uniform grid jumps
          from ``t = T / s`` to clean, so whatever is weaker than that noise level (frame-to-frame
          detail of a reaction) is averaged away; a quadratic grid ends with a small jump.
        * ``"linspace"``: evenly spaced from ``T - 1`` to 0 (rounded; one step: ``T - 1``).
        * ``"trailing"``: evenly spaced from ``T - 1`` down by ``T / s`` (rounded), so the last
          step jumps from ``t ≈ T / s - 1`` to clean; the grid Lin et al. (2024, "Common
          diffusion noise schedules and sample steps are flawed") recommend.

        Raises:
            ValueError: ``num_steps`` is not in ``[1, T]``, or ``spacing`` is not one of
                :data:`SPACINGS`.
        """
        self.timesteps = timestep_grid(self.num_train_steps, num_steps, spacing)
        grid = self.timesteps.tolist()
        self._previous = dict(zip(grid, [*grid[1:], -1], strict=True))
        return self.timesteps

    def _alpha(self, t: Tensor | int, like: Tensor) -> Tensor:
        """``ᾱ_t`` broadcastable against ``like`` (``t = -1`` means ``ᾱ = 1``, the clean end)."""
        if isinstance(t, int):
            key = (t, like.device, like.dtype)
            if key not in self._scalar_alphas:
                self._scalar_alphas[key] = self._alpha(torch.tensor(t), like).reshape(())
            return self._scalar_alphas[key]
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long()
        a = torch.where(
            t >= 0, self.alphas_cumprod[t.clamp(min=0)], torch.ones((), dtype=torch.float64)
        )
        a = a.to(device=like.device, dtype=like.dtype)
        return a.reshape(a.shape + (1,) * (like.dim() - a.dim()))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Forward process ``x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε``.

        Args:
            x0: ``(b, *s)`` clean samples.
            noise: ``(b, *s)`` standard normal noise.
            t: ``(b,)`` integer timesteps in ``[0, num_train_steps)``.
        """
        if noise.shape != x0.shape:
            raise ValueError(
                f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}"
            )
        if t.dim() != 1 or t.shape[0] != x0.shape[0]:
            raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
        a = self._alpha(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def training_target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network learns to output for ``x_t = add_noise(x0, noise, t)``: ``x0`` or
        ``v = √ᾱ_t ε - √(1-ᾱ_t) x0`` (see :attr:`prediction`).

        Args:
            x0: ``(b, *s)`` clean samples.
            noise: ``(b, *s)`` the noise they were noised with.
            t: ``(b,)`` integer timesteps.
        """
        if self.prediction == "x0":
            return x0
        a = self._alpha(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def predicted_x0(self, output: Tensor, sample: Tensor, t: Tensor | int) -> Tensor:
        """The clean sample implied by the network's ``output`` at ``x_t = sample``.

        Args:
            output: ``(b, *s)`` the network's output.
            sample: ``(b, *s)`` the ``x_t`` it was given.
            t: ``(b,)`` integer timesteps or one ``int``.
        """
        if self.prediction == "x0":
            return output
        a = self._alpha(t, sample)
        return a.sqrt() * sample - (1 - a).sqrt() * output

    def predicted_noise(self, sample: Tensor, x0: Tensor, t: Tensor | int) -> Tensor:
        """``ε`` implied by ``x_t`` and a prediction of ``x0``."""
        a = self._alpha(t, sample)
        return (sample - a.sqrt() * x0) / (1 - a).sqrt()

    def previous_timestep(self, t: int) -> int:
        """The next (smaller) timestep of the sampling grid, or -1 after the last one.

        Raises:
            ValueError: ``t`` is not on the grid of :meth:`set_timesteps`.
        """
        if t not in self._previous:
            raise ValueError(f"t = {t} is not a timestep of the grid set by set_timesteps")
        return self._previous[t]

    def step(
        self,
        x0: Tensor,
        t: int,
        sample: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One DDIM step from ``x_t`` to ``x_{t'}`` (``t'`` the previous grid timestep).

        Args:
            x0: ``(b, *s)`` the model's prediction of the clean sample.
            t: current timestep (an element of :attr:`timesteps`).
            sample: ``(b, *s)`` the current ``x_t``.
            generator: noise source when ``eta > 0``.
        """
        prev = self.previous_timestep(t)
        a_t, a_prev = self._alpha(t, sample), self._alpha(prev, sample)
        eps = self.predicted_noise(sample, x0, t)
        sigma = self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        direction = (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        out = a_prev.sqrt() * x0 + direction
        if self.eta > 0 and prev >= 0:
            noise = torch.randn(
                sample.shape, generator=generator, device=sample.device, dtype=sample.dtype
            )
            out = out + sigma * noise
        return out

    def inverse_step(self, x0: Tensor, t: int, sample: Tensor) -> Tensor:
        """Deterministic DDIM inversion from ``x_{t'}`` (``t'`` the previous grid step) to ``x_t``.

        Args:
            x0: ``(b, *s)`` the model's prediction of the clean sample at ``x_{t'}``.
            t: the timestep to move to (an element of :attr:`timesteps`).
            sample: ``(b, *s)`` the current ``x_{t'}``.
        """
        prev = self.previous_timestep(t)
        if prev < 0:
            # At the clean end the noise is undetermined; DDIM inversion uses the model's x0.
            raise ValueError("inverse_step cannot start from the clean end (t' = -1)")
        eps = self.predicted_noise(sample, x0, prev)
        a_t = self._alpha(t, sample)
        return a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
