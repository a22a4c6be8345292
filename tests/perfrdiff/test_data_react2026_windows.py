"""REACT 2026 training items: windows inside their sequence with the protocol's speaker context,
histories that never hold the window, personality, style segments, and the audio width of the
data (768-d features or 78-d MFCC) in the denoiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from perfrdiff.config import ConfigError, load_config
from perfrdiff.data import DataError
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.layout import person_of
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.data.react2026.windows import (
    MarsListenerSegments,
    MarsWindows,
    cyclic,
    padded,
    sequence_level_pairs,
    sequence_levels,
)
from perfrdiff.models import build_gafrg
from perfrdiff.protocol import REACT2026
from perfrdiff.training.datasets import history_window_datasets, style_datasets

W, H = 30, 64
TWIN = MarsSyntheticConfig(
    seed=3, sessions={"train": 2, "test": 1}, dyads_per_session=(1, 2), lengths=(58, 299, 751),
    audio_features=True, eeg=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars_windows")
    write_mars_dataset(root, TWIN)
    return root


def windows(twin, split="train", history_needed=True, audio="mfcc", window=W, **kwargs):
    store = MarsStore(twin, split, audio=audio)
    return MarsWindows(store, REACT2026, window, H, history_needed=history_needed, **kwargs)


def items(dataset, seeds=range(12)):
    for seed in seeds:
        torch.manual_seed(seed)
        for position in range(len(dataset)):
            yield position, dataset[position]


def test_a_window_lies_inside_its_sequence_and_sees_the_speaker_around_it(twin):
    data = windows(twin)
    for position, item in items(data, range(3)):
        dyad = data.store.dyads[data.items[position]]
        s, t = int(item["start"]), int(item["length"])
        assert 0 <= s <= t - W
        listener = np.load(data.store.path("facial-attributes", dyad.listener))
        np.testing.assert_array_equal(item["listener_emotion"], listener[s : s + W])
        speaker = np.load(data.store.path("facial-attributes", dyad.speaker))
        expected = padded(speaker, s - W, s + W, "speaker")  # zeros before frame 0
        np.testing.assert_array_equal(item["speaker_emotion"], expected)
        assert item["speaker_audio"].shape == (2 * W, 78)
        assert bool(item["has_past"]) == (s >= W)
        past = listener[s - W : s] if s >= W else np.zeros((W, 25))
        np.testing.assert_array_equal(item["listener_prev_emotion"], past)
        np.testing.assert_array_equal(item["personality"], data.store.personality[dyad])


def _where(sequence: np.ndarray, frame: np.ndarray) -> list[int]:
    return np.flatnonzero((sequence == frame).all(axis=1)).tolist()


def test_a_history_never_holds_the_window(twin):
    data = windows(twin)
    single = [p for p in range(len(data)) if not data._others(data.items[p])]
    multiple = [p for p in range(len(data)) if data._others(data.items[p])]
    assert single and multiple  # the twin has listeners with one dyad and with two
    for position, item in items(data):
        index = data.items[position]
        own = np.load(data.store.path("facial-attributes", data.store.dyads[index].listener))
        found = _where(own, item["history_emotion"][0].numpy())
        if position in multiple:
            assert found == []  # another dyad of the same listener
        else:
            s = int(item["start"])
            assert found and all(f < s - W or f >= s + W for f in found)


def test_sequences_shorter_than_the_window_are_left_out(twin):
    data = windows(twin, window=100)
    assert all(data.lengths[i] >= 100 for i in data.items)
    assert len({data.lengths[i] for i in data.items}) < len(set(data.lengths))
    with pytest.raises(DataError, match="no dyad holds a 800-frame window"):
        windows(twin, window=800)


def test_long_sequences_give_more_windows(twin):
    data = windows(twin, history_needed=False)
    per_dyad = {i: data.items.count(i) for i in set(data.items)}
    assert {data.lengths[i]: n for i, n in per_dyad.items()} == {58: 1, 299: 1, 751: 2}


def test_history_and_segments_repeat_a_short_sequence_cyclically():
    frames = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(cyclic(frames, 7)[:, 0], [0, 2, 4, 0, 2, 4, 0])
    assert padded(frames, -2, 5, "x")[:, 0].tolist() == [0, 0, 0, 2, 4, 0, 0]


def test_style_segments_are_labelled_by_listener(twin):
    segments = MarsListenerSegments(MarsStore(twin, "train", audio="none"), frames=100)
    groups = segments.items_of_listener()
    assert len(groups) == 2 and sum(map(len, groups.values())) == len(segments)
    item = segments[0]
    assert item["dyadic"].shape == (100, 50) and item["face"].shape == (100, 58)


def test_the_run_datasets_follow_the_protocol_and_carry_personality(twin):
    config = load_config("tiny", ["protocol=react2026", f"data.root={twin}", "data.window=30"])
    train, _ = history_window_datasets(config)
    assert train[0]["personality"].shape == (5,) and train[0]["history_dyadic"].shape[1] == 50
    style, _ = style_datasets(config)
    assert style[0]["clip"].shape == (250, 50)


def test_the_denoiser_reads_the_audio_width_and_context_of_the_run(twin):
    mfcc = build_gafrg(load_config("tiny", ["protocol=react2026", "data.window=30"]))
    features = build_gafrg(
        load_config("tiny", ["protocol=react2026", "data.window=30", "data.audio=features"])
    )
    react2024 = build_gafrg(load_config("tiny"))
    assert mfcc.speaker.audio.in_features == 78 and features.speaker.audio.in_features == 768
    assert mfcc.speaker.positions.shape[0] == 60 and react2024.speaker.positions.shape[0] == 50
    item = windows(twin, audio="features")[0]
    assert item["speaker_audio"].shape == (60, 768)


def test_the_config_refuses_what_the_layout_cannot_give():
    with pytest.raises(ConfigError, match=r"data\.audio: protocol 'react2024' has wavs only"):
        load_config("tiny", ["data.audio=features"])
    # the prior's weight is fitted on MARS sequence pairs too (sequence_level_pairs)
    assert load_config("tiny", ["protocol=react2026", "pwsg.fit_prior_weight=true"])


def test_sequence_levels_are_each_dyads_listener_mean_and_personality(twin):
    store = MarsStore(twin, "train", audio="none")
    levels, personality = sequence_levels(store)
    for row, dyad in enumerate(store.dyads):
        emotion = np.load(store.path("facial-attributes", dyad.listener))[: store.frames(dyad)]
        np.testing.assert_allclose(levels[row], emotion.astype(np.float64).mean(0), rtol=1e-10)
        np.testing.assert_array_equal(personality[row], store.personality[dyad])
    assert levels.dtype == personality.dtype == np.float64


def test_sequence_level_pairs_are_every_ordered_pair_of_one_listeners_dyads(twin):
    store = MarsStore(twin, "train", audio="none")
    frames = 100  # longer than the 58-frame sequences: their history is read cyclically
    expected = []
    for i in store.dyads:
        for j in store.dyads:
            if i != j and person_of(i.listener) == person_of(j.listener):
                head = np.load(store.path("facial-attributes", i.listener))[: store.frames(i)]
                level = np.load(store.path("facial-attributes", j.listener))[: store.frames(j)]
                history = cyclic(head[:frames], frames).astype(np.float64).mean(0)
                expected.append((history, level.astype(np.float64).mean(0), store.personality[j]))
    assert expected, "the twin's train split must have a listener with two dyads"
    history, level, personality = sequence_level_pairs(store, frames)
    np.testing.assert_allclose(history, np.stack([e[0] for e in expected]), rtol=1e-10)
    np.testing.assert_allclose(level, np.stack([e[1] for e in expected]), rtol=1e-10)
    np.testing.assert_array_equal(personality, np.stack([e[2] for e in expected]))
    with pytest.raises(ValueError, match="frames must be >= 1, got 0"):
        sequence_level_pairs(store, 0)


def test_sequence_level_pairs_refuse_a_split_without_a_listener_of_two_dyads(tmp_path):
    twin = MarsSyntheticConfig(seed=1, sessions={"train": 2, "test": 1}, dyads_per_session=(1, 1),
                               lengths=(58,), eeg=False)  # fmt: skip
    write_mars_dataset(tmp_path, twin)
    store = MarsStore(tmp_path, "train", audio="none")
    with pytest.raises(ValueError, match=r"split 'train' of .* has no listener with two dyads"):
        sequence_level_pairs(store, 30)
