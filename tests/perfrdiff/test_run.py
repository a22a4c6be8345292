"""perfrdiff.Run: what it owns, its errors, and that inference never imports training."""

import subprocess
import sys

import pytest
import torch
from perfrdiff import Run
from perfrdiff.config import load_config


def test_a_run_owns_its_config_directory_device_and_precision(tmp_path):
    run = Run(load_config("tiny"), tmp_path, device="cpu", precision="bf16")
    assert run.device == torch.device("cpu") and run.precision == "bf16"
    assert run.directory == tmp_path and run.schedule is run.schedule  # built once


def test_untrained_stages_and_bad_names_are_named(tmp_path):
    run = Run(load_config("tiny"), tmp_path, device="cpu")
    with pytest.raises(FileNotFoundError, match="emotion-vae"):
        run.build("gafrg", trained=False)  # GAFRG is trained around the trained VAE
    with pytest.raises(ValueError, match="stage must be one of"):
        run.build("decoder")
    with pytest.raises(ValueError, match="mode must be one of"):
        run.sampler("creative")
    with pytest.raises(ValueError, match="precision must be one of"):
        Run(load_config("tiny"), tmp_path, device="cpu", precision="fp16")


def test_loading_a_directory_without_a_config_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the run first"):
        Run.load(tmp_path, device="cpu")


def test_inference_does_not_import_training():
    code = (
        "import sys, perfrdiff.run, perfrdiff.generation, perfrdiff.commands.generate\n"
        "bad = sorted(m for m in sys.modules if m.startswith('perfrdiff.training'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
