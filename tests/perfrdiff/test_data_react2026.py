"""The REACT 2026 (MARS) loader: pairing, personality, memory-mapped crops, EEG, file errors."""

from __future__ import annotations

import logging
import tarfile

import numpy as np
import pytest
import soundfile
from perfrdiff.data import DataError, MissingFileError
from perfrdiff.data.react2026 import (
    EEG_COLUMNS,
    Dyad,
    MarsCrops,
    MarsStore,
    crop,
    eeg_frames,
    face_statistics,
    find_dyads,
    open_sequence,
    parse_eeg,
    read_face_statistics,
    read_personality,
)
from perfrdiff.protocol import REACT2026

LENGTHS = (58, 299, 751, 20_000)  # none a multiple of the 30-frame window


def write_sequence(root, split, folder, role, session, stem, array):
    path = root / split / folder / role / session / f"{stem}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


def write_dyad(root, session, stem, frames, split="train", seed=0, audio=True):
    """Speaker and listener facial attributes and 3DMM (and 768-d audio features) whose frame
    ``f`` holds ``f`` in channel 0, so a crop says where it came from."""
    rng = np.random.default_rng(seed)
    for role in ("speaker", "listener"):
        emotion = rng.random((frames, 25), dtype=np.float32)
        emotion[:, 0] = np.arange(frames)
        face = rng.normal(size=(frames, 1, 58)).astype(np.float32)  # squeezes to (t, 58)
        write_sequence(root, split, "facial-attributes", role, session, stem, emotion)
        write_sequence(root, split, "coefficients", role, session, stem, face)
    if audio:
        features = np.zeros((frames, 768), np.float16)
        features[:, 0] = np.arange(frames) % 2048
        write_sequence(root, split, "audio-features", "speaker", session, stem, features)


