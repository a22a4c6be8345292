"""mkdocs hooks: benchmark results and CLI help rendered at build time, so they cannot go stale.

* ``benchmarks.md`` holds placeholders ``<!-- benchmark: NAME -->``; each is replaced by the
  tables of ``benchmarks/results/NAME.json`` (and a plot, for the benchmarks that have one), or by
  "not measured yet" when that file does not exist. Numbers are never written by hand.
* ``<!-- perfrdiff-cli-help -->`` becomes the ``--help`` of every ``perfrdiff`` sub-command.

Registered in ``mkdocs.yml`` under ``hooks:``; excluded from the pages by ``exclude_docs``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLACEHOLDER = re.compile(r"<!--\s*benchmark:\s*([\w/-]+)\s*-->")
NOT_MEASURED = "*Not measured yet*: `benchmarks/results/{name}.json` has not been committed."
NOT_MEASURED_BY = {
    "gpu/gpu_check": "*Not measured on a GPU yet*: `benchmarks/results/gpu/gpu_check.json` has "
    "not been committed. Run `python benchmarks/gpu_check.py` on a CUDA machine to write it.",
}


def svg_of(figure) -> str:
    """``figure`` laid out and closed, as reproducible inline SVG (text kept as text, fixed ids,
    no date), so a rebuilt site changes only when the data does."""
    import matplotlib
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "weditlib"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, everything else as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value).replace("|", "\\|")


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]] | None = None) -> str:
    """A Markdown table; ``columns`` are ``(key, header)`` pairs (default: every key, in order)."""
    flat = [flatten(r) for r in rows]
    if columns is None:
        keys = list(dict.fromkeys(k for r in flat for k in r))
        columns = [(k, k) for k in keys]

    def numeric(key: str) -> bool:
        values = [r[key] for r in flat if r.get(key) is not None]
        return bool(values) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )

    lines = [
        "| " + " | ".join(header for _, header in columns) + " |",
        "|" + "|".join("--:" if numeric(key) else ":--" for key, _ in columns) + "|",
    ]
    for r in flat:
        lines.append("| " + " | ".join(fmt(r.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def metadata(report: dict[str, Any]) -> str:
    """Top-level scalars of a report as a compact list."""
    items = [
        f"**{key}**: {fmt(value)}"
        for key, value in report.items()
        if not isinstance(value, dict | list)
    ]
    return " · ".join(items)


def render_generic(report: Any) -> str:
    """Any report: its scalars, then one table per list of records (nested keys dotted)."""
    if isinstance(report, list):
        report = {"results": report}
    parts = [metadata(report)] if metadata(report) else []
    for key, value in report.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            parts.append(f"**{key}**\n\n{table(value)}")
        elif isinstance(value, dict) and value:
            records = {k: v for k, v in value.items() if isinstance(v, dict)}
            if records:  # a dict of records: one row per key
                rows = [{"": name, **record} for name, record in records.items()]
                parts.append(f"**{key}**\n\n{table(rows)}")
            scalars = {k: v for k, v in value.items() if not isinstance(v, dict)}
            if scalars:
                parts.append(f"**{key}**\n\n{table([scalars])}")
    return "\n\n".join(parts)


EDIT_LINEAR_METHODS = (
    ("planner", "planner"),
    ("naive", "naive"),
    ("vmap", "vmap"),
    ("group_loop", "loop"),
)


def render_edit_linear(report: dict[str, Any]) -> str:
    """``benchmarks/edit_linear.py`` report: machine line, timing table, ratio table."""
    results = report["results"]
    known = {m for m, _ in EDIT_LINEAR_METHODS}
    extra = list(dict.fromkeys(m for r in results for m in r["median_ms"] if m not in known))
    timing_columns = [("case.name", "case"), ("planner_choice", "choice")]
    timing_columns += [(f"median_ms.{m}", f"{label} (ms)") for m, label in EDIT_LINEAR_METHODS]
    timing_columns += [(f"median_ms.{m}", f"{m} (ms)") for m in extra]
    timing_columns += [("floor_ms", "floor (ms)")]
    ratio_columns = [
        ("case.name", "case"),
        ("naive_over_planner", "naive / planner"),
        ("vmap_over_planner", "vmap / planner"),
        ("group_loop_over_planner", "loop / planner"),
        ("planner_over_floor", "planner / floor"),
    ]
    machine = (
        f"Measured on **{fmt(report.get('device'))}** (threads: {fmt(report.get('threads'))}), "
        f"torch {fmt(report.get('torch'))}: GEMM {fmt(report.get('gemm_gflops'))} GFLOP/s, "
        f"copy {fmt(report.get('copy_gbps'))} GB/s. Triton: {fmt(report.get('triton'))}."
    )
    return "\n\n".join(
        [
            machine,
            "Median time per call (lower is better). *choice*: the planner's algorithm; *naive*: "
            "per-sample materialise; *vmap*: `torch.func.vmap(functional_call)`; *loop*: "
            "per-group Python loop (PEFT's mixed batches); *floor*: the physical floor.",
            table(results, timing_columns),
            "Ratios (above 1: the planner is that many times faster; planner / floor: how far "
            "from the physical floor):",
            table(results, ratio_columns),
        ]
    )


def render_edit_conv(report: dict[str, Any]) -> str:
    """``benchmarks/edit_conv.py`` report: timings, ratios against their targets."""
    results = report["results"]
    for r in results:
        case = r["case"]
        r["vmap_target"] = f"≥ {fmt(case['vmap_over_planner_target'])}"
        r["floor_target"] = f"≤ {fmt(case['planner_over_floor_target'])}"
    forced = list(dict.fromkeys(m for r in results for m in r.get("estimated_ms", {})))
    timing_columns = [("case.name", "case"), ("planner_choice", "choice")]
    timing_columns += [
        (f"median_ms.{m}", f"{label} (ms)")
        for m, label in (("planner", "planner"), ("floor", "floor"), ("vmap", "vmap"),
                         ("sample_loop", "per-sample loop"))
    ]  # fmt: skip
    block = [m for m in ("in_edit_block", "materialised") if m in results[0]["median_ms"]]
    timing_columns += [(f"median_ms.{m}", f"{m.replace('_', ' ')} (ms)") for m in block]
    timing_columns += [(f"median_ms.{m}", f"{m} forced (ms)") for m in forced]
    ratio_columns = [
        ("case.name", "case"),
        ("vmap_over_planner", "vmap / planner"),
        ("vmap_target", "target"),
        ("vmap_target_hit", "hit"),
        ("planner_over_floor", "planner / floor"),
        ("floor_target", "target"),
        ("floor_target_hit", "hit"),
        ("sample_loop_over_planner", "loop / planner"),
    ]
    ratio_columns += [(f"{m}_over_floor", f"{m.replace('_', ' ')} / floor") for m in block]
    return "\n\n".join(
        [
            f"Measured on **{fmt(report.get('device'))}** (threads: {fmt(report.get('threads'))}), "
            f"torch {fmt(report.get('torch'))}, median of {fmt(report.get('repeats'))} rounds.",
            "Median time per call (lower is better). *floor*: the same convolution with one "
            "shared kernel over the whole batch. *in edit block*: the planner with the grouping "
            "an `edit()` block builds once; *materialised*: with the kernels built once too "
            "(`edit(..., materialise=True)`).",
            table(results, timing_columns),
            "Ratios against the targets:",
            table(results, ratio_columns),
        ]
    )


def grouped_bars(
    groups: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    lines: list[tuple[float, float, float, str]] = (),
    log: bool = True,
) -> str:
    """SVG of bars for each series in each group; ``lines`` are ``(y, x0, x1, label)`` dashes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = min(0.8 / max(len(series), 1), 0.5)
    figure, axes = plt.subplots(figsize=(8, 3.6))
    for i, (label, ys) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(xs, ys, width, label=label)
    labels = set()
    for y, x0, x1, label in lines:
        axes.hlines(y, x0, x1, colors="black", linestyles="dashed")
        labels.add(label)
    for label in sorted(labels):
        axes.plot([], [], "k--", label=label)
    axes.set_xticks(range(len(groups)), groups)
    if log:
        axes.set_yscale("log")
    axes.set_ylabel(ylabel)
    axes.legend(
        fontsize="small",
        ncols=len(series) + len(labels),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
    )
    return svg_of(figure)


