"""The loss of each training stage, as an :class:`~perfrdiff.training.loop.Objective`.

* ``emotion-vae``: reconstruction + KL on speaker and listener emotion windows.
* ``style``: supervised contrastive loss on listener clips (label = listener identity).
* ``gafrg``: ``x0`` (or ``v``) MSE of the generic denoiser, conditions dropped with
  ``p = cond_drop``.
* ``pwsg``: the same loss through the denoiser edited by shifts from the listener's style (or
  personality, ``pwsg.condition``), with the denoiser and the style encoder frozen (only the
  shift generator and the condition's MLPs learn), plus ``pwsg.shift_l2`` times the shifts'
  mean squared norm.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from perfrdiff.config import Config
from perfrdiff.models import (
    GAFRG,
    DDIMSchedule,
    EmotionVAE,
    PerFRDiff,
    StyleEncoder,
    supervised_contrastive_loss,
    vae_loss,
    x0_loss,
)
from perfrdiff.models.condition import PERSONALITY_DIM
from perfrdiff.protocol import protocol_named
from perfrdiff.training.loop import Batch, Objective
from weditlib import DenseShift, LowRankShift, RowRangeShift

if TYPE_CHECKING:
    from perfrdiff.run import Run

log = logging.getLogger(__name__)


class EmotionVAEObjective(Objective):
    def __init__(self, vae: EmotionVAE, kl_weight: float) -> None:
        super().__init__()
        self.trained = vae
        self.kl_weight = kl_weight

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        speaker, listener = batch["speaker_emotion"].float(), batch["listener_emotion"].float()
        if speaker.shape[1] != listener.shape[1]:  # REACT 2026: a 2w speaker context
            return self._mean_of(speaker, listener)
        x = torch.cat([speaker, listener])
        recon, mu, logvar = self.trained(x)
        return vae_loss(recon, x, mu, logvar, self.kl_weight)

    def _mean_of(self, *windows: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The mean of the losses of windows of different lengths (each its own batch)."""
        results = [vae_loss(recon, x, mu, logvar, self.kl_weight)
                   for x in windows for recon, mu, logvar in [self.trained(x)]]  # fmt: skip
        logs = [log_values for _, log_values in results]
        loss = sum(loss for loss, _ in results) / len(results)
        return loss, {key: sum(m[key] for m in logs) / len(logs) for key in logs[0]}


class StyleObjective(Objective):
    """Batches hold ``clip: (b, f, c)`` and ``listener_id: (b,)``."""

    def __init__(self, encoder: StyleEncoder, temperature: float) -> None:
        super().__init__()
        self.trained = encoder
        self.temperature = temperature

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        style = self.trained(batch["clip"].float())
        labels = batch["listener_id"]
        loss = supervised_contrastive_loss(style, labels, self.temperature)
        with torch.no_grad():
            # Nearest-neighbour identification accuracy: the style encoder's quality in one number.
            sim = style @ style.T
            sim.fill_diagonal_(-2.0)
            accuracy = (labels[sim.argmax(1)] == labels).float().mean().item()
        return loss, {"nn_accuracy": accuracy}


