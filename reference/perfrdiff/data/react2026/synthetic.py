"""Synthetic twin of REACT 2026 (MARS): its layout, sequences of many lengths, and listeners whose
reaction style is driven in part, by a known amount, by their Big Five personality.

The people, their coupled latent affect, the emotion decoder, the 3DMM map and the speech are the
REACT 2024 twin's ``coupled-latent`` family (:mod:`perfrdiff.data.synthetic`), at 30 fps. What
is new:

* A session is one speaker and one listener; it holds several dyads (stems), each a separate
  conversation of its own length, cycling through ``lengths`` (58 frames, shorter than a training
  crop, to over 5,000).
* Every listener has Big Five scores ``r`` on 1-5 (``personality/listener.csv``, one row per
  listener stem); ``c = (r - 1) / 4 - 0.5`` centres them. Three style parameters of the listener
  are ``x = mean + std · (√share · u(c) + √(1 - share) · ε)``, with ``ε ~ N(0, 1)`` personal and
  ``u(c) = w·c / √(|w|² / 12)`` a fixed linear function of the personality with unit variance
  over uniform scores: so personality explains the fraction ``share`` of each parameter's
  variance over listeners. The parameters: each channel of the latent ``offset`` (its level),
  the ``gain`` (how strongly they mirror) and the ``delay`` (how late). Gain and delay are
  clipped to a stable range afterwards. ``ground_truth_style.json`` holds ``share``, every ``w``,
  mean and std, and per listener the scores and the personality part of each parameter.
* EEG (listeners, optional): per second, 14 targets ``= eeg_map @ mean emotion of that second +
  eeg_bias + noise`` (band powers through softplus, so positive); the raw channels are written
  × 1000, as MARS stores them. A fraction of listeners have no EEG file and a fraction of cells
  are left empty (mask 0 for the reader).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from perfrdiff.data.audio import MIN_SAMPLE_RATE
from perfrdiff.data.layout import SPLITS
from perfrdiff.data.react2026.eeg import EEG_COLUMNS, RAW_CHANNELS, RAW_SCALE
from perfrdiff.data.react2026.layout import (
    AUDIO_DIR,
    AUDIO_FEATURES_DIR,
    BIG_FIVE,
    EEG_DIR,
    EMOTION_DIR,
    FACE_DIR,
    PERSONALITY_DIR,
)
from perfrdiff.data.react2026.store import WAV2VEC_DIM
from perfrdiff.data.synthetic import (
    BURN_IN,
    GROUND_TRUTH_FILE,
    SyntheticConfig,
    _CoupledLatentFamily,
    _Person,
    _speech,
)
from perfrdiff.protocol import REACT2026

log = logging.getLogger(__name__)

#: Style parameters driven by personality: name -> (mean, std, low, high) before clipping
#: (the offset, one value per latent channel, has mean 0 and no clipping).
DRIVEN = {
    "offset": (0.0, 0.5, -np.inf, np.inf),
    "gain": (0.7, 0.1, 0.3, 0.95),
    "delay": (15.0, 6.0, 1.0, 40.0),
}


@dataclass
class MarsSyntheticConfig:
    """Size and content of a synthetic MARS dataset; the defaults are small enough for CI."""

    seed: int = 0
    sessions: dict[str, int] = field(default_factory=lambda: {"train": 4, "val": 1, "test": 1})
    dyads_per_session: tuple[int, int] = (3, 4)
    # Each dyad's frames, cycled over the dyads in writing order.
    lengths: tuple[int, ...] = (58, 299, 751, 1500, 5400)
    # A multiple of 2 x 30 Hz (two MFCC hops per frame) of at least 8 kHz (speech features need
    # it); the smallest common rate that is both, to keep the files small.
    sample_rate: int = 12000
    latent_dim: int = 4
    noise: float = 0.05
    # Fraction of the variance over listeners of offset, gain and delay that personality explains.
    share: float = 0.5
    eeg: bool = True
    eeg_fraction: float = 0.75  # listener stems with an EEG file
    eeg_bad_cells: float = 0.02  # EEG cells left empty
    audio_features: bool = False  # also write the 768-d audio-features

    def __post_init__(self) -> None:
        if set(self.sessions) - set(SPLITS) or any(n < 1 for n in self.sessions.values()):
            raise ValueError(
                f"sessions: expected positive counts for {SPLITS}, got {self.sessions}"
            )
        low, high = self.dyads_per_session
        if not 1 <= low <= high:
            raise ValueError(f"dyads_per_session: expected 1 <= min <= max, got {low, high}")
        if not self.lengths or min(self.lengths) < 2:
            raise ValueError(f"lengths: expected frame counts >= 2, got {self.lengths}")
        if self.sample_rate < MIN_SAMPLE_RATE or self.sample_rate % (2 * REACT2026.fps):
            raise ValueError(
                f"sample_rate: expected a multiple of 60 Hz of at least {MIN_SAMPLE_RATE}, "
                f"got {self.sample_rate}"
            )
        for name in ("share", "eeg_fraction", "eeg_bad_cells"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected in [0, 1], got {getattr(self, name)}")
        if self.seed < 0 or not 0 <= self.noise < float("inf"):
            raise ValueError(f"seed and noise: expected >= 0, got {self.seed}, {self.noise}")


class _PersonalityEffect:
    """The fixed map from centred Big Five ``c (5,)`` to the driven style parameters."""

    def __init__(self, rng: np.random.Generator, latent_dim: int, share: float) -> None:
        self.share = share
        self.weights = {
            "offset": rng.normal(0, 1, (latent_dim, 5)),
            "gain": np.array([1.0, 0.5, 0.0, -0.5, 0.0]),  # extraverts mirror more
            "delay": np.array([-1.0, 0.0, 0.0, 0.5, -0.5]),  # and sooner
        }

    def unit(self, name: str, centred: np.ndarray) -> np.ndarray:
        """``u(c)``: unit variance over uniform scores (module docstring)."""
        w = np.atleast_2d(self.weights[name])
        return (w @ centred) / np.sqrt((w**2).sum(axis=1) / 12)

    def apply(self, person: _Person, scores: np.ndarray, rng: np.random.Generator):
        """``person`` with offset, gain and delay driven by raw ``scores (5,)``; and the
        personality part of each (what it adds to the mean)."""
        centred = (scores - 1) / 4 - 0.5
        values, parts = {}, {}
        for name, (mean, std, low, high) in DRIVEN.items():
            part = std * np.sqrt(self.share) * self.unit(name, centred)
            own = std * np.sqrt(1 - self.share) * rng.normal(0, 1, part.shape)
            values[name] = np.clip(mean + part + own, low, high)
            parts[name] = part
        gain, delay = float(values["gain"][0]), round(float(values["delay"][0]))
        driven = replace(person, offset=values["offset"], gain=gain, delay=delay)
        return driven, {k: v.tolist() for k, v in parts.items()}

    def describe(self) -> dict:
        return {
            "share": self.share,
            "parameters": {
                name: {
                    "weights": self.weights[name].tolist(),
                    "mean": m,
                    "std": s,
                    "clip": [lo, hi] if np.isfinite(lo) else None,
                }
                for name, (m, s, lo, hi) in DRIVEN.items()
            },
        }


class _Eeg:
    """Listener EEG as a function of their reaction (module docstring)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.map = rng.normal(0, 0.5, (len(EEG_COLUMNS), 25))
        self.bias = rng.normal(0, 0.2, len(EEG_COLUMNS))

    def rows(self, emotion: np.ndarray, fps: int, rng: np.random.Generator) -> np.ndarray:
        """``(ceil(t / fps), 14)`` values as written (raw channels × 1000)."""
        seconds = -(-emotion.shape[0] // fps)
        padded = np.full((seconds * fps, emotion.shape[1]), np.nan)
        padded[: emotion.shape[0]] = emotion
        mean = np.nanmean(padded.reshape(seconds, fps, -1), axis=1)
        targets = mean @ self.map.T + self.bias + rng.normal(0, 0.05, (seconds, len(EEG_COLUMNS)))
        raw = len(RAW_CHANNELS)
        targets[:, raw:] = np.log1p(np.exp(targets[:, raw:]))  # band powers are positive
        targets[:, :raw] *= RAW_SCALE
        return targets

    def describe(self) -> dict:
        return {
            "columns": list(EEG_COLUMNS),
            "map": self.map.tolist(),
            "bias": self.bias.tolist(),
            "raw_scale": RAW_SCALE,
        }


def _save(root: Path, split: str, folder: str, clip: str, array: np.ndarray) -> None:
    path = root / split / folder / f"{clip}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array.astype(np.float32))


def _write_eeg(path: Path, rows: np.ndarray, bad: float, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = rng.random(rows.shape) < bad
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EEG_COLUMNS)
        for values, holes in zip(rows, empty, strict=True):
            writer.writerow("" if h else f"{v:.6f}" for v, h in zip(values, holes, strict=True))


class _Writer:
    """Writes one split's sessions; holds the shared models and the ground truth."""

    def __init__(self, root: Path, config: MarsSyntheticConfig) -> None:
        self.root, self.config = root, config
        self.rng = rng = np.random.default_rng(config.seed)
        shared = SyntheticConfig(latent_dim=config.latent_dim, noise=config.noise)
        self.family = _CoupledLatentFamily(rng, shared)
        self.effect = _PersonalityEffect(rng, config.latent_dim, config.share)
        self.eeg = _Eeg(rng)
        self.features = rng.normal(0, 0.5, (WAV2VEC_DIM, config.latent_dim))
        self.truth: dict = {
            "layout": "react2026",
            "config": json.loads(json.dumps(asdict(config))),
            "family": "coupled-latent",
            "personality_effect": self.effect.describe(),
            "eeg": self.eeg.describe(),
            "persons": {},
        }
        self.sessions = self.dyads = 0

    def _write_side(self, split: str, role: str, person: _Person, z: np.ndarray, stem: str):
        config, rng, clip = self.config, self.rng, f"{role}/{person.identity.split('/')[1]}/{stem}"
        emotion = self.family.emotion(person, z, rng)
        _save(self.root, split, EMOTION_DIR, clip, emotion)
        _save(self.root, split, FACE_DIR, clip, self.family.face(person, emotion, rng))
        wave = _speech(person, z, config.sample_rate, rng, fps=REACT2026.fps)
        wav = self.root / split / AUDIO_DIR / f"{clip}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, wave, config.sample_rate, subtype="PCM_16")
        if config.audio_features:
            _save(self.root, split, AUDIO_FEATURES_DIR, clip, np.tanh(z @ self.features.T))
        if role == "listener" and config.eeg and rng.random() < config.eeg_fraction:
            rows = self.eeg.rows(emotion, REACT2026.fps, rng)
            path = self.root / split / EEG_DIR / f"{clip}.csv"
            _write_eeg(path, rows, config.eeg_bad_cells, rng)

    def session(self, split: str) -> list[list[str]]:
        """One session's dyads; returns its personality rows."""
        config, rng = self.config, self.rng
        name = f"session{self.sessions}"
        self.sessions += 1
        speaker = self.family.draw_person(f"speaker/{name}", rng)
        scores = np.round(rng.uniform(1, 5, 5), 2)
        listener, parts = self.effect.apply(
            self.family.draw_person(f"listener/{name}", rng), scores, rng
        )
        self.truth["persons"][speaker.identity] = {"split": split, **speaker.style()}
        big_five = dict(zip(BIG_FIVE, scores.tolist(), strict=True))
        self.truth["persons"][listener.identity] = {
            "split": split,
            **listener.style(),
            "big_five": big_five,
            "personality_part": parts,
        }
        rows = []
        for d in range(int(rng.integers(*config.dyads_per_session, endpoint=True))):
            frames = config.lengths[self.dyads % len(config.lengths)]
            self.dyads += 1
            stem = f"{name}_{d:02d}"
            z_speaker, z_listener = self.family.simulate_pair(
                speaker, listener, frames, BURN_IN, rng
            )
            self._write_side(split, "speaker", speaker, z_speaker, stem)
            self._write_side(split, "listener", listener, z_listener, stem)
            rows.append([f"{stem}.mp4", name, *(f"{s:g}" for s in scores)])
        return rows


def write_mars_dataset(
    root: str | Path, config: MarsSyntheticConfig | None = None, overwrite: bool = False
) -> None:
    """Write a synthetic dataset in the REACT 2026 (MARS) layout under ``root``: per split the
    sequences, ``personality/listener.csv`` and EEG; and ``ground_truth_style.json``.

    A dataset already in ``root`` is kept when written with the same settings; another one is
    replaced only with ``overwrite``.

    Raises:
        FileExistsError: ``root`` holds another dataset (the message says what differs).
    """
    config = config or MarsSyntheticConfig()
    root = Path(root)
    if _kept_existing(root, config, overwrite):
        return
    writer = _Writer(root, config)
    for split in SPLITS:
        rows = [
            r
            for _ in tqdm(
                range(config.sessions.get(split, 0)), desc=f"MARS twin {split}", leave=False
            )
            for r in writer.session(split)
        ]
        if rows:
            path = root / split / PERSONALITY_DIR / "listener.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerows([["video_name", "session", *BIG_FIVE], *rows])
    (root / GROUND_TRUTH_FILE).write_text(json.dumps(writer.truth, indent=1))


def _kept_existing(root: Path, config: MarsSyntheticConfig, overwrite: bool) -> bool:
    """Whether ``root`` already holds this dataset; refuse another one unless ``overwrite``."""
    if overwrite or not root.is_dir() or not any(root.iterdir()):
        return False
    try:
        written = json.loads((root / GROUND_TRUTH_FILE).read_text())
    except (OSError, ValueError):
        written = None
    wanted = json.loads(json.dumps(asdict(config)))
    if isinstance(written, dict) and written.get("layout") == "react2026":
        if written.get("config") == wanted:
            log.info("%s already holds this synthetic MARS dataset: kept", root)
            return True
        changed = sorted(k for k in wanted if written["config"].get(k) != wanted[k])
        what = f"a synthetic MARS dataset written with other settings ({', '.join(changed)})"
    else:
        what = "files that this writer did not make"
    raise FileExistsError(
        f"{root} holds {what}; choose another root, or replace it with overwrite=True "
        "(perfrdiff make-synthetic --layout react2026 --overwrite)"
    )
