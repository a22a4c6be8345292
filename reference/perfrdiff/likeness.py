"""Is a generated reaction like *this* listener? Measures beside FRCorr / FRdist, and paired
bootstrap intervals over listeners.

FRCorr and FRdist reward a sample close to *any* appropriate real reaction. These measures ask
about the item's own listener (identity: :func:`perfrdiff.data.person_of` of the listener clip):

* **own CCC / own DTW**: each sample against the item's own real reaction only (the FRCorr CCC
  and the FRdist cost with one candidate), averaged over the samples;
* **identification**: top-1 listener identification of each sample by a style encoder, among
  the split's listeners, each represented by the mean style of its *other* real reactions;
* **level / expressivity error**: per listener, the mean absolute per-channel difference between
  generated and real mean (level) and between generated and real standard deviation over time
  (expressivity), over all the listener's items.

Every item measure is an ``(n,)`` array in item order (NaN where it is undefined, e.g. a
listener with no other reaction to identify it by); a listener measure is a ``{listener:
value}`` dict. :func:`paired_bootstrap` resamples *listeners* (a listener's items are not
independent) and gives a 95% interval of the ratio (or difference) of two methods' measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from perfrdiff.metrics import frcorr_per_speaker, frdist_per_speaker
from perfrdiff.metrics.label_sets import label_set_matrices

#: A style encoder as the measures use it: ``(b, t, c)`` inputs -> ``(b, s)`` unit vectors.
Embed = Callable[[np.ndarray], np.ndarray]


def label_set_scores(
    predictions: np.ndarray,
    listener_emotion: np.ndarray,
    neighbours: np.ndarray,
    listeners: Sequence[str],
    n_jobs: int | None = None,
) -> dict[str, np.ndarray]:
    """Per item ``(n,)``: FRCorr and FRdist on both label sets (``"MAFRG FRCorr"``,
    ``"PMAFRG FRdist"``, ...); each the per-speaker sum over samples, so that its mean over
    items is the metric."""
    out = {}
    for name, matrix in label_set_matrices(neighbours, listeners).items():
        out[f"{name} FRCorr"] = frcorr_per_speaker(predictions, listener_emotion, matrix)
        out[f"{name} FRdist"] = frdist_per_speaker(
            predictions, listener_emotion, matrix, n_jobs=n_jobs
        )[0]
    return out


def own_reaction_scores(
    predictions: np.ndarray, listener_emotion: np.ndarray, n_jobs: int | None = None
) -> dict[str, np.ndarray]:
    """Per item ``(n,)``: ``"own CCC"`` (higher is better) and ``"own DTW"`` (lower) of the
    samples against the item's own real reaction, means over the ``k`` samples.

    Args:
        predictions: ``(n, k, t, 25)``.
        listener_emotion: ``(n, t, 25)``.
    """
    own = np.eye(len(predictions), dtype=bool)
    k = predictions.shape[1]
    return {
        "own CCC": frcorr_per_speaker(predictions, listener_emotion, own) / k,
        "own DTW": frdist_per_speaker(predictions, listener_emotion, own, n_jobs=n_jobs)[0] / k,
    }


def level_errors(
    predictions: np.ndarray, listener_emotion: np.ndarray, listeners: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per listener: ``"level error"`` and ``"expressivity error"``.

    With ``L`` the listener's items: level error = mean over channels of
    ``|mean_{k in L, i, t} P[k, i, t] - mean_{k in L, t} G[k, t]|``; expressivity error = the
    same with each sequence's standard deviation over time in place of its values.

    Args:
        predictions: ``(n, k, t, d)``.
        listener_emotion: ``(n, t, d)``.

    Returns:
        ``{"level error": {listener: value}, "expressivity error": {listener: value}}``.
    """
    ids = np.asarray(listeners, dtype=object)
    names = ("level error", "expressivity error")
    # Each sequence's level and spread over time: (n, k, d) generated, (n, d) real.
    generated = (predictions.mean(axis=2), predictions.std(axis=2))
    real = (listener_emotion.mean(axis=1), listener_emotion.std(axis=1))
    out: dict[str, dict[str, float]] = {name: {} for name in names}
    for listener in dict.fromkeys(listeners):
        items = ids == listener
        for name, gen, ref in zip(names, generated, real, strict=True):
            gap = gen[items].mean(axis=(0, 1)) - ref[items].mean(axis=0)
            out[name][listener] = float(np.abs(gap).mean())
    return out


