"""The synthetic twin: layout, determinism, documented appropriateness, known styles."""

from __future__ import annotations

import dataclasses
import filecmp
import json

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import (
    ClipStore,
    SplitIndex,
    SyntheticConfig,
    appropriateness_matrix,
    load_ground_truth_style,
    write_synthetic_dataset,
)

ONE = SyntheticConfig(seed=11, sessions={"test": 1}, clips_per_session=(1, 1))


def test_every_item_of_every_split_loads(synthetic_root):
    for split in ("train", "val", "test"):
        index = SplitIndex(synthetic_root, split)
        store = ClipStore(synthetic_root, split, cache_audio=False)
        assert index.neighbours.shape == (len(index), len(index))
        for pair in index.items:
            assert store.emotion(pair.listener).shape == (750, 25)
            assert store.face(pair.speaker).shape == (750, 58)


def test_same_seed_writes_identical_files(tmp_path):
    write_synthetic_dataset(tmp_path / "a", ONE)
    write_synthetic_dataset(tmp_path / "b", ONE)
    for relative in ("test.csv", "neighbour_emotion_test.npy",
                     "test/Emotion/NoXI/000_synthetic/Novice_video/1.csv",
                     "test/Audio_files/NoXI/000_synthetic/Expert_video/1.wav"):  # fmt: skip
        assert filecmp.cmp(tmp_path / "a" / relative, tmp_path / "b" / relative, shallow=False)


def test_emotions_lie_in_react_ranges(synthetic_root):
    index = SplitIndex(synthetic_root, "val")
    emotion = ClipStore(synthetic_root, "val").emotion(index.items[0].listener)
    assert (emotion[:, :15] >= 0).all() and (emotion[:, :15] <= 1).all()
    assert (np.abs(emotion[:, 15:17]) <= 1).all()
    np.testing.assert_allclose(emotion[:, 17:].sum(axis=1), 1, atol=1e-4)


def test_ground_truth_lists_every_listener_with_its_style(synthetic_root):
    persons = load_ground_truth_style(synthetic_root)["persons"]
    for split in ("train", "val", "test"):
        for listener in SplitIndex(synthetic_root, split).listeners:
            style = persons[listener]
            assert style["split"] == split and 3 <= style["delay_frames"] <= 30
            mixing = np.array(style["mixing"])
            np.testing.assert_array_equal(np.abs(mixing).sum(axis=0), 1)  # signed permutation


def test_listener_emotion_follows_the_speaker_more_than_chance(synthetic_root):
    # The style model makes reactions depend on the speaker: real pairs correlate more than
    # mismatched pairs on average (valence/arousal channels, best lag within 2 s).
    index = SplitIndex(synthetic_root, "train")
    store = ClipStore(synthetic_root, "train")

    def coupling(speaker, listener):
        a, b = store.emotion(speaker)[:, 15:17], store.emotion(listener)[:, 15:17]
        return max(
            abs(np.corrcoef(a[: 750 - lag, c], b[lag:, c])[0, 1])
            for lag in range(0, 40, 3)
            for c in (0, 1)
        )

    matched = np.mean([coupling(p.speaker, p.listener) for p in index.items])
    shuffled = np.mean(
        [coupling(p.speaker, q.listener) for p in index.items for q in index.items
         if q.listener.rsplit("/", 2)[0] != p.listener.rsplit("/", 2)[0]]
    )  # fmt: skip
    assert matched > shuffled


def test_appropriateness_is_symmetric_with_true_diagonal():
    speaker = np.random.default_rng(0).random((12, 30, 25))
    matrix = appropriateness_matrix(speaker, 0.2)
    assert (matrix == matrix.T).all() and matrix.diagonal().all()
    off = matrix[~np.eye(12, dtype=bool)]
    assert 0.15 <= off.mean() <= 0.25


def test_appropriateness_links_similar_speakers():
    rng = np.random.default_rng(1)
    speaker = rng.random((6, 30, 25))
    speaker[1] = speaker[0] + 1e-3 * rng.random((30, 25))
    assert appropriateness_matrix(speaker, 1 / 30)[0, 1]


@pytest.mark.parametrize(
    "bad",
    [
        {"frames": 700},
        {"sessions": {"dev": 1}},
        {"clips_per_session": (2, 1)},
        {"sample_rate": 16001},
    ],
)
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ValueError):
        SyntheticConfig(**bad)


def test_make_synthetic_command_writes_the_layout(tmp_path):
    sizes = ["--train-sessions", "1", "--val-sessions", "1", "--test-sessions", "1"]
    clips = ["--min-clips", "1", "--max-clips", "1"]
    code = main(["make-synthetic", "--root", str(tmp_path), *sizes, *clips, "--stereo"])
    assert code == 0
    for name in ("train.csv", "val.csv", "test.csv", "neighbour_emotion_test.npy",
                 "ground_truth_style.json"):  # fmt: skip
        assert (tmp_path / name).is_file()
    assert SplitIndex(tmp_path, "test").neighbours.shape == (2, 2)


