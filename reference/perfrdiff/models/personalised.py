"""PerFRDiff: the generic denoiser edited per listener by weight shifts from their style.

``PSSL`` (style encoder) embeds a listener's history; ``PWSG`` (weditlib's
:class:`~weditlib.MultiBranchShiftGenerator`) turns the style into shifts for the denoiser's
editable weights; :func:`weditlib.edit` applies them. A listener's shifts are computed once per
sequence (:meth:`PerFRDiff.listener_shifts`) and reused across its samples and denoising steps;
a batch may mix listeners through ``index``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from perfrdiff.config import ConfigError, PWSGConfig
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.prior import ListenerPrior
from perfrdiff.models.style_encoder import StyleEncoder
from weditlib import (
    DenseShift,
    LowRankShift,
    MultiBranchShiftGenerator,
    edit,
    make_editable,
)

Shifts = Mapping[str, DenseShift | LowRankShift]


def build_generator(
    config: PWSGConfig, style_dim: int, targets: Mapping[str, tuple[int, int]]
) -> MultiBranchShiftGenerator:
    """PWSG from ``style_dim``-d styles to shifts of the editable weights ``targets``
    (name -> ``(n, k)``), with the heads ``config`` describes."""
    return MultiBranchShiftGenerator(
        style_dim,
        targets,
        hidden_dim=config.hidden_dim,
        trunk_layers=config.trunk_layers,
        rank=config.rank,
        # the config keeps weditlib's old name of W + ΔW, so existing runs' configs still match
        mode="add" if config.mode == "shift" else config.mode,
        branch_dim=config.branch_dim if config.rank is not None else None,
        bias_shifts=config.bias_shifts,
    )


class PerFRDiff(nn.Module):
    """Generic denoiser + style encoder + shift generator.

    The denoiser is made editable in place for ``config.targets``; load its weights before
    constructing this (``EditableLinear`` keeps ``nn.Linear``'s parameter names, so loading
    afterwards works too).

    Args:
        gafrg: the generic denoiser (trained, frozen in stage 2).
        style_encoder: PSSL (trained, frozen in stage 2).
        config: which denoiser weights to edit and the generator's heads.
    """

    def __init__(self, gafrg: GAFRG, style_encoder: StyleEncoder, config: PWSGConfig) -> None:
        super().__init__()
        self.gafrg = gafrg
        self.style_encoder = style_encoder
        # Names are relative to the denoiser (e.g. "output"), which edit() is called on.
        try:
            self.targets = make_editable(gafrg, config.targets)
        except ValueError as error:  # a pattern that selects nothing: the key to change
            raise ConfigError("pwsg.targets", str(error)) from None
        self.history_stats = config.history_stats
        self.history_segments = config.history_segments
        if config.listener_prior and gafrg.scaler is None:
            raise ValueError("pwsg.listener_prior needs a standardising denoiser")
        if config.listener_prior and style_encoder.input_name == "face":
            raise ValueError("pwsg.listener_prior needs an emotion (or dyadic) history, not face")
        if config.fit_prior_weight and not config.listener_prior:
            raise ValueError("pwsg.fit_prior_weight needs pwsg.listener_prior")
        # The prior's weight is a constant, or fitted on the training split by stage pwsg.
        self.prior = (
            ListenerPrior(gafrg.scaler.channels, config.prior_weight, config.fit_prior_weight)
            if config.listener_prior
            else None
        )
        extra = 2 * style_encoder.input_dim if config.history_stats else 0
        self.generator = build_generator(config, style_encoder.style_dim + extra, self.targets)

    def style(self, history: Tensor) -> Tensor:
        """``history: (l, h, c)`` -> the generator's input ``(l, s)``: the style vector, then
        (with ``pwsg.history_stats``) the history's per-channel mean and std ``(l, 2c)``.

        With ``pwsg.history_segments`` a history longer than the style encoder's training clips
        is embedded in pieces of that length (:meth:`StyleEncoder.segmented`); the mean, std and
        the listener prior always read the whole history."""
        encode = self.style_encoder.segmented if self.history_segments else self.style_encoder
        style = encode(history)
        if not self.history_stats:
            return style
        history = history.to(style.dtype)
        return torch.cat([style, history.mean(dim=1), history.std(dim=1, correction=0)], dim=1)

    def listener_centre(self, history: Tensor) -> Tensor | None:
        """``history: (l, h, c)`` (the style encoder's input: emotion, or the dyadic history
        whose first 25 channels are the listener's emotion) -> ``(l, 25)``: the mean each
        listener's windows are diffused around (``pwsg.listener_prior``), or ``None`` (the
        training split's mean).

        The listener's emotion mean, pulled towards the training split's by ``1 - w`` per
        channel (:class:`~perfrdiff.models.prior.ListenerPrior`).
        """
        if self.prior is None:
            return None
        channels = self.gafrg.scaler.channels
        if history.dim() != 3 or history.shape[-1] != self.style_encoder.input_dim:
            raise ValueError(
                f"history must be (l, h, {self.style_encoder.input_dim}) for the listener prior "
                f"(style.input={self.style_encoder.input_name!r}), got {tuple(history.shape)}"
            )
        population = self.gafrg.scaler.mean
        own = history[..., :channels].to(population.dtype)  # the listener's own emotion
        return self.prior.centre(own.mean(dim=1), population)

    @property
    def fit_prior_weight(self) -> bool:
        """Whether the listener prior's weight is fitted by stage ``pwsg`` (and saved with the
        generator) rather than the config's constant."""
        return self.prior is not None and self.prior.fitted

    @property
    def exported(self) -> nn.Module:
        """What stage ``pwsg`` trains and saves: the generator, and with
        ``pwsg.fit_prior_weight`` the fitted :class:`ListenerPrior` beside it (keys
        ``generator.*``, ``prior.weight``)."""
        if not self.fit_prior_weight:
            return self.generator  # the layout of runs saved before the prior could be fitted
        return nn.ModuleDict({"generator": self.generator, "prior": self.prior})

    def listener_shifts(self, history: Tensor) -> dict[str, DenseShift | LowRankShift]:
        """``history: (l, h, c)`` of ``l`` listeners -> name -> shift holding ``l`` edits."""
        return self.generator(self.style(history))

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        memory: Tensor,
        keep: Tensor | None = None,
        shifts: Shifts | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        """Denoise ``(b, w, 25)`` with each sample's listener shift (``index: (b,)`` into ``l``).

        ``shifts=None`` runs the generic model.
        """
        if shifts is None:
            return self.gafrg(x_t, t, memory, keep)
        with edit(self.gafrg, shifts, index):
            return self.gafrg(x_t, t, memory, keep)
