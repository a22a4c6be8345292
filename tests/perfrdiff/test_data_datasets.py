"""Datasets of the three stages, on the tiny synthetic dataset."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from perfrdiff.data import (
    ClipDataset,
    ClipStore,
    DataError,
    ListenerBatchSampler,
    ListenerClipDataset,
    SplitIndex,
    WindowDataset,
    collate_clips,
    person_of,
)
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def windows(synthetic_root):
    return WindowDataset(synthetic_root, "train", random_start=False, seed=1)


def test_window_item_shapes_and_dtypes(windows):
    item = windows[0]
    shapes = {key: tuple(value.shape) for key, value in item.items()}
    assert shapes == {
        "speaker_audio": (50, 78), "speaker_face": (50, 58), "speaker_emotion": (50, 25),
        "listener_emotion": (50, 25), "listener_prev_emotion": (50, 25), "has_past": (),
        "listener_id": (), "history_face": (250, 58), "history_emotion": (250, 25),
        "history_dyadic": (250, 50), "start": (),
    }  # fmt: skip
    assert item["speaker_audio"].dtype == torch.float32
    assert item["listener_id"].dtype == torch.int64 and item["has_past"].dtype == torch.bool


def test_window_pairs_speaker_past_with_listener_future(synthetic_root, windows):
    store = ClipStore(synthetic_root, "train")
    for k in range(len(windows)):
        item, pair = windows[k], windows.index.items[k]
        s = int(item["start"])
        np.testing.assert_array_equal(
            item["listener_emotion"], store.emotion(pair.listener)[s : s + 50]
        )
        if item["has_past"]:
            np.testing.assert_array_equal(
                item["speaker_face"], store.face(pair.speaker)[s - 50 : s]
            )
            np.testing.assert_array_equal(
                item["speaker_audio"], store.audio(pair.speaker)[s - 50 : s]
            )
            np.testing.assert_array_equal(
                item["listener_prev_emotion"], store.emotion(pair.listener)[s - 50 : s]
            )


def test_window_without_past_has_zero_past_and_flag_false(synthetic_root):
    dataset = WindowDataset(synthetic_root, "train", window=400, random_start=False)
    item = dataset[0]
    assert int(item["start"]) < 400 and not item["has_past"]
    assert not item["speaker_emotion"].any() and not item["listener_prev_emotion"].any()


def test_deterministic_windows_repeat_and_random_windows_vary(synthetic_root, windows):
    assert int(windows[2]["start"]) == int(windows[2]["start"])
    random = WindowDataset(synthetic_root, "train", seed=1)
    assert len({int(random[0]["start"]) for _ in range(8)}) > 1


def test_history_comes_from_another_clip_of_the_same_listener(synthetic_root, windows):
    store = ClipStore(synthetic_root, "train")
    index = windows.index
    k = next(k for k, p in enumerate(index.items) if index.other_clips(p.listener))
    other = index.other_clips(index.items[k].listener)[0]
    history = windows[k]["history_emotion"].numpy()
    source = store.emotion(other)
    assert any(np.array_equal(history, source[b : b + 250]) for b in range(750 - 250 + 1))


def test_single_clip_history_avoids_the_target_and_past_windows(synthetic_root, windows):
    store = ClipStore(synthetic_root, "train")
    index = windows.index
    k = next(k for k, p in enumerate(index.items) if not index.other_clips(p.listener))
    item = windows[k]
    s = int(item["start"])
    emotion = store.emotion(index.items[k].listener)
    begins = [
        b for b in range(501) if np.array_equal(item["history_emotion"], emotion[b : b + 250])
    ]
    assert begins and all(b + 250 <= s - 50 or b >= s + 50 for b in begins)


def test_clip_dataset_lists_appropriate_items_from_the_matrix(synthetic_root):
    dataset = ClipDataset(synthetic_root, "test")
    index = SplitIndex(synthetic_root, "test")
    for k in range(len(dataset)):
        np.testing.assert_array_equal(
            dataset[k]["appropriate"], np.flatnonzero(index.neighbours[k])
        )


def test_clip_batches_keep_appropriate_as_a_list(synthetic_root):
    batch = next(iter(DataLoader(ClipDataset(synthetic_root, "test"), 3, collate_fn=collate_clips)))
    assert batch["speaker_audio"].shape == (3, 750, 78)
    assert isinstance(batch["appropriate"], list) and len(batch["appropriate"]) == 3


def test_listener_segments_of_one_clip_come_from_different_halves(synthetic_root):
    dataset = ListenerClipDataset(synthetic_root, "train", frames=250)
    store = ClipStore(synthetic_root, "train")
    emotion = store.emotion(dataset.clips[0])
    for half in (0, 1):
        segment = dataset[half]["emotion"].numpy()
        begins = [b for b in range(501) if np.array_equal(segment, emotion[b : b + 250])]
        assert begins and all(half * 375 <= b <= half * 375 + 125 for b in begins)


def test_listener_batches_hold_several_items_of_each_chosen_listener(synthetic_root):
    dataset = ListenerClipDataset(synthetic_root, "train")
    groups = dataset.items_of_listener()
    sampler = ListenerBatchSampler(groups, len(dataset), batch_size=8, per_listener=4, seed=0)
    batches = iter(sampler)
    for step in range(5):
        batch = next(batches)
        tags, items = np.divmod(np.array(batch), len(dataset))
        assert (tags == step).all()  # tagged with the step (see Reseeded)
        labels = dataset.labels[items // 2]
        counts = {label: int((labels == label).sum()) for label in set(labels.tolist())}
        assert len(counts) >= 2 and all(c == 4 for c in counts.values())


def test_listener_batches_resume_at_any_step(synthetic_root):
    dataset = ListenerClipDataset(synthetic_root, "train")
    groups = dataset.items_of_listener()
    full = iter(ListenerBatchSampler(groups, len(dataset), 8, 4, seed=1))
    expected = [next(full) for _ in range(6)]
    resumed = iter(ListenerBatchSampler(groups, len(dataset), 8, 4, seed=1, start_step=4))
    assert [next(resumed), next(resumed)] == expected[4:]


def test_listener_labels_match_window_listener_ids(synthetic_root, windows):
    dataset = ListenerClipDataset(synthetic_root, "train")
    for c, clip in enumerate(dataset.clips):
        assert windows.index.listeners[dataset.labels[c]] == person_of(clip)


def test_partner_of_is_the_clip_recorded_with_a_listener_clip(synthetic_root):
    index = SplitIndex(synthetic_root, "train")
    for pair in index.items:
        assert index.partner_of[pair.listener] == pair.speaker
        assert index.partner_of[pair.speaker] == pair.listener  # mirrored rows
        assert person_of(pair.speaker) != person_of(pair.listener)


def _dyadic_matches(history, store, index, clip):
    """Whether ``history (h, 50)`` is [clip's emotion | its partner's] over the same frames."""
    h = history.shape[0]
    own, partner = store.emotion(clip), store.emotion(index.partner_of[clip])
    return any(
        np.array_equal(history, np.concatenate([own[b : b + h], partner[b : b + h]], axis=1))
        for b in range(750 - h + 1)
    )


def test_dyadic_histories_are_the_listener_beside_their_partner_at_the_same_frames(
    synthetic_root, windows
):
    store, index = ClipStore(synthetic_root, "train"), windows.index
    for k in range(len(windows)):
        item = windows[k]
        history = item["history_dyadic"].numpy()
        np.testing.assert_array_equal(history[:, :25], item["history_emotion"].numpy())
        sources = [*index.other_clips(index.items[k].listener), index.items[k].listener]
        assert any(_dyadic_matches(history, store, index, clip) for clip in sources)
    segments = ListenerClipDataset(synthetic_root, "train", frames=100)
    for item in range(len(segments)):
        clip = segments.clips[item // 2]
        assert _dyadic_matches(segments[item]["dyadic"].numpy(), store, index, clip)


def _single_clip_items(dataset):
    return [
        i for i, p in enumerate(dataset.index.items) if not dataset.index.other_clips(p.listener)
    ]


def test_a_history_needed_from_the_only_clip_never_holds_the_window(synthetic_root):
    dataset = WindowDataset(synthetic_root, "train", window=50, history_frames=250, seed=3,
                            history_needed=True)  # fmt: skip
    single = _single_clip_items(dataset)
    assert single and len(dataset) == len(dataset.index)
    for position in single * 10:  # random starts: many draws per item
        item = dataset[position]
        emotion = dataset.store.emotion(dataset.index.items[position].listener)
        history = item["history_emotion"].numpy()
        begins = [b for b in range(751 - 250) if np.array_equal(emotion[b : b + 250], history)]
        start = int(item["start"])
        assert begins and all(b + 250 <= start - 50 or b >= start + 50 for b in begins)


def test_items_whose_history_cannot_avoid_the_window_are_left_out(synthetic_root, caplog):
    dataset = WindowDataset(synthetic_root, "train", window=50, history_frames=750,
                            history_needed=True)  # fmt: skip
    single = set(_single_clip_items(dataset))
    assert dataset.items == [i for i in range(len(dataset.index)) if i not in single]
    assert "left out" in caplog.text and "single clip" in caplog.text
    # Stages that read no history keep every item.
    assert len(WindowDataset(synthetic_root, "train", history_frames=750)) == len(dataset.index)


def test_a_split_of_single_clip_listeners_and_a_whole_clip_history_is_refused(
    synthetic_root, tmp_path
):
    root = shutil.copytree(synthetic_root, tmp_path / "data")
    lines = (root / "train.csv").read_text().splitlines()
    index = SplitIndex(root, "train")
    solo = next(
        row for row, pair in enumerate(index.items[: len(lines) - 1])
        if not index.other_clips(pair.listener) and not index.other_clips(pair.speaker)
    )  # fmt: skip
    (root / "train.csv").write_text("\n".join([lines[0], lines[1 + solo]]) + "\n")
    np.save(root / "neighbour_emotion_train.npy", np.ones((2, 2), dtype=bool))
    with pytest.raises(DataError, match=r"history_frames = 750 .* no item is left to train on"):
        WindowDataset(root, "train", window=50, history_frames=750, history_needed=True)