def plot_edit_linear(report: dict[str, Any]) -> str:
    """Median ms per method and case (log), with each case's floor."""
    results = report["results"]
    methods = list(dict.fromkeys(m for r in results for m in r["median_ms"]))
    labels = dict(EDIT_LINEAR_METHODS)
    series = {
        labels.get(m, m): [r["median_ms"].get(m, float("nan")) for r in results] for m in methods
    }
    floors = [(r["floor_ms"], c - 0.45, c + 0.45, "floor") for c, r in enumerate(results)]
    return grouped_bars([r["case"]["name"] for r in results], series, "median ms (log)", floors)


def plot_metrics(report: dict[str, Any]) -> str:
    """Seconds per metric (log): vectorised against the per-speaker loop."""
    rows = report["rows"]
    series = {
        "perfrdiff.metrics": [r["fast_s"] for r in rows],
        "per-speaker loop": [r["loop_s"] for r in rows],
    }
    return grouped_bars([r["metric"] for r in rows], series, "seconds (log)")


def plot_generation(report: dict[str, Any]) -> str:
    """Real-time factor per config (log), with the real-time line at 1."""
    rtf = report["rtf"]
    names = list(rtf)
    series = {"RTF": [rtf[name]["rtf"] for name in names]}
    real_time = [(1.0, -0.5, len(names) - 0.5, "real time")]
    return grouped_bars(names, series, "compute time / window duration (log)", real_time)


def render_metrics(report: dict[str, Any]) -> str:
    """``benchmarks/metrics.py`` report: per-metric times, totals, configuration and checks."""
    rows = [
        {**row, "ratio": row["loop_s"] / row["fast_s"] if row["fast_s"] else float("nan")}
        for row in report["rows"]
    ]
    columns = [
        ("metric", "metric"),
        ("fast_s", "perfrdiff.metrics (s)"),
        ("loop_s", "per-speaker loop (s, extrapolated)"),
        ("ratio", "loop / ours"),
    ]
    if all("fast_cpu_s" in row and "loop_cpu_s" in row for row in rows):
        columns += [("fast_cpu_s", "ours, CPU (s)"), ("loop_cpu_s", "loop, CPU (s)")]
    config = report.get("config", {})
    size = ", ".join(f"{key} = {fmt(value)}" for key, value in config.items())
    parts = [
        f"Configuration: {size}; mean appropriate reactions per speaker "
        f"{fmt(report.get('mean_appropriate'))}.",
        table(rows, columns),
        f"Total: {fmt(report.get('total_fast_s'))} s against {fmt(report.get('total_loop_s'))} s "
        f"(**{fmt(report.get('ratio'))}×** wall"
        + (f", {fmt(report['ratio_cpu'])}× CPU time" if "ratio_cpu" in report else "")
        + f"). FRdist started {fmt(report.get('dtw_started'))} of "
        f"{fmt(report.get('dtw_exhaustive'))} component DTWs of an exhaustive search.",
    ]
    if report.get("checks"):
        checks = [{"check": key, "value": value} for key, value in report["checks"].items()]
        parts += ["Agreement with the loop implementation on the baseline subset:", table(checks)]
    return "\n\n".join(parts)


