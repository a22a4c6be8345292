"""Issue item 9: every checkpoint file has a checksum, verified on load; a damaged checkpoint is
named and resume falls back to the newest intact one (fault injection over every file)."""

import json
import logging
import shutil

import pytest
import torch
from perfrdiff.training.checkpoint import (
    CHECKSUMS,
    FILES,
    CheckpointError,
    list_checkpoints,
    load_weights,
)

from .training_runs import objective, one_thread, train  # noqa: F401 (one_thread: autouse)


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def zero_middle(data: bytes) -> bytes:
    # inside a tensor's bytes (or the JSON text): the file still parses, only a checksum notices
    middle = len(data) // 2
    return data[:middle] + bytes(min(64, len(data) - middle)) + data[middle + 64 :]


def replace_with_text(data: bytes) -> bytes:
    return b"this is not a checkpoint file\n"


DAMAGE = {"truncated": truncate, "zeroed": zero_middle, "text": replace_with_text}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def killed_at_5(tmp_path_factory):
    """A run killed after step 5: intact checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("killed")
    assert train(out, kill_at=5) is None
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "step_00000002",
        "step_00000004",
    ]
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("file", [*FILES, CHECKSUMS])
def test_resume_falls_back_past_a_damaged_file(
    tmp_path, killed_at_5, uninterrupted, file, damage, caplog
):
    run = tmp_path / "run"
    shutil.copytree(killed_at_5, run)
    target = run / "checkpoints" / "step_00000004" / file
    target.write_bytes(DAMAGE[damage](target.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="perfrdiff.training.checkpoint"):
        resumed = train(run, resume=True)
    assert str(target) in caplog.text
    assert "resuming from" in caplog.text and "step_00000002" in caplog.text
    for name, value in uninterrupted.items():  # resumed from step 2: still the same weights
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)
    # the damaged checkpoint was replaced by a complete one of the same step
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "step_00000004",
        "step_00000006",
    ]


def test_a_missing_file_is_named(tmp_path, killed_at_5, uninterrupted, caplog):
    shutil.copytree(killed_at_5, tmp_path / "run")
    missing = tmp_path / "run" / "checkpoints" / "step_00000004" / "optimizer.safetensors"
    missing.unlink()
    with caplog.at_level(logging.WARNING, logger="perfrdiff.training.checkpoint"):
        resumed = train(tmp_path / "run", resume=True)
    assert f"{missing}: file is missing" in caplog.text
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


def test_no_intact_checkpoint_is_an_error_that_lists_each(tmp_path, killed_at_5):
    shutil.copytree(killed_at_5, tmp_path / "run")
    for step in ("step_00000002", "step_00000004"):
        path = tmp_path / "run" / "checkpoints" / step / "model.safetensors"
        path.write_bytes(zero_middle(path.read_bytes()))
    with pytest.raises(CheckpointError, match="no intact checkpoint") as error:
        train(tmp_path / "run", resume=True)
    assert "step_00000002/model.safetensors: checksum mismatch" in str(error.value)
    assert "step_00000004/model.safetensors: checksum mismatch" in str(error.value)
    assert len(list_checkpoints(tmp_path / "run" / "checkpoints")) == 2  # nothing deleted


def test_checksums_cover_every_file(killed_at_5):
    checksums = json.loads((killed_at_5 / "checkpoints" / "step_00000004" / CHECKSUMS).read_text())
    assert sorted(checksums) == sorted(FILES)
    assert all(len(value) == 64 for value in checksums.values())


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_exported_weights_are_verified_and_named(tmp_path, damage):
    train(tmp_path)
    weights = tmp_path / "model.safetensors"
    assert len(json.loads((tmp_path / "model.json").read_text())["sha256"]) == 64
    weights.write_bytes(DAMAGE[damage](weights.read_bytes()))
    with pytest.raises(CheckpointError, match=f"{weights}: checksum mismatch"):
        load_weights(objective().trained, weights)


def test_weights_without_a_recorded_checksum_still_load(tmp_path):
    trained = train(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["sha256"]  # exported before checksums existed
    (tmp_path / "model.json").write_text(json.dumps(meta))
    model = objective().trained
    load_weights(model, tmp_path / "model.safetensors")
    torch.testing.assert_close(model.state_dict(), trained, rtol=0, atol=0)


def test_an_unreadable_file_of_an_older_checkpoint_without_checksums_is_named(
    tmp_path, killed_at_5, uninterrupted, caplog
):
    shutil.copytree(killed_at_5, tmp_path / "run")
    step_4 = tmp_path / "run" / "checkpoints" / "step_00000004"
    (step_4 / CHECKSUMS).unlink()  # the format before checksums
    (step_4 / "rng.safetensors").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="perfrdiff.training.checkpoint"):
        resumed = train(tmp_path / "run", resume=True)
    assert f"{step_4 / 'rng.safetensors'}: not a readable safetensors file" in caplog.text
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)
