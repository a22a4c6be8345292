"""The one table of per-frame feature widths (DESIGN section 4).

Every module that needs a width imports it from here; nothing else declares 25, 78 or 58. Frame
rate, clip length and window belong to a protocol (:mod:`perfrdiff.protocol`): a run reads its
own; the three names below are REACT 2024's, kept for code written against them.
"""

from __future__ import annotations

from perfrdiff.protocol import REACT2024

#: REACT 2024's frame rate (a run reads its protocol's ``fps``).
FPS = REACT2024.fps
#: REACT 2024's clip length (files hold 751; a run reads its protocol's ``clip_frames``).
CLIP_FRAMES: int = REACT2024.crop_frames  # its clips are its crops: 750 frames
#: REACT 2024's listener window, 2 s (a run reads its config's ``data.window``).
WINDOW = REACT2024.window
#: Listener / speaker emotion: 15 AUs, valence, arousal, 8 expression probabilities.
EMOTION_DIM = 25
#: FaceVerse 3DMM: 52 expression, 3 rotation, 3 translation.
FACE_DIM = 58
#: Speaker audio: 13 MFCC + delta + delta-delta, for two 20 ms hops per 40 ms frame.
AUDIO_DIM = 78
#: REACT 2026's ``audio-features``: wav2vec2-base features resampled to the frame rate.
WAV2VEC_DIM = 768
#: Speaker audio width per ``data.audio``: MFCC of the wavs (REACT 2024's only kind) or the
#: 768-d features (REACT 2026's default). A run's width is its data's, not a constant.
AUDIO_DIMS: dict[str, int] = {"mfcc": AUDIO_DIM, "features": WAV2VEC_DIM}
#: Width of a style history per ``style.input``: the listener's 3DMM, the listener's emotion,
#: or ``"dyadic"``: the listener's emotion then their conversation partner's emotion at the same
#: frames (a reaction style is how one responds to the other, which needs both sides).
HISTORY_DIMS: dict[str, int] = {"face": FACE_DIM, "emotion": EMOTION_DIM, "dyadic": 2 * EMOTION_DIM}


def history_dim(style_input: str) -> int:
    """Channels of a listener history for ``style.input`` (a key of :data:`HISTORY_DIMS`).

    Raises:
        ValueError: ``style_input`` is not one.
    """
    if style_input not in HISTORY_DIMS:
        raise ValueError(f"style.input must be one of {sorted(HISTORY_DIMS)}, got {style_input!r}")
    return HISTORY_DIMS[style_input]
