"""A MARS split as generation reads it: speaker readers over memory-mapped files, each item's
history from another dyad of its listener (never the evaluated one unless allowed); each item's
Big Five read by a model whose pwsg.condition reads it; batches seeded on their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.data import DataError
from perfrdiff.data.react2026 import MarsStore
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.generation import ReactionSampler, SamplerConfig
from perfrdiff.generation.mars import (
    in_item_order,
    load_sequences,
    read_histories,
    sample_batches,
    sample_sequences,
    sequence_batches,
)
from perfrdiff.models import DDIMSchedule, build_perfrdiff
from perfrdiff.protocol import REACT2026

pytestmark = pytest.mark.usefixtures("one_thread")


def twin(root, dyads, test_sessions=1):
    config = MarsSyntheticConfig(
        seed=2, sessions={"train": 1, "test": test_sessions}, dyads_per_session=(dyads, dyads),
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


def personality_sampler(condition: str):
    """A react2026 tiny PerFRDiff reading ``condition``, its edit made visible."""
    torch.manual_seed(0)
    more = ["pwsg.history_stats=false", "pwsg.listener_prior=false"]
    config = load_config("tiny", ["protocol=react2026", "data.window=30",
                                  f"pwsg.condition={condition}", *more])  # fmt: skip
    model = build_perfrdiff(config).eval()
    for p in model.exported.parameters():  # untrained heads are zero
        torch.nn.init.normal_(p, std=0.05)
    return ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(2, 1.0, 0))


def sample(s, data, track="online", **options):
    return sample_sequences(s, data, track, 2, REACT2026.context_frames(30), 60, 2, 4, **options)


@pytest.mark.parametrize("track", ["online", "offline"])
def test_each_items_shifts_read_its_own_personality(tmp_path, monkeypatch, track):
    data = read_histories(twin(tmp_path, 2, test_sessions=2), 64, "dyadic")
    s, seen = personality_sampler("both"), []
    shifts = s.model.listener_shifts
    monkeypatch.setattr(s.model, "listener_shifts",
                        lambda h, p=None: seen.append((h, p)) or shifts(h, p))  # fmt: skip
    out = sample(s, data, track, personalised=True)
    assert [a.shape for a in out] == [(2, t, 25) for t in data.lengths]
    batches = sequence_batches(data, 2)
    assert len(seen) == len(batches) == 2
    for items, (history, personality) in zip(batches, seen, strict=True):
        assert len(np.unique(data.personality[items], axis=0)) == 2  # two listeners a batch
        np.testing.assert_array_equal(personality.numpy(), data.personality[items])
        np.testing.assert_array_equal(history.numpy(), np.stack([data.histories[i] for i in items]))


def test_a_personality_only_run_reads_no_history(tmp_path):
    data = twin(tmp_path, 1)  # no other dyad of the listener: no history to read
    s = personality_sampler("personality")
    out = sample(s, data, personalised=True)
    assert not np.allclose(out[0], sample(s, data)[0])  # personalised differs from generic
    s = personality_sampler("both")
    with pytest.raises(ValueError, match="needs each item's history"):
        sample(s, data, personalised=True)


def test_a_personality_run_refuses_a_split_without_the_table(tmp_path):
    twin(tmp_path, 2)
    data = load_sequences(MarsStore(tmp_path, "test", audio="mfcc", personality=False))
    with pytest.raises(ValueError, match=r"personality/listener.csv was not read"):
        sample(personality_sampler("personality"), data, personalised=True)


def test_a_batch_is_the_same_whichever_batches_are_generated(tmp_path):
    data = twin(tmp_path, 3)
    s = personality_sampler("personality")
    every = sample_batches(s, data, "online", 2, REACT2026.context_frames(30), 60, 2, 4, True)
    alone = sample_batches(s, data, "online", 2, REACT2026.context_frames(30), 60, 2, 4, True,
                           batches=[1])  # fmt: skip
    assert len(every) == 2 and len(alone) == 1
    for a, b in zip(every[1], alone[0], strict=True):
        np.testing.assert_array_equal(a, b)
    merged = in_item_order(sequence_batches(data, 2), every)
    for a, b in zip(merged, sample(s, data, personalised=True), strict=True):
        np.testing.assert_array_equal(a, b)
