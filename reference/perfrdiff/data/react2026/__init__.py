"""REACT 2026 (MARS) data: the layout of sequences of any length paired by stem, memory-mapped
readers and crops, the personality table, optional EEG, and the datasets over them.

Shapes use einops notation; arrays are float32 unless stated. See :mod:`.layout` for the
on-disk layout.
"""

from perfrdiff.data.react2026.datasets import MarsCrops
from perfrdiff.data.react2026.eeg import EEG_COLUMNS, EegSource, eeg_frames, parse_eeg
from perfrdiff.data.react2026.layout import (
    BIG_FIVE,
    ROLES,
    Dyad,
    clip_path,
    find_dyads,
    person_of,
    read_personality,
)
from perfrdiff.data.react2026.readers import crop, mfcc_sequence, open_sequence, read_frames
from perfrdiff.data.react2026.store import (
    AUDIO_WIDTHS,
    WAV2VEC_DIM,
    MarsStore,
    face_statistics,
    read_face_statistics,
)

__all__ = [
    "AUDIO_WIDTHS",
    "BIG_FIVE",
    "EEG_COLUMNS",
    "ROLES",
    "WAV2VEC_DIM",
    "Dyad",
    "EegSource",
    "MarsCrops",
    "MarsStore",
    "clip_path",
    "crop",
    "eeg_frames",
    "face_statistics",
    "find_dyads",
    "mfcc_sequence",
    "open_sequence",
    "parse_eeg",
    "person_of",
    "read_face_statistics",
    "read_frames",
    "read_personality",
]
