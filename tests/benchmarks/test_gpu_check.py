"""benchmarks/gpu_check.py: its CPU dry run runs every step and says it measured no GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU path of the check")
def test_cpu_dry_run_runs_every_step_and_says_it_is_not_a_gpu_measurement(tmp_path):
    out = tmp_path / "dry.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--device", "cpu"]
    result = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "not measured on a GPU" in result.stdout
    report = json.loads(out.read_text())
    assert report["measured_on_gpu"] is False and "not measured on a GPU" in report["note"]
    steps = report["steps"]
    assert list(steps) == [
        "kernels", "edit_linear", "planner", "training", "generation", "metrics",
        "react2026_batching",
    ]  # fmt: skip
    assert all(step["ok"] for step in steps.values())
    plans = steps["planner"]["result"]
    assert set(plans) == {"fp32", "bf16"} and "output" in plans["fp32"]
    training = steps["training"]["result"]
    assert {(r["stage"], r["precision"]) for r in training} == {
        (s, p) for s in ("gafrg", "pwsg") for p in ("fp32", "bf16")
    }
    assert all(r["steps_per_s"] > 0 for r in training)
    assert all(r["rtf"] > 0 for r in steps["generation"]["result"])
    assert set(steps["metrics"]["result"]["values"]) >= {"FRCorr", "FRdist", "FRSyn"}
    batching = steps["react2026_batching"]["result"]
    assert batching["device"] == "cpu" and max(batching["max_relative_difference"].values()) <= 1e-5
    assert {row["task"] for row in batching["results"]} == {
        "training",
        "training, style given",
        "generation",
        "training, unedited",
        "generation, unedited",
    }
