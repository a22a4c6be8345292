"""FRdist: DTW distance to the closest appropriate real reaction, exact, pruned and in parallel.

The cost of a prediction ``x`` against a real reaction ``y`` (both ``(t, 25)``) is, as in the
challenge, ``DTW(AU) / 15 + DTW(VA) + DTW(expr) / 8`` where each DTW is multivariate, unconstrained,
and equals the square root of the accumulated squared Euclidean cost (tslearn's ``dtw``) on float64
copies of float32 inputs. We evaluate DTW with dtaidistance's C implementation, which gives the
same value as tslearn's bit for bit (see the tests) and, unlike tslearn, can *abandon* a computation
as soon as it must exceed a threshold (``max_dist``; PrunedDTW, exact below the threshold).

:func:`min_cost` returns exactly ``min_j cost(x, y_j)``:

1. bounds per candidate and component, all vectorised: the lock-step Euclidean distance is an upper
   bound (the diagonal is a warping path), and so, for the candidate where that is smallest, is the
   DTW restricted to a band of ±19 frames around the diagonal; a lower bound is the largest of (a)
   the first-and-last cells (every path contains both), (b) each frame of ``x`` to the per-channel
   bounding box of ``y`` (every frame is matched at least once, and a match lies in the box), and
   (c) the same with the roles swapped;
2. candidates are visited in order of their lock-step distance; the running best starts at the
   smallest upper bound; a candidate whose lower bound exceeds the best is skipped; otherwise its
   components are computed cheapest and most decisive first (valence/arousal, expressions, AUs),
   each DTW abandoned once it cannot bring the candidate below the best given the other
   components' exact values or lower bounds.

Thresholds carry a relative slack of 1e-9, so rounding can only cost work, never a wrong minimum:
the candidate attaining the minimum is always computed exactly, with the same arithmetic as an
exhaustive search.

How much this saves depends on the data (``benchmarks/metrics.py``, 806 speakers x 10 samples, 10
candidates each). When every sample is a noisy, delayed copy of one appropriate reaction, as a
model that has learnt the task would emit, 40% of the component DTWs start and most of those are
abandoned early: FRdist takes ~13x less CPU time than tslearn in a loop. When samples are unrelated
to every real reaction, all candidates are about equally far, 94% of the DTWs start and run nearly
to the end, and FRdist takes only ~1.3x less CPU time: the cost is then the DTW engine's
(dtaidistance and tslearn take about the same 9-12 ms per candidate on these inputs).
:func:`frdist_per_speaker` also spreads speakers over worker processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from dtaidistance import dtw_ndim
from tqdm import tqdm

from perfrdiff.host import usable_cpus
from perfrdiff.metrics._inputs import (
    check_n_jobs,
    neighbour_array,
    predictions_array,
    sequences_array,
)

#: (channels, weight) of the three FRdist components: 15 AUs, valence/arousal, 8 expressions.
COMPONENTS: tuple[tuple[slice, float], ...] = (
    (slice(0, 15), 1 / 15),
    (slice(15, 17), 1.0),
    (slice(17, 25), 1 / 8),
)
#: Components in the order they are computed for one candidate: valence/arousal is the cheapest DTW
#: (2 channels) and carries most of the cost (weight 1 against 1/15 and 1/8), so its exact value
#: decides most candidates before the 8- and 15-channel DTWs start.
EVALUATION_ORDER = (1, 2, 0)
#: Band (``|i - j| < 20``: lags up to 19 frames, 0.76 s) of the DTW that, on the candidate with the
#: smallest lock-step distance, starts the running best: much tighter than the lock-step distance
#: when a prediction follows a real reaction with a delay, for ~5% of one unconstrained DTW.
UPPER_BOUND_BAND = 20
SLACK = 1e-9


def dtw_distance(
    x: np.ndarray, y: np.ndarray, max_dist: float | None = None, window: int | None = None
) -> float:
    """Multivariate DTW: sqrt of the accumulated squared Euclidean cost.

    Args:
        x: ``(t1, d)`` float64, C-contiguous.
        y: ``(t2, d)`` float64, C-contiguous.
        max_dist: abandon and return ``inf`` once the distance must exceed this (must be > 0).
        window: if given, only warping paths whose cells have ``|i - j| < window`` (a
            Sakoe-Chiba band; 1 is the lock-step distance). The result is then an upper bound
            of the unconstrained DTW: the same sums over a subset of the paths.
    """
    if max_dist is not None and not max_dist > 0:
        raise ValueError(
            f"max_dist: expected > 0 (dtaidistance reads 0 as no limit), got {max_dist}"
        )
    if window is not None and not window >= 1:
        raise ValueError(f"window: expected >= 1 (dtaidistance reads 0 as no band), got {window}")
    return float(dtw_ndim.distance(x, y, use_c=True, max_dist=max_dist, window=window))


def cost(x: np.ndarray, y: np.ndarray) -> float:
    """FRdist cost of one prediction against one real reaction, both ``(t, 25)``, exhaustively."""
    total = 0.0
    for channels, weight in COMPONENTS:
        total += weight * dtw_distance(_c64(x[:, channels]), _c64(y[:, channels]))
    return total


def _c64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _bounds(x: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``(m,)`` of DTW(``x (t, d)``, ``ys[j]``) for ``ys (m, t, d)``."""
    upper = np.sqrt(((ys - x) ** 2).sum(axis=(1, 2)))
    ends = ((ys[:, 0] - x[0]) ** 2).sum(axis=-1) + ((ys[:, -1] - x[-1]) ** 2).sum(axis=-1)
    low_y, high_y = ys.min(axis=1), ys.max(axis=1)  # (m, d)
    x_to_box = (np.maximum(low_y[:, None] - x, 0) + np.maximum(x - high_y[:, None], 0)) ** 2
    low_x, high_x = x.min(axis=0), x.max(axis=0)
    y_to_box = (np.maximum(low_x - ys, 0) + np.maximum(ys - high_x, 0)) ** 2
    if x.shape[0] == 1:
        ends = ends / 2  # one cell: first and last coincide
    lower = np.sqrt(np.maximum.reduce([ends, x_to_box.sum(axis=(1, 2)), y_to_box.sum(axis=(1, 2))]))
    return lower, upper


