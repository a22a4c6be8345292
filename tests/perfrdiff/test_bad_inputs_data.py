"""Bad data files, one row each: the reader refuses it with this error class, and the message
names the file and says what is wrong. Nothing is cast, truncated or guessed silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from perfrdiff.data import DataError, MissingFileError, audio_features, read_emotion, read_face
from perfrdiff.generation.inputs import read_history


def npy(array) -> Callable[[Path], None]:
    return lambda path: np.save(path, np.asarray(array))


def text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content)


def raw(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def wav(samples, rate: int) -> Callable[[Path], None]:
    return lambda path: soundfile.write(path, np.asarray(samples, np.float32), rate, "FLOAT")


def features(path: Path):
    return audio_features(path, None)


def _nan_at(shape, frame, channel):
    array = np.zeros(shape)
    array[frame, channel] = np.nan
    return array


def _with(shape, at, value):
    array = np.full(shape, 0.5)
    array[at] = value
    return array


_HEADER = ",".join(f"c{i}" for i in range(25))
EMOTION_ROWS = "\n".join(",".join(["0.5"] * 25) for _ in range(751))


def _at_column(column: int, value: str) -> str:
    """Every frame 0.5, except ``value`` in ``column``."""
    row = ",".join(value if c == column else "0.5" for c in range(25))
    return "\n".join([row] * 751)


CASES = [
    # (reader, file name, writer, error, words the message must contain)
    (read_face, "face.npy", npy(np.ones((751, 58), np.int16)), DataError,
     ["face.npy", "floating-point", "int16"]),
    (read_face, "face.npy", npy(np.ones((751, 58), bool)), DataError, ["face.npy", "bool"]),
    (read_face, "face.npy", npy(np.ones((751, 58), complex)), DataError,
     ["face.npy", "complex"]),
    (read_face, "face.npy", npy(np.array([["a"] * 58] * 751)), DataError,
     ["face.npy", "real numeric"]),
    (read_face, "face.npy", npy(_nan_at((751, 58), 10, 3)), DataError,
     ["face.npy", "1 NaN", "frame 10, channel 3"]),
    (read_face, "face.npy", npy(np.ones((700, 58))), DataError, ["face.npy", "truncated", "700"]),
    (read_face, "face.npy", npy(np.ones((751, 57))), DataError, ["face.npy", "(frames, 58)"]),
    (read_face, "face.npy", text("not numpy"), DataError, ["face.npy", "not a NumPy .npy"]),
    (read_face, "face.npy", raw(b"\x93NUMPY\x01\x00garbage"), DataError,
     ["face.npy", "not a readable .npy"]),
    (read_face, "absent.npy", None, MissingFileError, ["absent.npy", "missing"]),
    (read_emotion, "e.csv", text(""), DataError, ["e.csv", "empty"]),
    (read_emotion, "e.csv", text(f"{_HEADER}\n" + "x," * 24 + "x\n"), DataError,
     ["e.csv", "not a numeric CSV"]),
    (read_emotion, "e.csv", text(f"{_HEADER}\n" + EMOTION_ROWS.replace("0.5", "nan", 1)),
     DataError, ["e.csv", "NaN", "frame 0, channel 0"]),
    (read_emotion, "e.csv", raw(b"\xff\xfe\x00bad"), DataError, ["e.csv", "not a readable text"]),
    (read_emotion, "e.csv", text(f"{_HEADER}\n" + EMOTION_ROWS.replace("0.5", "57", 1)),
     DataError, ["e.csv", "1 emotion values outside", "57 at frame 0, channel 0", "AU: [0, 1]"]),
    (read_emotion, "e.csv", text(f"{_HEADER}\n" + _at_column(16, "-3")), DataError,
     ["e.csv", "750 emotion values", "-3", "channel 16", "valence/arousal: [-1, 1]"]),
    (read_emotion, "e.csv", text(f"{_HEADER}\n" + _at_column(20, "100")), DataError,
     ["e.csv", "channel 20", "expression: [0, 1]", "percent"]),
    (features, "a.wav", wav(np.zeros(16000), 16000), DataError,
     ["a.wav", "at least 479681 samples", "got 16000"]),
    (features, "a.wav", wav(np.zeros(100 * 31), 100), DataError,
     ["a.wav", "at least 8000 Hz", "got 100"]),
    (features, "a.wav", wav(np.zeros(44099 * 31), 44099), DataError,
     ["a.wav", "multiple of 50 Hz", "44099"]),
    (features, "a.wav", wav(np.full(16000 * 31, np.nan), 16000), DataError,
     ["a.wav", "NaN or infinite samples"]),
    (features, "a.wav", text("RIFF but not"), DataError, ["a.wav", "not a readable audio"]),
    (features, "absent.wav", None, MissingFileError, ["absent.wav"]),
    (lambda p: read_history(p, "emotion"), "h.npy", npy(np.ones((250, 25), np.int16)),
     DataError, ["h.npy", "floating-point", "int16"]),
    (lambda p: read_history(p, "emotion"), "h.npy", npy(np.ones((250, 58))), ValueError,
     ["h.npy", "(h, 25)", "style.input='emotion'"]),
    (lambda p: read_history(p, "dyadic"), "h.npy", npy(np.full((250, 50), np.inf)), DataError,
     ["h.npy", "NaN or infinite"]),
    (lambda p: read_history(p, "emotion"), "h.npy", npy(np.full((250, 25), 2.0)), DataError,
     ["h.npy", "emotion values outside", "2 at frame 0, channel 0"]),
    (lambda p: read_history(p, "dyadic"), "h.npy", npy(_with((250, 50), (3, 40), 7.0)),
     DataError, ["h.npy", "1 emotion values outside", "frame 3, channel 40", "expression"]),
    (lambda p: read_history(p, "face"), "h.npy", npy(np.ones((0, 58))), ValueError,
     ["h.npy", "h >= 1"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reader", "name", "write", "error", "words"),
    CASES,
    ids=[f"{i}-{c[1]}-{c[4][-1]}" for i, c in enumerate(CASES)],
)
def test_a_bad_data_file_is_refused_naming_the_file(tmp_path, reader, name, write, error, words):
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(error) as caught:
        reader(path)
    for word in words:
        assert word in str(caught.value), f"{word!r} not in {caught.value}"
