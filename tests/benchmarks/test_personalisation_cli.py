"""The personalisation benchmark's command line (variant overrides keep list values whole) and its
prediction cache (reused only for the run and settings it was made with)."""

from types import SimpleNamespace

import numpy as np
import pytest
from perfrdiff.config import load_config
from perfrdiff.weights import stage_weights

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def benchmark():
    with benchmark_script("personalisation") as module:
        yield module


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pwsg.bias_shifts=true", ["pwsg.bias_shifts=true"]),
        ("a=1,b=2", ["a=1", "b=2"]),
        (
            'style.input=dyadic,pwsg.targets=["x.*","output"],c=3',
            ["style.input=dyadic", 'pwsg.targets=["x.*","output"]', "c=3"],
        ),
        ("m={a: [1, 2], b: 3},n=4", ["m={a: [1, 2], b: 3}", "n=4"]),
    ],
)
def test_variant_overrides_split_at_commas_outside_brackets(benchmark, text, expected):
    assert benchmark.split_overrides(text) == expected


def test_cached_predictions_are_reused_only_under_the_same_key(benchmark, tmp_path):
    path, calls = tmp_path / "work" / "generate.npz", []

    def make(value):
        calls.append(value)
        return {"generic": np.full((2, 3), value, dtype=np.float32)}

    assert benchmark.cached(path, lambda: make(1.0), "key a")["generic"][0, 0] == 1.0
    assert benchmark.cached(path, lambda: make(2.0), "key a")["generic"][0, 0] == 1.0  # reused
    assert benchmark.cached(path, lambda: make(3.0), "key b")["generic"][0, 0] == 3.0  # remade
    assert calls == [1.0, 3.0]
    assert sorted(p.name for p in path.parent.iterdir()) == ["generate.json", "generate.npz"]


def test_the_key_follows_the_sampling_settings_and_the_weights(benchmark, tmp_path):
    weights = stage_weights(tmp_path, "gafrg")
    weights.parent.mkdir()
    weights.write_bytes(b"old")

    def key(*overrides):
        run = SimpleNamespace(
            directory=tmp_path,
            config=load_config("tiny", overrides),
            device="cpu",
            precision="fp32",
        )
        return benchmark.generation_key(run)

    before = key()
    assert key() == before
    assert key("diffusion.spacing=quadratic") != before
    weights.write_bytes(b"retrained")
    assert key() != before


def fake_measures(benchmark, scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Every measure of one method on 6 items of 3 listeners, ``scale`` times a fixed base."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (how, _, _) in benchmark.MEASURES.items():
        out[name] = scale * (rng.random(3 if how == "listener" else 6) + 0.5)
    return out


def test_methods_are_compared_with_generic_and_personalised_with_every_reference(benchmark):
    listeners = ["a/s/1", "a/s/1", "b/s/2", "b/s/2", "c/s/3", "c/s/3"]
    per_method = {
        "generic": fake_measures(benchmark, 1.0),
        "personalised": fake_measures(benchmark, 1.2),  # 1.2x generic, item by item
        "offset": fake_measures(benchmark, 1.0, seed=1),
        "chance": fake_measures(benchmark, 0.5, seed=2),
    }
    rows = benchmark.compare(per_method, listeners, rounds=50)
    pairs = {(r["method"], r["reference"]) for r in rows}
    assert pairs == {
        ("personalised", "generic"), ("offset", "generic"), ("chance", "generic"),
        ("personalised", "offset"), ("personalised", "chance"),
    }  # fmt: skip
    by = {(r["method"], r["reference"], r["measure"]): r for r in rows}
    exact = by[("personalised", "generic", "PMAFRG FRCorr")]
    assert exact["value"] == pytest.approx(1.2) and exact["low"] == pytest.approx(1.2)
    assert by[("personalised", "generic", "identification")]["statistic"] == "difference"
    values = {m: benchmark.summary(v) for m, v in per_method.items()}
    targets = benchmark.targets_of(rows, values)
    assert targets["PMAFRG FRCorr >= 1.10x generic, interval above 1"] is True
    assert targets["MAFRG FRdist <= 0.90x generic, interval below 1"] is False  # 1.2x: worse
    assert targets["generic MAFRG FRCorr above chance"] is True
