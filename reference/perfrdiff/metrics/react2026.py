"""The REACT 2026 evaluation: appropriate sets drawn per session, and the metrics of its code on
sequences of any length.

Appropriate set of test item ``k`` (speaker -> listener of dyad ``k``): its own listener, then
``others`` (9) listener sequences drawn from the other dyads of the same session, without
replacement when there are at least ``others``, with replacement when there are fewer, its own
``others`` times when there are none. The draw is the challenge's: one ``random.Random(seed)``
(its scripts' seed 1234), items in file order (sessions, then stems as file names), candidates
in the same order; so it is deterministic and the same in every process. Candidates are the
listeners of the loaded dyads (the challenge also counts a listener file without a speaker).

Metrics of item ``k`` with ``K`` samples ``P_ki (T_k, 25)``, averaged over the items:

* ``FRCorr`` (the code's FRC): ``Σ_i max_j CCC(G_j, P_ki)`` over its appropriate ``G_j``;
* ``FRdist`` (FRD): ``Σ_i min_j`` of the REACT DTW cost (:mod:`.dtw`);
* ``FRDiv`` (S-MSE): ``Σ_{i≠i'} |P_ki − P_ki'|² / (K (K − 1) T_k 25)``;
* ``FRVar``: mean over samples and channels of the unbiased variance over time;
* ``FRSyn`` (TLCC against the speaker): mean absolute offset over lags ``±max_lag``
  (:mod:`.synchrony`).

The challenge aligns each appropriate sequence to the item's length before scoring (with a
post-processor we have not read); we cut a longer one to ``T_k`` frames and zero-pad a shorter
one, as training crops are. Its quirks are the protocol's :class:`~perfrdiff.protocol.
MetricVariant` (TLCC of sample 0 only, lags of 25 fps) and its output post-processing (AUs
rounded to {0, 1}, applied before scoring by :mod:`.report_react2026`); each can be switched
off.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm import tqdm

from perfrdiff.metrics._shards import is_main, scores_by_item
from perfrdiff.metrics.ccc import ccc_matrix
from perfrdiff.metrics.dtw import min_cost
from perfrdiff.metrics.synchrony import lag_correlations, offsets

if TYPE_CHECKING:
    from perfrdiff.distributed import Distributed

#: The challenge's evaluation seed (its metric scripts' default).
CHALLENGE_SEED = 1234
METRICS_2026 = ("FRCorr", "FRdist", "FRDiv", "FRVar", "FRSyn")


def appropriate_sets(
    sessions: Sequence[str], others: int = 9, seed: int = CHALLENGE_SEED
) -> list[list[int]]:
    """``n`` lists of item indices: item ``k`` itself, then ``others`` drawn from the items of
    session ``sessions[k]`` (the module docstring's rule).

    Args:
        sessions: ``(n,)`` each item's session, items in file order.
        others: how many are drawn besides the item's own.
        seed: the draw's seed.
    """
    if others < 0:
        raise ValueError(f"others: expected >= 0, got {others}")
    members: dict[str, list[int]] = {}
    for k, session in enumerate(sessions):
        members.setdefault(session, []).append(k)
    rng = random.Random(seed)
    sets = []
    for k, session in enumerate(sessions):
        candidates = [j for j in members[session] if j != k]
        if others == 0:
            drawn: list[int] = []
        elif len(candidates) >= others:
            drawn = rng.sample(candidates, others)
        elif candidates:
            drawn = rng.choices(candidates, k=others)
        else:
            drawn = [k] * others
        sets.append([k, *drawn])
    return sets


def aligned(sequence: np.ndarray, frames: int) -> np.ndarray:
    """``(frames, d)``: ``sequence (t, d)`` cut to ``frames`` or zero-padded to it."""
    out = np.zeros((frames, sequence.shape[1]), dtype=np.float64)
    out[: min(frames, sequence.shape[0])] = sequence[:frames]
    return out


def item_metrics(
    predictions: np.ndarray,
    reals: Sequence[np.ndarray],
    speaker: np.ndarray,
    max_lag: int = 49,
    first_sample_only: bool = True,
    nan_policy: Literal["ignore", "challenge"] = "ignore",
) -> dict[str, float]:
    """The five metrics of one item.

    Args:
        predictions: ``(K, T, 25)`` its samples, ``K >= 2`` and ``T > max_lag``.
        reals: its appropriate real reactions, each ``(T_j, 25)`` (aligned to ``T`` here).
        speaker: ``(T, 25)`` its speaker's sequence.
    """
    p = np.asarray(predictions, dtype=np.float64)
    k, t, d = p.shape
    if k < 2 or t <= max_lag:
        raise ValueError(
            f"predictions: expected (K >= 2, T > {max_lag}, 25) samples, got {p.shape}"
        )
    ys = np.stack([aligned(np.asarray(r, dtype=np.float64), t) for r in reals])
    centre = p.mean(axis=0, keepdims=True)
    lagged = p[:1] if first_sample_only else p
    r, defined = lag_correlations(lagged, np.asarray(speaker, dtype=np.float64)[:t], max_lag)
    return {
        "FRCorr": float(ccc_matrix(p, ys).max(axis=1).sum()),
        "FRdist": float(sum(min_cost(sample, ys)[0] for sample in p)),
        "FRDiv": float(2 * k * ((p - centre) ** 2).sum() / (k * (k - 1) * t * d)),
        "FRVar": float(p.var(axis=1, ddof=1).mean()),
        "FRSyn": float(offsets(r, defined, nan_policy).mean()),
    }


def evaluate_sequences(
    predictions: Sequence[Any],
    listeners: Sequence[np.ndarray],
    speakers: Sequence[np.ndarray],
    sets: Sequence[Sequence[int]],
    progress: bool = False,
    distributed: Distributed | None = None,
    **variant: Any,
) -> dict[str, float]:
    """The REACT 2026 metrics averaged over items.

    Args:
        predictions: ``n`` arrays ``(K, T_k, 25)``.
        listeners: ``n`` real listener sequences ``(T_j, 25)`` (item order).
        speakers: ``n`` speaker sequences ``(T_k, 25)``.
        sets: item ``k``'s appropriate items (:func:`appropriate_sets`).
        distributed: this process's place among several (``torchrun``): they share the items
            and every one returns the means one process computes (:mod:`._shards`).
        variant: ``max_lag``, ``first_sample_only``, ``nan_policy`` of :func:`item_metrics`.
    """
    if not len(predictions) == len(listeners) == len(speakers) == len(sets):
        raise ValueError(
            f"predictions, listeners, speakers, sets: expected one per item, got "
            f"{len(predictions)}, {len(listeners)}, {len(speakers)}, {len(sets)}"
        )

    def per_item(items: Sequence[int]) -> list[dict[str, float]]:
        bar = tqdm(
            items, desc="REACT 2026 metrics", disable=not (progress and is_main(distributed))
        )
        return [
            item_metrics(predictions[k], [listeners[j] for j in sets[k]], speakers[k], **variant)
            for k in bar
        ]

    rows = scores_by_item(len(predictions), per_item, distributed)
    return {m: float(np.mean([row[m] for row in rows])) for m in METRICS_2026}


def predictions_by_item(archive: Mapping[str, np.ndarray], keys: Sequence[str]) -> list[Any]:
    """The arrays of ``archive`` (e.g. an opened ``.npz``) for ``keys`` in that order.

    Raises:
        KeyError: naming the first missing key and how many are missing.
    """
    missing = [key for key in keys if key not in archive]
    if missing:
        raise KeyError(f"predictions: no array for {missing[0]!r} ({len(missing)} items missing)")
    return [archive[key] for key in keys]
