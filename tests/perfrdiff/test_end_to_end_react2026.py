"""REACT 2026 through the CLI on the MARS twin: make-synthetic, train all, generate the four
tracks (generic / personalised × offline / online), evaluate them in one table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.config import STAGES
from perfrdiff.data.react2026 import MarsStore

pytestmark = pytest.mark.slow

QUICK = [
    item
    for stage in STAGES
    for setting in ("steps=2", "batch_size=4", "val_every=2", "ckpt_every=2", "val_batches=1")
    for item in ("--set", f"train.{stage}.{setting}")
]


def test_train_generate_and_evaluate_the_four_tracks(tmp_path, capsys):
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "generate"
    twin = ["--layout", "react2026", "--root", str(data), "--no-eeg"]
    sizes = ["--train-sessions", "2", "--val-sessions", "1", "--test-sessions", "1"]
    assert main(["make-synthetic", *twin, *sizes, "--min-clips", "2", "--max-clips", "2"]) == 0
    common = ["--run-dir", str(run), "--device", "cpu", "--set", "threads=1"]
    react2026 = ["--set", "protocol=react2026", "--set", "data.window=30"]
    argv = ["train", "all", "--data-root", str(data), *common, *react2026, *QUICK]
    assert main(argv) == 0
    argv = ["generate", *common, "--samples", "2", "--steps", "2", "--out", str(out)]
    assert main(argv) == 0
    tracks = [f"{m}-{t}" for m in ("generic", "personalised") for t in ("offline", "online")]
    store = MarsStore(data, "test", audio="none", personality=False)
    for name in tracks:
        with np.load(out / name / "predictions.npz") as archive:
            for dyad in store.dyads:
                array = archive[f"{dyad.session}/{dyad.stem}"]
                assert array.shape == (2, store.frames(dyad), 25)
                assert set(np.unique(array[..., :15])) <= {0.0, 1.0}  # the protocol's AU rounding
        meta = json.loads((out / name / "predictions.json").read_text())
        assert meta["protocol"] == "react2026" and meta["track"] == name.split("-")[1]
    capsys.readouterr()
    paths = [str(out / name / "predictions.npz") for name in tracks]
    assert main(["evaluate", *paths, "--n-jobs", "1"]) == 0
    table = capsys.readouterr().out
    for name in tracks:
        assert f"| {name.replace('-', ' ')} |" in table
