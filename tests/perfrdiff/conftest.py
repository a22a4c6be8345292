"""Shared fixtures for the PerFRDiff tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from perfrdiff.data import SyntheticConfig, write_synthetic_dataset

#: The tiny dataset behind ``synthetic_root``: train has a listener with several clips and one
#: with a single clip; every split has at least 2 pairs (4 mirrored items).
TINY = SyntheticConfig(seed=7, sessions={"train": 2, "val": 1, "test": 1}, clips_per_session=(1, 2))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic REACT-layout dataset (written once per test session, ~1 s)."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, TINY)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-op tests: faster than two that compete on a
    shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: ``train.<stage>.*`` overrides that train every stage of the tiny preset in seconds.
QUICK_TRAINING = [
    f"train.{stage}.{setting}"
    for stage in ("emotion-vae", "style", "gafrg", "pwsg")
    for setting in ("steps=2", "batch_size=4", "val_every=2", "ckpt_every=2", "val_batches=1")
]


@pytest.fixture(scope="session")
def quick_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with every stage trained for 2 steps on ``synthetic_root`` (a checkpoint
    at step 2 each) and its ``config.yaml``. Copy it before changing it."""
    from perfrdiff import Run
    from perfrdiff.config import load_config
    from perfrdiff.training import train_run

    run_dir = tmp_path_factory.mktemp("quick_run")
    config = load_config("tiny", [f"data.root={synthetic_root}", *QUICK_TRAINING])
    train_run(Run(config, run_dir, device="cpu"))
    return run_dir
