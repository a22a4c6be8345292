"""FRdist: appropriateness by DTW distance to the closest appropriate real reaction."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from tqdm import tqdm

from perfrdiff.metrics._inputs import neighbour_array, predictions_array, sequences_array
from perfrdiff.metrics.dtw import min_cost

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
) -> tuple[np.ndarray, int]:
    """``(n,)`` per speaker ``sum_i min_{j in A_k} cost(P_ki, G_j)``, and the DTWs started.

    Args:
        predictions: ``(n, k, t, 25)``.
        listener_emotion: ``(n, t, 25)`` real reactions.
        neighbours: ``(n, n)`` boolean appropriateness matrix.
        n_jobs: worker processes (None: all CPUs; 1: in this process).
        prune: exact pruning (see :mod:`perfrdiff.metrics.dtw`); False is exhaustive.
    """
    predictions = np.asarray(predictions_array(predictions), dtype=np.float32)
    reals = np.asarray(
        sequences_array("listener_emotion", listener_emotion, predictions), dtype=np.float32
    )
    if predictions.shape[-1] != 25:
        raise ValueError(f"predictions: FRdist needs d = 25 channels, got {predictions.shape[-1]}")
    neighbours = neighbour_array(neighbours, predictions.shape[0])
    n = predictions.shape[0]
    jobs = n_jobs or os.cpu_count() or 1
    candidates = [np.flatnonzero(row) for row in neighbours]
    scores = np.empty(n)
    started = 0
    bar = tqdm(total=n, desc="FRdist", disable=not progress, leave=False)
    with contextlib.ExitStack() as stack:
        if jobs == 1:
            _init_worker(reals)
            results = (_speaker_task(predictions[k], candidates[k], prune) for k in range(n))
        else:
            # fork: workers only run numpy and dtaidistance, and inherit the reals without a copy
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
            pool = stack.enter_context(ProcessPoolExecutor(jobs, context, _init_worker, (reals,)))
            futures = [
                pool.submit(_speaker_task, predictions[k], candidates[k], prune) for k in range(n)
            ]
            results = (future.result() for future in futures)
        for k, (score, count) in enumerate(results):
            scores[k] = score
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
