"""Files the reference writes: permissions as open() gives them, no leftovers from killed
writers, damaged records named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from perfrdiff.atomic import atomic_write_text, is_abandoned, writer_tag
from perfrdiff.rundir import check_stage
from perfrdiff.weights import CheckpointError

from .training_runs import one_thread, train  # noqa: F401 (one_thread: autouse)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_files_get_the_umask_permissions_like_open(tmp_path, umask_022):
    path = atomic_write_text(tmp_path / "report.json", "{}")
    with open(tmp_path / "plain.json", "w") as f:
        f.write("{}")
    assert oct(path.stat().st_mode & 0o777) == oct((tmp_path / "plain.json").stat().st_mode & 0o777)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask_022):
    path = tmp_path / "shared.yaml"
    path.write_text("old")
    path.chmod(0o664)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o664


def dead_writer_tag() -> str:
    """The tag of a process of this host that has exited."""
    script = "from perfrdiff.atomic import writer_tag; print(writer_tag())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = dead_writer_tag()
    assert is_abandoned(dead) and not is_abandoned(writer_tag())
    assert not is_abandoned("another-host-1")  # never judged: maybe a live writer elsewhere
    abandoned = tmp_path / f".model.json.{dead}.x1y2.tmp"
    live = tmp_path / f".model.json.{writer_tag()}.a1b2.tmp"
    elsewhere = tmp_path / ".model.json.otherhost-1.c3d4.tmp"
    for path in (abandoned, live, elsewhere):
        path.write_text("partial")
    atomic_write_text(tmp_path / "model.json", "{}")
    assert not abandoned.exists() and live.exists() and elsewhere.exists()


def test_a_checkpoint_write_killed_half_way_is_cleaned_by_the_next_run(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    leftover = checkpoints / f".step_00000004.{dead_writer_tag()}.tmp"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"\0" * 1024)
    train(tmp_path, steps=2, ckpt_every=1)
    assert not leftover.exists()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_00000001", "step_00000002"]


def test_a_truncated_stage_record_is_named(tmp_path):
    train(tmp_path / "gafrg", steps=1)
    record = tmp_path / "gafrg" / "model.json"
    record.write_text(record.read_text()[:20])
    with pytest.raises(CheckpointError, match=r"gafrg/model\.json: not readable JSON"):
        check_stage(tmp_path, "gafrg", None)
