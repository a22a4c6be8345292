"""A held-out synthetic listener family, written without looking at the model it tests.

Each :class:`Person` carries a persistent style. Their latent affect ``z`` (channels: arousal,
valence, emphasis, attention, tension) is ``rest + mood + expressivity * (own + response)``.
``own``: turn-driven speaking activity (alternating turns of ~3.8 s with short gaps), bursts
(laughs, emphasis, complaints, surprise, warmth, mostly while speaking) and AR(1) fluctuation at
their tempo. ``response``: their reaction to the partner's deviation from the partner's rest,
delayed by a personal number of frames, for some people gated (only strong partner expressions
count), mixed by a personal matrix (a blend of mirroring, attentive, dampening and empathic
archetypes), scaled by a personal gain (stronger while listening) and smoothed. A dyad is simulated
jointly, to second order (each reacts to the other's reaction to them). About a quarter are
*low-reactive* (gain x 0.1, more own fluctuation). ``mood`` and an AU detector offset change per
clip, so mean levels are no fixed fingerprint. Emotion maps ``z`` through shared AU / expression
loadings with personal resting biases and gains, plus habitual AU flashes; the 3DMM face maps
emotion through the family's shared basis with personal gains, neutral face and inertia, plus
engagement-driven nods and head pose.

Measured with ``python -c "from tests.perfrdiff.test_synthetic_heldout import prediction_mse;
print(prediction_mse())"`` (seed 0, 60 people, 300 pairs of 750 frames, ``delay_range=(2, 12)``,
``noise=0.05``; ridge regressions from the partner's emotion at lags 0, 4, ..., 28 frames to the
person's emotion, the last 30% of pairs held out; per-person: the shared ridge plus one fitted
to the person's residuals)::

    shared MSE 0.0437, per-person 0.0323, per-person mean 0.0370
    (population mean 0.0476; shared ridge plus the person's mean 0.0336)
    per-person ridge vs per-person mean: reactive -13.8 %, low-reactive (16 of 60) -4.1 %

A clip's mean emotion is nearest to its own person's mean over their other clips for 47% of the
60 people (chance 1.7%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import lfilter

from perfrdiff.features import EMOTION_DIM, FACE_DIM, FPS

#: Channels of the latent affect ``z``; the audio writer reads 0 and 1 (loudness) and 2 (pitch).
LATENT = ("arousal", "valence", "emphasis", "attention", "tension")
AUS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23",
       "AU24", "AU25", "AU26")  # fmt: skip
EXPRESSIONS = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
LOW_REACTIVE_FRACTION = 0.25
THRESHOLDED_FRACTION = 0.4
CLIP_OFFSET = 0.4  # per-clip AU logit offset
MOOD = 0.25  # per-clip offset of the latent rest
_L = len(LATENT)

# AU logit loadings on (arousal, valence, emphasis, attention, tension): brows follow attention,
# cheeks and lip corners valence, brow lowering and lip pressing tension, open mouth emphasis.
_AU_LOADINGS = np.array([
    [0.3, -0.3, 0.0, 1.0, -0.2], [0.2, 0.0, 0.0, 1.0, 0.0], [0.0, -0.3, 0.0, -0.3, 1.0],
    [0.2, 0.9, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, 0.0, 0.6], [0.0, -0.5, 0.0, 0.0, 0.5],
    [0.0, -0.4, 0.2, 0.0, 0.4], [0.0, 1.2, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, 0.0, 0.2],
    [0.0, -0.8, 0.0, 0.0, 0.0], [0.0, -0.3, 0.0, 0.0, 0.4], [0.0, 0.0, 0.0, 0.0, 0.6],
    [-0.2, 0.0, 0.0, 0.0, 0.5], [0.5, 0.3, 0.9, 0.0, 0.0], [0.3, 0.0, 0.8, 0.3, 0.0],
]) * 2.0  # fmt: skip
_AU_BIAS = np.array([-2.0, -2.2, -2.0, -1.8, -1.5, -2.8, -2.5, -1.5, -2.0, -2.5, -2.0, -2.5,
                     -2.5, -0.8, -1.5])  # fmt: skip
_EXPR_LOADINGS = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0], [0.3, 2.0, 0.0, 0.0, 0.0], [-0.5, -1.5, 0.0, 0.0, 0.0],
    [0.8, 0.0, 0.0, 1.5, 0.0], [1.0, -1.0, 0.0, 0.5, 0.5], [0.0, -1.0, 0.0, 0.0, 1.0],
    [0.5, -0.5, 0.0, 0.0, 1.5], [0.0, 0.2, 0.0, 0.0, 0.5],
])  # fmt: skip
_EXPR_BIAS = np.array([1.5, -1.0, -2.0, -2.5, -3.0, -3.0, -3.0, -3.0])
# Burst directions: laugh, emphasis, complaint, surprise, soft warmth.
_BURSTS = np.array([[0.8, 1.0, 0.6, 0.0, 0.0], [0.8, 0.0, 1.0, 0.5, 0.0],
                    [0.6, -0.8, 0.5, 0.0, 0.8], [0.7, 0.0, 0.3, 1.0, 0.0],
                    [-0.4, 0.7, 0.0, 0.0, -0.3]])  # fmt: skip
# Response archetypes (mine <- partner's): mirror, attentive, dampen, empathic.
_ARCHETYPES = np.zeros((4, _L, _L))
_ARCHETYPES[0][[0, 1, 2], [0, 1, 2]] = 0.6, 1.0, 0.3
_ARCHETYPES[1][[3, 3, 1], [0, 2, 1]] = 1.0, 0.6, 0.3
_ARCHETYPES[2][[0, 2, 1], [0, 0, 1]] = -0.7, -0.4, 0.2
_ARCHETYPES[3][[4, 4, 1], [4, 1, 1]] = 0.8, -0.6, 0.5
_HABIT_AUS = np.array([0, 1, 4, 8, 10, 12])  # brow flashes, lid tightening, dimpler, chin, lips


def ema(x: np.ndarray, alpha: float, start: np.ndarray | float = 0.0) -> np.ndarray:
    """Exponential smoothing along time, unit DC gain: ``y_t = alpha y_{t-1} + (1-alpha) x_t``,
    with ``y_{-1} = start`` (zero for impulse responses; ``x[0]`` to start settled)."""
    state = alpha * np.broadcast_to(np.asarray(start, dtype=float), x.shape[1:])[None]
    return lfilter([1.0 - alpha], [1.0, -alpha], x, axis=0, zi=state)[0]


def ar1(rng: np.random.Generator, shape: tuple[int, ...], alpha: float) -> np.ndarray:
    """Stationary unit-variance AR(1) noise along the first axis, coefficient ``alpha``."""
    innovation = rng.standard_normal(shape) * np.sqrt(1 - alpha**2)
    innovation[0] /= np.sqrt(1 - alpha**2)  # the first frame drawn from the stationary law
    return lfilter([1.0], [1.0, -alpha], innovation, axis=0)


def _delayed(x: np.ndarray, frames: int) -> np.ndarray:
    """``x`` (t c) shifted ``frames`` later in time, zeros before the start."""
    return np.concatenate([np.zeros((frames, x.shape[1])), x[: len(x) - frames]]) if frames else x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True, eq=False)
class Person:
    """One person's persistent style; arrays are per ``LATENT`` channel unless named otherwise."""

    identity: str
    f0: float
    low_reactive: bool
    rest: np.ndarray  # resting latent level
    expressivity: float
    tempo: float  # AR(1) coefficient per frame of own fluctuation (higher = slower)
    own_noise: float
    speak_profile: np.ndarray  # latent shift while speaking
    burst_rate: float  # bursts per second while speaking
    burst_mix: np.ndarray  # (5,) preference over _BURSTS
    delay: int  # response delay in frames
    gain: float
    mixing: np.ndarray  # (l l) mine <- partner's
    threshold: float  # 0: linear response; else only partner deviations beyond it count
    response_alpha: float  # response smoothing
    au_bias: np.ndarray  # (15,) resting AU logits
    au_gain: np.ndarray  # (15,)
    habit_aus: np.ndarray  # (2,) AU indices of habitual flashes
    habit_rate: np.ndarray  # (2,) per second
    expr_bias: np.ndarray  # (8,)
    face_gain: np.ndarray  # (52,)
    face_offset: np.ndarray  # (52,) neutral face
    face_alpha: float
    nod_freq: float  # Hz
    nod_gain: float  # radians per unit engagement
    pose_rest: np.ndarray  # (6,) rotation, translation

    def style(self) -> dict:
        """The ground truth as JSON-serialisable numbers and lists."""
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()
        }


