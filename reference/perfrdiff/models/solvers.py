"""Higher-order multistep solvers of the diffusion ODE: DPM-Solver++ 2M and UniPC (bh2, order 2).

Standalone schedule objects in the diffusers style, beside :class:`DDIMSchedule` (the first-order
solver): :meth:`set_timesteps` chooses the grid and forgets the previous run, :meth:`step` moves
``x_t`` to the next grid timestep given the model's clean-sample prediction ``x0``. No model code
inside: the sampler converts the network's output (``x0`` or ``v``, see
:meth:`DDIMSchedule.predicted_x0`) and applies classifier-free guidance before each step, as it
does for DDIM. Both solvers work in data-prediction form (Lu et al., 2022, "DPM-Solver++"; Zhao
et al., 2023, "UniPC") on the half-log-SNR ``λ_t = log(α_t / σ_t)``, ``α_t = √ᾱ_t``,
``σ_t = √(1 - ᾱ_t)``, and reuse the previous steps' predictions instead of extra network calls.

Step coefficients are computed in float64 on the host (they are scalars) and applied in the
sample's dtype; the sampler keeps samples in float32 under bf16 autocast. Both reduce to DDIM on
their first step and on the last one (which lands on ``σ = 0``, where the second-order terms
divide by an infinite step), as diffusers' schedulers do with ``final_sigmas_type="zero"``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from perfrdiff.models.schedule import DDIMSchedule, timestep_grid

#: ``generate.solver`` values: DDIM (first order), DPM-Solver++ 2M, UniPC (bh2 predictor and
#: corrector, order 2).
SOLVERS = ("ddim", "dpmpp-2m", "unipc")


class MultistepSolver:
    """What DPM-Solver++ 2M and UniPC share: the grid, ``(α, σ, λ)`` per timestep, the history.

    Args:
        schedule: the training schedule (its ``ᾱ`` table; its DDIM ``eta`` must be 0: these
            solvers are deterministic).
    """

    name = ""

    def __init__(self, schedule: DDIMSchedule) -> None:
        if not isinstance(schedule, DDIMSchedule):
            raise TypeError(f"schedule must be a DDIMSchedule, got {type(schedule).__name__}")
        if schedule.eta != 0:
            raise ValueError(
                f"{self.name} is deterministic: the schedule's eta must be 0, got {schedule.eta}"
            )
        self.schedule = schedule
        self.num_train_steps = schedule.num_train_steps
        self.set_timesteps(min(50, schedule.num_train_steps))

    def set_timesteps(self, num_steps: int, spacing: str = "uniform") -> Tensor:
        """Choose ``num_steps`` descending timesteps (:func:`timestep_grid`) and forget the
        predictions of any previous run; returns the grid ``(s,)``."""
        self.timesteps = timestep_grid(self.num_train_steps, num_steps, spacing)
        grid = self.timesteps.tolist()
        self._index = {t: i for i, t in enumerate(grid)}
        # (α, σ, λ) at each grid point and at the clean end (σ = 0, λ = ∞)
        a = self.schedule.alphas_cumprod[self.timesteps].tolist()
        self._points = [(math.sqrt(x), math.sqrt(1 - x), 0.5 * math.log(x / (1 - x))) for x in a]
        self._points.append((1.0, 0.0, math.inf))
        self._taken = 0  # steps taken since set_timesteps
        self._x0s: list[Tensor] = []  # the last predictions, newest last
        return self.timesteps

    def _position(self, t: int, x0: Tensor) -> int:
        """Grid position of ``t``, checked to be the next one; records ``x0`` as its prediction."""
        if t not in self._index:
            raise ValueError(f"t = {t} is not a timestep of the grid set by set_timesteps")
        i = self._index[t]
        if i != self._taken:
            raise ValueError(
                f"step at t = {t} (grid position {i}) after {self._taken} steps: steps must "
                "follow the grid from its first timestep; call set_timesteps to start again"
            )
        self._taken += 1
        self._x0s = [*self._x0s[-2:], x0]  # no order reads further back than two steps
        return i

    def _ddim(self, x0: Tensor, i: int, sample: Tensor) -> Tensor:
        """First-order step from grid point ``i`` to ``i + 1``: ``σ'/σ x - α' (e^{-h} - 1) x0``
        (DDIM with ``eta = 0``)."""
        (_, s_s, l_s), (a_t, s_t, l_t) = self._points[i], self._points[i + 1]
        return (s_t / s_s) * sample - (a_t * math.expm1(l_s - l_t)) * x0

    def _first_order(self, i: int) -> bool:
        """The first step has no history; the last lands on σ = 0 (an infinite ``h``)."""
        return i == 0 or i == len(self.timesteps) - 1


class DPMSolverPP2M(MultistepSolver):
    """DPM-Solver++ 2M (multistep, data prediction, midpoint form; diffusers'
    ``DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++")``).

    Step ``i`` (``h = λ_{i+1} - λ_i``, ``r = (λ_i - λ_{i-1}) / h``)::

        D = x0_i + (x0_i - x0_{i-1}) / (2r)
        x_{i+1} = σ_{i+1}/σ_i x_i - α_{i+1} (e^{-h} - 1) D
    """

    name = "dpmpp-2m"

    def step(
        self, x0: Tensor, t: int, sample: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x_t -> x_{t'}`` (``t'`` the next grid timestep, ``-1``: clean).

        Args:
            x0: ``(b, *s)`` the model's (guided) prediction of the clean sample at ``x_t``.
            t: the current timestep: the grid's timesteps in order, from the first.
            sample: ``(b, *s)`` ``x_t``.
            generator: unused (deterministic); accepted so every solver is called alike.
        """
        i = self._position(t, x0)
        if self._first_order(i):
            return self._ddim(x0, i, sample)
        (_, _, l_p), (_, s_s, l_s), (a_t, s_t, l_t) = self._points[i - 1 : i + 2]
        h = l_t - l_s
        r = (l_s - l_p) / h
        d = x0 + (x0 - self._x0s[-2]) * (1 / (2 * r))
        return (s_t / s_s) * sample - (a_t * math.expm1(-h)) * d


class UniPC(MultistepSolver):
    """UniPC with the ``B(h) = e^{-h} - 1`` ("bh2") variant, order 2, data prediction (diffusers'
    ``UniPCMultistepScheduler(solver_order=2, solver_type="bh2")``).

    Each step first corrects ``x_t`` with the prediction just made there (UniC: the prediction
    at ``x_t`` is used once more, without another network call), then predicts the next sample
    (UniP, second order from the last two predictions).
    """

    name = "unipc"

    def set_timesteps(self, num_steps: int, spacing: str = "uniform") -> Tensor:
        self._last_sample: Tensor | None = None
        return super().set_timesteps(num_steps, spacing)

    set_timesteps.__doc__ = MultistepSolver.set_timesteps.__doc__

    def step(
        self, x0: Tensor, t: int, sample: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x_t -> x_{t'}`` (``t'`` the next grid timestep, ``-1``: clean); see
        :meth:`DPMSolverPP2M.step` for the arguments."""
        i = self._position(t, x0)
        if i > 0:
            sample = self._correct(i, sample)
        self._last_sample = sample
        if self._first_order(i):
            return self._ddim(x0, i, sample)
        (_, _, l_p), (_, _, l_s), (a_t, _, l_t) = self._points[i - 1 : i + 2]
        h = l_t - l_s
        r = (l_p - l_s) / h
        d1 = (self._x0s[-2] - x0) * (1 / r)
        return self._ddim(x0, i, sample) - (a_t * math.expm1(-h) * 0.5) * d1

    def _correct(self, i: int, sample: Tensor) -> Tensor:
        """UniC: ``x_i`` corrected with ``x0_i``, of the order of the step that made it."""
        m_t, m_0 = self._x0s[-1], self._x0s[-2]
        (a_t, _, l_t), (_, _, l_s) = self._points[i], self._points[i - 1]
        hh = l_s - l_t  # -h
        b_h = math.expm1(hh)
        residual = m_t - m_0
        if i == 1:  # the step before was first order
            rho_t, correction = 0.5, 0.0
        else:
            r = (self._points[i - 2][2] - l_s) / (l_t - l_s)
            # the order conditions R ρ = b, R = [[1, 1], [r, 1]], of UniC's Taylor terms
            phi = b_h / hh - 1
            b1, b2 = phi / b_h, (phi / hh - 0.5) * 2 / b_h
            rho_1 = (b2 - b1) / (r - 1)
            rho_t = b1 - rho_1
            correction = (self._x0s[-3] - m_0) * (rho_1 / r)
        return self._ddim(m_0, i - 1, self._last_sample) - (a_t * b_h) * (
            correction + rho_t * residual
        )


def build_solver(name: str, schedule: DDIMSchedule) -> DDIMSchedule | MultistepSolver:
    """The solver ``name`` (one of :data:`SOLVERS`) on ``schedule``; ``"ddim"`` is the schedule
    itself.

    Raises:
        ValueError: an unknown name, or a multistep solver with ``schedule.eta > 0``.
    """
    if name == "ddim":
        return schedule
    if name == "dpmpp-2m":
        return DPMSolverPP2M(schedule)
    if name == "unipc":
        return UniPC(schedule)
    raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
