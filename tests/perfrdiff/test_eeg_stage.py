"""The eeg stage (REACT 2026): what each window of the head sees, the masked loss, training on a
written MARS twin with EEG, when `train all` includes the stage, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from perfrdiff.cli import main
from perfrdiff.config import load_config
from perfrdiff.data import DataError
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.generation.eeg import predict_eeg, predict_split, read_item, score_split
from perfrdiff.metrics.eeg import EEG_METRICS
from perfrdiff.models.build import build_eeg_head
from perfrdiff.models.eeg_head import masked_mse
from perfrdiff.run import Run
from perfrdiff.rundir import StageMismatch
from perfrdiff.stages import STAGE_NAMES, run_stages
from perfrdiff.training.eeg import EegCrops, eeg_datasets, eeg_objective, eeg_store
from torch.utils.data import default_collate

GENERATOR_STAGES = ("emotion-vae", "style", "gafrg", "pwsg")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars_eeg")
    config = MarsSyntheticConfig(
        seed=3,
        sessions={"train": 3, "val": 1, "test": 1},
        dyads_per_session=(2, 2),
        lengths=(58, 299, 400),
        eeg_fraction=1.0,
    )
    write_mars_dataset(root, config)
    return root


def _config(root, *overrides):
    return load_config("tiny", ["protocol=react2026", f"data.root={root}", *overrides])


def _head():
    head = build_eeg_head(_config("unused")).eval()
    torch.manual_seed(0)
    return head, torch.randn(1, 120, 25), torch.randn(1, 120, head.speaker_dim)


def _changed_frames(before, after):
    return set(torch.nonzero((before - after).abs().amax(-1)[0] > 0).flatten().tolist())


def test_a_window_reads_its_own_listener_frames():
    head, listener, speaker = _head()
    with torch.no_grad():
        base = head(listener, speaker)
        listener[0, 40] += 1.0  # window 1 = frames 30..59
        assert _changed_frames(base, head(listener, speaker)) == set(range(30, 60))


def test_a_window_reads_the_speaker_over_the_window_before_and_its_own():
    head, listener, speaker = _head()
    with torch.no_grad():
        base = head(listener, speaker)
        speaker[0, 40] += 1.0  # seen by window 1 ([0, 60)) and window 2 ([30, 90))
        assert _changed_frames(base, head(listener, speaker)) == set(range(30, 90))
        speaker[0, 40] -= 1.0
        masked = head(listener, speaker, speaker_mask=torch.arange(120)[None] != 40)
        speaker[0, 40] = 0.0  # a masked frame reads as the speaker's mean, whatever it holds
        assert torch.equal(masked, head(listener, speaker, torch.arange(120)[None] != 40))


def test_windows_per_pass_and_a_length_off_the_window_give_the_same_frames():
    head, listener, speaker = _head()
    with torch.no_grad():
        whole = head(listener[:, :95], speaker[:, :95])
        assert whole.shape == (1, 95, 14)
        torch.testing.assert_close(head(listener[:, :95], speaker[:, :95], None, 1), whole)
        torch.testing.assert_close(whole[:, :90], head(listener, speaker)[:, :90])


def test_masked_cells_never_contribute_to_the_loss_or_its_gradient():
    prediction = torch.randn(2, 6, 14, requires_grad=True)
    target, mask = torch.randn(2, 6, 14), (torch.rand(2, 6, 14) > 0.5).float()
    target[mask == 0] = float("nan")  # anything at all where the mask is 0
    loss = masked_mse(prediction, target, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert (prediction.grad[mask == 0] == 0).all()
    assert (prediction.grad[mask == 1] != 0).all()
    kept = mask == 1
    expected = ((prediction.detach()[kept] - target[kept]) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)


def test_masked_targets_leave_the_heads_gradients_unchanged(twin):
    run = Run(_config(twin), "unused", device="cpu")
    objective = eeg_objective(run).eval()
    batch = default_collate([eeg_datasets(run.config)[0][i] for i in range(3)])
    grads = []
    for fill in (0.0, 1e3):
        changed = dict(batch, eeg=torch.where(batch["eeg_mask"] > 0, batch["eeg"], fill))
        objective.zero_grad()
        objective(changed)[0].backward()
        grads.append([p.grad.clone() for p in objective.trained.parameters()])
    assert 0 < batch["eeg_mask"].mean() < 1  # padding and bad cells are masked
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_crops_start_on_a_window_boundary_of_the_sequence(twin):
    train, _ = eeg_datasets(_config(twin))
    for item in range(len(train)):
        crop = train.crops[item]
        got, drop = train[item], -int(crop["start"]) % 30
        assert torch.equal(got["eeg"][: 750 - drop], crop["eeg"][drop:])
        assert not got["eeg_mask"][750 - drop :].any()
        assert got["speaker"].shape[-1] == 25 + 58 + 78


def test_the_stage_learns_a_fixed_batch(twin):
    torch.manual_seed(0)
    run = Run(_config(twin), "unused", device="cpu")
    objective = eeg_objective(run)
    train, _ = eeg_datasets(run.config)
    batch = default_collate([train[i] for i in range(2)])
    optimiser = torch.optim.Adam(objective.trained.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = objective(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::5]


@pytest.fixture(scope="module")
def trained(twin, tmp_path_factory):
    """A run whose eeg stage trained 40 steps on the twin, through the command line."""
    run_dir = tmp_path_factory.mktemp("eeg_run")
    quick = ["steps=40", "batch_size=4", "lr=0.003", "val_every=20", "ckpt_every=20"]
    argv = ["train", "eeg", "--config", "tiny", "--data-root", str(twin)]
    argv += ["--run-dir", str(run_dir), "--device", "cpu", "--set", "protocol=react2026"]
    argv += [x for q in quick for x in ("--set", f"train.eeg.{q}")]
    assert main(argv) == 0
    return run_dir


def test_train_eeg_exports_weights_that_refuse_another_head(trained):
    lines = [json.loads(x) for x in (trained / "eeg" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x["loss"]) for x in lines if "loss" in x)
    head = Run.load(trained, "cpu").model("eeg")
    assert head.speaker_scaler.std.ne(1).any()  # fitted to the training split, saved, loaded
    with pytest.raises(StageMismatch, match=r"eeg\.d_model"):
        Run.load(trained, "cpu", overrides=["eeg.d_model=32"]).model("eeg")


def _test_store(run):
    c = run.config
    return MarsStore(c.data.root, "test", run.protocol.fps, c.eeg.audio, personality=False)


def test_the_trained_head_predicts_the_test_eeg_better_than_an_untrained_one(trained):
    run = Run.load(trained, "cpu")
    store = _test_store(run)
    items, trained_eeg = predict_split(run.model("eeg"), store)
    fresh = run.build("eeg", trained=False).eval()
    fresh.speaker_scaler.load_state_dict(run.model("eeg").speaker_scaler.state_dict())
    _, fresh_eeg = predict_split(fresh, store)

    def error(predictions):
        pairs = zip(items, predictions, strict=True)
        return sum(
            float(masked_mse(*map(torch.as_tensor, (p[0], i.eeg, i.mask)))) for i, p in pairs
        )

    assert [p.shape for p in trained_eeg] == [(1, len(i.eeg), 14) for i in items]
    assert error(trained_eeg) < 0.5 * error(fresh_eeg)
    scores, before = score_split(items, trained_eeg), score_split(items, fresh_eeg)
    assert scores["EEG_items"] == len(items) and scores["EEG_FRCorr"] > before["EEG_FRCorr"]
    assert scores["EEG_FRDiv"] == 0.0  # one (real) reaction per item


def test_each_generated_sample_gets_its_own_eeg(trained):
    run = Run.load(trained, "cpu")
    head, store = run.model("eeg"), _test_store(run)
    item = read_item(store, store.dyads[0])
    noise = np.random.default_rng(0).normal(0, 0.3, (2, *item.listener.shape)).astype(np.float32)
    reactions = {item.key: item.listener[None] + noise}
    store.dyads = store.dyads[:1]
    _, (predicted,) = predict_split(head, store, reactions, windows_per_pass=7)
    assert predicted.shape == (2, len(item.listener), 14)
    np.testing.assert_allclose(
        predicted[1], predict_eeg(head, reactions[item.key][1:], item.speaker)[0], atol=1e-5
    )
    assert not np.allclose(predicted[0], predicted[1])


def test_perfrdiff_eeg_writes_predictions_and_scores(trained, tmp_path):
    assert main(["eeg", "--run-dir", str(trained), "--device", "cpu", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "scores.json").read_text())
    assert record["listener"] == "real" and record["items"] == 2
    assert all(math.isfinite(record["scores"][m]) for m in EEG_METRICS)
    with np.load(tmp_path / "eeg.npz") as archive:
        assert sorted(archive.files) == sorted(
            f"{d.session}/{d.stem}" for d in _test_store(Run.load(trained, "cpu")).dyads
        )
    bad = tmp_path / "reactions.npz"
    np.savez(bad, other=np.zeros((2, 5, 25)))
    with pytest.raises(DataError, match="reactions: no array for 'session"):
        main(
            [
                "eeg",
                "--run-dir",
                str(trained),
                "--device",
                "cpu",
                "--reactions",
                str(bad),
                "--out",
                str(tmp_path / "b"),
            ]
        )


def test_train_all_has_eeg_only_under_react2026_with_eeg_in_the_training_split(twin, tmp_path):
    assert (*GENERATOR_STAGES, "eeg") == STAGE_NAMES
    nowhere = tmp_path / "nowhere"
    assert run_stages(load_config("tiny", [f"data.root={nowhere}"])) == GENERATOR_STAGES
    assert run_stages(_config(twin)) == (*GENERATOR_STAGES, "eeg")
    assert run_stages(_config(nowhere)) == GENERATOR_STAGES
    no_eeg = tmp_path / "no_eeg"
    write_mars_dataset(no_eeg, MarsSyntheticConfig(sessions={"train": 1}, lengths=(60,), eeg=False))
    assert run_stages(_config(no_eeg)) == GENERATOR_STAGES


def test_only_listeners_with_eeg_are_read(twin, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(twin, root)
    first = eeg_store(_config(root), "train").dyads[0]
    (root / "train" / "eeg_processed" / f"{first.listener}.csv").unlink()
    assert first not in eeg_store(_config(root), "train").dyads


def test_bad_input_is_named(twin, tmp_path):
    with pytest.raises(ValueError, match="protocol: the eeg stage reads"):
        eeg_datasets(load_config("tiny", [f"data.root={twin}"]))
    no_eeg = tmp_path / "no_eeg"
    write_mars_dataset(no_eeg, MarsSyntheticConfig(sessions={"train": 1}, lengths=(60,), eeg=False))
    with pytest.raises(DataError, match=r"eeg_processed.*no listener of split 'train' has EEG"):
        eeg_datasets(_config(no_eeg))
    head, listener, speaker = _head()
    with pytest.raises(ValueError, match="listener: expected"):
        head(listener[..., :24], speaker)
    with pytest.raises(ValueError, match="speaker: expected"):
        head(listener, speaker[:, :50])
    with pytest.raises(ValueError, match="one shape"):
        masked_mse(torch.zeros(2, 14), torch.zeros(2, 14), torch.zeros(2, 13))
    assert isinstance(eeg_datasets(_config(twin))[0], EegCrops)
