"""benchmarks/peft_mixed.py: one measured row per model and T, checked against PEFT."""

import pytest

from tests.benchmarks.scripts import benchmark_script

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("peft_mixed") as module:
        yield module


@pytest.mark.parametrize("tokens", [1, 3])
def test_a_row_equals_peft_and_times_the_decode_loop_at_one_token(bench, tokens):
    row = bench.measure(bench.linear_stack(), tokens, adapters=3, samples=2, rank=2, repeats=1)
    assert row["model"] == "two 512x512 linears" and row["tokens"] == tokens
    assert row["max_output_diff"] <= 1e-5 * max(1.0, row["max_output"])
    assert row["max_lora_A_grad_diff"] < 1e-3
    timed = ("base_ms", "peft_ms", "weditlib_ms", "train_peft_loop_ms", "train_weditlib_ms")
    assert all(row[key] > 0 for key in timed)
    decode = ("decode_base_ms", "decode_weditlib_ms", "decode_weditlib_over_base")
    if tokens == 1:
        assert all(row[key] > 0 for key in decode)
        ratio = row["decode_weditlib_ms"] / row["decode_base_ms"]
        assert row["decode_weditlib_over_base"] == pytest.approx(ratio)
    else:
        assert all(row[key] is None for key in decode)


@pytest.mark.parametrize("tokens", [1, 3])
def test_a_dora_row_equals_peft_one_adapter_at_a_time(bench, tokens):
    row = bench.measure_dora(tokens, adapters=3, samples=2, rank=2, repeats=2)
    assert row["tokens"] == tokens and row["model"].endswith("DoRA")
    assert row["output_rel_diff"] <= 1e-5 and row["grad_rel_diff"] <= 1e-4
    timed = ("base_ms", "peft_one_by_one_ms", "dora_ms", "lora_ms", "train_dora_ms")
    assert all(row[key] > 0 for key in timed)
    assert row["dora_over_lora"] == pytest.approx(row["dora_ms"] / row["lora_ms"])
    spread = row["dora_over_lora_spread"]
    assert spread["q1"] <= spread["median"] <= spread["q3"]


def test_the_compiled_row_counts_compilations_and_times_both(bench):
    row = bench.measure_compiled(
        adapters=3, samples=4, rank=5, repeats=2, backend="eager", batches=(7, 5, 9), patterns=3,
        tokens=6,  # no size of the first call shared by two dims: dynamo would duck-size them
    )  # fmt: skip
    assert row["calls"] == 6 and 1 <= row["compilations"] <= 2
    assert row["compilations"] <= row["compilations_with_timed_batch"] <= 2
    assert row["max_rel_diff_from_eager"] < 1e-5
    assert row["compiled_ms"] > 0 and row["eager_ms"] > 0
