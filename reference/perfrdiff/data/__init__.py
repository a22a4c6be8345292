"""REACT 2024 data: layout loader, audio features, datasets per training stage, synthetic twin.

Shapes use einops notation; all tensors are float32 unless stated. See :mod:`perfrdiff.data.layout`
for the on-disk layout and :mod:`perfrdiff.data.synthetic` for the synthetic generative model.
"""

import perfrdiff._guard  # noqa: F401  (names the extra to install when it is missing)
from perfrdiff.data.audio import audio_features, mfcc_features, read_wave
from perfrdiff.data.datasets import (
    ClipDataset,
    ListenerClipDataset,
    WindowDataset,
    collate_clips,
    history_features,
)
from perfrdiff.data.history import HistoryPicker, HistorySource
from perfrdiff.data.index import SplitIndex
from perfrdiff.data.layout import (
    SPLITS,
    ClipPair,
    DataError,
    MissingFileError,
    alternative_role,
    check_emotion_range,
    check_feature_dtype,
    check_finite,
    clip_file,
    person_of,
    read_emotion,
    read_face,
    read_neighbour_matrix,
    read_npy,
    read_split_csv,
)
from perfrdiff.data.samplers import ListenerBatchSampler, Reseeded, StepBatchSampler
from perfrdiff.data.statistics import (
    listener_emotion_statistics,
    listener_level_pairs,
    speaker_frame_statistics,
)
from perfrdiff.data.store import ClipStore, warm_audio_cache
from perfrdiff.data.synthetic import (
    SyntheticConfig,
    appropriateness_matrix,
    load_ground_truth_style,
    write_synthetic_dataset,
)
from perfrdiff.features import AUDIO_DIM, CLIP_FRAMES, EMOTION_DIM, FACE_DIM, FPS, WINDOW

__all__ = [
    "AUDIO_DIM",
    "CLIP_FRAMES",
    "EMOTION_DIM",
    "FACE_DIM",
    "FPS",
    "SPLITS",
    "WINDOW",
    "ClipDataset",
    "ClipPair",
    "ClipStore",
    "DataError",
    "HistoryPicker",
    "HistorySource",
    "ListenerBatchSampler",
    "ListenerClipDataset",
    "MissingFileError",
    "Reseeded",
    "SplitIndex",
    "StepBatchSampler",
    "SyntheticConfig",
    "WindowDataset",
    "alternative_role",
    "appropriateness_matrix",
    "audio_features",
    "check_emotion_range",
    "check_feature_dtype",
    "check_finite",
    "clip_file",
    "collate_clips",
    "history_features",
    "listener_emotion_statistics",
    "listener_level_pairs",
    "load_ground_truth_style",
    "mfcc_features",
    "person_of",
    "read_emotion",
    "read_face",
    "read_neighbour_matrix",
    "read_npy",
    "read_split_csv",
    "read_wave",
    "speaker_frame_statistics",
    "warm_audio_cache",
    "write_synthetic_dataset",
]
