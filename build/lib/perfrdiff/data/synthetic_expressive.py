"""Second synthetic style family, ``"lagged-expressive"``: a listener model unlike the coupled one.

:mod:`perfrdiff.data.synthetic`'s default family couples two linear latent processes; a model that
only fits that generator would look personalised there and nowhere else. Here a person is instead
described by how they *express* a reaction:

* Each person has a spontaneous 3-d drive ``d_p(t)`` (valence, arousal, activity): AR(1) with a
  personal smoothness and scale. It is what they show as a speaker.
* What a person shows, ``e_p(t)``, is their drive plus their reaction to what the partner showed
  a **lag** earlier; the lag is redrawn every 25-75 frames from the listener's own distribution
  (uniform on ``lag_mean ± lag_spread``, at least one frame)::

      r_p(t) = mirror_p ⊙ e_q(t - lag_p(t))          (which channels follow, with which sign)
      e_p(t) = EMA_{smoothing_p}([valence_bias_p + r_p,v, arousal_gain_p · r_p,a, r_p,act])
               + own_weight_p · d_p(t)

  ``EMA`` is an exponential moving average (``smoothing`` near 1: a slow, smooth face).
* Emotion (25-d): 15 AU probabilities ``σ(sharpness · (A e_p - au_threshold_p))`` with a shared
  loading ``A`` and **per-listener AU thresholds**; valence and arousal ``tanh`` of ``e_p``'s
  first two channels; 8 expression probabilities ``softmax(B e_p + expression_preference_p)``
  with a **per-listener preference** vector; observation noise ``noise``.
* 3DMM (58-d): a shared linear map of the emotion plus a personal offset and a slow head-pose
  drift (no personal map, unlike the coupled family); speech follows the drive as there.

Every person's parameters go to ``ground_truth_style.json`` (``family: "lagged-expressive"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfrdiff.features import EMOTION_DIM, FACE_DIM

DRIVE_DIM = 3  # valence, arousal, activity
LAG_SEGMENT = (25, 75)  # frames between redraws of a listener's lag


@dataclass
class ExpressivePerson:
    """One person of the lagged-expressive family (units: frames, emotion scale)."""

    identity: str
    lag_mean: float
    lag_spread: float
    mirror: np.ndarray  # (3,) signed weights: which partner channels are followed
    valence_bias: float
    arousal_gain: float
    smoothing: float
    au_threshold: np.ndarray  # (15,)
    expression_preference: np.ndarray  # (8,)
    own_weight: float
    drive_smoothness: float
    drive_scale: float
    face_offset: np.ndarray  # (58,)
    f0: float

    def style(self) -> dict:
        return {
            "family": "lagged-expressive",
            "lag_mean_frames": self.lag_mean,
            "lag_spread_frames": self.lag_spread,
            "mirror": self.mirror.tolist(),
            "valence_bias": self.valence_bias,
            "arousal_gain": self.arousal_gain,
            "smoothing": self.smoothing,
            "au_threshold": self.au_threshold.tolist(),
            "expression_preference": self.expression_preference.tolist(),
            "own_weight": self.own_weight,
            "drive_smoothness": self.drive_smoothness,
            "drive_scale": self.drive_scale,
            "face_offset": self.face_offset.tolist(),
            "f0_hz": self.f0,
        }


class LaggedExpressiveFamily:
    """Draws people and simulates clips of the lagged-expressive family (module docstring).

    Args:
        rng: the dataset's generator (shared parameters are drawn from it first).
        lag_range: ``(min, max)`` of a listener's mean lag, frames.
        noise: observation noise of the emotion channels.
    """

    name = "lagged-expressive"

    def __init__(self, rng: np.random.Generator, lag_range: tuple[int, int], noise: float) -> None:
        self.lag_range = lag_range
        self.noise = noise
        self.au_loading = rng.normal(0, 1.5, (15, DRIVE_DIM))
        self.expression_loading = rng.normal(0, 1.2, (8, DRIVE_DIM))
        self.face_map = rng.normal(0, 0.3, (FACE_DIM, EMOTION_DIM))

    def draw_person(self, identity: str, rng: np.random.Generator) -> ExpressivePerson:
        low, high = self.lag_range
        return ExpressivePerson(
            identity=identity,
            lag_mean=float(rng.uniform(low, high)),
            lag_spread=float(rng.uniform(0, 0.4 * (high - low) / 2)),
            # |mirror| < 1 and arousal_gain < 1 keep the jointly simulated pair stable.
            mirror=rng.choice([-1.0, 1.0], DRIVE_DIM) * rng.uniform(0.4, 0.9, DRIVE_DIM),
            valence_bias=float(rng.uniform(-0.6, 0.6)),
            arousal_gain=float(rng.uniform(0.3, 1.0)),
            smoothing=float(rng.uniform(0.5, 0.95)),
            au_threshold=rng.normal(0, 1.0, 15),
            expression_preference=rng.normal(0, 1.0, 8),
            own_weight=float(rng.uniform(0.3, 0.7)),
            drive_smoothness=float(rng.uniform(0.9, 0.98)),
            drive_scale=float(rng.uniform(0.5, 1.0)),
            face_offset=rng.normal(0, 0.3, FACE_DIM),
            f0=float(rng.uniform(100, 250)),
        )

    def _drive(self, person: ExpressivePerson, total: int, rng: np.random.Generator) -> np.ndarray:
        """``(total, 3)`` spontaneous drive: AR(1) per channel."""
        rho, scale = person.drive_smoothness, person.drive_scale
        steps = rng.normal(0, np.sqrt(1 - rho**2) * scale, (total, DRIVE_DIM))
        drive = np.zeros((total, DRIVE_DIM))
        for t in range(1, total):
            drive[t] = rho * drive[t - 1] + steps[t]
        return drive

    def _lags(self, person: ExpressivePerson, total: int, rng: np.random.Generator) -> np.ndarray:
        """``(total,)`` int frame lags, piecewise constant, drawn from the listener's range."""
        lags = np.empty(total, dtype=np.int64)
        t = 0
        while t < total:
            length = int(rng.integers(*LAG_SEGMENT, endpoint=True))
            lag = person.lag_mean + rng.uniform(-person.lag_spread, person.lag_spread)
            lags[t : t + length] = max(1, round(lag))
            t += length
        return lags

    def emotion(
        self, person: ExpressivePerson, state: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``state: (t, 3)`` -> ``(t, 25)`` emotion with the person's thresholds/preferences."""

        def jitter(x: np.ndarray) -> np.ndarray:
            return x + rng.normal(0, self.noise, x.shape)

        au = 1 / (1 + np.exp(-2.0 * jitter(state @ self.au_loading.T - person.au_threshold)))
        va = np.tanh(jitter(state[:, :2]))
        logits = jitter(state @ self.expression_loading.T + person.expression_preference)
        expression = np.exp(logits - logits.max(axis=-1, keepdims=True))
        expression /= expression.sum(axis=-1, keepdims=True)
        return np.concatenate([au, va, expression], axis=-1)

    def face(
        self, person: ExpressivePerson, emotion: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``(t, 25)`` emotion -> ``(t, 58)`` 3DMM: shared map, personal offset, pose drift."""
        face = emotion @ self.face_map.T + person.face_offset
        drift = np.cumsum(rng.normal(0, 0.003, (emotion.shape[0], 6)), axis=0)
        face[:, 52:] += drift  # rotation and translation wander slowly
        return face + rng.normal(0, 0.01, face.shape)

    def simulate_pair(
        self,
        a: ExpressivePerson,
        b: ExpressivePerson,
        frames: int,
        burn_in: int,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expressed states ``(frames, 3)`` of ``a`` and ``b`` for one clip, after ``burn_in``.

        Simulated jointly, frame by frame: each reacts to what the other *showed* ``lag`` frames
        earlier (``lag >= 1``), so a speaker's visible behaviour is what drives the listener.
        """
        total = burn_in + frames
        people = (a, b)
        drives = [self._drive(p, total, rng) for p in people]
        lags = [self._lags(p, total, rng) for p in people]
        shown = np.zeros((2, total, DRIVE_DIM))
        smooth = np.zeros((2, DRIVE_DIM))
        for t in range(total):
            for i, person in enumerate(people):
                partner = shown[1 - i, max(0, t - lags[i][t])]
                reaction = person.mirror * partner
                target = np.array(
                    [
                        person.valence_bias + reaction[0],
                        person.arousal_gain * reaction[1],
                        reaction[2],
                    ]
                )
                alpha = person.smoothing
                smooth[i] = alpha * smooth[i] + (1 - alpha) * target
                shown[i, t] = smooth[i] + person.own_weight * drives[i][t]
        return shown[0, burn_in:], shown[1, burn_in:]
