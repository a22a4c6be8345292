"""Synthetic twin of REACT 2024: same layout, listeners with a *known* reaction style.

Three listener models (``SyntheticConfig.family``): ``"coupled-latent"``, described here,
``"lagged-expressive"`` (:mod:`perfrdiff.data.synthetic_expressive`) and ``"held-out"``
(:mod:`perfrdiff.data.synthetic_heldout`, written blind and used only for reporting, never for
choosing settings). Everything else (layout, speech, appropriateness) is shared.

Generative model of ``"coupled-latent"`` (all draws from one seeded generator, so a config
reproduces the same files):

* Each session has two people who interact for every clip. Person ``p`` has a latent affect
  ``z_p(t)`` of ``latent_dim`` dimensions, simulated jointly for both people of a clip::

      z_p(t) = own_p(t) + offset_p + gain_p * mixing_p @ z_q(t - delay_p)

  ``own_p`` is the person's own AR(1) drive (smoothness ``rho_p``, scale ``drive_p``) and is what no
  model can predict; ``q`` is the partner. ``mixing_p`` is a signed permutation (which of the
  partner's affect channels the person mirrors, and with which sign), ``gain_p`` how strongly, and
  ``delay_p`` (frames) how late. These five numbers are the person's *reaction style*, written to
  ``ground_truth_style.json``. ``gain < 1`` and orthogonal mixing keep the coupled loop stable.
* Emotion (25-d) is a fixed decoder shared by everybody: 15 AU occurrence *probabilities*
  (sigmoid; REACT stores 0/1 occurrences, probabilities keep the target smooth), valence and arousal
  (tanh), 8 expression probabilities (softmax), plus observation noise ``noise``.
* 3DMM (58-d) is a person-specific affine function of that person's emotion (shared map plus a
  personal perturbation and offset), so a style encoder can recognise a person from history.
* Speech audio follows the person's latent: loudness from affect channels 0 and 1, pitch from
  channel 2, around a personal fundamental frequency; so speaker audio correlates with emotion.
* Appropriateness (REACT's principle: reactions to similar speaker behaviour are appropriate): each
  mirrored item's speaker emotion is summarised by its per-channel mean and standard deviation,
  standardised over the split; ``M[k, j]`` is True when the Euclidean distance between the summaries
  of items ``k`` and ``j`` is at most the ``appropriate_quantile`` quantile of all off-diagonal
  distances, and always for ``j == k``.

Personalisation is measurable but not trivial: on the default config's train split, a ridge
regression from the speaker's emotion at lags 0..35 frames to the listener's emotion, fitted on
each clip's first 460 frames and scored on the rest, has MSE 0.076 when shared by all listeners,
0.054 when fitted per listener, against 0.062 for predicting each listener's mean.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from perfrdiff.data.layout import AUDIO_DIR, EMOTION_DIR, FACE_DIR, SPLITS
from perfrdiff.features import CLIP_FRAMES, EMOTION_DIM, FACE_DIM, FPS

GROUND_TRUTH_FILE = "ground_truth_style.json"
EMOTION_COLUMNS = [
    *(f"AU{n}" for n in (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)),
    "valence",
    "arousal",
    *("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"),
]
BURN_IN = 100
FAMILIES = ("coupled-latent", "lagged-expressive", "held-out")

log = logging.getLogger(__name__)


@dataclass
class SyntheticConfig:
    """Size and difficulty of a synthetic dataset; the defaults are small enough for CI."""

    seed: int = 0
    sessions: dict[str, int] = field(default_factory=lambda: {"train": 6, "val": 2, "test": 2})
    # At least two, so that every listener has another clip to take its evaluation history from.
    clips_per_session: tuple[int, int] = (2, 3)
    frames: int = CLIP_FRAMES + 1
    sample_rate: int = 16000
    stereo: bool = False
    latent_dim: int = 4
    noise: float = 0.05
    delay_range: tuple[int, int] = (3, 30)
    gain_range: tuple[float, float] = (0.5, 0.9)
    drive_range: tuple[float, float] = (0.5, 0.9)
    appropriate_quantile: float = 0.15
    # Listener model: "coupled-latent" (below), "lagged-expressive"
    # (perfrdiff.data.synthetic_expressive; delay_range is its mean-lag range too) or "held-out"
    # (perfrdiff.data.synthetic_heldout).
    family: str = "coupled-latent"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {self.family!r}")
        if self.frames < CLIP_FRAMES:
            raise ValueError(f"frames: expected at least {CLIP_FRAMES}, got {self.frames}")
        if set(self.sessions) - set(SPLITS) or any(n < 1 for n in self.sessions.values()):
            raise ValueError(
                f"sessions: expected positive counts for {SPLITS}, got {self.sessions}"
            )
        low, high = self.clips_per_session
        if not 1 <= low <= high:
            raise ValueError(f"clips_per_session: expected 1 <= min <= max, got {low, high}")
        # 0 is a multiple of 50 too, and failed only in soundfile, after other files were written.
        if self.sample_rate <= 0 or self.sample_rate % (2 * FPS):
            raise ValueError(
                f"sample_rate: expected a positive multiple of 50 Hz, got {self.sample_rate}"
            )
        if not self.seed >= 0:
            raise ValueError(f"seed: expected an integer >= 0, got {self.seed}")
        # NaN noise would write NaN emotion files that every reader then refuses.
        if not 0 <= self.noise < float("inf"):
            raise ValueError(f"noise: expected a finite number >= 0, got {self.noise}")
        if not 0 < self.appropriate_quantile <= 1:
            raise ValueError(
                f"appropriate_quantile: expected in (0, 1], got {self.appropriate_quantile}"
            )


@dataclass
class _Person:
    identity: str
    delay: int
    gain: float
    mixing: np.ndarray  # (l, l) signed permutation
    offset: np.ndarray  # (l,)
    drive: float
    smoothness: float
    face_map: np.ndarray  # (58, 25)
    face_offset: np.ndarray  # (58,)
    f0: float

    def style(self) -> dict:
        return {
            "delay_frames": self.delay,
            "gain": self.gain,
            "mixing": self.mixing.tolist(),
            "offset": self.offset.tolist(),
            "drive": self.drive,
            "smoothness": self.smoothness,
            "face_map": self.face_map.tolist(),
            "face_offset": self.face_offset.tolist(),
            "f0_hz": self.f0,
        }


class _Decoder:
    """The shared latent -> emotion map and the shared part of the emotion -> 3DMM map."""

    def __init__(self, rng: np.random.Generator, latent_dim: int) -> None:
        self.au = rng.normal(0, 1.2, (15, latent_dim))
        self.au_bias = rng.normal(-0.5, 0.5, 15)
        self.va = rng.normal(0, 0.35, (2, latent_dim))
        self.expression = rng.normal(0, 1.0, (8, latent_dim))
        self.face = rng.normal(0, 0.3, (FACE_DIM, EMOTION_DIM))

    def emotion(self, z: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
        """``z: (..., t, l)`` -> emotion ``(..., t, 25)``."""

        def jitter(x: np.ndarray) -> np.ndarray:
            return x + rng.normal(0, noise, x.shape)

        au = 1 / (1 + np.exp(-jitter(z @ self.au.T + self.au_bias)))
        va = np.clip(np.tanh(jitter(z @ self.va.T)), -1, 1)
        logits = jitter(z @ self.expression.T)
        expression = np.exp(logits - logits.max(axis=-1, keepdims=True))
        expression /= expression.sum(axis=-1, keepdims=True)
        return np.concatenate([au, va, expression], axis=-1)


def _draw_person(
    identity: str, rng: np.random.Generator, config: SyntheticConfig, decoder: _Decoder
) -> _Person:
    latent = config.latent_dim
    mixing = np.zeros((latent, latent))
    mixing[np.arange(latent), rng.permutation(latent)] = rng.choice([-1.0, 1.0], latent)
    return _Person(
        identity=identity,
        delay=int(rng.integers(config.delay_range[0], config.delay_range[1] + 1)),
        gain=float(rng.uniform(*config.gain_range)),
        mixing=mixing,
        offset=rng.normal(0, 0.5, latent),
        drive=float(rng.uniform(*config.drive_range)),
        smoothness=float(rng.uniform(0.9, 0.98)),
        face_map=decoder.face + rng.normal(0, 0.3, decoder.face.shape),
        face_offset=rng.normal(0, 0.3, FACE_DIM),
        f0=float(rng.uniform(100, 250)),
    )


def _simulate_pair(
    a: _Person, b: _Person, frames: int, burn_in: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Jointly simulate two people's latent affect; returns ``z_a, z_b``, each ``(frames, l)``."""
    latent = a.offset.shape[0]
    total = burn_in + frames
    people = (a, b)
    z = np.zeros((2, total, latent))
    own = np.zeros((2, latent))
    for t in range(total):
        for p, person in enumerate(people):
            rho = person.smoothness
            own[p] = rho * own[p] + np.sqrt(1 - rho**2) * person.drive * rng.normal(0, 1, latent)
            z[p, t] = own[p] + person.offset
            if t >= person.delay:
                z[p, t] += person.gain * (person.mixing @ z[1 - p, t - person.delay])
    return z[0, burn_in:], z[1, burn_in:]


