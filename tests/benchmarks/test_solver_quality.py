"""The solver-quality benchmark's statistics: per-item metrics whose means are the metrics, and
the paired bootstrap of a relative difference."""

from types import SimpleNamespace

import numpy as np
import pytest
from perfrdiff.metrics import frcorr, frdist, frdiv, frvar

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def benchmark():
    with benchmark_script("solver_quality") as module:
        yield module


def test_per_item_means_are_the_metrics(benchmark):
    rng = np.random.default_rng(0)
    predictions = rng.random((4, 3, 40, 25)).astype(np.float32)
    data = SimpleNamespace(
        listener_emotion=rng.random((4, 40, 25)).astype(np.float32),
        neighbours=np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool),
    )
    items = benchmark.per_item(predictions, data)
    assert {name: values.shape for name, values in items.items()} == {
        name: (4,) for name in ("FRCorr", "FRdist", "FRDiv", "FRVar")
    }
    expected = {
        "FRCorr": frcorr(predictions, data.listener_emotion, data.neighbours),
        "FRdist": frdist(predictions, data.listener_emotion, data.neighbours, n_jobs=1),
        "FRDiv": frdiv(predictions),
        "FRVar": frvar(predictions),
    }
    for name, value in expected.items():
        assert items[name].mean() == pytest.approx(value, rel=1e-5), name


def test_paired_bootstrap_of_a_relative_difference(benchmark):
    rng = np.random.default_rng(1)
    reference = rng.uniform(1, 2, 200)
    same, low, high = benchmark.paired_bootstrap(reference, reference)
    assert same == low == high == 0  # a paired draw of equal values differs by nothing
    diff, low, high = benchmark.paired_bootstrap(reference * 1.05 + rng.normal(0, 0.01, 200),
                                                 reference)  # fmt: skip
    assert low < diff < high and low > 0.04 and high < 0.06


def test_bounds_use_the_point_estimates(benchmark):
    row = {"FRCorr_vs_ref": -0.019, "FRdist_vs_ref": 0.029}
    assert benchmark.within_bounds(row)
    assert not benchmark.within_bounds(row | {"FRCorr_vs_ref": -0.021})
    assert not benchmark.within_bounds(row | {"FRdist_vs_ref": 0.031})