class HeldOutFamily:
    """Draws people and simulates their conversations; see the module docstring."""

    def __init__(self, rng: np.random.Generator, delay_range: tuple[int, int], noise: float):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
        if len(delay_range) != 2 or not 0 <= int(delay_range[0]) <= int(delay_range[1]):
            raise ValueError(
                f"delay_range: expected (low, high) with 0 <= low <= high, got {delay_range}"
            )
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise: expected a finite number >= 0, got {noise}")
        self.delay_range = (int(delay_range[0]), int(delay_range[1]))
        self.noise = float(noise)
        # Shared anatomy: each AU, valence and arousal drives three blendshapes.
        self.face_basis = np.zeros((FACE_DIM - 6, 17))
        for column in range(17):
            rows = rng.choice(FACE_DIM - 6, 3, replace=False)
            self.face_basis[rows, column] = rng.uniform(0.3, 1.0, 3) * rng.choice([-1, 1], 3)

    def draw_person(self, identity: str, rng: np.random.Generator) -> Person:
        """A new person; ``rng`` draws every style parameter."""
        low = bool(rng.random() < LOW_REACTIVE_FRACTION)
        f0 = rng.normal(120, 15) if rng.random() < 0.5 else rng.normal(205, 20)
        weights = rng.dirichlet(np.full(4, 0.3))
        weights /= weights.max()  # the dominant archetype at full strength
        mixing = np.einsum("k,kij->ij", weights, _ARCHETYPES) + rng.normal(0, 0.1, (_L, _L))
        thresholded = rng.random() < THRESHOLDED_FRACTION
        return Person(
            identity=identity,
            f0=float(np.clip(f0, 90, 250)),
            low_reactive=low,
            rest=rng.normal(0, 0.35, _L),
            expressivity=float(rng.lognormal(0, 0.35)),
            tempo=float(rng.uniform(0.85, 0.98)),
            own_noise=float(rng.uniform(0.15, 0.3) * (2.0 if low else 1)),
            speak_profile=rng.uniform([0.5, -0.3, 0.6, 0.0, -0.3], [1.0, 0.3, 1.2, 0.4, 0.3]),
            burst_rate=float(rng.uniform(0.1, 0.5)),
            burst_mix=rng.dirichlet(np.full(5, 0.7)),
            delay=int(rng.integers(self.delay_range[0], self.delay_range[1] + 1)),
            gain=float(rng.uniform(0.8, 1.6) * (0.1 if low else 1)),
            mixing=mixing,
            threshold=float(rng.uniform(0.3, 0.6)) if thresholded else 0.0,
            response_alpha=float(rng.uniform(0.7, 0.95)),
            au_bias=_AU_BIAS + rng.normal(0, 0.3, len(AUS)),
            au_gain=np.exp(rng.normal(0, 0.25, len(AUS))),
            habit_aus=rng.choice(_HABIT_AUS, 2, replace=False),
            habit_rate=rng.uniform(0.05, 0.5, 2),
            expr_bias=rng.normal(0, 0.3, len(EXPRESSIONS)),
            face_gain=np.exp(rng.normal(0, 0.3, FACE_DIM - 6)),
            face_offset=rng.normal(0, 0.1, FACE_DIM - 6),
            face_alpha=float(rng.uniform(0.3, 0.7)),
            nod_freq=float(rng.uniform(1.5, 3.0)),
            nod_gain=float(rng.uniform(0.05, 0.3)),
            pose_rest=rng.normal(0, 1, 6) * [0.05, 0.08, 0.04, 0.02, 0.02, 0.02],
        )

    @staticmethod
    def _turns(steps: int, rng: np.random.Generator) -> np.ndarray:
        """``(steps, 2)`` 0/1 speaking flags: alternating turns of ~3.8 s with short silent gaps."""
        n = steps // 15 + 2  # every turn lasts at least 15 frames, so n turns cover the clip
        lengths = (rng.gamma(2.0, 40.0, n) + 15).astype(int)
        gaps = rng.integers(0, 12, n)
        who = (rng.integers(2) + np.arange(n)) % 2
        labels = np.repeat(
            np.stack([who, np.full(n, 2)], 1).ravel(), np.stack([lengths, gaps], 1).ravel()
        )
        return np.stack([labels[:steps] == 0, labels[:steps] == 1], 1).astype(float)

    @staticmethod
    def _own(p: Person, speaking: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(t l)`` a person's own behaviour: speaking shift, expressive bursts, fluctuation."""
        steps = len(speaking)
        events = rng.random(steps) < p.burst_rate / FPS * (0.25 + speaking)  # mostly while speaking
        kinds = rng.choice(len(_BURSTS), size=steps, p=p.burst_mix)
        impulses = (events * rng.gamma(2.0, 0.5, steps))[:, None] * _BURSTS[kinds]
        kernel_peak = 0.1**2 * 10 * 0.9**9  # peak of the twice-smoothed (alpha 0.9) impulse
        bursts = ema(ema(impulses, 0.9), 0.9) / kernel_peak
        fluctuation = ar1(rng, (steps, _L), p.tempo)
        return (
            ema(speaking, 0.85, start=speaking[0])[:, None] * p.speak_profile
            + bursts
            + p.own_noise * fluctuation
        )

    @staticmethod
    def _response(p: Person, partner: np.ndarray, listening: np.ndarray) -> np.ndarray:
        """``(t l)`` reaction of ``p`` to the partner's deviation from rest ``partner`` (t l)."""
        x = _delayed(partner, p.delay)
        if p.threshold > 0:
            x = np.where(np.abs(x) > p.threshold, x, 0.0)
        drive = (x @ p.mixing.T) * (p.gain * (0.4 + 0.6 * listening))[:, None]
        return ema(drive, p.response_alpha)

    def simulate_pair(
        self, a: Person, b: Person, frames: int, burn_in: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Latent affect of ``a`` and ``b`` in one conversation: two ``(frames, l)`` arrays."""
        if not (isinstance(a, Person) and isinstance(b, Person)):
            raise TypeError(f"a, b: expected Person, got {type(a).__name__}, {type(b).__name__}")
        if int(frames) < 1 or int(burn_in) < 0:
            raise ValueError(f"frames, burn_in: expected >= 1 and >= 0, got {frames}, {burn_in}")
        people = (a, b)
        speaking = self._turns(int(frames) + int(burn_in), rng)
        own = [self._own(p, speaking[:, i], rng) for i, p in enumerate(people)]
        level = [p.rest + rng.normal(0, MOOD, _L) for p in people]  # rest + this clip's mood
        dev = [p.expressivity * o for p, o in zip(people, own, strict=True)]
        for _ in range(2):  # second order: each reacts to the other's reaction to them
            dev = [
                p.expressivity * (own[i] + self._response(p, dev[1 - i], 1 - speaking[:, i]))
                for i, p in enumerate(people)
            ]
        return level[0] + dev[0][burn_in:], level[1] + dev[1][burn_in:]

    def emotion(self, person: Person, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(frames, 25)``: 15 AU probabilities, valence, arousal, 8 expression probabilities."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != _L:
            raise ValueError(f"z: expected shape (frames, {_L}), got {z.shape}")
        steps = len(z)
        flashes = ema((rng.random((steps, 2)) < person.habit_rate / FPS).astype(float), 0.7) / 0.3
        # a per-clip detector offset (lighting, head angle), so mean levels are no fingerprint
        logits = (
            person.au_bias
            + rng.normal(0, CLIP_OFFSET, len(AUS))
            + (z @ _AU_LOADINGS.T) * person.au_gain
        )
        logits[:, person.habit_aus] += 3.0 * np.minimum(flashes, 1.0)
        au = np.clip(_sigmoid(logits) + self.noise * rng.standard_normal(logits.shape), 0, 1)
        va = np.clip(
            np.tanh(0.9 * z[:, [1, 0]]) + self.noise * rng.standard_normal((steps, 2)), -1, 1
        )
        expr = _EXPR_BIAS + person.expr_bias + z @ _EXPR_LOADINGS.T
        expr = np.exp(
            expr - expr.max(1, keepdims=True) + self.noise * rng.standard_normal(expr.shape)
        )
        return np.concatenate([au, va, expr / expr.sum(1, keepdims=True)], 1)

    def face(self, person: Person, emotion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(frames, 58)`` 3DMM: 52 expression coefficients, then rotation and translation."""
        emotion = np.asarray(emotion, dtype=float)
        if emotion.ndim != 2 or emotion.shape[1] != EMOTION_DIM:
            raise ValueError(
                f"emotion: expected shape (frames, {EMOTION_DIM}), got {emotion.shape}"
            )
        steps = len(emotion)
        target = person.face_offset + (emotion[:, :17] @ self.face_basis.T) * person.face_gain
        expression = ema(target, person.face_alpha, start=target[0])  # facial inertia
        # Nods: an oscillation at the person's rate, gated by engagement (brows, smile, arousal).
        engagement = emotion[:, [0, 1, 7]].mean(1) + 0.5 * emotion[:, 16]
        gate = np.maximum(engagement - np.median(engagement), 0.0)
        envelope = ema(gate, 0.95, start=gate[0])
        phase = 2 * np.pi * person.nod_freq * np.arange(steps) / FPS + rng.uniform(0, 2 * np.pi)
        drift = ar1(rng, (steps, 6), 0.98) * [0.06, 0.08, 0.04, 0.01, 0.01, 0.01]
        pose = person.pose_rest + drift
        pose[:, 0] += person.nod_gain * envelope * np.sin(phase)
        out = np.concatenate([expression, pose], 1)
        return out + 0.1 * self.noise * rng.standard_normal(out.shape)
