"""benchmarks/generation.py's solver rows: the listener's one-off setup is timed apart from the
steady windows, every row has its floor, and streaming in the timed loop yields every window."""

import pytest
import torch

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("generation") as module:
        yield module


def test_steady_seconds_times_setup_apart_and_counts_every_window(bench, monkeypatch):
    config = bench.load_config("tiny", ["diffusion.sample_steps=2"])
    torch.manual_seed(0)
    sampler = bench._solver_sampler(bench.build_perfrdiff(config).eval(), config)
    pushed = []
    original = bench.StreamingGenerator.push

    def counting(self, *frames):
        out = original(self, *frames)
        pushed.append(len(out))
        return out

    monkeypatch.setattr(bench.StreamingGenerator, "push", counting)
    setup, per_window = bench._steady_seconds(sampler, config, 3, 2, 25, torch.device("cpu"))
    assert setup > 0 and per_window > 0
    # windows 0 and 1 come from the untimed first push, then one per pushed window: 3
    assert pushed[0] == 2 and sum(pushed[1:]) == 3


def test_solver_rows_carry_setup_and_floor(bench):
    rows, rates = bench.solver_rtf("tiny", [("ddim", 2), ("unipc", 2)], 1, 2, 25, 1)
    assert {(r["solver"], r["precision"]) for r in rows} == {
        (s, p) for s in ("ddim", "unipc") for p in ("fp32", "bf16")
    }
    for row in rows:
        assert row["setup_seconds"] > 0 and row["rtf"] > 0 and row["floor_rtf"] > 0
        assert row["timing"].startswith("steady")
    assert set(rates) == {"fp32", "bf16"}