def diffusion_inputs(
    gafrg: GAFRG,
    schedule: DDIMSchedule,
    batch: Batch,
    cond_drop: float,
    prev_drop: float = 0.0,
    centre: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Noised windows and conditions of a training batch: ``(target, x_t, t, memory, keep)``.

    ``target`` is what the network learns to output (``x0`` or ``v``, see
    :meth:`DDIMSchedule.training_target`), in the space the denoiser diffuses
    (:meth:`GAFRG.to_diffusion`, around ``centre: (b, 25)`` or ``(b, w, 25)`` when given: a
    listener prior).
    The real previous window is hidden with probability ``prev_drop`` (as at a clip's start).
    """
    x0 = gafrg.to_diffusion(batch["listener_emotion"].float(), centre)
    b = x0.shape[0]
    t = torch.randint(0, schedule.num_train_steps, (b,), device=x0.device)
    noise = torch.randn_like(x0)
    x_t = schedule.add_noise(x0, noise, t)
    has_past = batch["has_past"].bool() & (torch.rand(b, device=x0.device) >= prev_drop)
    memory = gafrg.condition(
        batch["speaker_audio"].float(),
        batch["speaker_face"].float(),
        batch["speaker_emotion"].float(),
        batch["listener_prev_emotion"].float() * has_past[:, None, None],
        has_past,
    )
    keep = torch.rand(b, device=x0.device) >= cond_drop
    return schedule.training_target(x0, noise, t), x_t, t, memory, keep


class GAFRGObjective(Objective):
    def __init__(
        self, gafrg: GAFRG, schedule: DDIMSchedule, cond_drop: float, prev_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.trained = gafrg
        self.schedule = schedule
        self.cond_drop = cond_drop
        self.prev_drop = prev_drop

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        target, x_t, t, memory, keep = diffusion_inputs(
            self.trained, self.schedule, batch, self.cond_drop, self.prev_drop
        )
        return x0_loss(self.trained(x_t, t, memory, keep), target), {}


class PWSGObjective(Objective):
    """Stage 2: ``model.generator`` learns; PSSL stays frozen and in eval mode, and so does
    GAFRG unless ``pwsg.tune_denoiser`` fine-tunes it alongside (its VAE stays frozen)."""

    def __init__(self, model: PerFRDiff, schedule: DDIMSchedule, config: Config) -> None:
        super().__init__()
        self.model = model
        self.trained = model.exported  # the generator (and a fitted prior: buffers)
        self.schedule = schedule
        self.cond_drop = config.diffusion.cond_drop
        self.prev_drop = config.diffusion.prev_drop
        self.history_key = f"history_{config.style.input}"
        self.shift_l2 = config.pwsg.shift_l2
        self.style_noise = config.pwsg.style_noise
        model.gafrg.requires_grad_(model.tune_denoiser)  # its VAE stays frozen (GAFRG's rule)
        model.style_encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> PWSGObjective:
        super().train(mode)
        if not self.model.tune_denoiser:
            self.model.gafrg.eval()
        self.model.style_encoder.eval()
        return self

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        loss, shifts = personalised_loss(
            self.model,
            self.schedule,
            batch,
            self.cond_drop,
            self.prev_drop,
            self.history_key,
            style_noise=self.style_noise if self.training else 0.0,
        )
        samples = batch["listener_emotion"].shape[0]
        with torch.set_grad_enabled(self.shift_l2 > 0 and torch.is_grad_enabled()):
            size = sum(squared_norm(d) for d in shifts.values()) / samples
        logs = {"shift_norm": size.detach().sqrt().item()}
        if self.shift_l2 > 0:
            penalty = self.shift_l2 * size
            loss = loss + penalty
            logs["shift_penalty"] = penalty.item()
        return loss, logs


def personalised_loss(
    model: PerFRDiff,
    schedule: DDIMSchedule,
    batch: Batch,
    cond_drop: float,
    prev_drop: float,
    history_key: str,
    style_noise: float = 0.0,
) -> tuple[Tensor, dict[str, DenseShift | LowRankShift | RowRangeShift]]:
    """The diffusion loss of ``model`` edited per sample by the shifts of its listener's history
    ``batch[history_key]`` (and personality ``batch["personality"]: (b, 5)`` when
    ``pwsg.condition`` reads it), around the listener prior when configured; and those shifts.

    The history's style and the noised inputs carry no gradient; the loss reaches whatever of
    the generator, the condition's MLPs and the denoiser requires it (the speaker encoder too
    with ``pwsg.tune_denoiser``). ``style_noise > 0`` moves
    each sample's condition vector (its style, personality embedding or both fused) by that much
    Gaussian noise per dimension, normalised back to length 1
    (:func:`~perfrdiff.models.condition.jittered`).

    Raises:
        ValueError: ``pwsg.condition`` reads the personality and the batch has none.
    """
    reads_personality = model.condition.reads_personality
    personality = batch.get("personality") if reads_personality else None
    with torch.no_grad():
        history = batch[history_key].float() if model.needs_history else None
        features = model.history_features(history)
        centre = model.listener_centre(history, personality)
        fit = model.listener_response(history)
        if fit is not None:  # a centre per frame: the listener's response to the speaker
            rows = torch.arange(history.shape[0], device=history.device)
            speaker = batch["speaker_emotion"].float()
            centre = model.window_centre(
                centre, fit, rows, speaker, batch["start"], batch["has_past"]
            )
    # the speaker memory learns with a tuned denoiser (pwsg.tune_denoiser)
    with torch.set_grad_enabled(model.tune_denoiser and torch.is_grad_enabled()):
        target, x_t, t, memory, keep = diffusion_inputs(
            model.gafrg, schedule, batch, cond_drop, prev_drop, centre
        )
    # one shift per sample: the batch mixes listeners
    shifts = model.shifts_from(model.generator_input(*features, personality, style_noise))
    return x0_loss(model(x_t, t, memory, keep, shifts, None), target), shifts


def squared_norm(delta: DenseShift | LowRankShift | RowRangeShift) -> Tensor:
    """``Σ_l ‖ΔW_l‖²_F`` without building low-rank shifts: ``‖UV‖² = Σ (UᵀU) ⊙ (VVᵀ)`` (a row
    range's: its inner shift's)."""
    if isinstance(delta, RowRangeShift):
        return squared_norm(delta.inner)
    if isinstance(delta, LowRankShift):
        gram_up = delta.up.transpose(1, 2) @ delta.up
        gram_down = delta.down @ delta.down.transpose(1, 2)
        return (gram_up * gram_down).sum()
    return delta.matrix().pow(2).sum()


# The stage registry's objectives (perfrdiff.stages): each builds a new model of its stage
# around the run's trained earlier stages.


def emotion_vae_objective(run: Run) -> EmotionVAEObjective:
    return EmotionVAEObjective(
        run.build("emotion-vae", trained=False), run.config.emotion_vae.kl_weight
    )


def style_objective(run: Run) -> StyleObjective:
    return StyleObjective(run.build("style", trained=False), run.config.style.temperature)


def gafrg_objective(run: Run) -> GAFRGObjective:
    d = run.config.diffusion
    gafrg = run.build("gafrg", trained=False)  # around the trained, frozen VAE
    if gafrg.scaler is not None:
        gafrg.scaler.fit(*training_emotion_statistics(run.config))
    if gafrg.speaker.scaler is not None:
        gafrg.speaker.scaler.fit(*training_speaker_statistics(run.config))
    return GAFRGObjective(gafrg, run.schedule, d.cond_drop, d.prev_drop)


def training_emotion_statistics(config: Config) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` ``(25,)`` of the training split's listener emotion, read from its
    protocol's layout."""
    if protocol_named(config.protocol).clip_frames is None:
        from perfrdiff.data.react2026.store import run_store
        from perfrdiff.data.react2026.windows import listener_emotion_moments

        mean, std = listener_emotion_moments(run_store(config, "train"))
        return torch.from_numpy(mean), torch.from_numpy(std)
    from perfrdiff.data import listener_emotion_statistics

    return listener_emotion_statistics(config.data.root, "train")


def training_speaker_statistics(config: Config) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` ``(a + 58 + 25,)`` of the training split's speaker frames (audio, 3DMM
    as the run reads it, emotion), read from its protocol's layout."""
    if protocol_named(config.protocol).clip_frames is None:
        from perfrdiff.data.react2026.store import run_store
        from perfrdiff.data.react2026.windows import speaker_frame_moments

        return speaker_frame_moments(run_store(config, "train"))
    from perfrdiff.data import speaker_frame_statistics

    return speaker_frame_statistics(config.data.root, "train")


def pwsg_objective(run: Run) -> PWSGObjective:
    model = run.build("pwsg", trained=False)  # trained GAFRG + PSSL, a new generator
    fit_listener_prior(model, run.config)
    return PWSGObjective(model, run.schedule, run.config)


def fit_listener_prior(model: PerFRDiff, config: Config) -> None:
    """Fit what ``model``'s listener prior fits on the training split: the history's weights
    (``pwsg.fit_prior_weight``; histories of ``data.history_frames`` frames, as at
    evaluation), then the personality's part (``pwsg.personality_prior``) on what the history's
    part leaves of each level. Nothing when neither is on."""
    if not model.fit_prior_weight and model.personality_level is None:
        return
    histories, levels, personality = training_levels(config, model.prior is not None)
    mean = model.gafrg.scaler.mean
    if model.fit_prior_weight:
        weight = model.prior.fit(histories, levels, mean)
        log.info("listener prior weights fitted on %d pairs: %s", len(levels), weight.tolist())
    if model.personality_level is not None:
        population = mean.double()
        # the part of each level the history's term of the centre does not give
        rest = levels - (
            population if model.prior is None else model.prior.centre(histories, population)
        )
        coef = model.personality_level.fit(personality, rest)
        log.info("personality prior fitted on %d levels: |coef| max %.4f", len(levels),
                 float(coef.abs().max()))  # fmt: skip


def training_levels(config: Config, with_history: bool) -> tuple[Tensor | None, Tensor, Tensor]:
    """``(history_means, levels, personality)`` float64 of the training split: pairs of one
    listener's history and another of their sequences' level when ``with_history``, else every
    sequence's level (``history_means`` ``None``), with that sequence's listener's Big Five.
    REACT 2024 has no personality: always its clip pairs, with zero scores."""
    frames = config.data.history_frames
    if protocol_named(config.protocol).clip_frames is None:
        from perfrdiff.data.react2026.store import run_store
        from perfrdiff.data.react2026.windows import sequence_level_pairs, sequence_levels

        store = run_store(config, "train")
        if with_history:
            arrays = sequence_level_pairs(store, frames)
        else:
            arrays = (None, *sequence_levels(store))
        return tuple(None if a is None else torch.from_numpy(a) for a in arrays)
    from perfrdiff.data import listener_level_pairs

    histories, levels = listener_level_pairs(config.data.root, "train", frames)
    return histories, levels, torch.zeros(len(levels), PERSONALITY_DIM, dtype=torch.float64)