def render_generation(report: dict[str, Any]) -> str:
    """``benchmarks/generation.py`` report: real-time factor, and the size of the PWSG heads."""
    rtf = [{"config": name, **row} for name, row in report.get("rtf", {}).items()]
    rtf_columns = [
        ("config", "config"),
        ("threads", "threads"),
        ("samples", "samples M"),
        ("ddim_steps", "DDIM steps"),
        ("guidance", "guidance"),
        ("seconds_per_window", "s / window"),
        ("rtf", "RTF (≤ 1: real time)"),
        ("denoiser_parameters", "denoiser parameters"),
    ]
    pwsg = report.get("pwsg", {})
    heads = [row for row in pwsg.values() if isinstance(row, dict)]
    for row in heads:
        row["weights_gib"] = row.get("weights_bytes_fp32", float("nan")) / 2**30
        row["adam_gib"] = row.get("adam_training_bytes_fp32", float("nan")) / 2**30
        row["shift_mib"] = row.get("shift_bytes_per_listener", float("nan")) / 2**20
    pwsg_columns = [
        ("heads", "PWSG heads"),
        ("parameters", "parameters"),
        ("weights_gib", "weights fp32 (GiB)"),
        ("adam_gib", "AdamW training state (GiB)"),
        ("shift_mib", "shifts per listener (MiB)"),
        ("edited_weights", "edited weights"),
    ]
    for row in rtf:
        name = row["config"]
        if name in report.get("rtf_generic", {}):
            row["generic_rtf"] = report["rtf_generic"][name]["rtf"]
            row["personalised_over_generic"] = report["personalised_over_generic"][name]
        if name in report.get("floor", {}):
            row["floor_rtf"] = report["floor"][name]["floor_rtf"]
            row["window_gflop"] = report["floor"][name]["window_gflop"]
    extra = [
        ("generic_rtf", "generic RTF"),
        ("personalised_over_generic", "personalised / generic"),
        ("repeats", "rounds (median of)"),
        ("floor_rtf", "compute floor RTF"),
        ("window_gflop", "GFLOP / window"),
    ]
    rtf_columns += [c for c in extra if any(c[0] in row for row in rtf)]
    # Two tables, so that each fits the page: how it was run, then how fast.
    setup_keys = {"threads", "samples", "ddim_steps", "guidance", "denoiser_parameters", "repeats"}
    setup_columns = [c for c in rtf_columns if c[0] == "config" or c[0] in setup_keys]
    speed_columns = [c for c in rtf_columns if c[0] not in setup_keys]
    parts = [
        f"Measured on **{fmt(report.get('machine'))}** (threads: {fmt(report.get('threads'))}).",
        "Streaming personalised generation: compute time per generated window divided by the "
        "window's duration (2 s). The compute floor is the window's counted flops divided by the "
        "measured GEMM rate.",
        table(rtf, setup_columns) if rtf else "*No real-time factor in this report.*",
        table(rtf, speed_columns) if rtf else "",
        "The shift generator for the paper's edit set (cross-attention and output mapping of "
        "the 7-layer, d = 512 denoiser):",
        table(heads, pwsg_columns) if heads else "*No PWSG sizes in this report.*",
    ]
    by_steps = report.get("rtf_by_steps")
    if by_steps:
        parts.append(
            "Paper config at fewer DDIM steps: "
            + ", ".join(f"{steps} steps RTF **{fmt(rtf)}**" for steps, rtf in by_steps.items())
            + "."
        )
    if report.get("rtf_solvers"):
        parts.append(render_solver_rtf(report["rtf_solvers"]))
    if "low_rank_over_dense" in pwsg:
        parts.append(f"Low-rank / dense parameters: **{pwsg['low_rank_over_dense']:.4%}**.")
    if report.get("frcorr"):
        parts += ["PMAFRG FRCorr, low-rank vs dense heads:", render_generic(report["frcorr"])]
    return "\n\n".join(parts)


def render_solver_rtf(solvers: dict[str, Any]) -> str:
    """The paper config's RTF per solver, steps and precision, with floors and rates."""
    rates = solvers["rates_gflops"]
    load = solvers["load_average_before_after"]
    columns = [
        ("solver", "solver"), ("ddim_steps", "steps"), ("precision", "precision"),
        ("seconds_per_window", "s / window"), ("rtf", "RTF"), ("floor_rtf", "floor RTF"),
        ("window_gflop", "GFLOP / window"), ("repeats", "rounds (median of)"),
    ]  # fmt: skip
    if all("setup_seconds" in row for row in solvers["rows"]):
        columns.insert(6, ("setup_seconds", "listener setup s"))
    return "\n\n".join([
        f"Paper config per solver, steps and precision (personalised, `M` = "
        f"{solvers['rows'][0]['samples']}, {solvers['threads']} threads, rows timed in "
        f"alternating rounds in one run; load average {fmt(load[0])} before, {fmt(load[1])} "
        "after). A stream's steady windows are timed apart from the listener's one-off setup "
        "(history to shifts, once per stream). Floors: the window's GEMM flops at the GEMM rate "
        "plus its attention flops at the attention rate, both measured in the same run: "
        + "; ".join(f"{p} GEMM {fmt(r['gemm'])}, attention {fmt(r['attention'])} GFLOP/s"
                    for p, r in rates.items()) + ".",
        table(solvers["rows"], columns),
        *(["**Notes on these rows**: " + solvers["notes"]] if solvers.get("notes") else []),
    ])  # fmt: skip


