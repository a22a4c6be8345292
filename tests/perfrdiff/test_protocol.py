"""The challenge protocol as data: the records, the config key, and what reads them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from perfrdiff import features
from perfrdiff.changes import retrained_stages, weights_changes
from perfrdiff.config import Config, ConfigError, config_to_dict, field_roles, load_config
from perfrdiff.data import DataError
from perfrdiff.data.audio import mfcc_features
from perfrdiff.metrics import evaluate_all, frsyn
from perfrdiff.metrics.report import EvaluateConfig, evaluate_saved_predictions, resolve_protocol
from perfrdiff.protocol import PROTOCOLS, REACT2024, REACT2026, Protocol, protocol_named
from perfrdiff.stages import STAGE_NAMES
from perfrdiff.training.datasets import style_datasets, window_datasets


def test_react2024_holds_the_numbers_the_module_constants_held():
    assert (REACT2024.fps, REACT2024.clip_frames, REACT2024.window) == (25, 750, 50)
    assert (features.FPS, features.CLIP_FRAMES, features.WINDOW) == (25, 750, 50)
    assert REACT2024.appropriate == "neighbours" and not REACT2024.clamp_output
    assert REACT2024.metrics.tlcc_max_lag == 49 and not REACT2024.metrics.tlcc_first_sample_only


def test_react2026_is_30_fps_sequences_of_any_length():
    assert (REACT2026.fps, REACT2026.window, REACT2026.crop_frames) == (30, 30, 750)
    assert REACT2026.clip_frames is None
    assert (REACT2026.appropriate, REACT2026.appropriate_others) == ("session-draw", 9)
    assert REACT2026.metrics.tlcc_first_sample_only and REACT2026.metrics.tlcc_max_lag == 49


def test_protocols_are_frozen_and_looked_up_by_name():
    assert set(PROTOCOLS) == {"react2024", "react2026"}
    assert protocol_named("react2026") is REACT2026 and protocol_named(REACT2024) is REACT2024
    with pytest.raises(ValueError, match=r"protocol must be one of \['react2024', 'react2026'\]"):
        protocol_named("react2025")
    with pytest.raises(AttributeError):
        REACT2024.fps = 30  # type: ignore[misc]


def test_speaker_frames_follow_the_speaker_context():
    assert REACT2024.speaker_frames(100) == slice(50, 100)  # the 2 s before the window
    assert REACT2026.speaker_frames(60) == slice(30, 90)  # the window before and its own
    assert REACT2026.speaker_frames(0) == slice(-30, 30)  # before 0: zero padding


def test_react2024_leaves_outputs_as_they_are():
    reactions = np.random.default_rng(0).normal(size=(2, 3, 7, 25)).astype(np.float32)
    assert REACT2024.finish(reactions) is reactions


def test_react2026_clamps_and_rounds_aus_by_hand():
    row = np.zeros(25, np.float32)
    row[:4] = [0.49, 0.51, -0.3, 1.7]  # AUs: round(clip(., 0, 1))
    row[15:17] = [1.5, -2.0]  # valence, arousal: clip to [-1, 1]
    row[17:19] = [-0.1, 1.2]  # expression probabilities: clip to [0, 1]
    out = REACT2026.finish(row[None])
    assert out[0, :4].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out[0, 15:17].tolist() == [1.0, -1.0] and out[0, 17:19].tolist() == [0.0, 1.0]
    assert row[0] == np.float32(0.49)  # the input is not modified


def test_the_config_key_selects_the_protocol_and_defaults_to_react2024():
    assert Config().protocol == "react2024"
    assert load_config("tiny", ["protocol=react2026"]).protocol == "react2026"
    with pytest.raises(ConfigError, match=r"protocol: must be one of \['react2024', 'react2026'\]"):
        load_config("tiny", ["protocol=react2025"])


def test_the_protocol_defines_every_stages_weights():
    role = field_roles()["protocol"]
    assert role.kind == "weights" and set(role.defines) == set(STAGE_NAMES)
    base, variant = load_config("tiny"), load_config("tiny", ["protocol=react2026"])
    assert retrained_stages(base, variant) == list(STAGE_NAMES)
    old, new = config_to_dict(base), config_to_dict(variant)
    assert weights_changes(old, new, "gafrg") == {"protocol": ("react2024", "react2026")}


def test_a_saved_config_without_the_key_still_matches_react2024_weights():
    old = config_to_dict(load_config("tiny"))
    del old["protocol"]  # written before the key existed
    assert weights_changes(old, config_to_dict(load_config("tiny")), "pwsg") == {}


def test_frame_counts_are_bounded_by_the_protocols_crop():
    with pytest.raises(ConfigError, match=r"data\.window: must be <= 750, got 751"):
        load_config("tiny", ["protocol=react2026", "data.window=751"])


def test_frsyn_first_sample_only_scores_sample_zero():
    rng = np.random.default_rng(1)
    speaker = rng.normal(size=(2, 120, 25))
    predictions = rng.normal(size=(2, 3, 120, 25))
    predictions[:, 0] = np.roll(speaker, 5, axis=1)  # sample 0 follows its speaker 5 frames late
    assert frsyn(predictions, speaker, first_sample_only=True) == 5.0
    assert frsyn(predictions, speaker) == frsyn(predictions, speaker, max_lag=49)
    assert frsyn(predictions, speaker) != 5.0


def test_frsyn_lags_follow_max_lag():
    speaker = np.random.default_rng(2).normal(size=(1, 80, 25))
    predictions = np.roll(speaker, 12, axis=1)[:, None]
    assert frsyn(predictions, speaker, max_lag=49) == 12.0
    assert frsyn(predictions, speaker, max_lag=10) != 12.0  # 12 is not among the lags
    with pytest.raises(ValueError, match="max_lag: expected >= 1"):
        frsyn(predictions, speaker, max_lag=0)


def test_evaluate_all_under_react2026_takes_its_frsyn_variant():
    rng = np.random.default_rng(3)
    speaker, listener = rng.normal(size=(2, 2, 100, 25))
    predictions = rng.normal(size=(2, 2, 100, 25))
    predictions[:, 0] = np.roll(speaker, 3, axis=1)
    neighbours = np.eye(2, dtype=bool)
    ours = evaluate_all(predictions, listener, speaker, neighbours, n_jobs=1)
    assert ours == evaluate_all(predictions, listener, speaker, neighbours, 1, protocol=REACT2024)
    challenge = evaluate_all(predictions, listener, speaker, neighbours, 1, protocol=REACT2026)
    assert challenge["FRSyn"] == 3.0 and ours["FRSyn"] != 3.0
    assert {k: v for k, v in challenge.items() if k != "FRSyn"} == {
        k: v for k, v in ours.items() if k != "FRSyn"
    }


def test_evaluate_reads_the_protocol_beside_the_predictions(tmp_path):
    path = tmp_path / "predictions.npy"
    path.with_suffix(".json").write_text(json.dumps({"protocol": "react2026"}))
    assert resolve_protocol(path, None) is REACT2026
    with pytest.raises(ValueError, match=r"sidecar says .* protocol 'react2026'.*--protocol"):
        resolve_protocol(path, "react2024")
    assert resolve_protocol(tmp_path / "other.npy", None) is REACT2024


def test_evaluate_under_react2026_wants_one_array_per_item(tmp_path):
    for role in ("speaker", "listener"):
        for folder, width in (("facial-attributes", 25), ("coefficients", 58)):
            (tmp_path / "test" / folder / role / "s").mkdir(parents=True)
            np.save(tmp_path / "test" / folder / role / "s" / "a.npy", np.zeros((60, width)))
    path = tmp_path / "predictions.npy"
    np.save(path, np.zeros((1, 2, 60, 25), np.float32))
    with pytest.raises(DataError, match=r"predictions\.npy: REACT 2026 predictions are a \.npz"):
        evaluate_saved_predictions(EvaluateConfig(path, root=tmp_path, protocol="react2026"))


@pytest.mark.parametrize("datasets", [window_datasets, style_datasets])
def test_react2026_training_reads_the_mars_layout_and_names_what_is_missing(
    datasets, synthetic_root
):
    config = load_config("tiny", ["protocol=react2026", f"data.root={synthetic_root}"])
    with pytest.raises(FileNotFoundError, match="facial-attributes folder of split 'train'"):
        datasets(config)  # a REACT 2024 layout has no MARS folders


def test_mfcc_at_30_fps_gives_one_vector_per_frame():
    rate = 48000  # 30 fps x 2 hops divides it
    wave = np.random.default_rng(4).normal(size=rate * 3).astype(np.float32)
    assert mfcc_features(wave, rate, frames=89, fps=30).shape == (89, 78)
    with pytest.raises(ValueError, match="multiple of 60 Hz"):
        mfcc_features(wave, 16000, frames=10, fps=30)


def test_a_protocol_is_a_frozen_dataclass():
    assert Protocol.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_generation_on_the_react2024_layout_refuses_react2026(synthetic_root):
    from perfrdiff.generation import load_evaluation_set

    config = load_config("tiny", ["protocol=react2026", f"data.root={synthetic_root}"])
    with pytest.raises(ValueError, match="protocol 'react2026': generation's evaluation sets"):
        load_evaluation_set(config, "test")
    react2024 = load_config("tiny", [f"data.root={synthetic_root}"])
    assert load_evaluation_set(react2024, "test", histories=False).listener_emotion.shape[1] == 750
