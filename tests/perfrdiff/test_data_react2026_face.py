"""REACT 2026: the 3DMM coefficients standardised as ``(x - mean) / std`` by the store a run
opens, with FaceVerse files or the training split's own statistics; lazily, so a crop of a
memory-mapped sequence reads only its frames."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import ConfigError, load_config
from perfrdiff.data.react2026 import MarsStore, face_statistics
from perfrdiff.data.react2026.store import (
    StandardisedFrames,
    face_standardisation,
    run_face_stats,
    run_store,
)
from perfrdiff.data.react2026.synthetic import MarsSyntheticConfig, write_mars_dataset
from perfrdiff.data.react2026.windows import padded
from perfrdiff.training.datasets import history_window_datasets

TWIN = MarsSyntheticConfig(
    seed=5, sessions={"train": 2, "val": 1, "test": 1}, dyads_per_session=(1, 2),
    lengths=(58, 299, 751), audio_features=True, eeg=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars_face")
    write_mars_dataset(root, TWIN)
    return root


def config_of(twin, *overrides):
    return load_config(
        "tiny", ["protocol=react2026", f"data.root={twin}", "data.window=30", *overrides]
    )


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 40),
    channels=st.integers(1, 6),
    begin=st.integers(-5, 45),
    length=st.integers(0, 45),
    seed=st.integers(0, 2**16),
)
def test_standardised_frames_equal_the_float64_standardisation(
    frames, channels, begin, length, seed
):
    rng = np.random.default_rng(seed)
    raw = rng.normal(3, 2, size=(frames, channels)).astype(np.float32)
    mean = rng.normal(size=channels).astype(np.float32)
    std = rng.uniform(0.1, 3, size=channels).astype(np.float32)
    lazy = StandardisedFrames(raw, mean, std)
    want = (raw.astype(np.float64) - mean) / std
    assert lazy.shape == raw.shape and len(lazy) == frames
    np.testing.assert_allclose(np.asarray(lazy), want, rtol=1e-5, atol=1e-5)
    # a slice of a slice is the same rows; padding stays zero (the mean face)
    stop = begin + length
    got = padded(lazy[: frames - 1 or None], begin, stop, "x")
    rows = want[: frames - 1 or None]
    expected = np.zeros((length, channels))
    lo, hi = max(begin, 0), min(stop, rows.shape[0])
    if hi > lo:
        expected[lo - begin : hi - begin] = rows[lo:hi]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_slice_reads_no_frame_of_the_memory_map(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(20_000 * 58, dtype=np.float32).reshape(20_000, 58))
    mapped = np.load(path, mmap_mode="r")
    lazy = StandardisedFrames(mapped, np.zeros(58, np.float32), np.ones(58, np.float32))
    crop = lazy[100:130]
    assert isinstance(crop.frames, np.memmap) and np.shares_memory(crop.frames, mapped)
    np.testing.assert_array_equal(np.asarray(crop), mapped[100:130])
    with pytest.raises(TypeError, match="rows: expected a slice"):
        lazy[3]


def test_the_training_split_statistics_are_the_default_and_logged(twin, caplog):
    with caplog.at_level(logging.INFO):
        mean, std = run_face_stats(config_of(twin))
    raw_store = MarsStore(twin, "train", audio="none", personality=False)
    want_mean, want_std = face_statistics(raw_store)
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(std, want_std)
    run_face_stats(config_of(twin))  # computed once per process
    assert caplog.text.count("standardised with split 'train'") <= 1


def test_faceverse_files_are_read_when_given(twin, tmp_path):
    mean, std = np.full((1, 58), 0.5, np.float32), np.full(58, 2.0, np.float32)
    np.save(tmp_path / "mean_face.npy", mean)
    np.save(tmp_path / "std_face.npy", std)
    config = config_of(
        twin,
        f"data.face_mean={tmp_path / 'mean_face.npy'}",
        f"data.face_std={tmp_path / 'std_face.npy'}",
    )
    got_mean, got_std = run_face_stats(config)
    np.testing.assert_array_equal(got_mean, mean[0])
    np.testing.assert_array_equal(got_std, std)
    with pytest.raises(ValueError, match="give both FaceVerse files or neither"):
        face_standardisation(twin, 30, mean=str(tmp_path / "mean_face.npy"))


def test_the_run_reads_every_3dmm_standardised(twin):
    config = config_of(twin, "style.input=face", "pwsg.listener_prior=false")
    mean, std = run_face_stats(config)
    train, _ = history_window_datasets(config)
    store = run_store(config, "train")
    torch.manual_seed(0)
    item, dyad = train[0], store.dyads[train.items[0]]
    s = int(item["start"])
    raw = np.squeeze(np.load(store.path("coefficients", dyad.speaker)))
    want = padded((raw - mean) / std, s - 30, s + 30, "speaker")
    np.testing.assert_allclose(item["speaker_face"], want, rtol=1e-5, atol=1e-5)
    history = item["history_face"].numpy()  # the listener's history, from another dyad
    assert abs(history.mean()) < 0.5 and 0.5 < history.std() < 1.5
    # generation reads the same standardised speaker frames
    from perfrdiff.generation.mars import load_sequences

    data = load_sequences(run_store(config, "test"))
    speaker = data.reader([0])(0, 30)[0, :, -83:-25]
    raw = np.squeeze(np.load(data.store.path("coefficients", data.dyads[0].speaker)))[:30]
    np.testing.assert_allclose(speaker, (raw - mean) / std, rtol=1e-5, atol=1e-5)


def test_the_config_names_a_face_file_it_cannot_use(tmp_path):
    with pytest.raises(
        ConfigError, match=r"data\.face_mean: protocol 'react2024' reads the 3DMM raw"
    ):
        load_config("tiny", [f"data.face_mean={tmp_path}/m.npy", f"data.face_std={tmp_path}/s.npy"])
    with pytest.raises(ConfigError, match=r"data\.face_mean: give both FaceVerse files"):
        load_config("tiny", ["protocol=react2026", f"data.face_std={tmp_path}/s.npy"])


def test_weights_trained_with_one_standardisation_do_not_fit_the_other(twin, tmp_path):
    from perfrdiff.changes import weights_changes
    from perfrdiff.config import config_to_dict

    files = [f"data.face_mean={tmp_path}/m.npy", f"data.face_std={tmp_path}/s.npy"]
    own, given = config_of(twin), config_of(twin, *files)
    for stage in ("style", "gafrg", "pwsg", "eeg"):
        changed = weights_changes(config_to_dict(own), config_to_dict(given), stage)
        assert {"data.face_mean", "data.face_std"} <= set(changed), stage


def test_the_speaker_statistics_read_every_dyads_speaker_frames_as_the_run_does(twin):
    from perfrdiff.training.objectives import training_speaker_statistics

    config = config_of(twin, "data.audio=features")
    mean, std = run_face_stats(config)
    store = run_store(config, "train")
    rows = []
    for dyad in store.dyads:
        t = store.frames(dyad)
        load = lambda folder, clip=dyad.speaker: np.squeeze(np.load(store.path(folder, clip)))  # noqa: E731
        face = (load("coefficients")[:t] - mean) / std
        rows.append(
            np.concatenate([load("audio-features")[:t], face, load("facial-attributes")[:t]], 1)
        )
    frames = np.concatenate(rows).astype(np.float64)
    got_mean, got_std = training_speaker_statistics(config)
    assert got_mean.shape == (768 + 58 + 25,)
    np.testing.assert_allclose(got_mean.numpy(), frames.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_std.numpy(), frames.std(0), rtol=1e-3, atol=1e-4)