#: The personalisation benchmark's measures: (key, header), in its table's order.
LIKENESS_COLUMNS = [
    ("MAFRG FRCorr", "MAFRG FRCorr ↑"),
    ("PMAFRG FRCorr", "PMAFRG FRCorr ↑"),
    ("MAFRG FRdist", "MAFRG FRdist ↓"),
    ("PMAFRG FRdist", "PMAFRG FRdist ↓"),
    ("own CCC", "own CCC ↑"),
    ("own DTW", "own DTW ↓"),
    ("identification", "identification ↑"),
    ("level error", "level error ↓"),
    ("expressivity error", "expressivity error ↓"),
]


def _interval(row: dict[str, Any]) -> str:
    return f"{row['value']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def _comparison_table(comparisons: list[dict[str, Any]]) -> str:
    """One row per (method, reference), one column per measure: "value [low, high]"."""
    pivot: dict[str, dict[str, Any]] = {}
    for c in comparisons:
        cell = pivot.setdefault(f"{c['method']} / {c['reference']}", {})
        cell[c["measure"]] = _interval(c) + (" (diff.)" if c["statistic"] == "difference" else "")
    rows = [{"comparison": name, **cells} for name, cells in pivot.items()]
    return table(rows, [("comparison", "comparison"), *LIKENESS_COLUMNS])


def _items(dataset: dict[str, Any]) -> int:
    """How many items a personalisation report scored (``test_items`` before ``--split``)."""
    return dataset["items"] if "items" in dataset else dataset["test_items"]


def _personalisation_dataset(dataset: dict[str, Any]) -> list[str]:
    r = dataset["retrieval"]
    history = dataset.get("history", {}).get("items", {})
    targets = [{"target": key, "value": value} for key, value in dataset["targets"].items()]
    head = (
        f"{fmt(_items(dataset))} {fmt(dataset.get('split', 'test'))} items × "
        f"{fmt(dataset['samples'])} samples; "
        f"histories: {fmt(', '.join(f'{k} {v}' for k, v in history.items()))}. Style "
        f"retrieval ({fmt(r['input'])}, {fmt(r['frames'])} frames, {fmt(r['queries'])} "
        f"held-out clips, {fmt(r['listeners'])} listeners): **top-1 {fmt(r['top1'])}**, "
        f"top-5 {fmt(r['top5'])}."
    )
    if "comparisons" not in dataset:  # a report from before both label sets were scored
        columns = [("method", "method"), ("task", "task"), ("FRCorr", "FRCorr ↑"),
                   ("FRCorr_over_generic", "FRCorr / generic"), ("FRdist", "FRdist ↓")]  # fmt: skip
        note = "*Measured before the PMAFRG label set: FRCorr and FRdist on MAFRG labels only.*"
        return [head, note, table(dataset["methods"], columns), table(targets)]
    head += (
        f" {fmt(dataset['listeners'])} listeners; sampling seeds {fmt(dataset['seeds'])} "
        f"(averaged per item); identification of the real reactions "
        f"{fmt(dataset['identification_of_real_reactions'])}; role: {fmt(dataset['role'])}."
    )
    kept = [step for steps in dataset.get("upper_bound_steps_kept", {}).values() for step in steps]
    if kept:
        head += (
            f" Upper bound: early stopping kept {fmt(sum(kept) / len(kept))} fine-tuning steps "
            f"per item on average; {fmt(sum(s == 0 for s in kept))} of {fmt(len(kept))} kept "
            "the generic model."
        )
    methods = table(dataset["methods"], [("method", "method"), *LIKENESS_COLUMNS])
    ratios = (
        "Ratios (identification: differences) with 95% paired bootstrap intervals over listeners:"
    )
    return [head, methods, ratios, _comparison_table(dataset["comparisons"]), table(targets)]


def render_personalisation(report: dict[str, Any]) -> str:
    """``benchmarks/personalisation.py`` report: per dataset, retrieval, every method on both
    label sets and the measures of "like this listener", ratios with intervals, targets."""
    parts = []
    for dataset in report["datasets"]:
        parts += [f"### {dataset['dataset']}", *_personalisation_dataset(dataset)]
    return "\n\n".join(parts)


def render_ablation(report: dict[str, Any]) -> str:
    """``perfrdiff ablate`` report: one table per paper table; a row compared with GAFRG shows
    its ratio to it with the 95% interval over listeners."""
    metrics = [
        (f"{task} {metric}", f"{task} {metric} {arrow}")
        for task in ("MAFRG", "PMAFRG")
        for metric, arrow in (("FRCorr", "↑"), ("FRdist", "↓"))
    ]
    titles = {"3": "Table 3: how the style enters", "4": "Table 4: which weights are edited"}
    setup = f"Overrides of the retrained rows: {fmt(report.get('overrides') or 'none')}."
    if "seeds" in report:
        setup += (
            f" {fmt(report.get('items'))} test items, {fmt(report.get('listeners'))} listeners,"
            f" sampling seeds {fmt(report['seeds'])}; in brackets: the ratio to GAFRG and its"
            " 95% interval."
        )
    parts = [setup]
    for name in dict.fromkeys(row["table"] for row in report["rows"]):
        cells = []
        for row in (row for row in report["rows"] if row["table"] == name):
            ratios = row.get("vs GAFRG", {})
            cell = {"row": row["row"]}
            for key, _ in metrics:
                ratio = f" ({_interval(ratios[key])})" if key in ratios else ""
                cell[key] = fmt(row[key]) + ratio
            cells.append(cell)
        parts += [f"**{titles.get(name, name)}**", table(cells, [("row", "row"), *metrics])]
    return "\n\n".join(parts)


