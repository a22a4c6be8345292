"""All seven REACT metrics in one call, and their JSON / Markdown reports (with the motion
statistics of :mod:`.motion` where a result has them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from perfrdiff.atomic import atomic_write_text
from perfrdiff.metrics._inputs import neighbour_array, predictions_array, sequences_array
from perfrdiff.metrics._shards import frdist_jobs, is_main, scores_by_item
from perfrdiff.metrics.ccc import frcorr_per_speaker
from perfrdiff.metrics.diversity import frdiv, frdvs, frvar
from perfrdiff.metrics.dtw import frdist_per_speaker
from perfrdiff.metrics.label_sets import own_listener_neighbours
from perfrdiff.metrics.realism import frrea
from perfrdiff.metrics.synchrony import check_max_lag, frsyn_offsets
from perfrdiff.protocol import REACT2024, Protocol

if TYPE_CHECKING:
    from perfrdiff.distributed import Distributed

METRICS = ("FRCorr", "FRdist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRRea")
#: The metrics that take an appropriate set, scored on the PMAFRG label set too (keys
#: ``"PMAFRG FRCorr"``, ``"PMAFRG FRdist"``; the unprefixed ones are MAFRG, the challenge's).
LABELLED = ("FRCorr", "FRdist")
# Motion statistics in the report, with their column titles (targets: join/inside 1, as real
# reactions; inside step / real 1; each band's power generated / real 1).
MOTION_COLUMNS = {
    "join_ratio": "join/inside step",
    "real_join_ratio": "real join/inside",
    "inside_vs_real": "inside step / real",
}
HIGHER_IS_BETTER = {
    "FRCorr": True, "FRdist": False, "FRDiv": True, "FRDvs": True, "FRVar": True,
    "FRSyn": False, "FRRea": False,
}  # fmt: skip
HIGHER_IS_BETTER |= {f"PMAFRG {m}": HIGHER_IS_BETTER[m] for m in LABELLED}


def evaluate_all(
    predictions: Any,
    listener_emotion: Any,
    speaker_emotion: Any,
    neighbours: Any,
    n_jobs: int | None = None,
    nan_policy: Literal["ignore", "challenge"] = "ignore",
    progress: bool = False,
    protocol: Protocol = REACT2024,
    listeners: Sequence[str] | None = None,
    distributed: Distributed | None = None,
) -> dict[str, float]:
    """The seven metrics of generated reactions, and FRCorr / FRdist on the PMAFRG label set
    when the items' listeners are known (:mod:`.label_sets`).

    Args:
        predictions: ``(n, k, t, 25)`` generated listener emotions, ``k`` samples per speaker.
        listener_emotion: ``(n, t, 25)`` real listener emotions (item order of ``neighbours``).
        speaker_emotion: ``(n, t, 25)`` speaker emotions.
        neighbours: ``(n, n)`` bool appropriateness matrix.
        n_jobs: processes for FRdist (None: one per CPU this process may use, shared by the
            ``distributed`` processes on its machine).
        nan_policy: FRSyn's handling of constant channels (see :mod:`.synchrony`).
        protocol: whose metric variant (FRSyn's lags and samples) is computed.
        listeners: ``n`` listener identities in item order (``person_of`` of each listener
            clip), or None: no PMAFRG scores.
        distributed: this process's place among several (``torchrun``): they share the
            per-item scores (FRCorr, FRdist, FRSyn) and every one returns the numbers one
            process computes, bit for bit (:mod:`._shards`).

    Returns:
        ``{"FRCorr", "FRdist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRRea"} -> float`` (FRCorr
            and FRdist on the MAFRG set, as the challenge), plus ``"PMAFRG FRCorr"`` and
            ``"PMAFRG FRdist"`` with ``listeners``; FRDiv, FRDvs and FRVar unscaled (papers
            print them x100).
    """
    p = predictions_array(predictions)
    listener = sequences_array("listener_emotion", listener_emotion, p)
    speaker = sequences_array("speaker_emotion", speaker_emotion, p)
    neighbours = neighbour_array(neighbours, p.shape[0])
    own = None if listeners is None else own_listener_neighbours(neighbours, listeners)
    label_sets = {"": neighbours} | ({} if own is None else {"PMAFRG ": own})
    scores = item_scores(
        p,
        listener,
        speaker,
        label_sets,
        frdist_jobs(n_jobs, distributed),
        nan_policy,
        progress and is_main(distributed),
        protocol,
        distributed,
    )
    results = {
        "FRCorr": scores["FRCorr"],
        "FRdist": scores["FRdist"],
        "FRDiv": frdiv(p),
        "FRDvs": frdvs(p),
        "FRVar": frvar(p),
        "FRSyn": scores["FRSyn"],
        "FRRea": frrea(p, listener),
    }
    if own is not None:
        results["PMAFRG FRCorr"] = scores["PMAFRG FRCorr"]
        results["PMAFRG FRdist"] = scores["PMAFRG FRdist"]
    return results


def item_scores(
    p: np.ndarray,
    listener: np.ndarray,
    speaker: np.ndarray,
    label_sets: dict[str, np.ndarray],
    n_jobs: int | None,
    nan_policy: Literal["ignore", "challenge"],
    progress: bool,
    protocol: Protocol,
    distributed: Distributed | None,
) -> dict[str, float]:
    """The metrics that are means over items: ``<prefix>FRCorr`` and ``<prefix>FRdist`` per
    label set (``prefix -> (n, n)`` matrix) and FRSyn, from every item's scores in item order.

    Args:
        p: ``(n, k, t, 25)`` validated predictions; ``listener``, ``speaker``: ``(n, t, 25)``.
    """
    variant = protocol.metrics
    check_max_lag(p, variant.tlcc_max_lag)
    lagged = p[:, :1] if variant.tlcc_first_sample_only else p  # as frsyn

    def per_item(items: Sequence[int]) -> list[dict[str, Any]]:
        scores: dict[str, Any] = {}
        for prefix, matrix in label_sets.items():
            scores[f"{prefix}FRCorr"] = frcorr_per_speaker(p, listener, matrix, progress, items)
            scores[f"{prefix}FRdist"] = frdist_per_speaker(
                p, listener, matrix, n_jobs, progress=progress, items=items
            )[0]
        scores["FRSyn"] = frsyn_offsets(
            lagged, speaker, nan_policy, progress, variant.tlcc_max_lag, items
        )
        return [{name: s[i] for name, s in scores.items()} for i in range(len(items))]

    rows = scores_by_item(p.shape[0], per_item, distributed)
    # The same arrays as frcorr / frdist / frsyn average (FRSyn: (n, k) offsets), same means.
    return {name: float(np.array([row[name] for row in rows]).mean()) for name in rows[0]}


def _table(
    results: dict[str, dict[str, float]], columns: list[str], titles: list[str], digits: int
) -> str:
    """Markdown: one row per named result, one column per key (blank where a result lacks it)."""
    lines = ["| run | " + " | ".join(titles) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in results.items():
        cells = [f"{values[c]:.{digits}f}" if c in values else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table with one row per named result and one column per metric; where a
    result has PMAFRG scores, FRCorr and FRdist have a column per label set (as the paper's
    Table 1: "FRCorr MAFRG", "FRCorr PMAFRG")."""
    labelled = any(f"PMAFRG {m}" in r for m in LABELLED for r in results.values())
    keys = [
        k
        for m in METRICS
        for k in ((m, f"PMAFRG {m}") if labelled and m in LABELLED else (m,))
        if any(k in r for r in results.values())
    ]

    def title(key: str) -> str:
        metric = key.removeprefix("PMAFRG ")
        label = ""
        if labelled and metric in LABELLED:
            label = " PMAFRG" if key != metric else " MAFRG"
        return f"{metric}{label} {'↑' if HIGHER_IS_BETTER[key] else '↓'}"

    return _table(results, keys, [title(k) for k in keys], 4)


def motion_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the motion statistics (:func:`~.motion.motion_report` keys) of each
    named result that has them; empty when none has."""
    columns = [key for key in MOTION_COLUMNS if any(key in r for r in results.values())]
    columns += sorted(
        {k for r in results.values() for k in r if k.startswith("power ")},
        key=lambda k: float(k.split()[1].split("-")[0]),
    )
    if not columns:
        return ""
    return _table(results, columns, [MOTION_COLUMNS.get(c, f"{c} gen/real") for c in columns], 3)


def report_markdown(results: dict[str, dict[str, float]]) -> str:
    """The REACT metrics table, then the motion statistics table when there is one."""
    motion = motion_table(results)
    return markdown_table(results) + (f"\n{motion}" if motion else "")


def write_report(results: dict[str, dict[str, float]], directory: str | Path) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` into ``directory`` atomically; return the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    outputs = (
        (directory / "metrics.json", json.dumps(results, indent=2) + "\n"),
        (directory / "metrics.md", report_markdown(results)),
    )
    for path, text in outputs:
        atomic_write_text(path, text)
    return outputs[0][0], outputs[1][0]
