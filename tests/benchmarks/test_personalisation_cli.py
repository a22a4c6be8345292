"""The personalisation benchmark's command line (variant overrides keep list values whole) and its
prediction cache (reused only for the run and settings it was made with)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from perfrdiff.config import load_config
from perfrdiff.weights import stage_weights

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "personalisation.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("personalisation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
