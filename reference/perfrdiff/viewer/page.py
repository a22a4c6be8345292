"""What the page embeds for each item: the time window, the frame stride, quantised sequences,
the audio, and the metrics; all as JSON-ready data.

Long sequences: the page embeds frames ``[start, start + duration)`` of the item (default: all),
keeping every ``s``-th frame with ``s`` from :func:`~perfrdiff.viewer.encoding.frame_stride`
(at most ``max_frames`` per sequence) and at most ``max_samples`` samples per mode. Audio is not
subsampled, only cut to the same window; its sample rate is capped at ``audio_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfrdiff.viewer.channels import AUS, CHANNELS, EXPRESSION_START, EXPRESSIONS, channel_index
from perfrdiff.viewer.encoding import AUDIO_RATE, MAX_FRAMES, audio_data_uri, frame_stride, quantise
from perfrdiff.viewer.face import face_model
from perfrdiff.viewer.items import ViewerItem


@dataclass
class ViewOptions:
    """How much of each item the page (or video) holds; the defaults suit REACT 2024 items."""

    start: float = 0.0  # seconds into the item
    duration: float | None = None  # seconds; None: to the end
    max_frames: int = MAX_FRAMES
    max_samples: int | None = None  # per mode; None: all k
    audio_rate: int = AUDIO_RATE
    channel: str = "AU12"  # the curve shown first
    title: str = "PerFRDiff reactions"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ValueError(f"start: expected seconds >= 0, got {self.start}")
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"duration: expected seconds > 0, got {self.duration}")
        for name in ("max_frames", "audio_rate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples: expected >= 1 or None, got {self.max_samples}")
        channel_index(self.channel)


def frame_window(item: ViewerItem, options: ViewOptions) -> tuple[int, int, int]:
    """``(first, stop, stride)``: the source frames ``first:stop:stride`` that are shown.

    Raises:
        ValueError: ``options.start`` is at or past the item's end.
    """
    first = round(options.start * item.fps)
    if first >= item.frames:
        raise ValueError(
            f"start: {options.start} s is past the end of item {item.index} "
            f"({item.frames} frames at {item.fps} fps)"
        )
    stop = item.frames
    if options.duration is not None:
        stop = min(stop, first + max(1, round(options.duration * item.fps)))
    return first, stop, frame_stride(stop - first, options.max_frames)


def audio_window(item: ViewerItem, first: int, stop: int) -> np.ndarray | None:
    """The item's audio ``(samples,)`` for source frames ``first:stop`` (None without audio)."""
    if item.audio is None or item.sample_rate is None:
        return None
    begin = round(first / item.fps * item.sample_rate)
    end = round(stop / item.fps * item.sample_rate)
    return item.audio[begin:end]


def item_payload(item: ViewerItem, options: ViewOptions) -> dict:
    """The JSON-ready description of one item for the page's JavaScript."""
    first, stop, stride = frame_window(item, options)
    window = slice(first, stop, stride)
    samples = slice(None, options.max_samples)
    audio = audio_window(item, first, stop)
    return {
        "index": item.index,
        "split": item.split,
        "speakerClip": item.speaker_clip,
        "listenerClip": item.listener_clip,
        "sourceFps": item.fps,
        "fps": item.fps / stride,
        "stride": stride,
        "start": first / item.fps,
        "frames": len(range(first, stop, stride)),
        "audio": None
        if audio is None
        else audio_data_uri(audio, item.sample_rate, options.audio_rate),
        "sequences": {
            "speaker": quantise(item.speaker[window]),
            "listener": quantise(item.listener[window]),
        },
        "modes": {
            mode: [quantise(sample[window]) for sample in array[samples]]
            for mode, array in item.generated.items()
        },
        "metrics": item.metrics,
    }


def page_payload(items: list[ViewerItem], options: ViewOptions) -> dict:
    """Everything the page embeds: the face model, channel names and every item's data.

    Raises:
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("items: expected at least one item to show")
    return {
        "title": options.title,
        "face": face_model(),
        "channels": list(CHANNELS),
        "aus": list(AUS),
        "expressions": list(EXPRESSIONS),
        "valence": CHANNELS.index("valence"),
        "arousal": CHANNELS.index("arousal"),
        "expressionStart": EXPRESSION_START,
        "defaultChannel": channel_index(options.channel),
        "items": [item_payload(item, options) for item in items],
    }