def render_gpu_check(report: dict[str, Any]) -> str:
    """``benchmarks/gpu_check.py`` report; a CPU dry run is never presented as a GPU number."""
    if not report.get("measured_on_gpu"):
        return (
            "*Not measured on a GPU*: this report is the script's CPU dry run "
            f"({fmt(report.get('note'))})."
        )
    steps = report.get("steps", {})
    status = [
        {"step": name, "ok": step.get("ok"), "seconds": step.get("seconds")}
        for name, step in steps.items()
    ]
    parts = [
        f"Measured on **{fmt(report.get('device'))}** (torch {fmt(report.get('torch'))}), "
        f"{fmt(report.get('total_seconds'))} s in all.",
        table(status),
    ]
    kernels = steps.get("kernels", {}).get("result")
    if kernels:
        parts.append(
            f"Compiled Triton kernels: **{kernels['passed']} / {kernels['cases']}** cases within "
            f"tolerance of the float64 reference ({', '.join(kernels['algorithms'])})."
        )
    for name, title in (("training", "Training steps/s"), ("generation", "Generation")):
        rows = steps.get(name, {}).get("result")
        if rows:
            parts += [f"**{title}**", table(rows)]
    metrics = steps.get("metrics", {}).get("result")
    if metrics:
        parts.append(
            f"Metrics of one REACT-test-sized evaluation ({metrics['speakers']} speakers x "
            f"{metrics['samples']} samples, {fmt(metrics.get('cpus'))} CPUs): "
            f"**{fmt(metrics['seconds'])} s**."
        )
    batching = steps.get("react2026_batching", {}).get("result")
    if batching:
        columns = [("task", "task"), ("ours_per_s", "ours / s"),
                   ("official_per_s", "official / s"), ("ratio", "ours / official")]  # fmt: skip
        parts += ["**REACT 2026: batched listeners against the baseline's weight assignment**",
                  table(batching["results"], columns)]  # fmt: skip
    failed = {name: step.get("error") for name, step in steps.items() if not step.get("ok")}
    if failed:
        parts += ["**Failed steps**", table([{"step": k, "error": v} for k, v in failed.items()])]
    return "\n\n".join(parts)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def peft_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``peft_mixed`` results with the ratios to the base model, and the best PEFT / weditlib
    can reach: PEFT / base (weditlib cannot be faster than the base model it edits)."""
    rows = []
    for r in report["results"]:
        rows.append(
            {
                **r,
                "peft_over_base": _ratio(r["peft_ms"], r["base_ms"]),
                "peft_over_weditlib_bound": _ratio(r["peft_ms"], r["base_ms"]),
            }
        )
    return rows


PEFT_TARGET = re.compile(
    r"^(?P<what>.+?)(?:, (?P<case>T=\d+|train step))? (?P<op>[<>]=) (?P<value>[\d.]+)$"
)


def peft_target_status(target: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """met / missed, or "out of reach" for a PEFT / weditlib inference target above PEFT / base
    (weditlib would have to be faster than the unedited model)."""
    if target.get("hit"):
        return "met"
    match = PEFT_TARGET.match(target["target"])
    row = next(
        (r for r in rows if r["model"] == target["model"] and r["tokens"] == target["tokens"]),
        None,
    )
    if match and match["what"] == "PEFT / weditlib" and row is not None:
        bound = row["peft_over_weditlib_bound"]
        if bound is not None and bound < float(match["value"]):
            return f"out of reach (at most {bound:.2f})"
    return "missed"


def render_peft_mixed(report: dict[str, Any]) -> str:
    """``benchmarks/peft_mixed.py`` report: inference and training tables with readable headers,
    exactness against PEFT, and each target with why it was missed."""
    rows = peft_rows(report)
    inference = [
        ("model", "model"),
        ("tokens", "T"),
        ("base_ms", "base ms"),
        ("weditlib_over_base", "weditlib / base"),
        ("peft_over_base", "PEFT / base"),
        ("peft_over_weditlib", "PEFT / weditlib"),
        ("decode_weditlib_over_base", "10-token decode / base"),
    ]
    training = [
        ("model", "model"),
        ("tokens", "T"),
        ("train_weditlib_ms", "weditlib ms"),
        ("train_peft_loop_ms", "PEFT loop ms"),
        ("peft_loop_over_weditlib", "PEFT loop / weditlib"),
        ("max_output_diff", "max output diff"),
        ("max_lora_A_grad_diff", "max grad diff"),
    ]
    targets = [{**t, "status": peft_target_status(t, rows)} for t in report.get("targets", [])]
    target_columns = [
        ("target", "target"),
        ("model", "model"),
        ("tokens", "T"),
        ("measured", "measured"),
        ("status", "status"),
    ]
    setup = (
        f"{fmt(report.get('adapters'))} adapters × {fmt(report.get('samples_per_adapter'))} "
        f"samples, rank {fmt(report.get('rank'))}, {fmt(report.get('dtype'))}, on "
        f"{fmt(report.get('device'))} with {fmt(report.get('threads'))} threads "
        f"(torch {fmt(report.get('torch'))})."
    )
    return "\n\n".join(
        [
            setup,
            "**Inference** (one forward of the mixed batch; ratios of medians):",
            table(rows, inference),
            "**Training step** (forward, backward, SGD step) and agreement with PEFT (float32):",
            table(rows, training),
            "**Targets**",
            table(targets, target_columns),
        ]
    )


def plot_peft_mixed(report: dict[str, Any]) -> str:
    """Inference time over the base model's, weditlib's and PEFT's, per model and T, with the
    weditlib / base targets as dashes."""
    rows = peft_rows(report)
    groups = [f"{r['model']}\nT = {r['tokens']}" for r in rows]
    series = {
        "weditlib / base": [r["weditlib_over_base"] for r in rows],
        "PEFT / base": [r["peft_over_base"] for r in rows],
    }
    lines = []
    for target in report.get("targets", []):
        match = PEFT_TARGET.match(target["target"])
        if match and match["what"] == "weditlib / base":
            column = next(
                i
                for i, r in enumerate(rows)
                if r["model"] == target["model"] and r["tokens"] == target["tokens"]
            )
            lines.append((float(match["value"]), column - 0.45, column + 0.45, "weditlib target"))
    return grouped_bars(groups, series, "time / base model's (1: no adapters)", lines, log=False)


def plot_roofline(report: dict[str, Any]) -> str:
    """The H100 roofline (attainable TFLOP/s against flop per byte, log-log) with each
    algorithm of each benchmark shape at its floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = report["settings"]
    peak, bandwidth = settings["peak_tflops"], settings["bandwidth_tbs"]
    rows = report["rows"]
    figure, axes = plt.subplots(figsize=(8, 4.2))
    intensities = [r["intensity"] for r in rows]
    low, high = min(intensities) / 2, max(max(intensities), peak / bandwidth) * 4
    xs = [low * (high / low) ** (i / 200) for i in range(201)]
    axes.plot(xs, [min(peak, bandwidth * x) for x in xs], "k-", label="roof: min(peak, bw × I)")
    markers = dict(
        zip(dict.fromkeys(r["algorithm"].split(" ")[0] for r in rows), "os^Dv<>", strict=False)
    )
    for case in dict.fromkeys(r["case"] for r in rows):
        color = axes._get_lines.get_next_color()
        for r in (r for r in rows if r["case"] == case):
            achieved = r["flops"] / (r["floor_us"] * 1e-6) / 1e12
            axes.plot(r["intensity"], achieved, markers[r["algorithm"].split(" ")[0]], color=color)
        axes.plot([], [], "s", color=color, label=case)
    for name, marker in markers.items():
        axes.plot([], [], marker, color="grey", label=name)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("arithmetic intensity (flop / byte of HBM traffic)")
    axes.set_ylabel("TFLOP/s at the floor")
    axes.axvline(peak / bandwidth, color="grey", linestyle=":", linewidth=1)
    axes.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return svg_of(figure)


