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
