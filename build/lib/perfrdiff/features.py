"""The one table of per-frame feature widths and clip timing of REACT 2024 (DESIGN section 4).

Every module that needs a width imports it from here; nothing else declares 25, 78 or 58.
"""

from __future__ import annotations

#: Video frame rate of every modality.
FPS = 25
#: Frames of a clip that are used (files hold 751).
CLIP_FRAMES = 750
#: Frames of one listener window (2 s).
WINDOW = 50
#: Listener / speaker emotion: 15 AUs, valence, arousal, 8 expression probabilities.
EMOTION_DIM = 25
#: FaceVerse 3DMM: 52 expression, 3 rotation, 3 translation.
FACE_DIM = 58
#: Speaker audio: 13 MFCC + delta + delta-delta, for two 20 ms hops per 40 ms frame.
AUDIO_DIM = 78
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
