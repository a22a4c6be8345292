"""PerFRDiff: the generic denoiser edited per listener by weight shifts from their style.

``PSSL`` (style encoder) embeds a listener's history; ``PWSG`` (weditlib's
:class:`~weditlib.MultiBranchDeltaGenerator`) turns the style into shifts for the denoiser's
editable weights; :func:`weditlib.edit` applies them. A listener's shifts are computed once per
sequence (:meth:`PerFRDiff.listener_shifts`) and reused across its samples and denoising steps;
a batch may mix listeners through ``index``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from perfrdiff.config import Config
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.style_encoder import StyleEncoder
from weditlib import (
    DenseDelta,
    LowRankDelta,
    MultiBranchDeltaGenerator,
    edit,
    make_editable,
)

Shifts = Mapping[str, DenseDelta | LowRankDelta]


def build_generator(
    config: Config, targets: Mapping[str, tuple[int, int]]
) -> MultiBranchDeltaGenerator:
    """PWSG for the editable weights ``targets`` (name -> ``(n, k)``) with the config's heads."""
    p = config.pwsg
    return MultiBranchDeltaGenerator(
        config.style.style_dim,
        targets,
        hidden_dim=p.hidden_dim,
        trunk_layers=p.trunk_layers,
        rank=p.rank,
        mode=p.mode,
        branch_dim=p.branch_dim if p.rank is not None else None,
    )


def make_editable_denoiser(gafrg: GAFRG, targets: list[str]) -> dict[str, tuple[int, int]]:
    """Make the denoiser's weights named by ``targets`` editable; returns name -> ``(n, k)``.

    Names are relative to the denoiser (e.g. ``"output"``), which is what :func:`weditlib.edit`
    is called on.
    """
    return make_editable(gafrg, targets)


class PerFRDiff(nn.Module):
    """Generic denoiser + style encoder + shift generator.

    The denoiser is made editable in place for ``config.pwsg.targets``; load its weights before
    constructing this (``EditableLinear`` keeps ``nn.Linear``'s parameter names, so loading
    afterwards works too).

    Args:
        config: model configuration.
        gafrg: the generic denoiser (trained, frozen in stage 2).
        style_encoder: PSSL (trained, frozen in stage 2).
    """

    def __init__(self, config: Config, gafrg: GAFRG, style_encoder: StyleEncoder) -> None:
        super().__init__()
        self.gafrg = gafrg
        self.style_encoder = style_encoder
        self.targets = make_editable_denoiser(gafrg, config.pwsg.targets)
        self.generator = build_generator(config, self.targets)

    def listener_shifts(self, history: Tensor) -> dict[str, DenseDelta | LowRankDelta]:
        """``history: (l, h, c)`` of ``l`` listeners -> name -> shift holding ``l`` edits."""
        return self.generator(self.style_encoder(history))

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
