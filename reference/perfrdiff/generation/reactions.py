"""Reactions for a whole evaluation split: generic, personalised, and a chance baseline.

Predictions are ``(n, M, T, 25)`` float32 arrays in :class:`~perfrdiff.data.ClipDataset` order
(the mirrored item order of the split's appropriateness matrix), saved as ``.npy``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from perfrdiff.atomic import atomic_open, atomic_write_text
from perfrdiff.config import Config
from perfrdiff.generation.inputs import check_generation_options, check_history
from perfrdiff.protocol import REACT2024, protocol_named

log = logging.getLogger(__name__)

MODES = ("generic", "personalised")


@dataclass
class EvaluationSet:
    """Everything the metrics need about a split, plus the generation inputs."""

    # speaker_* (T, c) and history (h, c) per item; history_<input> (h, c) for every style
    # input when read from a split (see with_style_input)
    clips: list[dict[str, torch.Tensor]]
    listener_emotion: np.ndarray  # (n, T, 25) real reactions
    speaker_emotion: np.ndarray  # (n, T, 25)
    neighbours: np.ndarray  # (n, n) bool appropriateness
    # Where the histories came from (ClipDataset.history_summary), recorded beside predictions.
    history: dict = dataclasses.field(default_factory=dict)
    # The style.input the clips' "history" is for (None: not recorded).
    style_input: str | None = None
    # How many frames of its history clip each item's history holds (data.history_frames when
    # read from a split; None: not recorded, or histories given by the caller).
    history_frames: int | None = None
    # Each item's listener identity (site/session/role), for the PMAFRG label set (None:
    # unknown, only MAFRG is scored).
    listeners: list[str] | None = None


def with_style_input(data: EvaluationSet, style_input: str) -> EvaluationSet:
    """``data`` with each clip's ``history`` for ``style_input`` (another run's input).

    Raises:
        ValueError: the clips do not hold that history (e.g. one given history replaced them).
    """
    if data.style_input == style_input:
        return data
    key = f"history_{style_input}"
    if not all(key in clip for clip in data.clips):
        raise ValueError(
            f"this evaluation set holds histories for style.input={data.style_input!r}, not "
            f"{style_input!r}: load it again for this run (Run.evaluation_set)"
        )
    clips = [{**clip, "history": clip[key]} for clip in data.clips]
    return dataclasses.replace(data, clips=clips, style_input=style_input)


def check_history_frames(data: EvaluationSet, history_frames: int) -> None:
    """Refuse histories read under another ``data.history_frames`` than the run's.

    A history is the first frames of another clip, so a set read for a shorter (or longer)
    history cannot be cut to this run's: it must be read again.

    Raises:
        ValueError: ``data`` records another history length than ``history_frames``.
    """
    if data.history_frames is not None and data.history_frames != history_frames:
        raise ValueError(
            f"this evaluation set holds histories of {data.history_frames} frames, but the run "
            f"reads {history_frames} (data.history_frames): load it again for this run "
            f"(Run.evaluation_set), or load the run with data.history_frames={data.history_frames}"
        )


def clip_dataset(config: Config, split: str, histories: bool = True):
    """The :class:`~perfrdiff.data.ClipDataset` of ``split`` with the config's history rule."""
    from perfrdiff.data import ClipDataset

    return ClipDataset(
        config.data.root,
        split,
        history_frames=config.data.history_frames,
        allow_same_clip_history=config.data.allow_same_clip_history,
        histories=histories,
    )


def load_evaluation_set(
    config: Config, split: str, limit: int | None = None, histories: bool = True
) -> EvaluationSet:
    """Read the ``split`` clips (the first ``limit`` items, all if ``None``).

    Each item's history comes from another clip of its listener (see
    :mod:`perfrdiff.data.history`); with ``data.allow_same_clip_history`` a listener without one
    uses the evaluated clip, and a warning says how many items did. ``histories=False`` reads
    none (for generic generation, or one history given for every item), so a listener without
    another clip is no obstacle.
    """
    from perfrdiff.data import person_of

    check_generation_options(limit=limit)
    protocol_named(config.protocol).check_fixed_clips("generation's evaluation sets")
    dataset = clip_dataset(config, split, histories)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    clips = [
        {key: value for key, value in it.items() if key.startswith(("speaker_", "history_"))}
        for it in items
    ]
    data = EvaluationSet(
        clips=clips,
        listener_emotion=np.stack([it["listener_emotion"].numpy() for it in items]),
        speaker_emotion=np.stack([it["speaker_emotion"].numpy() for it in items]),
        neighbours=np.asarray(dataset.index.neighbours[:n, :n], dtype=bool),
        listeners=[person_of(pair.listener) for pair in dataset.index.items[:n]],
    )
    return _with_histories(data, dataset, config, split) if histories else data


