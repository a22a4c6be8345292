"""The EEG head (REACT 2026): the listener's 14 EEG targets per frame, predicted one window at a
time from the listener's facial reaction and the speaker's behaviour the protocol lets that
window see.

Window ``i`` covers frames ``[i·w, i·w + w)``. Its tokens are the ``w`` listener emotion frames of
the window and the speaker frames ``[i·w − before·w, i·w + after·w)`` (the protocol's speaker
context; zero before the first frame and past the last), the listener's one token per frame, the
speaker's one token per ``speaker_patch`` frames (their features side by side: fewer tokens, the
same frames), each projected to ``d_model`` and given a learned embedding of its slot. A
transformer encoder mixes them; the listener tokens' outputs map to the 14 targets. The
speaker's emotion, 3DMM and audio are standardised with statistics of the training split,
fitted once and saved with the weights (:class:`FeatureScaler`).

The listener's reaction is an input on purpose: EEG is the listener's, and it goes with their
reaction (in the synthetic twin it is a function of it). Training reads the real reaction;
prediction reads a generated one (each of the K samples gives its own EEG) or the real one.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from perfrdiff.config import EEGConfig
from perfrdiff.data.react2026.eeg import EEG_COLUMNS
from perfrdiff.features import EMOTION_DIM
from perfrdiff.models.scaler import FeatureScaler

#: Targets per frame (TP9, AF7, AF8, TP10 / 1000, then five band powers of TP9 and TP10).
EEG_TARGETS = len(EEG_COLUMNS)


class EEGHead(nn.Module):
    """Listener EEG ``(b, t, 14)`` from listener emotion ``(b, t, 25)`` and speaker features
    ``(b, t, s)``.

    Args:
        config: ``d_model``, ``heads``, ``layers``, ``ffn_dim``, ``dropout``, ``speaker_patch``
            (the ``eeg`` config section).
        speaker_dim: ``s``, the speaker's features per frame (emotion, 3DMM, audio).
        window: ``w``, frames per window (the protocol's).
        context: ``(before, after)`` windows of speaker context (the protocol's).
    """

    def __init__(
        self, config: EEGConfig, speaker_dim: int, window: int, context: tuple[int, int] = (1, 1)
    ) -> None:
        super().__init__()
        before, after = context
        if window < 1 or before < 0 or after < 0 or before + after < 1:
            raise ValueError(
                f"window, context: expected w >= 1 and (before, after) >= 0 with at least one "
                f"window of speaker context, got {window}, {context}"
            )
        self.patch = config.speaker_patch
        if window % self.patch:
            raise ValueError(
                f"eeg.speaker_patch: must divide the protocol's window of {window} frames, got "
                f"{self.patch}"
            )
        self.window, self.context, self.speaker_dim = window, (before, after), speaker_dim
        d = config.d_model
        self.speaker_scaler = FeatureScaler(speaker_dim)
        self.listener_in = nn.Linear(EMOTION_DIM, d)
        self.speaker_in = nn.Linear(speaker_dim * self.patch, d)
        speaker_tokens = (before + after) * window // self.patch
        self.slots = nn.Parameter(torch.randn(window + speaker_tokens, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, config.heads, config.ffn_dim, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, EEG_TARGETS))

    def forward(
        self,
        listener: Tensor,
        speaker: Tensor,
        speaker_mask: Tensor | None = None,
        windows_per_pass: int | None = None,
    ) -> Tensor:
        """Predicted EEG per frame.

        Args:
            listener: ``(b, t, 25)`` the listener's emotion (any ``t >= 1``).
            speaker: ``(b, t, s)`` the speaker's features, raw (standardised here).
            speaker_mask: ``(b, t)`` bool, False where the speaker frame is padding (read as
                zero after standardisation, as frames outside the sequence are).
            windows_per_pass: run the encoder on at most this many windows at once (memory
                bounded by it, not by ``t``); ``None``: all at once.

        Returns:
            ``(b, t, 14)``.
        """
        b, t, _ = self._checked(listener, speaker)
        w, (before, after) = self.window, self.context
        n = -(-t // w)
        z = self.speaker_scaler.normalise(speaker)
        if speaker_mask is not None:
            z = z * speaker_mask[..., None].to(z.dtype)
        # speaker frames [i·w - before·w, i·w + after·w) of window i, zero outside the sequence
        z = F.pad(z, (0, 0, before * w, (n + after) * w - t))
        seen = rearrange(
            z.unfold(1, (before + after) * w, w)[:, :n],
            "b n s (l p) -> (b n) l (p s)",
            p=self.patch,
        )
        mine = rearrange(F.pad(listener, (0, 0, 0, n * w - t)), "b (n w) e -> (b n) w e", w=w)
        tokens = torch.cat([self.listener_in(mine), self.speaker_in(seen)], dim=1) + self.slots
        step = windows_per_pass or tokens.shape[0]
        outputs = [self.encoder(tokens[i : i + step])[:, :w] for i in range(0, len(tokens), step)]
        eeg = self.out(torch.cat(outputs))
        return rearrange(eeg, "(b n) w c -> b (n w) c", b=b)[:, :t]

    def _checked(self, listener: Tensor, speaker: Tensor) -> tuple[int, int, int]:
        if listener.ndim != 3 or listener.shape[-1] != EMOTION_DIM or listener.shape[1] < 1:
            raise ValueError(
                f"listener: expected (b, t >= 1, {EMOTION_DIM}), got {tuple(listener.shape)}"
            )
        wanted = (*listener.shape[:2], self.speaker_dim)
        if tuple(speaker.shape) != wanted:
            raise ValueError(f"speaker: expected {wanted}, got {tuple(speaker.shape)}")
        return tuple(listener.shape)  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (
            f"window={self.window}, context={self.context}, speaker_dim={self.speaker_dim}, "
            f"speaker_patch={self.patch}"
        )


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``Σ m (p − y)² / max(Σ m, 1)``: the mean squared error over the cells whose mask is 1;
    a masked cell adds nothing to the loss or its gradient (its target may be anything).

    Args:
        prediction: ``(..., c)``.
        target: ``(..., c)``; anything where ``mask`` is 0 (NaN included).
        mask: ``(..., c)``, 1 for a counted cell, 0 otherwise.
    """
    if not prediction.shape == target.shape == mask.shape:
        raise ValueError(
            f"prediction, target, mask: expected one shape, got {tuple(prediction.shape)}, "
            f"{tuple(target.shape)}, {tuple(mask.shape)}"
        )
    m = mask.to(prediction.dtype)
    squared = torch.where(m > 0, prediction - target, torch.zeros_like(prediction)) ** 2
    return (squared * m).sum() / m.sum().clamp(min=1.0)
