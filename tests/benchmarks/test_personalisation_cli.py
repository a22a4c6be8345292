"""The personalisation benchmark's command line: variant overrides keep list values whole."""

import importlib.util
from pathlib import Path

import pytest

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