def write_personality(root, rows, split="train", header="video_name,session"):
    path = root / split / "personality" / "listener.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    big5 = "Extraversion,Agreeableness,Conscientiousness,Neuroticism,Openness"
    path.write_text("\n".join([f"{header},{big5}", *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def mars(tmp_path_factory):
    root = tmp_path_factory.mktemp("mars")
    for i, frames in enumerate(LENGTHS):
        write_dyad(root, f"session{i % 2}", f"clip{i}", frames, seed=i)
    write_personality(root, [f"clip{i}.mp4,session{i % 2},1,2,3,4,5" for i in range(len(LENGTHS))])
    return root


def test_dyads_pair_speaker_and_listener_by_stem_within_a_session(mars):
    dyads = find_dyads(mars, "train")
    assert dyads == [Dyad("session0", "clip0"), Dyad("session0", "clip2"),
                     Dyad("session1", "clip1"), Dyad("session1", "clip3")]  # fmt: skip
    assert dyads[0].speaker == "speaker/session0/clip0"
    assert dyads[0].listener == "listener/session0/clip0"


def test_variable_lengths_are_kept_whole(mars):
    store = MarsStore(mars, "train")
    lengths = {d.stem: store.frames(d) for d in store.dyads}
    assert lengths == {f"clip{i}": n for i, n in enumerate(LENGTHS)}
    assert store.emotion("listener/session1/clip3").shape == (20_000, 25)


def test_a_sequence_is_memory_mapped_and_a_crop_reads_only_its_slice(mars):
    store = MarsStore(mars, "train")
    sequence = store.emotion("speaker/session1/clip3")
    assert isinstance(sequence, np.memmap) or isinstance(sequence.base, np.memmap)
    out, real = crop(sequence, 12_345, 750, "x")
    assert real == 750 and out[:, 0].tolist() == list(range(12_345, 13_095))
    assert not isinstance(out, np.memmap) and out.dtype == np.float32


def test_a_crop_past_the_end_is_zero_padded(mars):
    sequence = MarsStore(mars, "train").emotion("speaker/session0/clip0")  # 58 frames
    out, real = crop(sequence, 10, 750, "x")
    assert real == 48 and out.shape == (750, 25)
    assert out[:48, 0].tolist() == list(range(10, 58)) and not out[48:].any()


def test_training_crops_are_750_frames_with_a_mask(mars):
    store = MarsStore(mars, "train")
    crops = MarsCrops(store, REACT2026, seed=3, random_start=False)
    for item, dyad in enumerate(store.dyads):
        frames = store.frames(dyad)
        x = crops[item]
        start, length = int(x["start"]), min(750, frames - int(x["start"]))
        assert 0 <= start <= max(0, frames - 750) and int(x["length"]) == frames
        assert x["listener_emotion"].shape == (750, 25) and x["speaker_face"].shape == (750, 58)
        assert x["speaker_audio"].shape == (750, 768)
        assert x["mask"].sum() == length and x["mask"][:length].all()
        assert x["listener_emotion"][:length, 0].tolist() == list(range(start, start + length))
        assert not x["listener_emotion"][length:].any() and not x["speaker_audio"][length:].any()
    assert crops[1]["start"] == crops[1]["start"]  # fixed per item without random_start


def test_random_crops_move_and_stay_inside(mars):
    store = MarsStore(mars, "train")
    crops = MarsCrops(store, REACT2026, seed=0)
    starts = {int(crops[3]["start"]) for _ in range(5)}  # the 20,000-frame dyad
    assert len(starts) > 1 and all(0 <= s <= 20_000 - 750 for s in starts)
    assert int(crops[0]["start"]) == 0  # 58 frames: nothing to choose


def test_personality_is_rescaled_to_unit_range(mars):
    store = MarsStore(mars, "train")
    np.testing.assert_allclose(store.personality[store.dyads[0]], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(MarsCrops(store)[0]["personality"], [0, 0.25, 0.5, 0.75, 1])


def test_listeners_without_a_personality_row_are_dropped_and_named(tmp_path, caplog):
    for stem in ("a", "b", "c"):
        write_dyad(tmp_path, "s1", stem, 40, audio=False)
    write_personality(tmp_path, ["a,2,2,2,2,2", "c.mp4,3,3,3,3,3"], header="video_name")
    with caplog.at_level(logging.WARNING):
        store = MarsStore(tmp_path, "train", audio="none")
    assert [d.stem for d in store.dyads] == ["a", "c"]
    assert "listener/s1/b" in caplog.text and "listener.csv" in caplog.text


def test_a_missing_personality_table_is_named(tmp_path):
    write_dyad(tmp_path, "s1", "a", 40, audio=False)
    with pytest.raises(MissingFileError, match=r"personality[/\\]listener\.csv"):
        MarsStore(tmp_path, "train", audio="none")
    assert len(MarsStore(tmp_path, "train", audio="none", personality=False).dyads) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [("a,1,2,3,4,6", r"row 2: Openness = 6 is outside the scale 1-5"),
     ("a,1,2,x,4,5", r"row 2: Conscientiousness = 'x' is not a number")],
)  # fmt: skip
def test_bad_personality_scores_name_the_file_and_row(tmp_path, row, message):
    path = write_personality(tmp_path, [row], header="video_name")
    with pytest.raises(DataError, match=message) as error:
        read_personality(path)
    assert "listener.csv" in str(error.value)


def test_unpaired_files_are_named(tmp_path, caplog):
    write_dyad(tmp_path, "s1", "a", 40, audio=False)
    write_sequence(tmp_path, "train", "facial-attributes", "speaker", "s1", "lonely",
                   np.zeros((40, 25), np.float32))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert find_dyads(tmp_path, "train") == [Dyad("s1", "a")]
    assert "speaker/s1/lonely.npy" in caplog.text.replace("\\", "/")
    with pytest.raises(DataError, match=r"no partner with the same stem: .*lonely\.npy"):
        find_dyads(tmp_path, "train", strict=True)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((40, 24), np.float32), r"expected facial attributes of shape \(frames, 25\)"),
        (np.zeros((40, 25), np.int16), "expected floating-point features"),
        (np.array([[None] * 25] * 3), "not a readable numeric .npy"),
    ],
)
def test_bad_sequence_files_are_named(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError, match=message) as error:
        open_sequence(path, 25, "facial attributes")
    assert "bad.npy" in str(error.value)


