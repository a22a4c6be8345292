"""benchmarks/react2026_personalisation.py: one seed trains every condition (the generic stages
once), writes and scores every online row, and the summary checks the targets of both pairs."""

import argparse

import numpy as np
import pytest
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset

from tests.benchmarks.scripts import benchmark_script

QUICK = [f"train.{stage}.{setting}" for stage in ("emotion-vae", "style", "gafrg", "pwsg")
         for setting in ("steps=2", "batch_size=4", "val_every=2", "ckpt_every=2",
                         "val_batches=1")]  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("react2026_personalisation") as module:
        yield module


def test_one_seed_scores_every_row(bench, tmp_path):
    root, sessions = tmp_path / "data", {"train": 2, "val": 1, "test": 2}
    # with EEG: the run's stages include eeg, which the benchmark does not train or copy
    config = MarsSyntheticConfig(seed=1, sessions=sessions, dyads_per_session=(2, 2),
                                 lengths=(58, 120, 90), eeg=True, eeg_fraction=1.0)  # fmt: skip
    write_mars_dataset(root, config)
    args = argparse.Namespace(root=root, runs=tmp_path / "runs", samples=2, generate_seed=0,
                              device="cpu", steps=["threads=1", *QUICK],
                              max_frames=None)  # fmt: skip
    result = bench.one_seed(args, 0)
    assert set(result["metrics"]) == set(bench.ROWS) and result["items"] == 4
    for row in bench.ROWS:
        assert np.isfinite(result["metrics"][row]["FRCorr"])
    runs = tmp_path / "runs" / "seed0"
    for condition in set(bench.CONDITIONS) - {"both"}:  # generic stages copied, not retrained
        assert (runs / condition / "gafrg" / "model.safetensors").read_bytes() == (
            runs / "both" / "gafrg" / "model.safetensors"
        ).read_bytes()
    # The scorer of a subset is perfrdiff evaluate's computation: equal on every item.
    base = bench.Run.load(runs / "both", "cpu")
    data = bench.held_out_items(base, False, None)
    for row in ("generic", "both"):
        assert bench.score(runs / f"{row}.npz", data, base.protocol) == result["metrics"][row]
    fitted = bench.Run.load(runs / "both+priors", "cpu").model("pwsg")
    assert fitted.personality_level.coef.abs().sum() > 0  # fitted on the training sequences
    kept = bench.held_out_items(base, False, 100)
    assert all(t <= 100 for t in kept.lengths) and 0 < len(kept.dyads) < 4
    summary = bench.summary([result])
    assert summary["frcorr_over_generic"]["generic"] == 1.0 and len(summary["targets"]) == 8


def test_level_predictability_is_perfect_for_levels_linear_in_the_personality(
    bench, tmp_path, monkeypatch
):
    root = tmp_path / "data"
    config = MarsSyntheticConfig(seed=2, sessions={"train": 12, "val": 1, "test": 2},
                                 dyads_per_session=(1, 2), lengths=(60, 90), eeg=False)  # fmt: skip
    write_mars_dataset(root, config)
    r2 = bench.level_predictability(root)
    assert set(r2) == {"train", "test"} and r2["train"] <= 1.0 and np.isfinite(r2["test"])
    # Levels that are the personality's linear map (12 listeners, 5 scores): R² 1 on both.
    planted = np.random.default_rng(0).normal(size=(5, 25))

    def linear_levels(store):
        scores = np.stack([store.personality[d] for d in store.dyads]).astype(np.float64)
        return scores @ planted, scores

    monkeypatch.setattr(bench, "sequence_levels", linear_levels)
    r2 = bench.level_predictability(root)
    assert r2["train"] > 0.999 and r2["test"] > 0.999


def test_the_offset_baseline_moves_each_item_to_its_history_mean(bench):
    raw = [np.random.default_rng(0).random((3, 40, 25), dtype=np.float32)]
    data = argparse.Namespace(histories=[np.full((10, 50), 0.25, dtype=np.float32)])
    (moved,) = bench.offset_arrays(raw, data)
    np.testing.assert_allclose(moved.mean(axis=(0, 1)), 0.25, atol=1e-6)
    shift = np.broadcast_to(moved[0, 0] - raw[0][0, 0], moved.shape)  # one per channel
    np.testing.assert_allclose(moved - raw[0], shift, atol=1e-5)
