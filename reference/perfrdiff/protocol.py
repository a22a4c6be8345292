"""The challenge protocols as data: frame rate, windows, crops, appropriate sets, output
post-processing and metric variant of REACT 2024 and REACT 2026 (MARS).

A run names its protocol with the top-level config key ``protocol`` (``react2024``, the default,
or ``react2026``); everything along the data flow (data -> training -> generation -> metrics)
asks the run's :class:`Protocol` instead of reading a module constant::

    from perfrdiff.protocol import protocol_named

    p = protocol_named("react2026")
    p.fps, p.window, p.crop_frames, p.clip_frames   # 30, 30, 750, None (any length)
    p.speaker_frames(start=60)                      # slice(30, 90): what window [60, 90) may see

This module imports nothing of the package, so the config and the feature table can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Channels of the emotion vector that are AU occurrences (15 AUs, then valence, arousal,
#: 8 expression probabilities), rounded to {0, 1} by a protocol that rounds AUs.
AU_CHANNELS = slice(0, 15)
#: Valence and arousal (in [-1, 1]) and the 8 expression probabilities (in [0, 1]).
VA_CHANNELS = slice(15, 17)
EXPRESSION_CHANNELS = slice(17, 25)


@dataclass(frozen=True)
class MetricVariant:
    """How a protocol's metrics are computed where the challenges' code differs.

    Attributes:
        tlcc_max_lag: FRSyn/TLCC lags ``-max_lag..max_lag`` in frames. Both challenges use 49
            (2 s at 25 fps); REACT 2026 keeps the 25 fps figure although its data is 30 fps.
        tlcc_first_sample_only: score only sample 0 of each item (the challenges' parallel
            TLCC returns inside its loop over samples) instead of all samples.

    FRSyn's handling of constant channels is a separate choice (``evaluate --nan-policy``).
    """

    tlcc_max_lag: int = 49
    tlcc_first_sample_only: bool = False


@dataclass(frozen=True)
class Protocol:
    """One challenge's protocol.

    Attributes:
        name: ``"react2024"`` or ``"react2026"``.
        fps: video frame rate of every modality.
        window: frames of one online listener window (REACT 2024: 2 s; REACT 2026: 1 s).
        speaker_context: ``(before, after)`` in windows: listener window ``[s, s + w)`` may see
            the speaker over ``[s - before·w, s + after·w)`` (REACT 2024 ``(1, 0)``: the 2 s
            before; REACT 2026 ``(1, 1)``: the window before and the window itself).
        crop_frames: frames of a training crop (REACT 2024: the clip; REACT 2026: a 750-frame
            crop from a random start of a longer sequence, zero-padded when it is shorter).
        clip_frames: frames of every evaluated sequence, or ``None`` when sequences keep their
            own length (REACT 2026: 58 to over 20,000 frames).
        appropriate: how an item's appropriate real reactions are chosen: ``"neighbours"`` (the
            split's neighbour matrix) or ``"session-draw"`` (its own listener plus
            ``appropriate_others`` drawn from the listeners of the same session, seeded).
        appropriate_others: reactions drawn besides the item's own (``"session-draw"`` only).
        clamp_output: clamp generated valence/arousal to ``[-1, 1]``, expression probabilities
            and AUs to ``[0, 1]`` (each channel's own range: our reading of the challenge's
            output clamping, whose exact ranges we have not seen).
        round_aus: round the AU channels to ``{0, 1}`` (with ``clamp_output``).
        metrics: the :class:`MetricVariant`.
    """

    name: str
    fps: int
    window: int
    speaker_context: tuple[int, int]
    crop_frames: int
    clip_frames: int | None
    appropriate: str
    appropriate_others: int
    clamp_output: bool
    round_aus: bool
    metrics: MetricVariant

    def speaker_frames(self, start: int, window: int | None = None) -> slice:
        """The speaker frames listener window ``[start, start + w)`` may see (may start before
        frame 0: those frames are zero padding); ``w`` is ``window`` (a model's own window,
        ``data.window``), else the protocol's."""
        before, after = self.context_frames(window)
        return slice(start - before, start + after)

    def context_frames(self, window: int | None = None) -> tuple[int, int]:
        """``(before, after)``: speaker frames a window sees before its start and from its
        start, for windows of ``window`` frames (default: the protocol's)."""
        w = self.window if window is None else window
        before, after = self.speaker_context
        return before * w, after * w

    def check_fixed_clips(self, what: str) -> None:
        """Refuse this protocol for ``what``, a reader of the REACT 2024 layout of fixed-length
        clips, when its sequences have any length.

        Raises:
            ValueError: naming the protocol and ``what``.
        """
        if self.clip_frames is None:
            raise ValueError(
                f"protocol {self.name!r}: {what} read(s) the REACT 2024 layout of "
                f"{REACT2024_CLIP}-frame clips; sequences of any length (MARS) are trained on "
                "by `perfrdiff train`, generated by `perfrdiff generate` (Run.sequence_set and "
                "Run.generate_sequences) and scored by `perfrdiff evaluate`"
            )

    def finish(self, reactions: np.ndarray) -> np.ndarray:
        """``(..., 25)`` generated reactions as the protocol submits them: clamped and AU-rounded
        where it says so; returned unchanged (the same array) otherwise.
        """
        if not self.clamp_output:
            return reactions
        out = np.array(reactions, copy=True)
        aus = np.clip(out[..., AU_CHANNELS], 0.0, 1.0)
        out[..., AU_CHANNELS] = np.round(aus) if self.round_aus else aus
        out[..., VA_CHANNELS] = np.clip(out[..., VA_CHANNELS], -1.0, 1.0)
        out[..., EXPRESSION_CHANNELS] = np.clip(out[..., EXPRESSION_CHANNELS], 0.0, 1.0)
        return out


REACT2024_CLIP = 750

#: REACT 2024 (NoXI, RECOLA): 25 fps, 750-frame clips (files hold 751), 2 s windows, the
#: neighbour matrix, raw outputs, all samples in FRSyn. What every committed result used.
REACT2024 = Protocol(
    name="react2024",
    fps=25,
    window=50,
    speaker_context=(1, 0),
    crop_frames=REACT2024_CLIP,
    clip_frames=REACT2024_CLIP,
    appropriate="neighbours",
    appropriate_others=0,
    clamp_output=False,
    round_aus=False,
    metrics=MetricVariant(),
)

#: REACT 2026 (MARS): 30 fps, sequences of any length, 750-frame training crops, 1 s online
#: windows seeing the speaker's previous and current window, own listener + 9 of its session,
#: clamped and AU-rounded outputs, the challenge's TLCC (sample 0, lags of 25 fps).
REACT2026 = Protocol(
    name="react2026",
    fps=30,
    window=30,
    speaker_context=(1, 1),
    crop_frames=750,
    clip_frames=None,
    appropriate="session-draw",
    appropriate_others=9,
    clamp_output=True,
    round_aus=True,
    metrics=MetricVariant(tlcc_max_lag=49, tlcc_first_sample_only=True),
)

#: Protocol name -> record.
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (REACT2024, REACT2026)}


def protocol_named(name: str | Protocol) -> Protocol:
    """The protocol called ``name`` (a :class:`Protocol` is returned as it is).

    Raises:
        ValueError: no such protocol (the message lists them).
    """
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]