def plot_solver_quality(report: dict[str, Any]) -> str:
    """PMAFRG FRCorr and FRdist relative to DDIM-50 fp32 against steps (log), one panel per
    metric, a line per solver and precision, a marker per style family; the issue's bounds
    dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["mode"] == "personalised"]
    families = list(dict.fromkeys(r["family"] for r in rows))
    figure, panels = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    for axes, metric in zip(panels, ("FRCorr", "FRdist"), strict=True):
        for solver in dict.fromkeys(r["solver"] for r in rows):
            color = axes._get_lines.get_next_color()
            for precision, style in (("fp32", "-"), ("bf16", "--")):
                for family, marker in zip(families, "os^D", strict=False):
                    line = sorted(
                        (r["steps"], 100 * r[f"{metric}_vs_ref"])
                        for r in rows
                        if (r["solver"], r["precision"], r["family"]) == (solver, precision, family)
                    )
                    if line:
                        axes.plot(*zip(*line, strict=True), style, marker=marker, color=color,
                                  markersize=4)  # fmt: skip
            axes.plot([], [], "-", color=color, label=solver)
        bound = 100 * report["bounds"][metric]
        axes.axhline(bound, color="black", linestyle=":", linewidth=1)
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.set_xscale("log")
        axes.set_xticks([3, 5, 10, 20, 50], ["3", "5", "10", "20", "50"])
        axes.minorticks_off()
        axes.set_xlabel("denoising steps")
        axes.set_ylabel(f"PMAFRG {metric} vs DDIM-50 fp32 (%)")
    panels[0].plot([], [], "k--", label="bf16")
    for family, marker in zip(families, "os^D", strict=False):
        panels[0].plot([], [], marker, color="grey", label=family)
    panels[0].legend(fontsize="x-small")
    return svg_of(figure)


def _relative_change(row: dict[str, Any], metric: str) -> str:
    """``"+0.1% [-0.1, +0.6]"``: a row's relative change of ``metric`` and its interval, in %."""
    change, interval = row.get(f"{metric}_vs_ref"), row.get(f"{metric}_ci")
    if change is None or interval is None:
        return "ref"
    low, high = (100 * bound for bound in interval)
    return f"{100 * change:+.1f}% [{low:+.1f}, {high:+.1f}]"


def render_solver_quality(report: dict[str, Any]) -> str:
    """``benchmarks/solver_quality.py`` report: one table per style family and mode."""
    # A change and its interval share a cell, so that the table fits a laptop window.
    columns = [
        ("solver", "solver"), ("steps", "steps"), ("precision", "precision"),
        ("FRCorr", "FRCorr"), ("FRCorr_change", "vs ref [95% CI]"),
        ("FRdist", "FRdist"), ("FRdist_change", "vs ref [95% CI]"),
        ("FRDiv", "FRDiv"), ("FRVar", "FRVar"), ("inside_vs_real", "motion / real"),
        ("join_ratio", "seams"),
    ]  # fmt: skip
    parts = [
        f"Reference: **{report['reference']}**; {report['seeds']} noise seeds, "
        f"{report['samples']} samples per item; differences are relative, with paired "
        "bootstrap 95% intervals over test items."
    ]
    rows = report["rows"]
    for family in dict.fromkeys(r["family"] for r in rows):
        for mode in ("personalised", "generic"):
            chosen = [
                {**r, **{f"{m}_change": _relative_change(r, m) for m in ("FRCorr", "FRdist")}}
                for r in rows
                if (r["family"], r["mode"]) == (family, mode)
            ]
            if chosen:
                parts += [f"**{family}, {mode}** ({chosen[0]['items']} test items):",
                          table(chosen, columns)]  # fmt: skip
    return "\n\n".join(parts)


