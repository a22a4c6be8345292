"""--device and --precision: resolution, validation and autocast."""

import pytest
import torch
from perfrdiff.device import autocast, check_precision, loader_workers, resolve_device


def test_cpu_is_the_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: auto picks it only then")
def test_auto_selects_cuda_when_present():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of a CUDA-less host")
def test_auto_falls_back_to_the_cpu_and_cuda_is_refused_without_it():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", "mps"])
def test_unknown_devices_are_named(spec):
    with pytest.raises(ValueError, match="device must be auto"):
        resolve_device(spec)


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp16")


def test_bf16_autocasts_matmuls_and_fp32_does_not():
    x = torch.randn(3, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x.T).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (x @ x.T).dtype == torch.float32


def test_loader_workers_default_to_none_on_the_cpu():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ValueError, match="num_workers"):
        loader_workers(-1, torch.device("cpu"))
