"""Input audit: bad data files, configs, metric inputs and command options fail with errors that
name the file or argument, and a failed training leaves the run directory's config alone."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import soundfile
import torch
from perfrdiff import Run
from perfrdiff.config import ConfigError, load_config
from perfrdiff.data import DataError, SyntheticConfig, audio_features, read_face, read_split_csv
from perfrdiff.metrics import evaluate_all, frdist
from perfrdiff.metrics.report import EvaluateConfig, evaluate_saved_predictions, recorded_stride
from perfrdiff.training import StageMismatch, train_run

from .training_runs import one_thread  # noqa: F401 (autouse)

SPEAKER, LISTENER = "NoXI/s1/Expert_video/1", "NoXI/s1/Novice_video/1"


# Data --------------------------------------------------------------------------------------


def test_split_csv_columns_follow_the_header_names(tmp_path):
    (tmp_path / "val.csv").write_text(f",listener_path,speaker_path\n0,{LISTENER},{SPEAKER}\n")
    pair = read_split_csv(tmp_path, "val")[0]
    assert (pair.speaker, pair.listener) == (SPEAKER, LISTENER)


def test_split_csv_without_a_header_keeps_its_first_row(tmp_path):
    rows = [f"0,{SPEAKER},{LISTENER}", "1,R/g/P25/2,R/g/P26/2"]
    (tmp_path / "val.csv").write_text("\n".join(rows) + "\n")
    pairs = read_split_csv(tmp_path, "val")
    assert [p.speaker for p in pairs[:2]] == [SPEAKER, "R/g/P25/2"]


def test_split_csv_that_is_not_text_names_the_file(tmp_path):
    (tmp_path / "val.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(DataError, match=r"val\.csv: not a readable CSV"):
        read_split_csv(tmp_path, "val")


def test_complex_face_npy_is_refused_not_truncated_to_its_real_part(tmp_path):
    path = tmp_path / "1.npy"
    np.save(path, np.ones((751, 1, 58), dtype=np.complex64))
    with pytest.raises(DataError, match=r"1\.npy: expected a real numeric array, got dtype"):
        read_face(path)


def test_wav_with_nan_samples_names_the_file(tmp_path):
    path = tmp_path / "1.wav"
    soundfile.write(path, np.full(16000 * 31, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"1\.wav: wave: contains \d+ NaN or infinite samples"):
        audio_features(path, None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sample_rate": 0}, "sample_rate: expected a positive multiple of 50 Hz"),
        ({"noise": math.nan}, "noise: expected a finite number >= 0"),
        ({"noise": -1.0}, "noise: expected a finite number >= 0"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
    ],
)
def test_synthetic_config_names_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


# Config ------------------------------------------------------------------------------------


def test_a_training_stage_that_is_not_a_mapping_is_named():
    with pytest.raises(ConfigError, match=r"train\.gafrg: expected a mapping of settings"):
        load_config("tiny", ["train.gafrg=5"])


def test_an_override_value_that_is_not_yaml_names_the_override():
    with pytest.raises(ValueError, match=r"override 'train\.gafrg\.steps=\[1': the value is not"):
        load_config("tiny", ["train.gafrg.steps=[1"])


def test_overrides_given_as_one_string_are_refused():
    with pytest.raises(TypeError, match=r"overrides: expected a list"):
        load_config("tiny", "seed=3")


def test_a_config_that_is_neither_name_nor_path_is_named():
    with pytest.raises(TypeError, match=r"name_or_path: expected a preset name .* got NoneType"):
        load_config(None)


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("- 1\n- 2\n", ConfigError, r"bad\.yaml: expected a YAML mapping of config .*, got list"),
        ("a: [1\n", ValueError, r"bad\.yaml: not a readable YAML config"),
    ],
)
def test_a_config_file_that_is_not_a_yaml_mapping_is_named(tmp_path, text, error, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error, match=message):
        load_config(path)


@pytest.mark.parametrize("key", ["data.window", "data.history_frames", "style.frames"])
def test_frame_counts_longer_than_a_clip_are_refused_by_the_config(key):
    with pytest.raises(ConfigError, match=rf"{key}: must be <= 750, got 751"):
        load_config("tiny", [f"{key}=751"])


# Metrics -----------------------------------------------------------------------------------


def _metric_inputs(n=3, k=2, t=60):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, k, t, 25, generator=g), torch.randn(n, t, 25, generator=g)


def test_bf16_tensors_are_scored_like_their_float32_values():
    predictions, listener = (x.bfloat16() for x in _metric_inputs())
    neighbours = torch.eye(3, dtype=torch.bool)
    got = evaluate_all(predictions, listener, listener, neighbours, n_jobs=1)
    want = evaluate_all(predictions.float(), listener.float(), listener.float(), neighbours, 1)
    assert got == pytest.approx(want)


@pytest.mark.parametrize("n_jobs", [0, -1])
def test_frdist_names_a_bad_n_jobs(n_jobs):
    predictions, listener = _metric_inputs()
    with pytest.raises(ValueError, match=r"n_jobs: expected None .* or an integer >= 1"):
        frdist(predictions, listener, np.eye(3, dtype=bool), n_jobs=n_jobs)


def test_evaluate_refuses_stride_zero_before_reading_anything(tmp_path):
    config = EvaluateConfig(predictions=tmp_path / "absent.npy", root=tmp_path, stride=0)
    with pytest.raises(ValueError, match=r"stride: expected an integer >= 1, got 0"):
        evaluate_saved_predictions(config)


def test_a_bad_stride_in_the_sidecar_names_the_sidecar(tmp_path):
    (tmp_path / "predictions.json").write_text(json.dumps({"stride": "abc"}))
    with pytest.raises(DataError, match=r"predictions\.json: expected 'stride' to be an integer"):
        recorded_stride(tmp_path / "predictions.npy")


# Training into an existing run directory ---------------------------------------------------

QUICK = ["steps=2", "batch_size=4", "val_every=2", "ckpt_every=2", "val_batches=1"]


def _config(root, *overrides):
    quick = [f"train.{s}.{q}" for s in ("emotion-vae", "gafrg") for q in QUICK]
    return load_config("tiny", [f"data.root={root}", "threads=1", *quick, *overrides])


@pytest.fixture(scope="module")
def vae_run(synthetic_root, tmp_path_factory):
    """A run directory with only the emotion VAE trained (and its config.yaml)."""
    run = tmp_path_factory.mktemp("vae_run")
    train_run(Run(_config(synthetic_root), run, device="cpu"), ["emotion-vae"])
    return run


def test_a_stage_that_cannot_load_its_earlier_stage_leaves_config_yaml(
    vae_run, synthetic_root, tmp_path
):
    run = shutil.copytree(vae_run, tmp_path / "run")
    saved = (run / "config.yaml").read_text()
    changed = Run(_config(synthetic_root, "emotion_vae.hidden_dim=32"), run, device="cpu")
    with pytest.raises(StageMismatch, match=r"emotion_vae\.hidden_dim: trained with 64, now 32"):
        train_run(changed, ["gafrg"])
    assert (run / "config.yaml").read_text() == saved
    with pytest.raises(FileNotFoundError, match=r"gafrg/model\.safetensors"):
        train_run(Run(_config(synthetic_root), run, device="cpu"), ["pwsg"])
    assert (run / "config.yaml").read_text() == saved


def test_a_missing_training_split_leaves_config_yaml(vae_run, tmp_path):
    run = shutil.copytree(vae_run, tmp_path / "run")
    saved = (run / "config.yaml").read_text()
    with pytest.raises(DataError, match=r"train\.csv: split index file is missing"):
        train_run(Run(_config(tmp_path / "nowhere"), run, device="cpu"), ["emotion-vae"])
    assert (run / "config.yaml").read_text() == saved


@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint8, np.bool_])
def test_integer_feature_files_are_refused_not_cast(tmp_path, dtype):
    # Quantised features cast to float reach the model on another scale: refuse, name the file.
    face = tmp_path / "face.npy"
    np.save(face, np.ones((751, 58), dtype=dtype))
    with pytest.raises(DataError, match=r"face\.npy: expected floating-point features, got dtype"):
        read_face(face)
    from perfrdiff.generation.inputs import read_history

    history = tmp_path / "history.npy"
    np.save(history, np.ones((250, 25), dtype=dtype))
    with pytest.raises(ValueError, match=r"history\.npy: expected floating-point features"):
        read_history(history, "emotion")


def test_float16_and_float64_features_are_read_as_float32(tmp_path):
    for dtype in (np.float16, np.float64):
        np.save(tmp_path / "face.npy", np.ones((1, 751, 58), dtype=dtype))
        assert read_face(tmp_path / "face.npy").dtype == np.float32
