"""Personalisation diagnostics and the ablation command, on a run trained for a few steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from perfrdiff import Run
from perfrdiff.changes import retrained_stages
from perfrdiff.cli import main
from perfrdiff.config import load_config
from perfrdiff.generation import EvaluationSet
from perfrdiff.models import build_style_encoder
from perfrdiff.personalisation import (
    ABLATION_METRICS,
    EDIT_SETS,
    EarlyStopping,
    ablate,
    fine_tuned_predictions,
    input_p_model,
    mean_offset_predictions,
    style_retrieval,
)

from tests.perfrdiff.test_end_to_end import quick_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(synthetic_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    fast = ["--set", "generate.samples=2", "--set", "diffusion.sample_steps=2"]
    argv = ["train", "all", "--data-root", str(synthetic_root), "--run-dir", str(run_dir)]
    assert main([*argv, "--device", "cpu", *quick_overrides(), *fast]) == 0
    return run_dir


@pytest.mark.parametrize(
    ("override", "retrained"),
    [
        ("train.pwsg.steps=7", ["pwsg"]),
        ("pwsg.prior_weight=1", ["pwsg"]),
        ("pwsg.history_segments=false", ["pwsg"]),
        ("data.history_frames=100", ["pwsg"]),  # only the shift generator reads a history
        # the style encoder reads clips of style.frames, not windows
        ("data.window=40", ["emotion-vae", "gafrg", "pwsg"]),
        ("style.temperature=0.1", ["style", "pwsg"]),
        ("denoiser.layers=3", ["gafrg", "pwsg"]),
        ("emotion_vae.latent_dim=8", ["emotion-vae", "gafrg", "pwsg"]),
        ("diffusion.sample_steps=3", []),  # the sampler's alone
        ("generate.samples=3", []),
        # every stage reads the seed; variant_run trains only the run's own stages (a REACT 2024
        # run has no eeg stage)
        ("seed=5", ["emotion-vae", "style", "gafrg", "pwsg", "eeg"]),
    ],
)
def test_a_variant_retrains_the_stages_its_overrides_change_and_those_above(override, retrained):
    base = load_config("tiny")
    assert retrained_stages(base, load_config("tiny", [override])) == retrained


def test_mean_offset_moves_each_item_to_its_listener_mean():
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=(3, 4, 20, 25)).astype(np.float32)
    means = rng.normal(size=(3, 25))
    shifted = mean_offset_predictions(predictions, means)
    np.testing.assert_allclose(shifted.mean(axis=(1, 2)), means, atol=1e-5)
    np.testing.assert_allclose(shifted - shifted.mean(axis=(1, 2), keepdims=True),
                               predictions - predictions.mean(axis=(1, 2), keepdims=True),
                               atol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="disagree"):
        mean_offset_predictions(predictions, means[:2])


def test_style_retrieval_queries_every_listener_clip_with_another_clip(quick_run):
    result = style_retrieval(Run.load(quick_run, device="cpu"), "test")
    assert result["queries"] == 4 and result["listeners"] == 2  # 2 listeners x 2 clips
    assert 0 <= result["top1"] <= result["top5"] == 1.0  # only 2 listeners: top-5 is certain


def test_a_dyadic_history_trains_generates_and_identifies_listeners(synthetic_root, tmp_path):
    # style.input=dyadic: the listener's emotion beside their partner's, through every stage
    fast = ["--set", "generate.samples=2", "--set", "diffusion.sample_steps=2"]
    argv = ["train", "all", "--data-root", str(synthetic_root), "--run-dir", str(tmp_path)]
    dyadic = ["--set", "style.input=dyadic"]
    assert main([*argv, "--device", "cpu", *quick_overrides(2), *fast, *dyadic]) == 0
    run = Run.load(tmp_path, device="cpu")
    assert run.model("style").input_dim == 50
    result = style_retrieval(run, "test")
    assert result["queries"] == 4 and result["input"] == "dyadic"
    predictions = run.generate("test", ["personalised"], limit=2)["personalised"]
    assert predictions.shape == (2, 2, 750, 25) and np.isfinite(predictions).all()
    one_listener = np.random.default_rng(0).random((250, 50), dtype=np.float32)
    alike = run.generate("test", ["personalised"], limit=2, history=one_listener)
    assert alike["personalised"].shape == (2, 2, 750, 25)
    with pytest.raises(ValueError, match=r"history must have shape \(h, 50\)"):
        run.generate("test", ["personalised"], limit=2, history=one_listener[:, :25])


def test_input_p_edits_only_the_style_token_and_starts_as_the_generic_model():
    config = load_config("tiny")
    model = input_p_model(config, None, build_style_encoder(config)).eval()
    assert list(model.targets) == ["style_slot"]
    x_t, t = torch.randn(2, 50, 25), torch.tensor([10, 500])
    memory = torch.randn(2, 101 + 50, config.denoiser.d_model)
    history = torch.randn(2, 250, model.style_encoder.input_dim)
    with torch.no_grad():
        shifts = model.listener_shifts(history)
        assert shifts["style_slot"].bias.shape == (2, config.denoiser.d_model)
        generic = model(x_t, t, memory)
        torch.testing.assert_close(model(x_t, t, memory, None, shifts, None), generic)
        for parameter in model.generator.parameters():
            parameter.add_(0.1)
        edited = model(x_t, t, memory, None, model.listener_shifts(history), None)
    assert not torch.allclose(edited, generic)


def test_a_run_refuses_histories_read_for_another_length(quick_run):
    run = Run.load(quick_run, device="cpu")
    frames = run.config.data.history_frames
    shorter = Run.load(quick_run, device="cpu", overrides=[f"data.history_frames={frames - 100}"])
    data = shorter.evaluation_set("test", limit=2)
    assert data.history_frames == frames - 100
    assert all(clip["history"].shape[0] == frames - 100 for clip in data.clips)
    with pytest.raises(ValueError, match=rf"histories of {frames - 100} frames, but the run reads"):
        run.generate("test", ["personalised"], data=data)
    assert shorter.generate("test", ["personalised"], data=data)["personalised"].shape[0] == 2


def test_upper_bound_fine_tunes_per_item_and_keeps_its_best_held_out_step(quick_run):
    run = Run.load(quick_run, device="cpu")
    data = run.evaluation_set("test", limit=3)
    bound = fine_tuned_predictions(run, "test", data, steps=4, val_every=2, patience=1)
    assert bound.predictions.shape == (3, 2, 750, 25)
    assert np.isfinite(bound.predictions).all()
    assert len(bound.steps) == 3 and all(s in (0, 2, 4) for s in bound.steps)
    # no fine-tuning at all is the generic model, sample for sample
    none = fine_tuned_predictions(run, "test", data, steps=0)
    assert none.steps == [0, 0, 0]
    one = EvaluationSet(
        data.clips[:1], data.listener_emotion[:1], data.speaker_emotion[:1], data.neighbours[:1, :1]
    )
    np.testing.assert_array_equal(none.predictions[0], run.sample("generic", one, seed=0)[0])


def test_early_stopping_keeps_the_lowest_held_out_loss_and_waits_its_patience():
    stopping = EarlyStopping(patience=2)
    said = [
        stopping.measured(step, loss, lambda step=step: {"at": step})
        for step, loss in [(0, 1.0), (10, 0.5), (20, 0.7), (30, 0.5)]
    ]
    assert said == [False, False, False, True]  # 0.5 again is not lower
    assert (stopping.step, stopping.best, stopping.state) == (10, 0.5, {"at": 10})


@pytest.mark.parametrize("seeds", [[], [0, 0]])
def test_ablate_wants_distinct_seeds(quick_run, tmp_path, seeds):
    with pytest.raises(ValueError, match="seeds: expected distinct"):
        ablate(Run.load(quick_run, "cpu"), tmp_path, seeds=seeds)


def test_ablate_command_writes_both_tables(quick_run, tmp_path):
    out = tmp_path / "ablation"
    argv = ["ablate", "--run-dir", str(quick_run), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--limit", "4", "--seeds", "0", "1"]) == 0
    report = json.loads((out / "ablation.json").read_text())
    assert (report["seeds"], report["items"]) == ([0, 1], 4)
    rows = report["rows"]
    assert [r["row"] for r in rows if r["table"] == "3"] == ["GAFRG", "input p", "weight editing"]
    assert [r["row"] for r in rows if r["table"] == "4"] == list(EDIT_SETS)
    assert all(math.isfinite(r[k]) for r in rows for k in ABLATION_METRICS)
    for r in rows:  # the reported value is the mean of the seeds' values
        assert set(r["by_seed"]) == {"0", "1"}
        for k in ABLATION_METRICS:
            assert r[k] == pytest.approx(np.mean([r["by_seed"][s][k] for s in ("0", "1")]))
    generic = rows[0]
    assert "vs GAFRG" not in generic
    for r in rows[1:]:
        for k in ABLATION_METRICS:
            ratio = r["vs GAFRG"][k]
            assert ratio["value"] == pytest.approx(r[k] / generic[k])
            assert ratio["low"] <= ratio["value"] <= ratio["high"]
    markdown = (out / "ablation.md").read_text()
    assert "Table 3" in markdown and "Table 4" in markdown
    assert markdown.count("×") == 4 * (len(rows) - 1)  # every row but GAFRG has its ratios
