"""REACT 2026 through the CLI on the MARS twin: make-synthetic, train all, generate the four
tracks (generic / personalised × offline / online), evaluate them in one table; runs whose shift
generator reads the listeners' Big Five (pwsg.condition both, personality) generate personalised
tracks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from perfrdiff.cli import main
from perfrdiff.config import STAGES
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.run import Run
from perfrdiff.rundir import stage_weights
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

QUICK = [
    item
    for stage in STAGES
    for setting in ("steps=2", "batch_size=4", "val_every=2", "ckpt_every=2", "val_batches=1")
    for item in ("--set", f"train.{stage}.{setting}")
]


def test_train_generate_and_evaluate_the_four_tracks(tmp_path, capsys):
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "generate"
    twin = ["--layout", "react2026", "--root", str(data), "--no-eeg"]
    sizes = ["--train-sessions", "2", "--val-sessions", "1", "--test-sessions", "1"]
    assert main(["make-synthetic", *twin, *sizes, "--min-clips", "2", "--max-clips", "2"]) == 0
    common = ["--run-dir", str(run), "--device", "cpu", "--set", "threads=1"]
    react2026 = ["--set", "protocol=react2026", "--set", "data.window=30"]
    argv = ["train", "all", "--data-root", str(data), *common, *react2026, *QUICK]
    assert main(argv) == 0
    argv = ["generate", *common, "--samples", "2", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--plots", "1"]) == 0
    tracks = [f"{m}-{t}" for m in ("generic", "personalised") for t in ("offline", "online")]
    store = MarsStore(data, "test", audio="none", personality=False)
    for name in tracks:
        with np.load(out / name / "predictions.npz") as archive:
            for dyad in store.dyads:
                array = archive[f"{dyad.session}/{dyad.stem}"]
                assert array.shape == (2, store.frames(dyad), 25)
                assert set(np.unique(array[..., :15])) <= {0.0, 1.0}  # the protocol's AU rounding
        meta = json.loads((out / name / "predictions.json").read_text())
        assert meta["protocol"] == "react2026" and meta["track"] == name.split("-")[1]
        assert sorted(p.name for p in (out / name).glob("*.png")) == ["item_0000.png"]
    capsys.readouterr()
    paths = [str(out / name / "predictions.npz") for name in tracks]
    assert main(["evaluate", *paths, "--n-jobs", "1"]) == 0
    table = capsys.readouterr().out
    for name in tracks:
        assert f"| {name.replace('-', ' ')} |" in table


TWIN = ["--layout", "react2026", "--no-eeg", "--train-sessions", "2", "--val-sessions", "1",
        "--test-sessions", "1", "--min-clips", "2", "--max-clips", "2"]  # fmt: skip
REACT2026 = ["--set", "protocol=react2026", "--set", "data.window=30", "--set", "threads=1"]
#: Both parts of the listener prior fitted on the twin's training sequences.
PRIORS_FITTED = ["--set", "pwsg.fit_prior_weight=true", "--set", "pwsg.personality_prior=true"]
#: A personality-only generator that reads no history (no history mean/std, no listener prior).
PERSONALITY_ONLY = ["--set", "pwsg.condition=personality", "--set", "pwsg.history_stats=false",
                    "--set", "pwsg.listener_prior=false"]  # fmt: skip


@pytest.fixture(scope="module")
def condition_runs(tmp_path_factory):
    """A MARS twin and two runs on it: ``both`` (train all, both parts of its listener prior
    fitted) and ``personality`` (the same generic stages, its shift generator retrained)."""
    tmp = tmp_path_factory.mktemp("conditions")
    data, both, alone = tmp / "data", tmp / "both", tmp / "personality"
    assert main(["make-synthetic", *TWIN, "--root", str(data)]) == 0
    common = ["--device", "cpu", "--data-root", str(data), *REACT2026, *QUICK]
    argv = ["train", "all", "--run-dir", str(both), *common, "--set", "pwsg.condition=both",
            *PRIORS_FITTED]  # fmt: skip
    assert main(argv) == 0
    for stage in ("emotion-vae", "style", "gafrg"):
        shutil.copytree(both / stage, alone / stage)
    argv = ["train", "pwsg", "--run-dir", str(alone), *common, *PERSONALITY_ONLY]
    assert main(argv) == 0
    return data, {"both": both, "personality": alone}


@pytest.mark.parametrize("condition", ["both", "personality"])
def test_a_personality_conditioned_run_generates_personalised_tracks(condition_runs, condition):
    data, runs = condition_runs
    out = runs[condition] / "generate"
    argv = ["generate", "--run-dir", str(runs[condition]), "--device", "cpu", "--samples", "2",
            "--steps", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    store = MarsStore(data, "test", audio="none")
    for track in ("offline", "online"):
        meta = json.loads((out / f"personalised-{track}" / "predictions.json").read_text())
        assert meta["condition"] == condition
        assert (meta["history"] == "not read") == (condition == "personality")
        with (
            np.load(out / f"personalised-{track}" / "predictions.npz") as personalised,
            np.load(out / f"generic-{track}" / "predictions.npz") as generic,
        ):
            for dyad in store.dyads:
                key = f"{dyad.session}/{dyad.stem}"
                assert personalised[key].shape == (2, store.frames(dyad), 25)
                assert not np.array_equal(personalised[key], generic[key])  # the shifts act


def test_the_fitted_priors_are_saved_with_the_generator_and_read_back(condition_runs):
    _, runs = condition_runs
    saved = load_file(str(stage_weights(runs["both"], "pwsg")))
    assert {"prior.weight", "personality_level.coef", "personality_level.scores_mean"} <= set(saved)
    assert saved["personality_level.coef"].abs().sum() > 0  # fitted, not the zero start
    model = Run.load(runs["both"], "cpu").model("pwsg")
    torch.testing.assert_close(model.personality_level.coef, saved["personality_level.coef"])
    torch.testing.assert_close(model.prior.weight, saved["prior.weight"])
