"""The synthetic MARS twin: its layout read back by the loader, the personality effect it
declares, EEG that follows the reaction, and the REACT 2024 twin left as it was."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import SyntheticConfig, load_ground_truth_style, write_synthetic_dataset
from perfrdiff.data.react2026 import MarsCrops, MarsStore, parse_eeg
from perfrdiff.data.react2026.synthetic import (
    MarsSyntheticConfig,
    _PersonalityEffect,
    write_mars_dataset,
)
from perfrdiff.data.synthetic import _CoupledLatentFamily

LENGTHS = (58, 299, 751, 20_000)  # none a multiple of the 30-frame window
TWIN = MarsSyntheticConfig(
    seed=5, sessions={"train": 2, "test": 1}, dyads_per_session=(2, 2), lengths=LENGTHS
)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars_twin")
    write_mars_dataset(root, TWIN)
    return root


def test_the_loader_reads_every_length_of_the_twin(twin):
    store = MarsStore(twin, "train", audio="mfcc")
    assert [store.frames(d) for d in store.dyads] == list(LENGTHS)
    assert {d.session for d in store.dyads} == {"session0", "session1"}  # 2 dyads per session
    assert len(store.personality) == 4  # every listener has a row
    long = store.dyads[3]
    assert isinstance(store.emotion(long.listener), np.memmap)
    crops = MarsCrops(store, eeg=True, seed=1)
    for item, frames in enumerate(LENGTHS):
        x = crops[item]
        assert x["speaker_audio"].shape == (750, 78) and int(x["mask"].sum()) == min(750, frames)
    assert MarsStore(twin, "test", audio="none").frames(MarsStore(twin, "test").dyads[0]) == 58


def test_the_twin_is_reproducible(tmp_path):
    small = MarsSyntheticConfig(seed=3, sessions={"train": 1}, lengths=(58, 90))
    for name in ("a", "b"):
        write_mars_dataset(tmp_path / name, small)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )


def test_ground_truth_holds_the_personality_effect(twin):
    truth = load_ground_truth_style(twin)
    assert truth["layout"] == "react2026" and truth["personality_effect"]["share"] == 0.5
    listener = truth["persons"]["listener/session0"]
    assert set(listener["big_five"]) == {
        "Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness",
    }  # fmt: skip
    assert set(listener["personality_part"]) == {"offset", "gain", "delay"}
    table = (twin / "train" / "personality" / "listener.csv").read_text().splitlines()
    assert table[0] == "video_name,session,Extraversion,Agreeableness,Conscientiousness," \
        "Neuroticism,Openness"  # fmt: skip
    assert table[1].startswith("session0_00.mp4,session0,")


@pytest.mark.parametrize("share", [0.0, 0.5, 0.8])
def test_personality_explains_the_declared_share_of_the_style(share):
    rng = np.random.default_rng(0)
    family = _CoupledLatentFamily(rng, SyntheticConfig())
    effect = _PersonalityEffect(rng, 4, share)
    scores = rng.uniform(1, 5, (3000, 5))
    people = [effect.apply(family.draw_person("p", rng), s, rng)[0] for s in scores]
    centred = np.c_[(scores - 1) / 4 - 0.5, np.ones(len(scores))]
    for values in (np.array([p.offset[0] for p in people]), np.array([p.gain for p in people])):
        fit = np.linalg.lstsq(centred, values, rcond=None)[0]
        explained = 1 - np.var(values - centred @ fit) / np.var(values)
        assert abs(explained - share) < 0.05, (share, explained)


def test_eeg_follows_the_listeners_reaction(twin):
    truth = load_ground_truth_style(twin)["eeg"]
    found = sorted((twin / "train" / "eeg_processed").rglob("*.csv"))
    assert found  # 75% of listener stems have EEG
    path = found[-1]
    values, mask = parse_eeg(path.read_text(), path)
    clip = path.relative_to(twin / "train" / "eeg_processed").with_suffix("")
    emotion = np.load(twin / "train" / "facial-attributes" / f"{clip}.npy")
    seconds = values.shape[0]
    assert seconds == -(-emotion.shape[0] // 30) and 0.9 < mask.mean() < 1.0  # some bad cells
    padded = np.full((seconds * 30, 25), np.nan)
    padded[: emotion.shape[0]] = emotion
    mean = np.nanmean(padded.reshape(seconds, 30, 25), axis=1)
    predicted = mean @ np.array(truth["map"])[:4].T + np.array(truth["bias"])[:4]
    residual = (values[:, :4] - predicted)[mask[:, :4] > 0]
    assert residual.std() < 0.06 < values[:, :4][mask[:, :4] > 0].std()


def _structure_hash(root):
    """Every file's name, and the bytes of the split CSVs, neighbour matrices and ground truth:
    the random draws and the layout, without the floating-point decoders (whose last bits can
    differ between CPUs)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        if path.suffix == ".json" or path.parent == root:
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("family", "digest"),
    [
        ("coupled-latent", "6657c20ffbcd2f4787bcdb3d21d4baed6b4623d0d5c49b54ae2ca19768e178eb"),
        ("lagged-expressive", "e138ed1b4a85219d199c8f6ae0947b6a5684ee521796b1683343b5d40276875e"),
    ],
)
def test_the_react2024_twin_is_unchanged(tmp_path, family, digest):
    # Digests of the writer before the REACT 2026 twin existed (same seed and sizes); the full
    # file bytes matched too on the machine that recorded them.
    sizes = {"train": 2, "val": 1, "test": 1}
    config = SyntheticConfig(seed=7, sessions=sizes, clips_per_session=(1, 2), family=family)
    write_synthetic_dataset(tmp_path, config)
    assert _structure_hash(tmp_path) == digest


def test_make_synthetic_writes_the_react2026_layout(tmp_path):
    sizes = ["--train-sessions", "1", "--val-sessions", "1", "--test-sessions", "1"]
    args = ["make-synthetic", "--layout", "react2026", "--root", str(tmp_path), *sizes]
    assert main([*args, "--min-clips", "1", "--max-clips", "1", "--no-eeg"]) == 0
    truth = json.loads((tmp_path / "ground_truth_style.json").read_text())
    assert truth["config"]["sample_rate"] == 12000 and not truth["config"]["eeg"]
    assert not (tmp_path / "train" / "eeg_processed").exists()
    assert len(MarsStore(tmp_path, "val").dyads) == 1
    assert main([*args, "--min-clips", "1", "--max-clips", "1", "--no-eeg"]) == 0  # kept
    with pytest.raises(FileExistsError, match="other settings"):
        main([*args, "--min-clips", "1", "--max-clips", "2"])
    with pytest.raises(ValueError, match="coupled-latent family in mono"):
        main([*args, "--family", "lagged-expressive", "--overwrite"])