@pytest.fixture(scope="module")
def expressive_root(tmp_path_factory):
    """A small dataset of the second style family (lagged-expressive)."""
    root = tmp_path_factory.mktemp("expressive")
    config = SyntheticConfig(seed=3, sessions={"train": 3, "test": 1}, family="lagged-expressive")
    write_synthetic_dataset(root, config)
    return root


def listener_emotions(root):
    """Listener identity -> its clips' emotion ``(clips, 750, 25)``, over every split written."""
    result = {}
    for split in ("train", "test"):
        index, store = SplitIndex(root, split), ClipStore(root, split, cache_audio=False)
        for listener, clips in index.clips_of.items():
            result[listener] = np.stack([store.emotion(c) for c in clips])
    return result


def test_second_family_writes_a_loadable_react_layout(expressive_root):
    truth = load_ground_truth_style(expressive_root)
    assert truth["family"] == "lagged-expressive"
    for split in ("train", "test"):
        index = SplitIndex(expressive_root, split)
        store = ClipStore(expressive_root, split)
        assert index.neighbours.shape == (len(index), len(index))
        for pair in index.items:
            emotion = store.emotion(pair.listener)
            assert emotion.shape == (750, 25) and np.isfinite(emotion).all()
            assert (np.abs(emotion[:, 15:17]) <= 1).all()
            np.testing.assert_allclose(emotion[:, 17:].sum(axis=1), 1, atol=1e-4)
            assert store.face(pair.speaker).shape == (750, 58)
            assert store.audio(pair.speaker).shape == (750, 78)
        for listener in index.listeners:
            assert truth["persons"][listener]["split"] == split


def test_second_family_listener_styles_are_recoverable_from_their_clips(expressive_root):
    persons = load_ground_truth_style(expressive_root)["persons"]
    emotions = listener_emotions(expressive_root)
    names = sorted(emotions)
    bias = [persons[n]["valence_bias"] for n in names]
    mean_valence = [emotions[n][..., 15].mean() for n in names]
    assert (
        np.corrcoef(np.argsort(np.argsort(bias)), np.argsort(np.argsort(mean_valence)))[0, 1] > 0.6
    )  # Spearman: the valence bias orders listeners by their mean valence
    for name in names:
        style, emotion = persons[name], emotions[name]
        log_expression = np.log(emotion[..., 17:] + 1e-8).mean(axis=(0, 1))
        preference = np.array(style["expression_preference"])
        assert np.corrcoef(log_expression, preference)[0, 1] > 0.6
        au = np.clip(emotion[..., :15], 1e-6, 1 - 1e-6)
        au_logit = np.log(au / (1 - au)).mean(axis=(0, 1))
        assert np.corrcoef(au_logit, -np.array(style["au_threshold"]))[0, 1] > 0.5


@pytest.mark.parametrize("family", ["held-out"])
def test_every_family_writes_a_loadable_react_layout(tmp_path, family):
    """A family plugged into the writer gives the layout every reader expects: valid channels,
    REACT shapes, a neighbour matrix per split and each listener in the ground truth."""
    config = SyntheticConfig(seed=5, sessions={"train": 2, "test": 1}, family=family)
    write_synthetic_dataset(tmp_path, config)
    truth = load_ground_truth_style(tmp_path)
    assert truth["family"] == family
    for split in ("train", "test"):
        index, store = SplitIndex(tmp_path, split), ClipStore(tmp_path, split)
        assert index.neighbours.shape == (len(index), len(index))
        for pair in index.items:
            emotion = store.emotion(pair.listener)
            assert emotion.shape == (750, 25) and np.isfinite(emotion).all()
            assert ((emotion[:, :15] >= 0) & (emotion[:, :15] <= 1)).all()
            assert (np.abs(emotion[:, 15:17]) <= 1).all()
            np.testing.assert_allclose(emotion[:, 17:].sum(axis=1), 1, atol=1e-4)
            assert store.face(pair.speaker).shape == (750, 58)
            assert store.audio(pair.speaker).shape == (750, 78)
        for listener in index.listeners:
            assert truth["persons"][listener]["split"] == split


def test_families_differ_and_unknown_family_is_refused(expressive_root):
    with pytest.raises(ValueError, match="family: expected one of"):
        SyntheticConfig(family="nope")
    style = next(iter(load_ground_truth_style(expressive_root)["persons"].values()))
    assert "lag_mean_frames" in style and "mixing" not in style


def test_an_existing_dataset_is_kept_or_refused_never_overwritten_silently(tmp_path):
    root = tmp_path / "data"
    write_synthetic_dataset(root, ONE)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    write_synthetic_dataset(root, ONE)  # the same settings: nothing to do
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    other = dataclasses.replace(ONE, seed=ONE.seed + 1)
    with pytest.raises(FileExistsError, match=r"other settings \(seed\).*--overwrite"):
        write_synthetic_dataset(root, other)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    write_synthetic_dataset(root, other, overwrite=True)
    assert (
        json.loads((root / "ground_truth_style.json").read_text())["config"]["seed"] == other.seed
    )


def test_a_foreign_dataset_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text(",speaker_path,listener_path\n")
    with pytest.raises(FileExistsError, match="did not make"):
        write_synthetic_dataset(tmp_path, ONE)
