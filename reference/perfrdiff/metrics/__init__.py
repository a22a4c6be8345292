"""The seven REACT 2024 metrics, vectorised and exact; see each module for its definition.

Inputs are numpy arrays or torch tensors: predictions ``(n, k, t, d)``, real listener emotions
``(n, t, d)``, speaker emotions ``(n, t, d)``, appropriateness ``(n, n)`` bool; the paper's two
label sets (MAFRG, PMAFRG: the item's own listener's reactions only) in :mod:`.label_sets`.
"""

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.metrics.ccc import ccc_matrix, frcorr, frcorr_per_speaker
from perfrdiff.metrics.diversity import frdiv, frdvs, frvar
from perfrdiff.metrics.dtw import COMPONENTS, dtw_distance, frdist, frdist_per_speaker, min_cost
from perfrdiff.metrics.evaluate import (
    LABELLED,
    METRICS,
    evaluate_all,
    markdown_table,
    motion_table,
    write_report,
)
from perfrdiff.metrics.label_sets import (
    LABEL_SETS,
    item_listeners,
    label_set_matrices,
    own_listener_neighbours,
)
from perfrdiff.metrics.motion import (
    BANDS,
    band_power,
    frame_steps,
    join_frames,
    motion_report,
    step_sizes,
)
from perfrdiff.metrics.realism import dynamics_features, frechet_distance, frrea, gaussian_fit
from perfrdiff.metrics.synchrony import frsyn, frsyn_offsets, lag_correlations

__all__ = [
    "BANDS",
    "COMPONENTS",
    "LABELLED",
    "LABEL_SETS",
    "METRICS",
    "band_power",
    "ccc_matrix",
    "dtw_distance",
    "dynamics_features",
    "evaluate_all",
    "frame_steps",
    "frcorr",
    "frcorr_per_speaker",
    "frdist",
    "frdist_per_speaker",
    "frdiv",
    "frdvs",
    "frechet_distance",
    "frrea",
    "frsyn",
    "frsyn_offsets",
    "frvar",
    "gaussian_fit",
    "item_listeners",
    "join_frames",
    "label_set_matrices",
    "lag_correlations",
    "markdown_table",
    "min_cost",
    "motion_report",
    "motion_table",
    "own_listener_neighbours",
    "step_sizes",
    "write_report",
]
