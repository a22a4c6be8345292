"""Issue item 10: bad generation inputs (NaN history, zero samples / steps / limit, NaN guidance)
fail up front with a message that names them, and nothing is written."""

import numpy as np
import pytest
import torch
from perfrdiff import Run
from perfrdiff.cli import main
from perfrdiff.config import load_config, save_config
from perfrdiff.features import history_dim
from perfrdiff.generation import (
    check_generation_options,
    check_history,
    load_evaluation_set,
    read_history,
    with_listener_history,
)
from perfrdiff.models import build_gafrg
from perfrdiff.training.checkpoint import save_weights

from .test_generation_reactions import evaluation_set


@pytest.fixture
def run_dir(tmp_path, synthetic_root):
    """A run directory with only its config (generation must fail before loading weights)."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(load_config("tiny", [f"data.root={synthetic_root}"]), run / "config.yaml")
    return run


def generate(run_dir, *flags):
    out = run_dir / "generated"
    return main(["generate", "--run-dir", str(run_dir), "--out", str(out), *flags]), out


def test_history_with_nan_is_rejected_naming_the_file(run_dir, tmp_path):
    channels = history_dim(load_config("tiny").style.input)
    history = np.zeros((250, channels), dtype=np.float32)
    history[3, 7] = np.nan
    np.save(tmp_path / "history.npy", history)
    with pytest.raises(ValueError, match=r"history\.npy: contains 1 NaN or infinite values "
                       r"\(first at frame 3, channel 7\)"):  # fmt: skip
        generate(run_dir, "--history", str(tmp_path / "history.npy"))
    assert not (run_dir / "generated").exists()


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (np.zeros((250, 58)), r"must have shape \(h, 25\)"),
        (np.zeros((0, 25)), r"must have shape \(h, 25\) with h >= 1"),
        (np.zeros((1, 250, 25)), r"must have shape \(h, 25\)"),
        (np.full((250, 25), np.inf), "NaN or infinite"),
        (np.array([["a"] * 25]), "expected a real numeric array"),
    ],
)
def test_bad_histories_are_rejected(history, message):
    with pytest.raises(ValueError, match=message):
        check_history(history, "emotion")
    data = evaluation_set()
    data.clips = [{"history": torch.zeros(250, 25)}]
    with pytest.raises(ValueError, match=message):
        with_listener_history(data, history, load_config("tiny", ["style.input=emotion"]))


def test_history_file_that_is_text_is_named(tmp_path):
    (tmp_path / "h.npy").write_text("0,1,2\n")
    with pytest.raises(ValueError, match=r"h\.npy: .*not a NumPy \.npy file"):
        read_history(tmp_path / "h.npy", "emotion")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--samples", "0"], "samples: expected an integer >= 1, got 0"),
        (["--steps", "0"], "steps: expected an integer >= 1, got 0"),
        (["--limit", "0"], "limit: expected an integer >= 1, got 0"),
        (["--limit", "-3"], "limit: expected an integer >= 1, got -3"),
        (["--plots", "-1"], "plots: expected an integer >= 0, got -1"),
        (["--guidance", "nan"], "guidance: expected a finite number, got nan"),
        (["--guidance", "inf"], "guidance: expected a finite number, got inf"),
        (["--steps", "5000"], "diffusion.sample_steps: must be <= train_steps = 1000"),
    ],
)
def test_bad_generation_flags_are_named(run_dir, flags, message):
    with pytest.raises(ValueError, match=message):
        generate(run_dir, *flags)
    assert not (run_dir / "generated").exists()


def test_options_accept_none_for_the_config_defaults():
    check_generation_options(None, None, None, None)
    check_generation_options(1, 1, 0.5, 1, 0, 0)


def test_limit_zero_is_rejected_by_the_library(synthetic_root):
    with pytest.raises(ValueError, match="limit: expected an integer >= 1, got 0"):
        load_evaluation_set(load_config("tiny", [f"data.root={synthetic_root}"]), "test", 0)


def test_non_finite_reactions_are_an_error_not_a_file(tmp_path, synthetic_root):
    config = load_config("tiny", [f"data.root={synthetic_root}", "diffusion.sample_steps=1"])
    gafrg = build_gafrg(config)
    with torch.no_grad():
        gafrg.output.weight.fill_(float("nan"))
    save_weights(gafrg, tmp_path / "gafrg" / "model.safetensors", {"stage": "gafrg"})
    data = load_evaluation_set(config, "test", limit=1)
    with pytest.raises(FloatingPointError, match="generic generation produced NaN"):
        Run(config, tmp_path, device="cpu").generate("test", ["generic"], samples=1, data=data)


def test_an_overflowing_guidance_is_named_not_the_weights(tmp_path, synthetic_root):
    config = load_config(
        "tiny",
        [f"data.root={synthetic_root}", "diffusion.sample_steps=1", "diffusion.guidance=1e308"],
    )
    save_weights(build_gafrg(config), tmp_path / "gafrg" / "model.safetensors", {"stage": "gafrg"})
    data = load_evaluation_set(config, "test", limit=1)
    with pytest.raises(FloatingPointError, match=r"diffusion\.guidance = 1e\+308 .* overflows"):
        Run(config, tmp_path, device="cpu").generate("test", ["generic"], samples=1, data=data)


def test_generic_generation_needs_no_listener_history(tmp_path, synthetic_root):
    # train has listeners with a single clip: no history can be read for them without the
    # evaluated clip, which personalised generation refuses and generic generation never reads.
    config = load_config("tiny", [f"data.root={synthetic_root}", "diffusion.sample_steps=1"])
    save_weights(build_gafrg(config), tmp_path / "gafrg" / "model.safetensors", {"stage": "gafrg"})
    run = Run(config, tmp_path, device="cpu")
    generic = run.generate("train", ["generic"], samples=2, limit=3)["generic"]
    assert generic.shape == (3, 2, 750, 25) and np.isfinite(generic).all()
    with pytest.raises(ValueError, match="no other clip"):
        run.generate("train", ["generic", "personalised"], samples=2)
    without = run.evaluation_set("train", limit=2, histories=False)
    with pytest.raises(ValueError, match="read without histories"):
        run.generate("train", ["personalised"], samples=2, data=without)