def test_text_under_an_npy_name_and_a_missing_file_are_named(tmp_path):
    (tmp_path / "text.npy").write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"text\.npy: not a NumPy \.npy file"):
        open_sequence(tmp_path / "text.npy", 25, "x")
    with pytest.raises(MissingFileError, match=r"gone\.npy: x file is missing"):
        open_sequence(tmp_path / "gone.npy", 25, "x")


def test_non_finite_frames_are_named_when_read(tmp_path):
    write_dyad(tmp_path, "s1", "a", 100, audio=False)
    path = tmp_path / "train/facial-attributes/listener/s1/a.npy"
    array = np.load(path)
    array[70, 3] = np.nan
    np.save(path, array)
    store = MarsStore(tmp_path, "train", audio="none", personality=False)
    assert store.read("emotion", "listener/s1/a", 0, 60).shape == (60, 25)  # before the NaN
    with pytest.raises(DataError, match=r"a\.npy: contains 1 NaN .*frame 10, channel 3"):
        store.read("emotion", "listener/s1/a", 60, 100)


EEG_HEADER = ",".join(EEG_COLUMNS)


def test_eeg_rows_by_second_scaled_and_masked():
    row0 = ["1000", "2000", "-1000", "", *["0.5"] * 10]  # TP10 empty: mask 0
    row1 = ["3000", "nan", "x", "4000", *["0.25"] * 10]  # non-finite and text: mask 0
    values, mask = parse_eeg("\n".join([EEG_HEADER, ",".join(row0), ",".join(row1)]), "e.csv")
    np.testing.assert_allclose(values[0, :4], [1, 2, -1, 0])
    np.testing.assert_allclose(mask[0, :4], [1, 1, 1, 0])
    np.testing.assert_allclose(mask[1, :4], [1, 0, 0, 1])
    frames, frame_mask = eeg_frames(values, mask, 28, 95, fps=30)
    assert frames.shape == (67, 14)
    np.testing.assert_allclose(frames[:2, 0], [1, 1])  # frames 28, 29: second 0
    np.testing.assert_allclose(frames[2:, 0], 3)  # frames 30+: second 1, then the last row
    assert frame_mask[-1, 1] == 0


def test_eeg_missing_column_is_named():
    with pytest.raises(DataError, match=r"e\.csv: missing EEG column\(s\) \['Gamma_TP10'\]"):
        parse_eeg(",".join(EEG_COLUMNS[:-1]) + "\n" + ",".join(["1"] * 13), "e.csv")


