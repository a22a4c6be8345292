"""The FRCorr-factors benchmark: which candidates may reuse the base run's reactions, and its
ratios over listeners."""

from types import SimpleNamespace

import numpy as np
import pytest
from perfrdiff.config import load_config

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def benchmark():
    with benchmark_script("frcorr_factors") as module:
        yield module


def run(*overrides):
    return SimpleNamespace(config=load_config("tiny", list(overrides)))


@pytest.mark.parametrize(
    ("overrides", "derived"),
    [
        (["generate.clamp=true"], True),
        (["generate.smooth_sigma=2", "generate.clamp=true"], True),
        (["generate.smooth_sigma=2", "diffusion.guidance=2"], False),  # other samples
        (["diffusion.sample_steps=25"], False),
    ],
)
def test_only_post_processing_candidates_reuse_the_base_reactions(benchmark, overrides, derived):
    assert benchmark.postprocessed_only(run(*overrides), run()) is derived


def test_a_base_that_post_processes_is_not_raw(benchmark):
    assert not benchmark.postprocessed_only(run("generate.clamp=true"), run("generate.clamp=true"))


def test_ratios_are_sums_over_items_with_intervals(benchmark):
    a = {k: np.array([2.0, 4.0, 6.0, 8.0]) for k in benchmark.MEASURES}
    b = {k: np.array([1.0, 2.0, 3.0, 4.0]) for k in benchmark.MEASURES}
    out = benchmark.ratios(a, b, ["x", "x", "y", "y"], rounds=50)
    assert set(out) == set(benchmark.MEASURES)
    assert all(r["value"] == r["low"] == r["high"] == pytest.approx(2.0) for r in out.values())
