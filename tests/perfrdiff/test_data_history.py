"""Where the evaluated listener's history comes from: never the evaluated clip unless asked."""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.data import ClipDataset, ClipStore, DataError, SplitIndex, person_of
from perfrdiff.data.history import HistoryPicker, HistorySource
from perfrdiff.data.layout import AUDIO_DIR, EMOTION_DIR, FACE_DIR
from perfrdiff.generation import load_evaluation_set

#: In the tiny synthetic set this train listener has one clip and appears in no other split.
SINGLE_CLIP_LISTENER = "RECOLA/group-1/P28"


def write_split(root, split, rows):
    with (root / f"{split}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "speaker_path", "listener_path"])
        writer.writerows((i, s, listener) for i, (s, listener) in enumerate(rows))


def test_history_is_another_clip_of_the_same_listener_in_the_split(synthetic_root):
    dataset = ClipDataset(synthetic_root, "test")
    store = ClipStore(synthetic_root, "test")
    for item, (pair, source) in enumerate(
        zip(dataset.index.items, dataset.history_sources, strict=True)
    ):
        assert source.kind == "same-split" and source.split == "test"
        assert source.clip != pair.listener
        assert person_of(source.clip) == person_of(pair.listener)
        expected = store.emotion(source.clip)[: dataset.history_frames]
        assert torch.equal(dataset[item]["history_emotion"], torch.from_numpy(expected))


def test_history_choice_is_deterministic(synthetic_root):
    first, second = ClipDataset(synthetic_root, "test"), ClipDataset(synthetic_root, "test")
    assert first.history_sources == second.history_sources
    for item in range(len(first)):
        assert torch.equal(first[item]["history_face"], second[item]["history_face"])


def test_listener_without_another_clip_fails_naming_it(synthetic_root):
    with pytest.raises(DataError, match=SINGLE_CLIP_LISTENER):
        ClipDataset(synthetic_root, "train")


def test_evaluated_clip_is_used_only_when_asked_and_counted(synthetic_root):
    dataset = ClipDataset(synthetic_root, "train", allow_same_clip_history=True)
    clips_of = dataset.index.clips_of
    for pair, source in zip(dataset.index.items, dataset.history_sources, strict=True):
        if len(clips_of[person_of(pair.listener)]) == 1:
            assert source == HistorySource("train", pair.listener, "same-clip")
        else:
            assert source.clip != pair.listener
    single = sum(len(clips_of[person_of(p.listener)]) == 1 for p in dataset.index.items)
    assert dataset.history_summary()["items"]["same-clip"] == single > 0
    assert dataset.history_summary()["allow_same_clip"] is True


def test_other_splits_are_tried_train_first(tmp_path):
    # Only the split CSVs are read to choose; listener "S/x/A" has one clip in test.
    write_split(tmp_path, "test", [("S/x/B/1", "S/x/A/1")])
    write_split(tmp_path, "val", [("S/y/B/1", "S/x/A/7")])
    write_split(tmp_path, "train", [("S/z/B/1", "S/x/A/5"), ("S/z/B/2", "S/x/A/3")])
    picker = HistoryPicker(tmp_path, "test")
    assert picker("S/x/A/1") == HistorySource("train", "S/x/A/3", "other-split")
    (tmp_path / "train.csv").unlink()
    assert HistoryPicker(tmp_path, "test")("S/x/A/1") == HistorySource(
        "val", "S/x/A/7", "other-split"
    )


def test_another_clip_in_the_same_split_wins_over_other_splits(tmp_path):
    write_split(tmp_path, "test", [("S/x/B/1", "S/x/A/2"), ("S/x/B/2", "S/x/A/1")])
    write_split(tmp_path, "train", [("S/z/B/1", "S/x/A/0")])
    assert HistoryPicker(tmp_path, "test")("S/x/A/2") == HistorySource(
        "test", "S/x/A/1", "same-split"
    )


def test_clip_dataset_reads_the_history_from_the_other_split(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    # Give the single-clip train listeners a second clip in val (copies of their train clips).
    index = SplitIndex(root, "train")
    single = [clips[0] for clips in index.clips_of.values() if len(clips) == 1]
    copies = [clip.rsplit("/", 1)[0] + "/9" for clip in single]
    for train_clip, val_clip in zip(single, copies, strict=True):
        for directory, suffix in ((EMOTION_DIR, "csv"), (FACE_DIR, "npy"), (AUDIO_DIR, "wav")):
            target = root / "val" / directory / f"{val_clip}.{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "train" / directory / f"{train_clip}.{suffix}", target)
    write_split(root, "val", [tuple(copies)])  # mirrored: both copies are val listeners
    dataset = ClipDataset(root, "train")
    item = next(i for i, p in enumerate(dataset.index.items) if p.listener == single[0])
    assert dataset.history_sources[item] == HistorySource("val", copies[0], "other-split")
    val = ClipStore(root, "val")
    expected = val.face(copies[0])[: dataset.history_frames]
    assert np.array_equal(dataset[item]["history_face"].numpy(), expected)
    # the dyadic history pairs it with its partner in val (the other copy), not in train
    partner = SplitIndex(root, "val").partner_of[copies[0]]
    assert partner == copies[1]
    expected = np.concatenate([val.emotion(copies[0]), val.emotion(partner)], axis=1)
    assert np.array_equal(dataset[item]["history_dyadic"].numpy(), expected[:250])


def test_evaluation_set_records_the_history_and_warns_on_the_evaluated_clip(synthetic_root, caplog):
    strict = load_config("tiny", [f"data.root={synthetic_root}"])
    assert load_evaluation_set(strict, "test").history["items"] == {
        "same-split": 4,
        "other-split": 0,
        "same-clip": 0,
    }
    allowed = load_config(
        "tiny", [f"data.root={synthetic_root}", "data.allow_same_clip_history=true"]
    )
    with caplog.at_level(logging.WARNING):
        data = load_evaluation_set(allowed, "train")
    assert data.history["items"]["same-clip"] > 0
    assert "use their own clip as listener history" in caplog.text
