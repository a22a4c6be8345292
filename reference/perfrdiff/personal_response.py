"""A listener's linear response to their partner, read in closed form from their history.

A reference for what a personalised generator could learn: each listener's reaction is
predicted as their own level plus a linear map of what the speaker did in the last
``blocks · block`` frames. The map is a ridge regression fitted on the listener's *dyadic
history* (another conversation: the listener's emotion beside their partner's), shrunk towards
one map shared by every training listener. Nothing is trained by gradient; the prediction is
deterministic.

A frame sees only the speaker frames its protocol shows its window
(:meth:`perfrdiff.protocol.Protocol.context_frames`), and of those only the ones at or before
itself: under REACT 2024 (the window before) the last frames of a window see the speaker at
lags of at least a window; under REACT 2026 (the window before and the window itself) every
lag up to ``blocks · block`` is in view. ``context=None`` shows every past frame.

Shapes: ``T`` frames, ``c`` speaker channels, ``d`` listener channels, ``f = blocks · c``
features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Speaker frames averaged into one lag feature, and the number of such blocks (lags 0-49).
BLOCK_FRAMES = 5
LAG_BLOCKS = 10


def visible_spans(frames: int, window: int, context: tuple[int, int] | None) -> np.ndarray:
    """``(T, 2)`` half-open ``[lo, hi)``: the speaker frames frame ``t`` may read, ``hi ≤ t + 1``.

    Args:
        frames: ``T``.
        window: the protocol's window ``w``; frame ``t`` lies in window ``[s, s + w)``,
            ``s = w ⌊t / w⌋``.
        context: ``(before, after)`` in frames: the window sees ``[s − before, s + after)``;
            ``None``: every frame up to ``t``.

    Raises:
        ValueError: ``frames``, ``window`` or ``context`` out of range.
    """
    if frames < 0 or window < 1:
        raise ValueError(f"frames must be >= 0 and window >= 1, got {frames} and {window}")
    t = np.arange(frames)
    if context is None:
        return np.stack([np.zeros_like(t), t + 1], axis=1)
    before, after = context
    if before < 0 or after < 0:
        raise ValueError(f"context must be (before >= 0, after >= 0) frames, got {context}")
    start = (t // window) * window
    lo = np.maximum(start - before, 0)
    hi = np.minimum(start + after, t + 1)
    return np.stack([lo, np.maximum(hi, lo)], axis=1)


def lagged_speaker_features(
    speaker: np.ndarray,
    spans: np.ndarray,
    block: int = BLOCK_FRAMES,
    blocks: int = LAG_BLOCKS,
) -> np.ndarray:
    """``(T, c) -> (T, blocks·c)``: per frame ``t`` and lag block ``k``, the mean of the speaker
    over frames ``[t − (k+1)·block + 1, t − k·block]`` that ``spans`` lets ``t`` see; 0 where it
    sees none of them. Block-major: feature ``k·c + j`` is block ``k``, channel ``j``.

    Raises:
        ValueError: ``speaker`` not 2-d, or ``spans`` not ``(T, 2)``.
    """
    if speaker.ndim != 2:
        raise ValueError(f"speaker must be (T, c), got shape {speaker.shape}")
    frames = speaker.shape[0]
    if spans.shape != (frames, 2):
        raise ValueError(f"spans must be ({frames}, 2), got {spans.shape}")
    cumulative = np.concatenate([np.zeros((1, speaker.shape[1])), np.cumsum(speaker, axis=0)])
    t = np.arange(frames)
    out = np.zeros((frames, blocks * speaker.shape[1]))
    for k in range(blocks):
        lo = np.clip(np.maximum(t - (k + 1) * block + 1, spans[:, 0]), 0, frames)
        hi = np.clip(np.minimum(t - k * block + 1, spans[:, 1]), 0, frames)
        count = hi - lo
        seen = count > 0
        sums = cumulative[np.maximum(hi, lo)] - cumulative[lo]
        out[seen, k * speaker.shape[1] : (k + 1) * speaker.shape[1]] = (
            sums[seen] / count[seen, None]
        )
    return out


def ridge_towards(
    features: np.ndarray, targets: np.ndarray, weight: float, prior: np.ndarray | None = None
) -> np.ndarray:
    """``argmin_A ‖Y − X A‖² + weight ‖A − prior‖²``: ``(n, f), (n, d) -> (f, d)``.

    Raises:
        ValueError: mismatched rows or prior shape, or ``weight`` not positive.
    """
    if features.ndim != 2 or targets.ndim != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(
            f"features (n, f) and targets (n, d) must share n, got {features.shape} and "
            f"{targets.shape}"
        )
    if not weight > 0:
        raise ValueError(f"weight must be > 0, got {weight}")
    f, d = features.shape[1], targets.shape[1]
    rhs = features.T @ targets
    if prior is not None:
        if prior.shape != (f, d):
            raise ValueError(f"prior must be ({f}, {d}), got {prior.shape}")
        rhs = rhs + weight * prior
    return np.linalg.solve(features.T @ features + weight * np.eye(f), rhs)


@dataclass
class Dyad:
    """One conversation seen from its listener: ``listener (T, d)`` and ``speaker (T, c)``."""

    listener: np.ndarray
    speaker: np.ndarray


@dataclass
class PersonalResponse:
    """The shared map and how each listener's departs from it.

    Attributes:
        window: the protocol's window ``w``.
        context: ``(before, after)`` frames a window sees of the speaker, or ``None``.
        centre: ``(f,)`` the training features' mean, taken from every clip's features (not
            the clip's own mean, which would read the speaker's future).
        scale: ``(f,)`` the training features' standard deviation (features are divided by it).
        shared: ``(f, d)`` the map fitted on every training dyad.
        weight: the ridge weight of a listener's map around ``shared``.
    """

    window: int
    context: tuple[int, int] | None
    centre: np.ndarray
    scale: np.ndarray
    shared: np.ndarray
    weight: float

    @classmethod
    def fit(
        cls,
        dyads: list[Dyad],
        window: int,
        context: tuple[int, int] | None,
        weight: float = 1e3,
        shared_weight: float = 1e4,
    ) -> PersonalResponse:
        """The shared map of ``dyads`` (training conversations): each listener's deviation
        from its dyad's mean on the speaker's lag features.

        Raises:
            ValueError: no dyads.
        """
        if not dyads:
            raise ValueError("dyads is empty: the shared map needs training conversations")
        x = np.concatenate([_raw_features(d.speaker, window, context) for d in dyads])
        y = np.concatenate([d.listener - d.listener.mean(axis=0) for d in dyads])
        centre, scale = x.mean(axis=0), x.std(axis=0) + 1e-8
        shared = ridge_towards((x - centre) / scale, y, shared_weight)
        return cls(window, context, centre, scale, shared, weight)

    def features(self, speaker: np.ndarray) -> np.ndarray:
        """``(T, c) -> (T, f)`` the speaker's lag features, standardised as in training."""
        return (_raw_features(speaker, self.window, self.context) - self.centre) / self.scale

    def listener_fit(self, history: Dyad, personal: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(d,), (f, d)``: the history's listener's intercept and map (their own, shrunk
        towards the shared one; with ``personal=False`` the shared one). The intercept is the
        listener's level with the speaker at the training mean: the history's mean less what
        its own speaker moved it by."""
        x, y = self.features(history.speaker), history.listener
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        if personal:
            response = ridge_towards(x - x_mean, y - y_mean, self.weight, self.shared)
        else:
            response = self.shared
        return y_mean - x_mean @ response, response

    def predict(self, history: Dyad, speaker: np.ndarray, personal: bool = True) -> np.ndarray:
        """``(T, d)``: the listener's intercept plus their (or, with ``personal=False``, the
        shared) map of ``speaker``."""
        intercept, response = self.listener_fit(history, personal)
        return intercept + self.features(speaker) @ response


def _raw_features(speaker: np.ndarray, window: int, context: tuple[int, int] | None) -> np.ndarray:
    return lagged_speaker_features(speaker, visible_spans(len(speaker), window, context))