def short_paragraphs(text: str, words: int = 90) -> list[str]:
    """``text`` cut between sentences into paragraphs of about ``words`` words at most."""
    sentences = re.split(r"(?<=[.;:])\s+(?=[A-Z(`*])", text.strip())
    paragraphs, current = [], []
    for sentence in sentences:
        if current and len(" ".join([*current, sentence]).split()) > words:
            paragraphs.append(" ".join(current))
            current = []
        current.append(sentence)
    return [*paragraphs, " ".join(current)] if current else paragraphs


_SVG_CACHE: dict[str, str | None] = {}


def plot(name: str, report: Any) -> str | None:
    """The SVG plot of a report, or None when the benchmark has none or its JSON cannot be
    plotted (drawn once per build, for both the page and the generated file)."""
    if name not in PLOTTERS:
        return None
    key = f"{name}:{json.dumps(report, sort_keys=True)}"
    if key not in _SVG_CACHE:
        try:
            _SVG_CACHE[key] = PLOTTERS[name](report)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            logging.getLogger("mkdocs.hooks").info("%s.json: no plot (%r)", name, error)
            _SVG_CACHE[key] = None
    return _SVG_CACHE[key]


def render_react2026_online(report: dict[str, Any]) -> str:
    """The long and the short sequence side by side: memory, then time per frame measured in
    each length's own process and with the long one between two short ones."""
    short, long, ratios = report["short"], report["long"], report["ratios"]
    rows = [
        ("peak resident memory (MB)", short["peak_rss_mb"], long["peak_rss_mb"],
         f"+{fmt(ratios['peak_rss_difference_mb'])} MB"),
        ("output array (MB)", short["output_mb"], long["output_mb"],
         f"+{fmt(ratios['output_difference_mb'])} MB"),
    ]  # fmt: skip
    for clock in ("wall", "cpu"):
        own = f"{ratios[f'{clock}_per_frame_ratio']:.3f}×"
        rows.append((f"{clock} ms / frame, own process", short[f"{clock}_ms_per_frame"],
                     long[f"{clock}_ms_per_frame"], own))  # fmt: skip
        between = long["bracketed"][clock]
        rows.append((f"{clock} ms / frame, long between shorts", between["short_ms_per_frame"],
                     between["long_ms_per_frame"], f"{between['ratio']:.3f}×"))  # fmt: skip
    header = f"| | {short['frames']} frames | {long['frames']} frames | long vs short |"
    lines = [header, "|---|---:|---:|---:|"]
    lines += [f"| {name} | {fmt(a)} | {fmt(b)} | {change} |" for name, a, b, change in rows]
    targets = report["targets"]
    note = (
        f"{report['config']['samples']} samples; targets: memory within "
        f"{fmt(targets['memory_mb'])} MB, time per frame within ±{targets['time_per_frame']:.0%}."
    )
    return "\n".join(lines) + "\n\n" + note


def render_react2026_personalisation(report: dict[str, Any]) -> str:
    """One row per method: FRCorr of each seed, then the means, FRCorr over generic and FRdist;
    the issue's targets below."""
    seeds, summary = report["seeds"], report["summary"]
    header = "| online track | " + " | ".join(f"FRCorr seed {s['seed']}" for s in seeds)
    header += " | FRCorr | / generic | FRdist |"
    lines = [header, "|:--|" + "--:|" * (len(seeds) + 3)]
    for row, mean in summary["mean"].items():
        cells = " | ".join(fmt(s["metrics"][row]["FRCorr"]) for s in seeds)
        ratio = f"{summary['frcorr_over_generic'][row]:.3f}×"
        lines.append(f"| {row} | {cells} | {fmt(mean['FRCorr'])} | {ratio} | "
                     f"{fmt(mean['FRdist'])} |")  # fmt: skip
    targets = "; ".join(
        f"{name}: {'met' if ok else 'not met'}" for name, ok in summary["targets"].items()
    )
    config = report["config"]
    note = (f"{config['samples']} samples, overrides {fmt(config['overrides'])}, means over "
            f"{len(seeds)} seed(s). Targets: {targets}.")  # fmt: skip
    if "personality_level_r2" in report:  # reports written before it was measured lack it
        r2 = report["personality_level_r2"]
        note += (f" Levels the Big Five predict (R²): {fmt(r2['train'])} on the training "
                 f"sequences, {fmt(r2['test'])} on the test ones.")  # fmt: skip
    return "\n".join(lines) + "\n\n" + note


def render_speaker_coupling(report: dict[str, Any]) -> str:
    """``benchmarks/speaker_coupling.py`` report: per dataset, each method's correlation with
    the item's own real reaction, and the baselines' FRCorr and FRdist."""
    columns = [
        ("method", "method"),
        ("own", "own corr. ↑"),
        ("AUs", "AUs"),
        ("valence/arousal", "valence/arousal"),
        ("expressions", "expressions"),
        ("MAFRG FRCorr", "MAFRG FRCorr ↑"),
        ("MAFRG FRdist", "MAFRG FRdist ↓"),
        ("PMAFRG FRCorr", "PMAFRG FRCorr ↑"),
    ]
    parts = []
    for dataset in report["datasets"]:
        rows = []
        for method, values in dataset["methods"].items():
            own = values["own correlation"]
            row = {"method": method, "own": own["all"], **{k: own[k] for k in own if k != "all"}}
            rows.append(row | {k: values.get(k) for k, _ in columns[5:]})
        parts += [
            f"**{dataset['dataset']}**: {dataset['items']} test items; the speaker's own clip "
            f"is an appropriate reaction of {dataset['mirror items appropriate']} of them; "
            f"ridge weight {fmt(dataset['ridge weight (chosen on val)'])} (chosen on val); "
            f"generated samples at seeds {fmt(dataset['seeds'])}.",
            table(rows, columns),
        ]
    return "\n\n".join(parts)


