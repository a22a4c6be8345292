"""The whole pipeline through the CLI on a very small synthetic set: every stage for a few steps,
generation, evaluation; and multi-process DDP training that keeps replicas identical."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from perfrdiff import Run
from perfrdiff.cli import main
from perfrdiff.config import STAGES, load_config
from perfrdiff.stages import run_stages

pytestmark = pytest.mark.slow
#: What `train all` trains for a REACT 2024 run (no eeg stage).
TRAINED = run_stages(load_config("tiny"))


def quick_overrides(steps: int = 3, batch_size: int = 4) -> list[str]:
    flags = []
    for stage in STAGES:
        for key, value in (
            ("steps", steps),
            ("batch_size", batch_size),
            ("val_every", steps),
            ("ckpt_every", steps),
            ("val_batches", 1),
            ("log_every", 1),
        ):
            flags += ["--set", f"train.{stage}.{key}={value}"]
    return flags


@pytest.fixture(scope="module")
def trained_run(synthetic_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    argv = [
        "train",
        "all",
        "--config",
        "tiny",
        "--data-root",
        str(synthetic_root),
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        *quick_overrides(),
    ]
    assert main(argv) == 0
    return run_dir


def test_every_stage_exports_weights_and_metrics(trained_run):
    assert "eeg" not in TRAINED
    for stage in TRAINED:
        meta = json.loads((trained_run / stage / "model.json").read_text())
        assert meta["step"] == 3
        assert (trained_run / stage / "model.safetensors").is_file()
        lines = (trained_run / stage / "metrics.jsonl").read_text().splitlines()
        assert all(math.isfinite(json.loads(x)["loss"]) for x in lines)


def test_generate_then_evaluate_writes_predictions_plots_and_metrics(
    trained_run, synthetic_root, tmp_path
):
    out = tmp_path / "generated"
    argv = [
        "generate",
        "--run-dir",
        str(trained_run),
        "--split",
        "test",
        "--samples",
        "2",
        "--steps",
        "2",
        "--plots",
        "1",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    n = len((synthetic_root / "test.csv").read_text().splitlines()) - 1
    for mode in ("generic", "personalised"):
        predictions = np.load(out / mode / "predictions.npy")
        assert predictions.shape == (2 * n, 2, 750, 25)
        assert np.isfinite(predictions).all()
        assert (out / mode / "item_0000.png").stat().st_size > 0
    # A finished run reopened from its directory reproduces the saved predictions.
    overrides = ["generate.samples=2", "diffusion.sample_steps=2"]  # as --samples/--steps
    reopened = Run.load(trained_run, device="cpu", overrides=overrides)
    again = reopened.generate("test", ["personalised"], seed=0)["personalised"]
    np.testing.assert_array_equal(again, np.load(out / "personalised" / "predictions.npy"))
    report = tmp_path / "report"
    argv = [
        "evaluate",
        str(out / "personalised" / "predictions.npy"),
        "--data-root",
        str(synthetic_root),
        "--split",
        "test",
        "--output",
        str(report),
        "--n-jobs",
        "1",
    ]
    assert main(argv) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    values = next(iter(metrics.values())) if "FRCorr" not in metrics else metrics
    assert set(values) >= {"FRCorr", "FRdist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRRea"}


def test_ddp_with_two_processes_keeps_replicas_identical(synthetic_root, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun,
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "perfrdiff",
        "train",
        "all",
        "--config",
        "tiny",
        "--data-root",
        str(synthetic_root),
        "--run-dir",
        str(tmp_path),
        *quick_overrides(steps=2, batch_size=2),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in TRAINED:
        meta = json.loads((tmp_path / stage / "model.json").read_text())
        assert meta["world_size"] == 2
        assert meta["replica_divergence"] == 0.0, stage
