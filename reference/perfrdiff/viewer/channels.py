"""Names and positions of the 25 REACT emotion channels, as the viewer labels them.

The order is REACT 2024's emotion CSV (see :mod:`perfrdiff.features`): 15 facial action units,
valence, arousal, then the probabilities of 8 expressions.
"""

from __future__ import annotations

from perfrdiff.features import EMOTION_DIM

#: FACS action-unit numbers of channels 0-14, in channel order.
AU_NUMBERS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
AUS: tuple[str, ...] = tuple(f"AU{n}" for n in AU_NUMBERS)
VALENCE = 15
AROUSAL = 16
#: Channels 17-24, in channel order.
EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)  # fmt: skip
EXPRESSION_START = 17
CHANNELS: tuple[str, ...] = (*AUS, "valence", "arousal", *EXPRESSIONS)

assert len(CHANNELS) == EMOTION_DIM


def channel_index(name: str) -> int:
    """Position of channel ``name`` (``"AU12"``, ``"valence"``, ``"Happy"``; case-insensitive).

    Raises:
        ValueError: ``name`` is not one of :data:`CHANNELS`.
    """
    lowered = [channel.lower() for channel in CHANNELS]
    if name.lower() not in lowered:
        raise ValueError(f"channel: expected one of {', '.join(CHANNELS)}, got {name!r}")
    return lowered.index(name.lower())