class _CoupledLatentFamily:
    """The default family (module docstring): people, joint latents, emotion and 3DMM."""

    def __init__(self, rng: np.random.Generator, config: SyntheticConfig) -> None:
        self.config = config
        self.decoder = _Decoder(rng, config.latent_dim)

    def draw_person(self, identity: str, rng: np.random.Generator) -> _Person:
        return _draw_person(identity, rng, self.config, self.decoder)

    def simulate_pair(self, a: _Person, b: _Person, frames: int, burn_in: int, rng):
        return _simulate_pair(a, b, frames, burn_in, rng)

    def emotion(self, person: _Person, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.decoder.emotion(z, rng, self.config.noise)

    def face(self, person: _Person, emotion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        face = emotion @ person.face_map.T + person.face_offset
        return face + rng.normal(0, 0.01, face.shape)


def _family(rng: np.random.Generator, config: SyntheticConfig):
    """The listener model ``config.family`` (its shared parameters drawn from ``rng``)."""
    if config.family == "lagged-expressive":
        from perfrdiff.data.synthetic_expressive import LaggedExpressiveFamily

        return LaggedExpressiveFamily(rng, config.delay_range, config.noise)
    if config.family == "held-out":
        from perfrdiff.data.synthetic_heldout import HeldOutFamily

        return HeldOutFamily(rng, config.delay_range, config.noise)
    return _CoupledLatentFamily(rng, config)


def _speech(person, z: np.ndarray, sample_rate: int, rng: np.random.Generator, fps: int = FPS):
    """Voiced signal whose loudness and pitch follow the latent ``z: (frames, l)`` at ``fps``,
    around the person's ``f0``."""
    frames = z.shape[0]
    samples = frames * sample_rate // fps
    frame_time = (np.arange(frames) + 0.5) / fps
    time = np.arange(samples) / sample_rate
    loudness = np.log1p(np.exp(1.5 * z[:, 0] + z[:, 1 % z.shape[1]] - 0.5))
    pitch = person.f0 * (1 + 0.15 * np.tanh(z[:, 2 % z.shape[1]]))
    amplitude = np.interp(time, frame_time, loudness / (1 + loudness.max()))
    cycles = np.cumsum(np.interp(time, frame_time, pitch)) / sample_rate
    phase = (2 * np.pi * (cycles % 1.0)).astype(np.float32)
    sine, cosine = np.sin(phase), np.cos(phase)
    # harmonics 2 and 3 from the fundamental: sin 2x = 2 sin x cos x, sin 3x = sin x (3 - 4 sin^2 x)
    voiced = sine + sine * cosine + sine * (3 - 4 * sine**2) / 3
    wave = 0.3 * amplitude * voiced + 0.005 * rng.normal(0, 1, samples)
    return np.clip(wave, -1, 1).astype(np.float32)


def _write_clip(root: Path, split: str, clip: str, emotion, face, wave, config) -> None:
    for directory in (EMOTION_DIR, FACE_DIR, AUDIO_DIR):
        (root / split / directory / clip).parent.mkdir(parents=True, exist_ok=True)
    base = root / split
    np.savetxt(
        base / EMOTION_DIR / f"{clip}.csv",
        emotion,
        fmt="%.6f",
        delimiter=",",
        header=",".join(EMOTION_COLUMNS),
        comments="",
    )
    np.save(base / FACE_DIR / f"{clip}.npy", face.astype(np.float32)[:, None, :])
    audio = np.stack([wave, wave], axis=1) if config.stereo else wave
    soundfile.write(base / AUDIO_DIR / f"{clip}.wav", audio, config.sample_rate, subtype="PCM_16")


def appropriateness_matrix(speaker_emotion: np.ndarray, quantile: float) -> np.ndarray:
    """REACT-style appropriateness from speaker behaviour similarity (see the module docstring).

    Args:
        speaker_emotion: ``(n, t, 25)`` speaker emotion of the ``n`` mirrored items.
        quantile: fraction of off-diagonal pairs declared appropriate.

    Returns:
        ``(n, n)`` bool, symmetric, with a True diagonal.
    """
    summary = np.concatenate([speaker_emotion.mean(axis=1), speaker_emotion.std(axis=1)], axis=1)
    summary = (summary - summary.mean(axis=0)) / (summary.std(axis=0) + 1e-8)
    distance = np.linalg.norm(summary[:, None] - summary[None], axis=-1)
    n = distance.shape[0]
    off_diagonal = distance[~np.eye(n, dtype=bool)]
    threshold = np.quantile(off_diagonal, quantile) if off_diagonal.size else 0.0
    return (distance <= threshold) | np.eye(n, dtype=bool)


def _session_roles(site_index: int, session: int) -> tuple[str, str, str, str]:
    if site_index % 2 == 0:
        return "NoXI", f"{session:03d}_synthetic", "Expert_video", "Novice_video"
    first = 25 + 2 * session
    return "RECOLA", f"group-{session}", f"P{first}", f"P{first + 1}"


def write_synthetic_dataset(
    root: str | Path, config: SyntheticConfig | None = None, overwrite: bool = False
) -> None:
    """Write a complete synthetic dataset in the REACT 2024 layout under ``root``.

    Writes, per split: wav/csv/npy clips, ``{split}.csv``, ``neighbour_emotion_{split}.npy``; and
    ``ground_truth_style.json`` with the family and every person's reaction style (for the
    coupled-latent family also their 3DMM map).

    A dataset already in ``root`` is never replaced silently: written with the same settings it
    is kept as it is (nothing to do); otherwise only ``overwrite`` replaces it.

    Raises:
        FileExistsError: ``root`` holds another dataset (the message names what differs).
    """
    config = config or SyntheticConfig()
    root = Path(root)
    if _kept_existing(root, config, overwrite):
        return
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    family = _family(rng, config)
    truth: dict = {"config": asdict(config), "family": config.family, "persons": {}}
    session_counter = 0
    for split in SPLITS:
        rows: list[tuple[str, str]] = []
        speaker_emotion: dict[str, np.ndarray] = {}
        for _ in tqdm(range(config.sessions.get(split, 0)), desc=f"synthetic {split}", leave=False):
            site, session, role_a, role_b = _session_roles(session_counter, session_counter)
            session_counter += 1
            people = [
                family.draw_person(f"{site}/{session}/{role}", rng) for role in (role_a, role_b)
            ]
            for person in people:
                truth["persons"][person.identity] = {"split": split, **person.style()}
            for clip_number in range(
                1, int(rng.integers(*config.clips_per_session, endpoint=True)) + 1
            ):
                latents = family.simulate_pair(*people, config.frames, BURN_IN, rng)
                clips = []
                for person, z in zip(people, latents, strict=True):
                    clip = f"{person.identity}/{clip_number}"
                    emotion = family.emotion(person, z, rng)
                    face = family.face(person, emotion, rng)
                    wave = _speech(person, z, config.sample_rate, rng)
                    _write_clip(root, split, clip, emotion, face, wave, config)
                    speaker_emotion[clip] = emotion[:CLIP_FRAMES]
                    clips.append(clip)
                rows.append((clips[0], clips[1]))
        if not rows:
            continue
        with (root / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", "speaker_path", "listener_path"])
            writer.writerows((i, s, listener) for i, (s, listener) in enumerate(rows))
        mirrored_speakers = [s for s, _ in rows] + [listener for _, listener in rows]
        matrix = appropriateness_matrix(
            np.stack([speaker_emotion[c] for c in mirrored_speakers]), config.appropriate_quantile
        )
        np.save(root / f"neighbour_emotion_{split}.npy", matrix)
    (root / GROUND_TRUTH_FILE).write_text(json.dumps(truth, indent=1))


def load_ground_truth_style(root: str | Path) -> dict:
    """Read ``ground_truth_style.json``: ``{"config": ..., "persons": {identity: style}}``."""
    return json.loads((Path(root) / GROUND_TRUTH_FILE).read_text())


def _kept_existing(root: Path, config: SyntheticConfig, overwrite: bool) -> bool:
    """Whether ``root`` already holds this dataset; refuse another one unless ``overwrite``."""
    existing = [f"{split}.csv" for split in SPLITS if (root / f"{split}.csv").is_file()]
    if not existing or overwrite:
        return False
    truth = root / GROUND_TRUTH_FILE
    try:
        written = json.loads(truth.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        written = None
    wanted = json.loads(json.dumps(asdict(config)))  # as JSON reads it back (tuples as lists)
    if written == wanted:
        log.info("%s already holds this synthetic dataset: kept", root)
        return True
    if written is None:
        what = f"a dataset ({', '.join(existing)}) that this writer did not make"
    else:
        changed = sorted(k for k in wanted if written.get(k) != wanted[k])
        what = f"a synthetic dataset written with other settings ({', '.join(changed)})"
    raise FileExistsError(
        f"{root} holds {what}; choose another root, or replace it with overwrite=True "
        "(perfrdiff make-synthetic --overwrite)"
    )
