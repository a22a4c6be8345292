"""benchmarks/react2026_online.py: each length runs in its own process and the comparison
reports the memory difference and the per-frame time ratios the issue asks for."""

import pytest

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("react2026_online") as module:
        yield module


def test_a_child_measures_one_length_in_its_own_process(bench, tmp_path):
    result = bench.run_child(95, samples=2, repeats=2, folder=tmp_path, short=40)
    assert result["frames"] == 95 and len(result["wall_s"]) == 2
    assert result["output_mb"] == pytest.approx(2 * 95 * 25 * 4 / 2**20)
    assert result["peak_rss_mb"] >= result["peak_rss_mb_before"] > 0
    for clock in ("wall", "cpu"):  # the long one between two short ones, in the same process
        times = result["bracketed"][clock]
        assert times["ratio"] == pytest.approx(
            times["long_ms_per_frame"] / times["short_ms_per_frame"]
        )


def test_the_comparison_reports_differences_and_ratios(bench):
    short = {"peak_rss_mb": 300.0, "peak_rss_mb_before": 290.0, "output_mb": 1.0,
             "wall_ms_per_frame": 2.0, "cpu_ms_per_frame": 1.0}  # fmt: skip
    long = {"peak_rss_mb": 350.0, "peak_rss_mb_before": 291.0, "output_mb": 20.0,
            "wall_ms_per_frame": 2.2, "cpu_ms_per_frame": 0.9}  # fmt: skip
    ratios = bench.compare(short, long)
    assert ratios["peak_rss_difference_mb"] == 50.0 and ratios["growth_difference_mb"] == 49.0
    assert ratios["memory_within_limit"] and ratios["output_difference_mb"] == 19.0
    assert ratios["wall_per_frame_ratio"] == pytest.approx(1.1)
    assert ratios["cpu_per_frame_ratio"] == pytest.approx(0.9)
