"""docs/hooks.py: benchmark tables come from the JSON, and a missing JSON says so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import DOCS


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EDIT_LINEAR = {
    "device": "cpu",
    "threads": 2,
    "torch": "2.13.0",
    "gemm_gflops": 101.5,
    "copy_gbps": 9.87,
    "triton": "not measured (no CUDA device with Triton)",
    "results": [
        {
            "case": {"name": "dense 16x10, T=50", "listeners": 16, "samples": 10, "tokens": 50},
            "planner_choice": "materialise",
            "median_ms": {"planner": 20.25, "naive": 87.5, "vmap": 68.0, "group_loop": 30.0},
            "floor_ms": 19.0,
            "vmap_over_planner": 3.358,
            "naive_over_planner": 4.321,
            "group_loop_over_planner": 1.481,
            "planner_over_floor": 1.066,
        }
    ],
}


def test_missing_results_say_not_measured(hooks, tmp_path: Path):
    page = "## A\n\n<!-- benchmark: edit_linear -->\n\n## B\n\n<!-- benchmark: generation -->\n"
    rendered = hooks.render_page(page, tmp_path)
    assert rendered.count("Not measured yet") == 2
    assert "benchmarks/results/generation.json" in rendered
    assert "<!--" not in rendered


def test_edit_linear_table_is_read_from_the_json(hooks, tmp_path: Path):
    (tmp_path / "edit_linear.json").write_text(json.dumps(EDIT_LINEAR))
    rendered = hooks.render_page("<!-- benchmark: edit_linear -->", tmp_path)
    assert "| dense 16x10, T=50 | materialise | 20.25 | 87.5 | 68 | 30 | 19 |" in rendered
    assert "| case | choice | planner (ms) | naive (ms) | vmap (ms) | loop (ms) | floor (ms) |" in (
        rendered
    )
    assert "| dense 16x10, T=50 | 4.321 | 3.358 | 1.481 | 1.066 |" in rendered
    assert "GEMM 101.5 GFLOP/s" in rendered
    assert "![edit_linear benchmark plot](benchmarks/edit_linear.svg)" in rendered


def test_a_report_of_another_shape_still_shows_its_numbers(hooks, tmp_path: Path):
    changed = {"device": "cpu", "results": [{"case": "dense", "ms": 12.5}]}
    (tmp_path / "edit_linear.json").write_text(json.dumps(changed))
    rendered = hooks.render_page("<!-- benchmark: edit_linear -->", tmp_path)
    assert "| dense | 12.5 |" in rendered
    assert "edit_linear.svg" not in rendered  # no plot of a report it cannot read


def test_edit_linear_plot_is_an_svg(hooks):
    svg = hooks.plot_edit_linear(EDIT_LINEAR)
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert "dense 16x10, T=50" in svg


def test_unknown_report_gets_generic_tables(hooks, tmp_path: Path):
    report = {
        "device": "cpu",
        "rows": [{"what": "x", "ms": 1.23456}],
        "config": {"n": 3},
        "by_size": {"small": {"ms": 1.0}, "large": {"ms": 20.0}},
    }
    (tmp_path / "other.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: other -->", tmp_path)
    assert "**device**: cpu" in rendered
    assert "| x | 1.235 |" in rendered
    assert "| 3 |" in rendered
    assert "| small | 1 |" in rendered and "| large | 20 |" in rendered


def test_generation_report(hooks, tmp_path: Path):
    report = {
        "machine": "x86_64",
        "threads": 2,
        "rtf": {
            "tiny": {
                "windows": 3, "samples": 10, "ddim_steps": 10, "guidance": 1.0,
                "seconds_per_window": 0.5, "rtf": 0.25, "denoiser_parameters": 1000,
                "threads": 1,
            }
        },
        "pwsg": {
            "dense": {"heads": "dense", "parameters": 2**30, "weights_bytes_fp32": 2**32,
                      "adam_training_bytes_fp32": 2**34, "shift_bytes_per_listener": 2**20,
                      "edited_weights": 15},
            "low_rank_over_dense": 0.001,
        },
        "notes": "measured on a quiet CPU",
    }  # fmt: skip
    (tmp_path / "generation.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: generation -->", tmp_path)
    assert "| tiny | 1 | 10 | 10 | 1 | 1000 |" in rendered  # how it was run
    assert "| tiny | 0.5 | 0.25 |" in rendered  # how fast
    assert "| dense | 1,073,741,824 | 4 | 16 | 1 | 15 |" in rendered
    assert "0.1000%" in rendered
    assert "(benchmarks/generation.svg)" in rendered
    assert "**Notes** (from the report): measured on a quiet CPU" in rendered


def test_metrics_report(hooks, tmp_path: Path):
    report = {
        "config": {"speakers": 806, "samples": 10},
        "mean_appropriate": 10.2,
        "rows": [{"metric": "FRdist", "fast_s": 2.0, "loop_s": 200.0}],
        "total_fast_s": 2.0,
        "total_loop_s": 200.0,
        "ratio": 100.0,
        "dtw_started": 10,
        "dtw_exhaustive": 100,
        "checks": {"FRdist max |diff|": 0.0},
    }
    (tmp_path / "metrics.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: metrics -->", tmp_path)
    assert "| FRdist | 2 | 200 | 100 |" in rendered
    assert "FRdist max \\|diff\\|" in rendered  # pipes escaped inside table cells
    assert "(benchmarks/metrics.svg)" in rendered
    assert "</svg>" in hooks.plot_metrics(report)


def test_cli_help_covers_every_command(hooks):
    from perfrdiff import cli

    text = hooks.cli_help()
    for name in cli.COMMANDS:
        assert f"## `perfrdiff {name}`" in text
    assert "Not available" not in text


def test_personalisation_report(hooks, tmp_path: Path):
    methods = [
        {"method": "generic", "task": "MAFRG", "FRCorr": 0.5, "FRdist": 90.0,
         "FRCorr_over_generic": 1.0},
        {"method": "personalised", "task": "PMAFRG", "FRCorr": 0.56, "FRdist": 88.0,
         "FRCorr_over_generic": 1.12},
    ]  # fmt: skip
    report = {
        "datasets": [
            {
                "dataset": "coupled-latent",
                "test_items": 48,
                "samples": 10,
                "history": {"items": {"same-split": 48, "other-split": 0, "same-clip": 0}},
                "retrieval": {
                    "top1": 0.9375,
                    "top5": 1.0,
                    "queries": 32,
                    "listeners": 12,
                    "frames": 250,
                    "input": "emotion",
                },
                "methods": methods,
                "targets": {"frcorr_over_generic": 1.12, "frcorr_over_generic_hit": True},
            }
        ]
    }
    (tmp_path / "personalisation.json").write_text(json.dumps(report))
    page = hooks.render("personalisation", tmp_path)
    assert "### coupled-latent" in page and "top-1 0.9375" in page
    assert "| personalised | PMAFRG | 0.56 | 1.12 | 88 |" in page
    assert "| frcorr_over_generic_hit | true |" in page


def test_personalisation_report_with_both_label_sets_and_intervals(hooks, tmp_path: Path):
    measures = {key: 0.5 for key, _ in hooks.LIKENESS_COLUMNS}
    dataset = {
        "dataset": "held-out-family",
        "role": "held out (reported only)",
        "test_items": 30,
        "listeners": 12,
        "samples": 10,
        "seeds": [0, 1],
        "identification_of_real_reactions": 0.9,
        "retrieval": {
            "top1": 1.0,
            "top5": 1.0,
            "queries": 30,
            "listeners": 12,
            "frames": 250,
            "input": "dyadic",
        },
        "methods": [
            {"method": "generic", **measures},
            {"method": "personalised", **measures, "PMAFRG FRCorr": 0.6},
        ],
        "comparisons": [
            {
                "method": "personalised",
                "reference": "generic",
                "measure": "PMAFRG FRCorr",
                "statistic": "ratio",
                "value": 1.2,
                "low": 1.05,
                "high": 1.31,
            },
            {
                "method": "personalised",
                "reference": "generic",
                "measure": "identification",
                "statistic": "difference",
                "value": 0.1,
                "low": -0.02,
                "high": 0.2,
            },
        ],
        "targets": {"PMAFRG FRCorr >= 1.10x generic, interval above 1": True},
    }
    (tmp_path / "personalisation.json").write_text(json.dumps({"datasets": [dataset]}))
    page = hooks.render("personalisation", tmp_path)
    assert "| method | MAFRG FRCorr ↑ | PMAFRG FRCorr ↑ | MAFRG FRdist ↓ |" in page
    assert "| personalised | 0.5 | 0.6 | 0.5 |" in page
    assert "| personalised / generic | — | 1.200 [1.050, 1.310] |" in page
    assert "0.100 [-0.020, 0.200] (diff.)" in page
    assert "role: held out (reported only)" in page


def test_ablation_report(hooks, tmp_path: Path):
    row = {"MAFRG FRCorr": 0.5, "MAFRG FRdist": 90.0, "PMAFRG FRCorr": 0.55, "PMAFRG FRdist": 89.0}
    ratio = {"value": 1.1, "low": 1.02, "high": 1.2}
    report = {
        "overrides": [],
        "seeds": [0, 1, 2],
        "items": 28,
        "listeners": 8,
        "rows": [
            {"table": "3", "row": "GAFRG", **row},
            {"table": "3", "row": "weight editing", **row, "vs GAFRG": dict.fromkeys(row, ratio)},
            {"table": "4", "row": "cross-attn", **row},
        ],
    }
    (tmp_path / "ablation.json").write_text(json.dumps(report))
    page = hooks.render("ablation", tmp_path)
    assert "**Table 3: how the style enters**" in page and "**Table 4" in page
    assert "28 test items, 8 listeners, sampling seeds 0, 1, 2" in page
    assert "| GAFRG | 0.5 | 90 | 0.55 | 89 |" in page
    assert "| weight editing | 0.5 (1.100 [1.020, 1.200]) | 90 (1.100 [1.020, 1.200]) |" in page
    assert "| cross-attn | 0.5 | 90 | 0.55 | 89 |" in page


def test_gpu_check_says_plainly_when_no_gpu_was_measured(hooks, tmp_path: Path):
    rendered = hooks.render_page("<!-- benchmark: gpu/gpu_check -->", tmp_path)
    assert "Not measured on a GPU yet" in rendered and "gpu_check.py" in rendered
    (tmp_path / "gpu").mkdir()
    dry_run = {"measured_on_gpu": False, "note": "CPU dry run", "steps": {}}
    (tmp_path / "gpu" / "gpu_check.json").write_text(json.dumps(dry_run))
    assert "Not measured on a GPU" in hooks.render_page(
        "<!-- benchmark: gpu/gpu_check -->", tmp_path
    )


def test_gpu_check_tables_are_read_from_the_json(hooks, tmp_path: Path):
    (tmp_path / "gpu").mkdir()
    report = {
        "measured_on_gpu": True, "device": "NVIDIA H200", "torch": "2.13.0", "total_seconds": 300,
        "steps": {
            "kernels": {"ok": True, "seconds": 40, "result": {
                "algorithms": ["triton_dense"], "cases": 8, "passed": 8, "details": []}},
            "training": {"ok": True, "seconds": 60, "result": [
                {"stage": "gafrg", "precision": "bf16", "steps_per_s": 12.5}]},
            "metrics": {"ok": False, "seconds": 1, "error": "RuntimeError('x')"},
        },
    }  # fmt: skip
    (tmp_path / "gpu" / "gpu_check.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: gpu/gpu_check -->", tmp_path)
    assert "NVIDIA H200" in rendered and "**8 / 8**" in rendered
    assert "| gafrg | bf16 | 12.5 |" in rendered
    assert "RuntimeError('x')" in rendered


def test_generation_shows_generic_rtf_and_the_compute_floor(hooks, tmp_path: Path):
    report = {
        "machine": "x86_64", "threads": 2,
        "rtf": {"paper": {"threads": 2, "samples": 10, "ddim_steps": 50, "rtf": 3.4}},
        "rtf_generic": {"paper": {"rtf": 3.2}}, "personalised_over_generic": {"paper": 1.0625},
        "floor": {"paper": {"floor_rtf": 1.9, "window_gflop": 940.0, "gemm_gflops": 250.0}},
        "rtf_by_steps": {"10": 0.7},
    }  # fmt: skip
    (tmp_path / "generation.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: generation -->", tmp_path)
    assert "compute floor RTF" in rendered and "| 3.4 | 3.2 | 1.062 | 1.9 | 940 |" in rendered
    assert "10 steps RTF **0.7**" in rendered


def solver_row(family, mode, solver, steps, precision, frcorr):
    return {
        "family": family, "mode": mode, "solver": solver, "steps": steps,
        "precision": precision, "items": 30, "FRCorr": frcorr, "FRdist": 100.0,
        "FRDiv": 0.01, "FRVar": 0.02, "inside_vs_real": 1.1, "join_ratio": 0.9,
        "real_join_ratio": 1.0, "FRCorr_vs_ref": frcorr / 0.5 - 1, "FRCorr_ci": [-0.02, 0.01],
        "FRdist_vs_ref": 0.0, "FRdist_ci": [-0.01, 0.01], "FRDiv_vs_ref": 0.0,
        "FRDiv_ci": [0, 0], "FRVar_vs_ref": 0.0, "FRVar_ci": [0, 0],
    }  # fmt: skip


def test_solver_quality_report_has_a_table_per_family_and_mode_and_a_plot(hooks, tmp_path):
    rows = [
        solver_row(family, mode, solver, steps, precision, 0.5 - 0.001 * (50 - steps))
        for family in ("coupled-latent", "lagged-expressive")
        for mode in ("generic", "personalised")
        for solver, steps in (("ddim", 50), ("ddim", 5), ("unipc", 5), ("unipc", 3))
        for precision in ("fp32", "bf16")
    ]
    report = {"reference": "ddim 50 fp32", "seeds": 3, "samples": 10,
              "bounds": {"FRCorr": -0.02, "FRdist": 0.03}, "rows": rows}  # fmt: skip
    (tmp_path / "solver_quality.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: solver_quality -->", tmp_path)
    assert rendered.count("| solver | steps | precision |") == 4
    assert "**lagged-expressive, personalised** (30 test items):" in rendered
    row = "| unipc | 3 | bf16 | 0.453 | -9.4% [-2.0, +1.0] | 100 | +0.0% [-1.0, +1.0] |"
    assert row in rendered
    assert "(benchmarks/solver_quality.svg)" in rendered
    assert hooks.plot("solver_quality", report).startswith("<?xml")


def test_generation_report_shows_the_solver_rows_with_their_floors(hooks, tmp_path):
    row = {"solver": "unipc", "ddim_steps": 5, "precision": "bf16", "samples": 10,
           "seconds_per_window": 0.4, "rtf": 0.2, "floor_rtf": 0.1, "window_gflop": 30.0,
           "repeats": 3}  # fmt: skip
    report = {"rtf_solvers": {
        "config": "paper", "threads": 2, "load_average_before_after": [3.5, 4.0],
        "rates_gflops": {"fp32": {"gemm": 80.0, "attention": 10.0},
                         "bf16": {"gemm": 140.0, "attention": 12.0}},
        "rows": [row],
    }}  # fmt: skip
    (tmp_path / "generation.json").write_text(json.dumps(report))
    rendered = hooks.render_page("<!-- benchmark: generation -->", tmp_path)
    assert "| unipc | 5 | bf16 | 0.4 | 0.2 | 0.1 | 30 | 3 |" in rendered
    assert "bf16 GEMM 140, attention 12 GFLOP/s" in rendered
    assert "load average 3.5 before, 4 after" in rendered


def test_react2026_online_report_puts_the_two_lengths_side_by_side(hooks):
    page = hooks.render("react2026_online")  # the committed run
    assert "| | 750 frames | 20000 frames | long vs short |" in page
    assert "| cpu ms / frame, long between shorts |" in page
    assert "targets: memory within 200 MB, time per frame within ±15%" in page


def test_react2026_personalisation_report_has_a_row_per_method_and_the_targets(hooks, tmp_path):
    rows = ("generic", "offset", "history", "personality", "both")
    metrics = {r: {"FRCorr": 0.1 + 0.01 * i, "FRdist": 50.0 - i} for i, r in enumerate(rows)}
    report = {
        "config": {"samples": 10, "overrides": ["protocol=react2026"]},
        "seeds": [{"seed": 0, "metrics": metrics}, {"seed": 1, "metrics": metrics}],
        "summary": {
            "mean": metrics,
            "frcorr_over_generic": {r: metrics[r]["FRCorr"] / 0.1 for r in rows},
            "targets": {"both FRCorr >= 1.10x generic": True, "both FRCorr >= offset": False},
        },
    }
    (tmp_path / "react2026_personalisation.json").write_text(json.dumps(report))
    page = hooks.render("react2026_personalisation", tmp_path)
    assert "| online track | FRCorr seed 0 | FRCorr seed 1 | FRCorr | / generic | FRdist |" in page
    assert "| both | 0.14 | 0.14 | 0.14 | 1.400× | 46 |" in page
    assert "both FRCorr >= 1.10x generic: met; both FRCorr >= offset: not met" in page
    assert "Levels the Big Five" not in page
    report["personality_level_r2"] = {"train": 0.298, "test": -0.112}
    (tmp_path / "react2026_personalisation.json").write_text(json.dumps(report))
    page = hooks.render("react2026_personalisation", tmp_path)
    assert "(R²): 0.298 on the training sequences, -0.112 on the test ones." in page


def test_speaker_coupling_report(hooks, tmp_path: Path):
    own = {"AUs": 0.1, "valence/arousal": 0.2, "expressions": 0.05, "all": 0.1}
    report = {
        "datasets": [
            {
                "dataset": "held-out",
                "items": 28,
                "mirror items appropriate": 8,
                "ridge weight (chosen on val)": 100000.0,
                "seeds": [0],
                "methods": {
                    "linear (speaker window)": {"own correlation": own, "MAFRG FRCorr": 0.2},
                    "generic": {"own correlation": own},
                },
            }
        ]
    }
    (tmp_path / "speaker_coupling.json").write_text(json.dumps(report))
    page = hooks.render("speaker_coupling", tmp_path)
    assert "**held-out**: 28 test items" in page and "reaction of 8 of them" in page
    assert "| linear (speaker window) | 0.1 | 0.1 | 0.2 | 0.05 | 0.2 | — | — |" in page
    assert "| generic | 0.1 | 0.1 | 0.2 | 0.05 | — | — | — |" in page
