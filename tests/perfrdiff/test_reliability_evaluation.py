"""Issue item 11: evaluation checks the split named in the predictions' sidecar, blames the
predictions (not the reference data) for a wrong t or d, and names a file that is not NumPy."""

import json

import numpy as np
import pytest
from perfrdiff.cli import main
from perfrdiff.data import DataError, SplitIndex
from perfrdiff.metrics import evaluate_all
from perfrdiff.metrics.report import load_references, resolve_split


def evaluate(path, root, *flags):
    return main(["evaluate", str(path), "--root", str(root), "--n-jobs", "1", *flags])


def save(path, predictions, split=None):
    np.save(path, predictions.astype(np.float32))
    if split is not None:
        path.with_suffix(".json").write_text(json.dumps({"mode": "generic", "split": split}))
    return path


@pytest.fixture(scope="module")
def test_listener(synthetic_root):
    return load_references(synthetic_root, "test")[0]


def test_a_split_that_contradicts_the_sidecar_is_refused(synthetic_root, tmp_path, test_listener):
    path = save(tmp_path / "p.npy", test_listener[:, None], split="test")
    with pytest.raises(ValueError, match=r"p\.npy: its sidecar p\.json says these are "
                       r"predictions for split 'test', but split 'val' was asked for"):  # fmt: skip
        evaluate(path, synthetic_root, "--split", "val")
    assert not (tmp_path / "metrics.json").exists()


def test_the_split_defaults_to_the_sidecars(synthetic_root, tmp_path):
    val_listener = load_references(synthetic_root, "val")[0]
    path = save(tmp_path / "p.npy", np.repeat(val_listener[:, None], 2, axis=1), split="val")
    assert evaluate(path, synthetic_root) == 0  # scored against val, not the default test
    # copies of the real val reactions: CCC 1 for each of the 2 samples; the row is named after
    # the sidecar's mode
    assert json.loads((tmp_path / "metrics.json").read_text())["generic"]["FRCorr"] > 1.99
    assert resolve_split(path, "val") == "val"
    assert resolve_split(tmp_path / "no_sidecar.npy", None) == "test"


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 700, 25), r"t = 700 \(expected 750 frames\)"),
        ((2, 750, 24), r"d = 24 \(expected 25 emotion channels\)"),
        ((2, 700, 58), r"t = 700 \(expected 750 frames\), d = 58"),
    ],
)
def test_wrong_t_or_d_blames_the_predictions_file(synthetic_root, tmp_path, shape, message):
    n = len(SplitIndex(synthetic_root, "test"))
    path = save(tmp_path / "p.npy", np.zeros((n, *shape)))
    with pytest.raises(ValueError, match=rf"p\.npy: predictions of shape .* {message}"):
        evaluate(path, synthetic_root, "--split", "test")


def test_evaluate_all_says_which_dimension_disagrees(test_listener):
    predictions = np.zeros((test_listener.shape[0], 2, 700, 25))
    with pytest.raises(ValueError, match=r"disagree on \(n, t, d\): t = 750 vs 700"):
        evaluate_all(predictions, test_listener, test_listener, np.eye(len(test_listener)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text", r"p\.npy: .*not a NumPy \.npy file \(starts with b'1,2,3"),
        ("objects", r"p\.npy: holds Python objects"),
        ("nan", r"p\.npy: predictions: contains NaN or infinite values"),
        ("3d", r"p\.npy: predictions: expected shape \(n, k, t, d\), got \(4, 750, 25\)"),
    ],
)
def test_unusable_prediction_files_are_named(synthetic_root, tmp_path, content, message):
    path = tmp_path / "p.npy"
    if content == "text":
        path.write_text("1,2,3\n")
    elif content == "objects":
        np.save(path, np.array([None, 1], dtype=object), allow_pickle=True)
    elif content == "nan":
        np.save(path, np.full((4, 1, 750, 25), np.nan))
    else:
        np.save(path, np.zeros((4, 750, 25)))
    with pytest.raises(DataError, match=message):
        evaluate(path, synthetic_root, "--split", "test")


def test_a_npz_that_is_not_an_archive_is_named(synthetic_root, tmp_path):
    (tmp_path / "p.npz").write_text("hello")
    with pytest.raises(DataError, match=r"p\.npz: not a readable \.npz archive"):
        evaluate(tmp_path / "p.npz", synthetic_root)