def render_personal_response(report: dict[str, Any]) -> str:
    """``benchmarks/personal_response.py`` report: per family, each closed-form predictor under
    each view of the speaker, against the item's own reaction and on both label sets."""
    columns = [
        ("view", "view"),
        ("method", "method"),
        ("own_correlation", "own corr. ↑"),
        ("own_ccc", "own CCC ↑"),
        ("frcorr_MAFRG", "MAFRG FRCorr ↑"),
        ("frdist_MAFRG", "MAFRG FRdist ↓"),
        ("frcorr_PMAFRG", "PMAFRG FRCorr ↑"),
        ("frdist_PMAFRG", "PMAFRG FRdist ↓"),
    ]
    parts = []
    for name, family in report["families"].items():
        rows = [
            {"view": view, "method": method, **values}
            for view, methods in family["views"].items()
            for method, values in methods.items()
        ]
        parts += [
            f"**{name}** ({family['role']}): {family['split']} split, {family['items']} items.",
            table(rows, columns),
        ]
    return "\n\n".join(parts) + (
        f"\n\nWindow {report['window']}; ridge weight of a listener's map around the shared "
        f"one {fmt(report['weight'])}; each predictor scored as {report['samples']} identical "
        "samples."
    )


RENDERERS = {
    "personal_response": render_personal_response,
    "personal_response_test": render_personal_response,
    "speaker_coupling": render_speaker_coupling,
    "react2026_personalisation": render_react2026_personalisation,
    "react2026_online": render_react2026_online,
    "edit_linear": render_edit_linear,
    "edit_conv": render_edit_conv,
    "metrics": render_metrics,
    "metrics_near": render_metrics,
    "generation": render_generation,
    "personalisation": render_personalisation,
    "personalisation_candidates": render_personalisation,
    "personalisation_model_candidates": render_personalisation,
    "personalisation_training_seed": render_personalisation,
    "personalisation_response": render_personalisation,
    "ablation": render_ablation,
    "ablation_heldout": render_ablation,
    "gpu/gpu_check": render_gpu_check,
    "peft_mixed": render_peft_mixed,
    "solver_quality": render_solver_quality,
}
PLOTTERS = {
    "edit_linear": plot_edit_linear,
    "metrics": plot_metrics,
    "metrics_near": plot_metrics,
    "generation": plot_generation,
    "peft_mixed": plot_peft_mixed,
    "roofline": plot_roofline,
    "solver_quality": plot_solver_quality,
}


def load(name: str, results: Path = RESULTS) -> Any | None:
    path = results / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def render(name: str, results: Path = RESULTS) -> str:
    """The Markdown that replaces ``<!-- benchmark: name -->``."""
    report = load(name, results)
    if report is None and name in NOT_MEASURED_BY:
        return NOT_MEASURED_BY[name]
    if report is None:
        return NOT_MEASURED.format(name=name)
    try:
        body = RENDERERS.get(name, render_generic)(report)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        # The script's JSON changed shape: still show its numbers, as generic tables.
        logging.getLogger("mkdocs.hooks").info("%s.json: generic tables (%r)", name, error)
        body = render_generic(report)
    if name in RENDERERS and isinstance(report, dict) and report.get("notes"):
        notes = report["notes"]
        notes = notes if isinstance(notes, str) else " ".join(map(str, notes))
        body += "\n\n**Notes** (from the report): " + "\n\n".join(short_paragraphs(notes))
    source = f"*Source: `benchmarks/results/{name}.json`, rendered when the site is built.*"
    if plot(name, report) is not None:
        body += f"\n\n![{name} benchmark plot](benchmarks/{name}.svg)"
    return f"{body}\n\n{source}"


def render_page(markdown: str, results: Path = RESULTS) -> str:
    return PLACEHOLDER.sub(lambda match: render(match.group(1), results), markdown)


CLI_PLACEHOLDER = "<!-- perfrdiff-cli-help -->"


def cli_help(columns: int = 100) -> str:
    """One section per ``perfrdiff`` sub-command with its ``--help``, from the real parsers."""
    import argparse
    import os

    from perfrdiff import cli

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)  # argparse wraps help text to the terminal width
    try:
        top = argparse.ArgumentParser(prog="perfrdiff")
        sub = top.add_subparsers()
        overview = cli.build_parser().format_help().rstrip()
        sections = [f"## `perfrdiff`\n\n```text\n{overview}\n```"]
        for name, module_name in cli.COMMANDS.items():
            try:
                parser = cli.command_parser(sub, name, module_name)
            except ImportError as error:
                logging.getLogger("mkdocs.hooks").info("perfrdiff %s: %s", name, error)
                sections.append(
                    f'## `perfrdiff {name}`\n\n!!! warning "Not available in this build"\n'
                    f"    `perfrdiff.commands.{module_name}` could not be imported: {error}."
                )
                continue
            text = parser.format_help().rstrip()
            sections.append(f"## `perfrdiff {name}`\n\n```text\n{text}\n```")
        return "\n\n".join(sections)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


# ---- mkdocs events -------------------------------------------------------------------------


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for name in PLOTTERS:
        report = load(name)
        svg = None if report is None else plot(name, report)
        if svg is not None:
            files.append(File.generated(config, f"benchmarks/{name}.svg", content=svg))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    markdown = render_page(markdown)
    if CLI_PLACEHOLDER in markdown:
        markdown = markdown.replace(CLI_PLACEHOLDER, cli_help())
    return markdown
