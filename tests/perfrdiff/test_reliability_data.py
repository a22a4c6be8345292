"""Issue item 12 (an emotion CSV without a header keeps its first frame) and the file-naming
``.npy`` reader behind items 10 and 11."""

import numpy as np
import pytest
from perfrdiff.data import CLIP_FRAMES, DataError, MissingFileError, read_emotion, read_npy
from perfrdiff.data.synthetic import EMOTION_COLUMNS


def frames(count=751):
    # distinct values, all within every emotion channel's range ([0, 1])
    return np.arange(count * 25, dtype=np.float64).reshape(count, 25) / 20000


@pytest.mark.parametrize(
    "header", [",".join(EMOTION_COLUMNS), "# " + ",".join(EMOTION_COLUMNS), None]
)
def test_emotion_csv_keeps_every_frame_with_or_without_a_header(tmp_path, header):
    path = tmp_path / "1.csv"
    data = frames()
    np.savetxt(path, data, fmt="%.6f", delimiter=",", header=header or "", comments="")
    if header is None:
        path.write_text(path.read_text().lstrip("\n"))  # savetxt wrote an empty first line
    emotion = read_emotion(path)
    np.testing.assert_allclose(emotion, data[:CLIP_FRAMES].astype(np.float32))


def test_headerless_emotion_csv_of_exactly_750_frames_is_complete(tmp_path):
    path = tmp_path / "1.csv"
    path.write_text("\n".join(",".join(f"{v:.3f}" for v in row) for row in frames(750)) + "\n")
    assert read_emotion(path).shape == (CLIP_FRAMES, 25)


def test_empty_emotion_csv_is_named(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        read_emotion(path)


def test_npy_reader_names_a_text_file_under_a_npy_name(tmp_path):
    path = tmp_path / "predictions.npy"
    path.write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"predictions\.npy: .*not a NumPy \.npy file"):
        read_npy(path)


def test_npy_reader_names_object_arrays_truncated_and_missing_files(tmp_path):
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"objects\.npy: holds Python objects"):
        read_npy(objects)
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, np.zeros((100, 25)))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match=r"truncated\.npy: not a readable \.npy array"):
        read_npy(truncated)
    with pytest.raises(MissingFileError, match=r"absent\.npy: file is missing"):
        read_npy(tmp_path / "absent.npy")