def _with_histories(data: EvaluationSet, dataset, config: Config, split: str) -> EvaluationSet:
    """``data`` with each clip's history for ``style.input`` and where the histories came from."""
    from perfrdiff.data.history import SAME_CLIP, history_summary

    for clip in data.clips:
        clip["history"] = clip[f"history_{config.style.input}"]
    n = len(data.clips)
    history = history_summary(dataset.history_sources[:n], dataset.allow_same_clip_history)
    if history["items"][SAME_CLIP]:
        log.warning(
            "%s: %d of %d items use their own clip as listener history (no other clip of the "
            "listener in any split): their personalised scores see the target",
            split,
            history["items"][SAME_CLIP],
            n,
        )
    return dataclasses.replace(
        data,
        history=history,
        style_input=config.style.input,
        history_frames=config.data.history_frames,
    )


def chance_predictions(
    data: EvaluationSet,
    samples: int,
    seed: int = 0,
    exclude: Sequence[Collection[int]] | None = None,
) -> np.ndarray:
    """Real reactions of *inappropriate* items, ``M`` per speaker: ``(n, M, T, 25)``.

    Realistic behaviour unrelated to the speaker. Appropriate items are excluded: copying one of
    them would score a perfect CCC against itself, which is not chance. ``exclude[k]``: further
    items item ``k`` never draws from (e.g. the item whose listener clip is its speaker clip).

    Raises:
        ValueError: ``exclude`` does not have one entry per item, or leaves an item nothing to
            draw from.
    """
    rng = np.random.default_rng(seed)
    n = data.listener_emotion.shape[0]
    if exclude is not None and len(exclude) != n:
        raise ValueError(f"exclude must have one entry per item ({n}), got {len(exclude)}")
    out = np.empty((n, samples, *data.listener_emotion.shape[1:]), dtype=np.float32)
    for k in range(n):
        left_out = list(exclude[k]) if exclude is not None else []
        pool = np.setdiff1d(np.flatnonzero(~data.neighbours[k]), left_out)
        if pool.size == 0:  # every other item is appropriate: draw from all of them
            pool = np.setdiff1d(np.delete(np.arange(n), k), left_out)
        if pool.size == 0:
            raise ValueError(
                f"exclude[{k}] leaves item {k} no other item to draw a chance reaction from "
                f"({n} items)"
            )
        out[k] = data.listener_emotion[rng.choice(pool, size=samples, replace=True)]
    return out


def save_predictions(predictions: np.ndarray, path: str | Path, meta: dict) -> Path:
    """Write ``predictions`` to ``path`` (``.npy``) and ``meta`` next to it (``.json``)."""
    path = Path(path)
    with atomic_open(path, "wb") as file:
        np.save(file, predictions)
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    log.info("predictions %s -> %s", tuple(predictions.shape), path)
    return path


def with_listener_history(
    data: EvaluationSet, history: np.ndarray, config: Config
) -> EvaluationSet:
    """``data`` with every item's listener history replaced by ``history: (h, c)``.

    ``history`` is validated by :func:`~perfrdiff.generation.inputs.check_history`.
    """
    tensor = torch.from_numpy(check_history(history, config.style.input))
    clips = [
        {**{k: v for k, v in clip.items() if not k.startswith("history_")}, "history": tensor}
        for clip in data.clips
    ]
    given = {"rule": "one given history for every item", "frames": int(history.shape[0])}
    return dataclasses.replace(
        data, clips=clips, history=given, style_input=config.style.input, history_frames=None
    )


def write_generation(
    predictions: dict[str, np.ndarray],
    data: EvaluationSet,
    out: str | Path,
    split: str,
    plots: int = 3,
    meta: dict | None = None,
) -> dict[str, Path]:
    """Save each mode's predictions as ``<out>/<mode>/predictions.npy`` (+ ``.json`` with
    ``meta``) and plot its first ``plots`` items against the real reactions; returns mode ->
    predictions path."""
    from perfrdiff.generation.plots import plot_reactions

    out = Path(out)
    paths = {}
    for mode, array in predictions.items():
        info = {"mode": mode, "split": split, "shape": list(array.shape), **(meta or {})}
        if mode == "personalised" and data.history:
            info["history"] = data.history
        paths[mode] = save_predictions(array, out / mode / "predictions.npy", info)
        for item in range(min(plots, len(array))):
            plot_reactions(
                array[item],
                data.listener_emotion[item],
                out / mode / f"item_{item:04d}.png",
                title=f"{mode}: {split} item {item}, {array.shape[1]} samples vs real",
                fps=info.get("fps", REACT2024.fps),  # the run's protocol's (sampling_info)
            )
    return paths
