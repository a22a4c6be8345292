"""The REACT layout reader: split index, file resolution, validation errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from perfrdiff.data import (
    CLIP_FRAMES,
    DataError,
    MissingFileError,
    SplitIndex,
    alternative_role,
    clip_file,
    person_of,
    read_emotion,
    read_face,
    read_neighbour_matrix,
    read_split_csv,
)


def write_csv(root: Path, rows: list[tuple[str, str]], split: str = "val") -> None:
    lines = [",speaker_path,listener_path"] + [f"{i},{s},{t}" for i, (s, t) in enumerate(rows)]
    (root / f"{split}.csv").write_text("\n".join(lines) + "\n")


def test_split_csv_is_mirrored_original_rows_then_swapped(tmp_path):
    write_csv(
        tmp_path, [("NoXI/s1/Expert_video/1", "NoXI/s1/Novice_video/1"), ("R/g/P25/2", "R/g/P26/2")]
    )
    pairs = read_split_csv(tmp_path, "val")
    assert [(p.speaker, p.listener) for p in pairs] == [
        ("NoXI/s1/Expert_video/1", "NoXI/s1/Novice_video/1"),
        ("R/g/P25/2", "R/g/P26/2"),
        ("NoXI/s1/Novice_video/1", "NoXI/s1/Expert_video/1"),
        ("R/g/P26/2", "R/g/P25/2"),
    ]


def test_split_csv_with_bad_row_names_file_and_row(tmp_path):
    (tmp_path / "val.csv").write_text(",speaker_path,listener_path\n0,NoXI/s/Expert_video/1\n")
    with pytest.raises(DataError, match=r"val\.csv: row 2: expected 3 columns"):
        read_split_csv(tmp_path, "val")


def test_missing_split_csv_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match=r"test\.csv"):
        read_split_csv(tmp_path, "test")


def test_listener_identity_is_site_session_role():
    assert person_of("NoXI/010_2016-03-25_Paris/Expert_video/3") == (
        "NoXI/010_2016-03-25_Paris/Expert_video"
    )


@pytest.mark.parametrize(
    ("role", "alternative"),
    [("Expert_video", "P1"), ("Novice_video", "P2"), ("P25", "P1"), ("P26", "P2"),
     ("P41", "P1"), ("P45", "P1"), ("P1", None), ("camera", None)],
)  # fmt: skip
def test_alternative_role_names(role, alternative):
    assert alternative_role(role) == alternative


def test_split_index_gives_dense_listener_ids_in_mirrored_order(synthetic_root):
    index = SplitIndex(synthetic_root, "train")
    assert len(index.listener_ids) == len(index.items)
    for item, pair in enumerate(index.items):
        assert index.listeners[index.listener_ids[item]] == person_of(pair.listener)
    assert sorted(set(index.listener_ids.tolist())) == list(range(len(index.listeners)))


def test_emotion_file_is_found_under_p1_p2_role_folder(synthetic_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    index = SplitIndex(root, "train")
    clip = next(p.listener for p in index.items if "Expert_video" in p.listener)
    original = root / "train" / "Emotion" / f"{clip}.csv"
    renamed = original.parent.parent / "P1" / original.name
    renamed.parent.mkdir()
    original.rename(renamed)
    assert clip_file(root, "train", "emotion", clip) == renamed


def test_missing_emotion_file_error_names_both_candidates(synthetic_root, tmp_path):
    with pytest.raises(MissingFileError, match=r"Expert_video/9\.csv.* and .*P1/9\.csv"):
        clip_file(synthetic_root, "train", "emotion", "NoXI/000_synthetic/Expert_video/9")


def test_emotion_reader_returns_first_750_frames(synthetic_root):
    index = SplitIndex(synthetic_root, "val")
    emotion = read_emotion(clip_file(synthetic_root, "val", "emotion", index.items[0].listener))
    assert emotion.shape == (CLIP_FRAMES, 25) and emotion.dtype == np.float32


def test_truncated_emotion_csv_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "1.csv"
    np.savetxt(path, np.zeros((100, 25)), delimiter=",", header="h", comments="")
    with pytest.raises(DataError, match=r"1\.csv: truncated: 100 frames"):
        read_emotion(path)


def test_non_numeric_emotion_csv_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "2.csv"
    path.write_text("header\n" + "\n".join(",".join(["x"] * 25) for _ in range(751)))
    with pytest.raises(DataError, match=r"2\.csv: not a numeric CSV"):
        read_emotion(path)


def test_emotion_csv_with_wrong_column_count_is_rejected(tmp_path):
    path = tmp_path / "3.csv"
    np.savetxt(path, np.zeros((751, 24)), delimiter=",", header="h", comments="")
    with pytest.raises(DataError, match=r"3\.csv: expected emotion of shape \(frames, 25\)"):
        read_emotion(path)


def test_face_npy_is_squeezed_to_750_by_58(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.ones((751, 1, 58), dtype=np.float32))
    assert read_face(path).shape == (CLIP_FRAMES, 58)


def test_face_npy_with_nan_is_rejected(tmp_path):
    path = tmp_path / "nan.npy"
    face = np.zeros((751, 58))
    face[10, 3] = np.nan
    np.save(path, face)
    with pytest.raises(DataError, match=r"nan\.npy: contains 1 NaN .* at frame 10, channel 3"):
        read_face(path)


def test_face_npy_of_wrong_shape_is_rejected(tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, np.zeros((751, 52)))
    with pytest.raises(DataError, match=r"wide\.npy: expected 3DMM coefficients of shape"):
        read_face(path)


def test_corrupt_face_file_is_rejected(tmp_path):
    path = tmp_path / "junk.npy"
    path.write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"junk\.npy: not a readable"):
        read_face(path)


def test_neighbour_matrix_of_wrong_size_is_rejected(tmp_path):
    np.save(tmp_path / "neighbour_emotion_val.npy", np.eye(3, dtype=bool))
    with pytest.raises(DataError, match=r"neighbour_emotion_val\.npy: expected shape \(4, 4\)"):
        read_neighbour_matrix(tmp_path, "val", 4)


def test_neighbour_matrix_row_without_reaction_is_rejected(tmp_path):
    matrix = np.eye(3, dtype=bool)
    matrix[1, 1] = False
    np.save(tmp_path / "neighbour_emotion_val.npy", matrix)
    with pytest.raises(DataError, match="row 1 has no appropriate reaction"):
        read_neighbour_matrix(tmp_path, "val", 3)
