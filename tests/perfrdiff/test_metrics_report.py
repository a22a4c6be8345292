"""Reports and the ``perfrdiff evaluate`` command on the synthetic dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import SplitIndex
from perfrdiff.metrics import markdown_table, write_report
from perfrdiff.metrics.report import load_references


def test_markdown_table_has_a_row_per_run_and_arrows():
    table = markdown_table({"a": {"FRCorr": 0.5, "FRdist": 90.0}, "b": {"FRCorr": 0.25}})
    lines = table.splitlines()
    assert lines[0] == "| run | FRCorr ↑ | FRdist ↓ |"
    assert lines[2] == "| a | 0.5000 | 90.0000 |" and lines[3] == "| b | 0.2500 |  |"


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
    assert len(results) == 7 and results["FRCorr"] > 1.0  # near-copies of real reactions, 2 samples
    assert (tmp_path / "metrics.md").read_text().startswith("| run |")


def test_evaluate_rejects_predictions_for_another_split(synthetic_root, tmp_path):
    n = len(SplitIndex(synthetic_root, "train"))
    np.save(tmp_path / "p.npy", np.zeros((n, 1, 750, 25), dtype=np.float32))
    with pytest.raises(ValueError, match="mirrored items of split 'test'"):
        main(["evaluate", str(tmp_path / "p.npy"), "--root", str(synthetic_root), "--n-jobs", "1"])