def style_inputs(reactions: np.ndarray, partner: np.ndarray, style_input: str) -> np.ndarray:
    """What a style encoder of ``style_input`` reads from listener ``reactions: (..., t, 25)``
    beside their partner's emotion ``partner`` (broadcast to the same shape): the reactions
    themselves (``"emotion"``), or both side by side (``"dyadic"``, ``(..., t, 50)``).

    Raises:
        ValueError: ``"face"`` (generated reactions are emotions, not 3DMM) or unknown.
    """
    if style_input == "emotion":
        return reactions
    if style_input == "dyadic":
        return np.concatenate([reactions, np.broadcast_to(partner, reactions.shape)], axis=-1)
    raise ValueError(
        "style_input: identifying listeners from generated emotions needs an 'emotion' or "
        f"'dyadic' style encoder, got {style_input!r}"
    )


def identification(
    embed: Embed,
    predictions: np.ndarray,
    listener_emotion: np.ndarray,
    speaker_emotion: np.ndarray,
    listeners: Sequence[str],
    style_input: str,
) -> np.ndarray:
    """Per item ``(n,)``: the fraction of its samples whose nearest listener (cosine, among the
    split's listeners) is the item's own; NaN for an item whose listener has no other item.

    Each listener is the mean style of its real reactions (beside their partner's emotion for a
    dyadic encoder: the item's speaker), *without* the queried item's own reaction, so a sample
    identical to the item's real reaction gets no credit for that alone.

    Args:
        embed: ``(b, t, c)`` -> ``(b, s)`` unit vectors (a style encoder of ``style_input``).
        predictions: ``(n, k, t, 25)``.
        listener_emotion: ``(n, t, 25)`` the items' real reactions.
        speaker_emotion: ``(n, t, 25)`` their speakers' emotion (the dyadic partner).
    """
    n, k, t = predictions.shape[:3]
    names = list(dict.fromkeys(listeners))
    owner = np.array([names.index(x) for x in listeners])
    real = embed(style_inputs(listener_emotion, speaker_emotion, style_input))  # (n, s)
    inputs = style_inputs(predictions, speaker_emotion[:, None], style_input)
    queries = embed(inputs.reshape(n * k, t, -1)).reshape(n, k, -1)
    totals = np.stack([real[owner == g].sum(axis=0) for g in range(len(names))])  # (g, s)
    counts = np.bincount(owner, minlength=len(names))
    hits = np.full(n, np.nan)
    for item in np.flatnonzero(counts[owner] >= 2):  # others: nothing to recognise them by
        gallery = totals.copy()
        gallery[owner[item]] -= real[item]
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        best = (queries[item] @ gallery.T).argmax(axis=1)  # (k,)
        hits[item] = float((best == owner[item]).mean())
    return hits


# Bootstrap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    groups: Sequence[str],
    statistic: str = "ratio",
    rounds: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """``sum(a) / sum(b)`` (``"ratio"``) or ``mean(a) - mean(b)`` (``"difference"``) over items,
    with a percentile interval from resampling ``groups`` (listeners) with replacement: every
    resample takes all items of the drawn listeners, from ``a`` and ``b`` alike (paired).

    Args:
        a: ``(n,)`` one measure of a method, item by item; NaN where undefined (the item is
            left out of both).
        b: ``(n,)`` the same measure of the method it is compared with.
        groups: ``n`` group labels (listener identities).

    Raises:
        ValueError: shapes disagree, an unknown statistic, or no item defined in both.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(groups) != a.shape[0]:
        raise ValueError(
            f"a, b and groups: expected (n,), (n,) and n labels, got {a.shape}, {b.shape} and "
            f"{len(groups)}"
        )
    if statistic not in ("ratio", "difference"):
        raise ValueError(f"statistic: expected 'ratio' or 'difference', got {statistic!r}")
    defined = np.isfinite(a) & np.isfinite(b)
    if not defined.any():
        raise ValueError("a, b: no item has a value in both")
    names = list(dict.fromkeys(groups))
    owner = np.array([names.index(x) for x in groups])
    g = len(names)
    # Per-listener totals: a resample's sums are the drawn listeners' totals, weighted by draws.
    sums_a = np.bincount(owner, np.where(defined, a, 0.0), g)
    sums_b = np.bincount(owner, np.where(defined, b, 0.0), g)
    counts = np.bincount(owner, defined.astype(float), g)
    draws = np.random.default_rng(seed).integers(0, g, (rounds, g))
    weights = np.vstack([np.ones(g), [np.bincount(d, minlength=g) for d in draws]])  # row 0: all
    total_a, total_b, total_n = weights @ sums_a, weights @ sums_b, weights @ counts
    with np.errstate(divide="ignore", invalid="ignore"):
        values = total_a / total_b if statistic == "ratio" else (total_a - total_b) / total_n
    tail = (1 - level) / 2 * 100
    finite = values[1:][np.isfinite(values[1:])]
    low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
    return Interval(float(values[0]), float(low), float(high))
