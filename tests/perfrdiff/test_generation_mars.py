"""A MARS split as generation reads it: speaker readers over memory-mapped files, each item's
history from another dyad of its listener (never the evaluated one unless allowed)."""

from __future__ import annotations

import numpy as np
import pytest
from perfrdiff.data import DataError
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.generation.mars import load_sequences, read_histories


def twin(root, dyads):
    config = MarsSyntheticConfig(
        seed=2, sessions={"train": 1, "test": 1}, dyads_per_session=(dyads, dyads),
        lengths=(58, 120), eeg=False,
    )  # fmt: skip
    write_mars_dataset(root, config)
    return load_sequences(MarsStore(root, "test", audio="mfcc"))


def test_the_reader_gives_the_speaker_side_by_side_zero_padded(tmp_path):
    data = twin(tmp_path, 2)
    assert data.lengths == [58, 120] and data.keys == [f"{d.session}/{d.stem}" for d in data.dyads]
    frames = data.reader([0, 1])(40, 100).numpy()
    assert frames.shape == (2, 60, 78 + 58 + 25)
    emotion = np.load(data.store.path("facial-attributes", data.dyads[0].speaker))
    np.testing.assert_array_equal(frames[0, :18, -25:], emotion[40:58])
    assert not frames[0, 18:].any()  # past the 58-frame sequence's end


def test_a_history_is_another_dyad_of_the_listener_repeated_to_length(tmp_path):
    data = read_histories(twin(tmp_path, 2), 100, "emotion")
    assert data.history_kinds == ["same-split", "same-split"]
    other = np.load(data.store.path("facial-attributes", data.dyads[0].listener))  # 58 frames
    np.testing.assert_array_equal(data.histories[1], other[np.arange(100) % 58])


def test_a_listener_with_one_dyad_needs_permission_to_use_it(tmp_path):
    data = twin(tmp_path, 1)
    with pytest.raises(DataError, match=r"listener/session\d+'\] of split 'test' have no other"):
        read_histories(data, 50, "dyadic")
    allowed = read_histories(data, 50, "dyadic", allow_same=True)
    assert allowed.history_kinds == ["same-clip"] and allowed.histories[0].shape == (50, 50)
