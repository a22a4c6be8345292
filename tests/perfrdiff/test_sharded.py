"""`perfrdiff generate` and `perfrdiff evaluate` under `torchrun --nproc-per-node 2` (gloo on
the CPU) write byte for byte the files one process writes: the predictions, their sidecars and
plots, the four REACT 2026 tracks, and the metrics reports of REACT 2024 and REACT 2026."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.metrics.report_react2026 import item_key

pytestmark = pytest.mark.slow


def torchrun(argv: list[str]) -> None:
    """``perfrdiff <argv>`` in two gloo processes on this machine, one thread each."""
    launcher = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [launcher, "--standalone", "--nproc_per_node", "2", "-m", "perfrdiff", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def generated(quick_run, tmp_path_factory, one_thread):
    """Predictions of one process and of two: the 4 items in batches of 3, so rank 0 generates
    3 items (batch 0) and rank 1 one (batch 1)."""
    out = tmp_path_factory.mktemp("generated")
    argv = ["generate", "--run-dir", str(quick_run), "--samples", "2", "--steps", "2",
            "--plots", "2", "--device", "cpu", "--set", "generate.clips_per_batch=3"]  # fmt: skip
    assert main([*argv, "--out", str(out / "one")]) == 0
    torchrun([*argv, "--out", str(out / "two")])
    return out


def test_sharded_generate_writes_the_files_of_one_process(generated):
    one, two = files(generated / "one"), files(generated / "two")
    assert sorted(one) == sorted(two)
    assert {"generic/predictions.npy", "personalised/item_0001.png"} <= set(one)
    for name in one:
        assert one[name] == two[name], name
    assert np.load(generated / "one" / "personalised" / "predictions.npy").shape[0] == 4


def test_sharded_evaluate_writes_the_report_of_one_process(generated, tmp_path):
    predictions = generated / "one" / "personalised" / "predictions.npy"
    argv = ["evaluate", str(predictions), "--split", "test"]
    assert main([*argv, "--n-jobs", "1", "--output", str(tmp_path / "one")]) == 0
    torchrun([*argv, "--output", str(tmp_path / "two")])  # FRdist workers: CPUs per process
    assert files(tmp_path / "one") == files(tmp_path / "two")
    assert set(files(tmp_path / "one")) == {"metrics.json", "metrics.md"}


def test_sharded_react2026_evaluate_writes_the_report_of_one_process(tmp_path):
    root = tmp_path / "mars"
    config = MarsSyntheticConfig(seed=2, sessions={"test": 2}, lengths=(58, 120, 90), eeg=False)
    write_mars_dataset(root, config)
    store = MarsStore(root, "test", audio="none", personality=False)
    rng = np.random.default_rng(0)
    arrays = {item_key(d): rng.random((2, store.frames(d), 25)) for d in store.dyads}
    assert len(arrays) >= 6  # sessions of several dyads: the draw has candidates
    np.savez(tmp_path / "predictions.npz", **arrays)
    argv = ["evaluate", str(tmp_path / "predictions.npz"), "--protocol", "react2026",
            "--data-root", str(root), "--split", "test"]  # fmt: skip
    assert main([*argv, "--output", str(tmp_path / "one")]) == 0
    torchrun([*argv, "--output", str(tmp_path / "two")])
    assert files(tmp_path / "one") == files(tmp_path / "two")


def test_sharded_react2026_generate_writes_the_files_of_one_process(tmp_path):
    """The four tracks of a ``pwsg.condition=both`` run: 6 test dyads in batches of 2, so rank
    0 generates batches 0 and 2 of each track and rank 1 batch 1."""
    data, run = tmp_path / "data", tmp_path / "run"
    write_mars_dataset(data, MarsSyntheticConfig(seed=3, sessions={"train": 2, "test": 2},
                                                  dyads_per_session=(3, 3), lengths=(58, 120, 90),
                                                  eeg=False))  # fmt: skip
    quick = [f"train.{stage}.{s}" for stage in ("emotion-vae", "style", "gafrg", "pwsg")
             for s in ("steps=2", "batch_size=4", "val_every=2", "ckpt_every=2")]  # fmt: skip
    train = ["protocol=react2026", "data.window=30", "threads=1", "pwsg.condition=both",
             *quick]  # fmt: skip
    argv = ["train", "all", "--run-dir", str(run), "--data-root", str(data), "--device", "cpu"]
    assert main([*argv, *(x for item in train for x in ("--set", item))]) == 0
    argv = ["generate", "--run-dir", str(run), "--samples", "2", "--steps", "2", "--device",
            "cpu", "--set", "generate.clips_per_batch=2"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    torchrun([*argv, "--out", str(tmp_path / "two")])
    one, two = files(tmp_path / "one"), files(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert {"personalised-online/predictions.npz", "generic-offline/predictions.json"} <= set(one)
    for name in one:
        assert one[name] == two[name], name
    with np.load(tmp_path / "one" / "personalised-online" / "predictions.npz") as archive:
        assert len(archive.files) == 6