def test_eeg_crop_from_folder_or_archive_and_absent(tmp_path):
    write_dyad(tmp_path, "s1", "a", 100, audio=False)
    write_dyad(tmp_path, "s1", "b", 100, audio=False)
    text = "\n".join([EEG_HEADER] + [",".join([str(1000 * (r + 1))] * 14) for r in range(4)])
    folder = tmp_path / "train" / "eeg_processed" / "listener" / "s1"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text(text)
    archive_source = tmp_path / "staging" / "eeg_processed" / "listener" / "s1"
    archive_source.mkdir(parents=True)
    (archive_source / "b.csv").write_text(text)
    store = MarsStore(tmp_path, "train", audio="none", personality=False)
    store.eeg_source.directory = tmp_path / "train" / "nowhere"  # only the archive has b
    with tarfile.open(tmp_path / "train" / "nowhere.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "staging" / "eeg_processed", arcname="nowhere")
    store.eeg_source.archive = tmp_path / "train" / "nowhere.tar.gz"
    values, mask = store.eeg("listener/s1/b", 55, 65)
    np.testing.assert_allclose(values[:, 0], [2] * 5 + [3] * 5)  # seconds 1 and 2
    assert mask.all()
    values, mask = store.eeg("listener/s1/missing", 0, 10)
    assert not values.any() and not mask.any()
    crops = MarsCrops(MarsStore(tmp_path, "train", audio="none", personality=False), eeg=True)
    x = crops[0]
    assert x["eeg"].shape == (750, 14) and x["eeg_mask"][:100].all()
    assert not x["eeg_mask"][100:].any()


def test_mfcc_audio_at_30_fps_through_a_memory_mapped_cache(tmp_path):
    write_dyad(tmp_path, "s1", "a", 61, audio=False)
    wav = tmp_path / "train" / "audio" / "speaker" / "s1" / "a.wav"
    wav.parent.mkdir(parents=True)
    rate = 12000  # a multiple of 2 x 30, at least 8 kHz
    soundfile.write(wav, np.random.default_rng(0).normal(0, 0.1, rate * 3), rate)
    store = MarsStore(tmp_path, "train", audio="mfcc", personality=False)
    first = store.audio("speaker/s1/a", 61)
    assert first.shape == (61, 78) and isinstance(first, np.memmap | np.ndarray)
    cache = tmp_path / "train" / "audio-mfcc" / "speaker" / "s1" / "a.npy"
    assert cache.is_file()
    again = MarsStore(tmp_path, "train", audio="mfcc", personality=False).audio("speaker/s1/a", 61)
    np.testing.assert_array_equal(first, again)
    assert MarsCrops(store)[0]["speaker_audio"].shape == (750, 78)


def test_a_wav_too_short_for_its_frames_is_named(tmp_path):
    write_dyad(tmp_path, "s1", "a", 200, audio=False)
    wav = tmp_path / "train" / "audio" / "speaker" / "s1" / "a.wav"
    wav.parent.mkdir(parents=True)
    soundfile.write(wav, np.zeros(12000), 12000)  # 1 s: 30 frames
    store = MarsStore(tmp_path, "train", audio="mfcc", personality=False)
    with pytest.raises(DataError, match=r"a\.wav: wave: expected at least"):
        store.audio("speaker/s1/a", 200)


def test_face_statistics_of_the_split_and_from_files(tmp_path):
    write_dyad(tmp_path, "s1", "a", 300, audio=False)
    store = MarsStore(tmp_path, "train", audio="none", personality=False)
    mean, std = face_statistics(store, chunk=64)
    files = sorted(tmp_path.glob("train/coefficients/*/s1/a.npy"))
    every = np.concatenate([np.load(p).reshape(-1, 58) for p in files])
    np.testing.assert_allclose(mean, every.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, every.std(0), rtol=1e-4)
    np.save(tmp_path / "mean.npy", mean[None])
    np.save(tmp_path / "std.npy", std)
    got = read_face_statistics(tmp_path / "mean.npy", tmp_path / "std.npy")
    np.testing.assert_array_equal(got[0], mean)
    standardised = MarsStore(tmp_path, "train", audio="none", personality=False, face_stats=got)
    x = MarsCrops(standardised, random_start=False)[0]
    raw = np.load(tmp_path / "train/coefficients/listener/s1/a.npy")[:300, 0]
    np.testing.assert_allclose(x["listener_face"][:300], (raw - mean) / std, rtol=1e-5, atol=1e-5)
    assert not x["listener_face"][300:].any()  # the padding stays zero (the mean face)
    np.save(tmp_path / "bad.npy", np.zeros(57))
    with pytest.raises(DataError, match=r"bad\.npy: expected 58 finite values"):
        read_face_statistics(tmp_path / "bad.npy", tmp_path / "std.npy")