def _components(x: np.ndarray, ys: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``(x channels (t, c), ys channels (m, t, c), weight)`` per FRdist component: float32 values
    (as the challenge passes them) in C-contiguous float64 copies (as the DTW reads them)."""
    x32 = np.asarray(x, dtype=np.float32)
    ys32 = np.asarray(ys, dtype=np.float32)
    return [
        (_c64(x32[:, channels]), _c64(ys32[:, :, channels]), weight)
        for channels, weight in COMPONENTS
    ]


def _starting_bound(
    parts: list[tuple[np.ndarray, np.ndarray, float]], first: int, lock_step: float
) -> float:
    """An upper bound of the minimum cost: the smaller of candidate ``first``'s lock-step distance
    and its DTW within :data:`UPPER_BOUND_BAND` frames of the diagonal."""
    banded = 0.0
    for xc, yc, weight in parts:
        banded += weight * dtw_distance(xc, yc[first], window=UPPER_BOUND_BAND)
    return min(lock_step, banded)


def min_cost(x: np.ndarray, ys: np.ndarray, prune: bool = True) -> tuple[float, int]:
    """Exact ``min_j cost(x, ys[j])`` and how many unconstrained component DTWs were started
    (the three banded DTWs of the upper bound are not counted).

    Args:
        x: ``(t, 25)`` one prediction.
        ys: ``(m, t, 25)`` the appropriate real reactions.
        prune: False evaluates every candidate fully (the exhaustive reference).
    """
    parts = _components(x, ys)
    m = len(ys)
    if not prune:
        costs = []
        for j in range(m):
            total = 0.0
            for xc, yc, weight in parts:
                total += weight * dtw_distance(xc, yc[j])
            costs.append(total)
        return min(costs), 3 * m
    bounds = [_bounds(xc, yc) for xc, yc, _ in parts]
    lower = np.stack([weight * b[0] for b, (_, _, weight) in zip(bounds, parts, strict=True)])
    upper = sum(weight * b[1] for b, (_, _, weight) in zip(bounds, parts, strict=True))
    order = np.argsort(upper, kind="stable")
    best = _starting_bound(parts, order[0], float(upper[order[0]])) * (1 + SLACK) + SLACK
    exact = np.inf
    started = 0
    for j in order:
        if lower[:, j].sum() > best:
            continue
        known = lower[:, j].copy()  # weighted lower bounds, replaced by exact values as computed
        for c in EVALUATION_ORDER:
            xc, yc, weight = parts[c]
            room = best - (known.sum() - known[c])
            if room <= 0:
                break
            started += 1
            distance = dtw_distance(xc, yc[j], max_dist=room / weight * (1 + SLACK) + SLACK)
            if not np.isfinite(distance):
                break
            known[c] = weight * distance
        else:
            total = 0.0
            for value in known:  # the exhaustive search's order of addition: AU, VA, expressions
                total += value
            if total < exact:
                exact = total
                best = min(best, total * (1 + SLACK) + SLACK)
    if not np.isfinite(exact):  # unreachable by the argument above; keep the result exact anyway
        return min_cost(x, ys, prune=False)
    return exact, started


_REALS: np.ndarray | None = None  # worker-global real reactions, sent once per worker


def _init_worker(reals: np.ndarray) -> None:
    global _REALS
    _REALS = reals


def _speaker_task(
    predictions: np.ndarray, candidates: np.ndarray, prune: bool
) -> tuple[float, int]:
    """Sum over samples ``(k, t, d)`` of the minimum cost over ``candidates``; DTWs started."""
    assert _REALS is not None
    total, started = 0.0, 0
    ys = _REALS[candidates]
    for sample in predictions:
        value, count = min_cost(sample, ys, prune=prune)
        total += value
        started += count
    return total, started


def frdist_per_speaker(
    predictions: Any,
    listener_emotion: Any,
    neighbours: Any,
    n_jobs: int | None = None,
    prune: bool = True,
    progress: bool = False,
    items: Sequence[int] | None = None,
) -> tuple[np.ndarray, int]:
    """``(n,)`` per speaker ``sum_i min_{j in A_k} cost(P_ki, G_j)``, and the DTWs started.

    Args:
        predictions: ``(n, k, t, 25)``.
        listener_emotion: ``(n, t, 25)`` real reactions.
        neighbours: ``(n, n)`` boolean appropriateness matrix.
        n_jobs: worker processes (None: one per CPU this process may use; 1: in this process).
        prune: exact pruning (see :mod:`perfrdiff.metrics.dtw`); False is exhaustive.
        items: only these speakers (one score each, in this order; default: all ``n``).
    """
    check_n_jobs(n_jobs)  # 0 used to mean 'all CPUs' by accident, -1 failed in the pool
    predictions = np.asarray(predictions_array(predictions), dtype=np.float32)
    reals = np.asarray(
        sequences_array("listener_emotion", listener_emotion, predictions), dtype=np.float32
    )
    if predictions.shape[-1] != 25:
        raise ValueError(f"predictions: FRdist needs d = 25 channels, got {predictions.shape[-1]}")
    neighbours = neighbour_array(neighbours, predictions.shape[0])
    items = range(predictions.shape[0]) if items is None else items
    jobs = n_jobs or usable_cpus()
    candidates = [np.flatnonzero(row) for row in neighbours]
    scores = np.empty(len(items))
    started = 0
    bar = tqdm(total=len(items), desc="FRdist", disable=not progress, leave=False)
    with contextlib.ExitStack() as stack:
        if jobs == 1:
            _init_worker(reals)
            results = (_speaker_task(predictions[k], candidates[k], prune) for k in items)
        else:
            # fork: workers only run numpy and dtaidistance, and inherit the reals without a copy
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            pool = stack.enter_context(ProcessPoolExecutor(jobs, context, _init_worker, (reals,)))
            futures = [
                pool.submit(_speaker_task, predictions[k], candidates[k], prune) for k in items
            ]
            results = (future.result() for future in futures)
        for i, (score, count) in enumerate(results):
            scores[i] = score
            started += count
            bar.update()
    bar.close()
    return scores, started


def frdist(
    predictions: Any,
    listener_emotion: Any,
    neighbours: Any,
    n_jobs: int | None = None,
    prune: bool = True,
    progress: bool = False,
) -> float:
    """FRdist = (1/n) sum_k sum_i min_{j in A_k} [DTW_AU/15 + DTW_VA + DTW_expr/8](P_ki, G_j)."""
    scores, _ = frdist_per_speaker(
        predictions, listener_emotion, neighbours, n_jobs, prune, progress
    )
    return float(scores.mean())
