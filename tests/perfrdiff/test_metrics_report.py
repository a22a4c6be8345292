"""Reports and the ``perfrdiff evaluate`` command on the synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import SplitIndex
from perfrdiff.metrics import METRICS, markdown_table, motion_table, write_report
from perfrdiff.metrics.report import load_references


def test_markdown_table_has_a_row_per_run_and_arrows():
    table = markdown_table({"a": {"FRCorr": 0.5, "FRdist": 90.0}, "b": {"FRCorr": 0.25}})
    lines = table.splitlines()
    assert lines[0] == "| run | FRCorr ↑ | FRdist ↓ |"
    assert lines[2] == "| a | 0.5000 | 90.0000 |" and lines[3] == "| b | 0.2500 |  |"


def test_motion_table_lists_the_motion_statistics_of_the_runs_that_have_them():
    table = motion_table({"a": {"join_ratio": 10.0, "power 0-0.5Hz": 2.0}, "b": {"FRCorr": 1.0}})
    lines = table.splitlines()
    assert lines[0] == "| run | join/inside step | power 0-0.5Hz gen/real |"
    assert lines[2] == "| a | 10.000 | 2.000 |" and lines[3] == "| b |  |  |"
    assert motion_table({"b": {"FRCorr": 1.0}}) == ""


def test_write_report_writes_json_and_markdown(tmp_path):
    json_path, markdown_path = write_report({"run": {"FRVar": 0.1}}, tmp_path / "out")
    assert json.loads(json_path.read_text()) == {"run": {"FRVar": 0.1}}
    assert "FRVar" in markdown_path.read_text()


def test_evaluate_command_scores_saved_predictions(synthetic_root, tmp_path):
    listener, _, _ = load_references(synthetic_root, "test")
    noise = np.random.default_rng(0).normal(0, 0.05, (listener.shape[0], 2, *listener.shape[1:]))
    np.save(tmp_path / "pred.npy", (listener[:, None] + noise).astype(np.float32))
    code = main(["evaluate", str(tmp_path / "pred.npy"), "--root", str(synthetic_root),
                 "--split", "test", "--n-jobs", "1"])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "metrics.json").read_text())["pred"]
    assert set(METRICS) <= set(results) and results["FRCorr"] > 1.0  # near-copies, 2 samples
    assert results["join_ratio"] == pytest.approx(1.0, abs=0.1)  # real curves plus white noise
    assert results["inside_vs_real"] > 1.0  # the noise adds motion
    assert (tmp_path / "metrics.md").read_text().startswith("| run |")
    assert "| run | join/inside step |" in (tmp_path / "metrics.md").read_text()


def test_evaluate_places_the_joins_where_the_predictions_were_generated(synthetic_root, tmp_path):
    listener, _, _ = load_references(synthetic_root, "test")
    seamed = np.repeat(listener[:, None], 2, axis=1).astype(np.float32)
    for join in range(50, 750, 40):  # a jump where each window of 50 frames every 40 adds frames
        seamed[..., join:, :] += 0.5
    np.save(tmp_path / "pred.npy", seamed)
    (tmp_path / "pred.json").write_text(json.dumps({"window": 50, "stride": 40}))
    main(["evaluate", str(tmp_path / "pred.npy"), "--root", str(synthetic_root), "--n-jobs", "1"])
    results = json.loads((tmp_path / "metrics.json").read_text())["pred"]
    assert results["join_ratio"] > 5 and results["real_join_ratio"] == pytest.approx(1, abs=0.2)


def test_evaluate_rejects_predictions_for_another_split(synthetic_root, tmp_path):
    n = len(SplitIndex(synthetic_root, "train"))
    np.save(tmp_path / "p.npy", np.zeros((n, 1, 750, 25), dtype=np.float32))
    with pytest.raises(ValueError, match="mirrored items of split 'test'"):
        main(["evaluate", str(tmp_path / "p.npy"), "--root", str(synthetic_root), "--n-jobs", "1"])


def test_evaluate_defaults_to_the_sidecars_data_root_and_mode(synthetic_root, tmp_path):
    from perfrdiff.metrics.report import EvaluateConfig, report_name, resolve_root

    path = tmp_path / "predictions.npy"
    np.save(path, np.zeros((1, 1, 750, 25), np.float32))
    assert resolve_root(path, None) == Path("runs/demo/data")  # no sidecar: the demo's data
    path.with_suffix(".json").write_text(
        json.dumps({"mode": "personalised", "data_root": str(synthetic_root)})
    )
    assert resolve_root(path, None) == synthetic_root
    assert resolve_root(path, tmp_path) == tmp_path  # an explicit --data-root wins
    assert report_name(EvaluateConfig(predictions=path)) == "personalised"
    assert report_name(EvaluateConfig(predictions=path, name="PMAFRG")) == "PMAFRG"
