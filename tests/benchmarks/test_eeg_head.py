"""The EEG head benchmark's masked error, by hand."""

import numpy as np
import pytest
from perfrdiff.generation.eeg import EegItem

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def benchmark():
    with benchmark_script("eeg_head") as module:
        yield module


def _item(eeg, mask):
    eeg, mask = np.array(eeg, float), np.array(mask, float)
    return EegItem("s/a", np.zeros((len(eeg), 25)), np.zeros((len(eeg), 1)), eeg, mask)


def test_the_masked_error_pools_the_counted_cells_of_every_item(benchmark):
    items = [_item([[1.0, 5.0]], [[1, 0]]), _item([[0.0, 0.0], [2.0, 9.0]], [[1, 1], [0, 0]])]
    predictions = [np.array([[[3.0, 0.0]]]), np.array([[[1.0, 1.0], [7.0, 7.0]]])]
    # counted cells: (1 - 3)^2, (0 - 1)^2, (0 - 1)^2 -> 6 / 3
    assert benchmark.masked_error(items, predictions) == pytest.approx(2.0)
