"""PerFRDiff: the generic denoiser edited per listener by weight shifts from their style.

``PSSL`` (style encoder) embeds a listener's history; with ``pwsg.condition`` the style, the
listener's personality or both make the condition (:mod:`perfrdiff.models.condition`); ``PWSG``
(weditlib's :class:`~weditlib.MultiBranchShiftGenerator`) turns it into shifts for the
denoiser's editable weights (with ``pwsg.attention_rows: kv`` only the key and value rows of an
attention's ``in_proj``, as :class:`~weditlib.RowRangeShift`); :func:`weditlib.edit` applies
them. A listener's shifts are computed once per sequence (:meth:`PerFRDiff.listener_shifts`)
and reused across its samples and denoising steps; a batch may mix listeners through ``index``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from perfrdiff.config import ConfigError, PWSGConfig
from perfrdiff.models.condition import PERSONALITY_DIM, ListenerCondition, jittered
from perfrdiff.models.coupling import lagged_correlations, lagged_correlations_dim
from perfrdiff.models.denoiser import GAFRG
from perfrdiff.models.prior import ListenerPrior, PersonalityLevel
from perfrdiff.models.response import ListenerResponse, ResponseFit, first_visible
from perfrdiff.models.style_encoder import StyleEncoder
from weditlib import (
    DenseShift,
    LowRankShift,
    MultiBranchShiftGenerator,
    RowRangeShift,
    edit,
    make_editable,
)

Shifts = Mapping[str, DenseShift | LowRankShift | RowRangeShift]


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
        mode=config.mode,
        branch_dim=config.branch_dim if config.rank is not None else None,
        bias_shifts=config.bias_shifts,
    )


def key_value_rows(
    denoiser: nn.Module, targets: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """``name -> (start, stop)``: the key and value rows ``[e, 3·e)`` of every attention's joint
    ``in_proj`` among ``targets`` (names relative to ``denoiser``).

    Raises:
        ConfigError: ``targets`` hold no attention ``in_proj`` (``pwsg.attention_rows: kv``
            would edit nothing).
    """
    rows = {}
    for name in targets:
        owner, _, weight = name.rpartition(".")
        attention = denoiser.get_submodule(owner) if owner else None
        if weight == "in_proj" and isinstance(attention, nn.MultiheadAttention):
            rows[name] = (attention.embed_dim, 3 * attention.embed_dim)
    if not rows:
        raise ConfigError(
            "pwsg.attention_rows",
            "'kv' edits the key and value rows of an attention's in_proj, but pwsg.targets "
            f"select none ({sorted(targets)}); add an attention to pwsg.targets or use 'all'",
        )
    return rows


class PerFRDiff(nn.Module):
    """Generic denoiser + style encoder + shift generator.

    The denoiser is made editable in place for ``config.targets``; load its weights before
    constructing this (``EditableLinear`` keeps ``nn.Linear``'s parameter names, so loading
    afterwards works too).

    Args:
        gafrg: the generic denoiser (trained, frozen in stage 2).
        style_encoder: PSSL (trained, frozen in stage 2).
        config: which denoiser weights to edit and the generator's heads.
        speaker_context: ``(before, after)`` speaker frames a window sees before and from its
            start (the protocol's ``context_frames``), read by ``pwsg.listener_response``;
            default: the window before, then the rest of ``gafrg.speaker_frames``.
    """

    def __init__(
        self,
        gafrg: GAFRG,
        style_encoder: StyleEncoder,
        config: PWSGConfig,
        speaker_context: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.gafrg = gafrg
        self.style_encoder = style_encoder
        # Names are relative to the denoiser (e.g. "output"), which edit() is called on.
        try:
            self.targets = make_editable(gafrg, config.targets)
        except ValueError as error:  # a pattern that selects nothing: the key to change
            raise ConfigError("pwsg.targets", str(error)) from None
        self.history_stats = config.history_stats
        self.history_lags = tuple(config.history_lags)
        if self.history_lags and style_encoder.input_name != "dyadic":
            raise ConfigError(
                "pwsg.history_lags",
                "correlates the listener with their partner, which needs a dyadic history "
                f"(style.input: dyadic), got style.input={style_encoder.input_name!r}",
            )
        self.history_segments = config.history_segments
        self.tune_denoiser = config.tune_denoiser
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
        self.condition = ListenerCondition(config.condition, style_encoder.style_dim)
        if config.personality_prior and gafrg.scaler is None:
            raise ValueError("pwsg.personality_prior needs a standardising denoiser")
        if config.personality_prior and not self.condition.reads_personality:
            raise ValueError(
                "pwsg.personality_prior needs a condition that reads the personality, got "
                f"{config.condition!r}"
            )
        # The personality's part of the centre, fitted by stage pwsg (pwsg.personality_prior).
        self.personality_level = (
            PersonalityLevel(gafrg.scaler.channels, PERSONALITY_DIM)
            if config.personality_prior
            else None
        )
        if config.listener_response and gafrg.scaler is None:
            raise ValueError("pwsg.listener_response needs a standardising denoiser")
        if config.listener_response and style_encoder.input_name != "dyadic":
            raise ValueError("pwsg.listener_response needs a dyadic history (style.input)")
        if speaker_context is None:
            speaker_context = (gafrg.window, gafrg.speaker_frames - gafrg.window)
        # Each listener's response to the speaker, from the history (pwsg.listener_response).
        self.response = (
            ListenerResponse(gafrg.window, speaker_context, config.response_weight)
            if config.listener_response
            else None
        )
        # name -> (start, stop): the rows of that weight the shifts edit (pwsg.attention_rows)
        self.row_ranges = (
            key_value_rows(gafrg, self.targets) if config.attention_rows == "kv" else {}
        )
        generated = {
            name: (self.row_ranges[name][1] - self.row_ranges[name][0], shape[1])
            if name in self.row_ranges
            else shape
            for name, shape in self.targets.items()
        }
        extra = 2 * style_encoder.input_dim if config.history_stats else 0
        extra += lagged_correlations_dim(self.history_lags)
        self.generator = build_generator(config, style_encoder.style_dim + extra, generated)

    @property
    def needs_history(self) -> bool:
        """Whether the shifts (or the listener prior) read the listener's history."""
        return self.reads_statistics or self.condition.reads_history or self.prior is not None

    @property
    def reads_statistics(self) -> bool:
        """Whether the generator also reads statistics of the history (``pwsg.history_stats``,
        ``pwsg.history_lags``)."""
        return self.history_stats or bool(self.history_lags)

    def style(self, history: Tensor | None, personality: Tensor | None = None) -> Tensor:
        """``history: (l, h, c)`` and ``personality: (l, 5)`` -> the generator's input
        ``(l, s)``: the condition (:class:`ListenerCondition`: the style vector, the
        personality embedding or both fused), then (with ``pwsg.history_stats``) the history's
        per-channel mean and std ``(l, 2c)``, then (with ``pwsg.history_lags``) its lagged
        listener-partner correlations ``(l, n·25)`` (:func:`lagged_correlations`).

        Either may be ``None`` when ``pwsg`` does not read it. With ``pwsg.history_segments`` a
        history longer than the style encoder's training clips is embedded in pieces of that
        length (:meth:`StyleEncoder.segmented`); the mean, std and the listener prior always
        read the whole history.

        Raises:
            ValueError: a value the configuration reads is ``None``, or a bad personality.
        """
        return self.generator_input(*self.history_features(history), personality)

    def history_features(self, history: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """What the frozen parts read off ``history: (l, h, c)``: its style ``(l, s)`` (when the
        condition reads it) and its statistics (:meth:`style`; when :attr:`reads_statistics`);
        ``None`` for each that is not read."""
        if history is None:
            if self.condition.reads_history or self.reads_statistics:
                raise ValueError(
                    f"history is required: pwsg.condition={self.condition.kind!r} or "
                    "pwsg.history_stats reads the listener's history (or pwsg.history_lags), "
                    "got None"
                )
            return None, None
        style = None
        if self.condition.reads_history:
            encode = self.style_encoder.segmented if self.history_segments else self.style_encoder
            style = encode(history)
        if not self.reads_statistics:
            return style, None
        dtype = style.dtype if style is not None else next(self.generator.parameters()).dtype
        history = history.to(dtype)
        stats = []
        if self.history_stats:
            stats += [history.mean(dim=1), history.std(dim=1, correction=0)]
        if self.history_lags:
            stats.append(lagged_correlations(history, self.history_lags))
        return style, torch.cat(stats, dim=1)

    def generator_input(
        self,
        style: Tensor | None,
        stats: Tensor | None,
        personality: Tensor | None,
        noise: float = 0.0,
    ) -> Tensor:
        """The generator's input ``(l, d)`` from :meth:`history_features` and ``personality``
        (the condition's MLPs learn; the rest is frozen); with ``noise > 0`` (training's
        ``pwsg.style_noise``) the condition vector is :func:`jittered`."""
        condition = self.condition(style, personality)
        if noise > 0:
            condition = jittered(condition, noise)
        return condition if stats is None else torch.cat([condition, stats], dim=1)

    def shifts_from(self, style: Tensor) -> dict[str, DenseShift | LowRankShift | RowRangeShift]:
        """The generator's shifts for its input ``style: (l, d)``, each placed at the rows it
        edits (:class:`~weditlib.RowRangeShift` with ``pwsg.attention_rows: kv``)."""
        shifts = self.generator(style)
        for name, (start, _) in self.row_ranges.items():
            shifts[name] = RowRangeShift(shifts[name], start, self.targets[name][0])
        return shifts

    def listener_centre(
        self, history: Tensor | None, personality: Tensor | None = None
    ) -> Tensor | None:
        """``history: (l, h, c)`` (the style encoder's input: emotion, or the dyadic history
        whose first 25 channels are the listener's emotion) and ``personality: (l, 5)`` ->
        ``(l, 25)``: the mean each listener's windows are diffused around, or ``None`` (the
        training split's mean: neither ``pwsg.listener_prior`` nor ``pwsg.personality_prior``).

        The listener's emotion mean, pulled towards the training split's by ``1 - w`` per
        channel (:class:`~perfrdiff.models.prior.ListenerPrior`), plus the level their
        personality predicts (:class:`~perfrdiff.models.prior.PersonalityLevel`).

        Raises:
            ValueError: a prior reads a value that is ``None`` or of the wrong shape.
        """
        if self.personality_level is None:
            return self._history_centre(history)
        if personality is None:
            raise ValueError("personality is required: pwsg.personality_prior reads it, got None")
        offset = self.personality_level(personality)
        centre = self._history_centre(history)
        base = self.gafrg.scaler.mean if centre is None else centre
        return base.to(offset.dtype) + offset

    def listener_response(self, history: Tensor | None) -> ResponseFit | None:
        """``history: (l, h, 50)`` -> each listener's response fit
        (:class:`~perfrdiff.models.ListenerResponse`), or ``None`` without
        ``pwsg.listener_response``.

        Raises:
            ValueError: the response is on and ``history`` is ``None`` or not ``(l, h, 50)``.
        """
        if self.response is None:
            return None
        if history is None:
            raise ValueError("history is required: pwsg.listener_response reads it, got None")
        return self.response.fit(history)

    def window_centre(
        self,
        centre: Tensor | None,
        fit: ResponseFit | None,
        index: Tensor,
        speaker_emotion: Tensor,
        start: Tensor | int,
        has_past: Tensor | bool,
    ) -> Tensor | None:
        """The centre each window is diffused around: ``(b, w, 25)`` with a response (the
        listener's level, or the training mean, plus their response to the speaker frames the
        window sees), else the listeners' ``centre: (l, 25)`` as it is (or ``None``).

        Args:
            centre: :meth:`listener_centre`'s, or ``None``.
            fit: :meth:`listener_response`'s, or ``None``.
            index: ``(b,)`` the listener of each window.
            speaker_emotion: ``(b, s, 25)`` the speaker's emotion the window sees.
            start: ``(b,)`` or one for all: the window's first frame in its sequence.
            has_past: ``(b,)`` or one for all: whether the window has a past
                (:func:`~perfrdiff.models.first_visible` reads both).
        """
        if fit is None or self.response is None:
            return centre
        b, device = len(index), speaker_emotion.device
        start = torch.as_tensor(start, device=device).expand(b)
        has_past = torch.as_tensor(has_past, device=device).expand(b)
        visible = first_visible(start, has_past, self.response.context)
        level = self.gafrg.scaler.mean.expand(b, -1) if centre is None else centre[index]
        response = self.response(fit[index], speaker_emotion, visible)
        return level[:, None].to(response.dtype) + response

    def _history_centre(self, history: Tensor | None) -> Tensor | None:
        """:meth:`listener_centre`'s history part (``pwsg.listener_prior``), or ``None``."""
        if self.prior is None:
            return None
        channels = self.gafrg.scaler.channels
        if history is None:
            raise ValueError("history is required: pwsg.listener_prior reads it, got None")
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
        """What stage ``pwsg`` trains and saves: the generator, and beside it the condition's
        MLPs (``pwsg.condition`` other than ``history``), the fitted :class:`ListenerPrior`
        (``pwsg.fit_prior_weight``), the fitted :class:`PersonalityLevel`
        (``pwsg.personality_prior``) and the fine-tuned denoiser (``pwsg.tune_denoiser``) (keys
        ``generator.*``, ``condition.*``, ``prior.weight``, ``personality_level.*``,
        ``denoiser.*``)."""
        separate = self.fit_prior_weight or self.condition.learns or self.tune_denoiser
        if not separate and self.personality_level is None:
            return self.generator  # the layout of runs saved before the prior could be fitted
        parts = {"generator": self.generator}
        if self.tune_denoiser:
            parts["denoiser"] = self.gafrg
        if self.condition.learns:
            parts["condition"] = self.condition
        if self.fit_prior_weight:
            parts["prior"] = self.prior
        if self.personality_level is not None:
            parts["personality_level"] = self.personality_level
        return nn.ModuleDict(parts)

    def listener_shifts(
        self, history: Tensor | None, personality: Tensor | None = None
    ) -> dict[str, DenseShift | LowRankShift | RowRangeShift]:
        """``history: (l, h, c)`` and ``personality: (l, 5)`` of ``l`` listeners (each may be
        ``None`` when ``pwsg`` does not read it, :meth:`style`) -> name -> shift holding ``l``
        edits."""
        return self.shifts_from(self.style(history, personality))

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
