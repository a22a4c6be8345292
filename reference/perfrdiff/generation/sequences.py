"""Generation over whole sequences of any length (REACT 2026): online with state bounded by the
window, and offline by independent chunks.

Online, listener window ``[s, s + w)`` (every ``w - o`` frames, ``o``: the sampler's overlap)
sees the speaker over ``[s - before, s + after)`` (the protocol's context: REACT 2026 the
window before and its own), zeros before frame 0 and after the last frame, and the previous
generated ``w`` frames when ``s >= w``. :class:`WindowStream` keeps only the speaker frames a
later window can still see and the last ``w + o`` generated frames, so a 20,000-frame sequence
needs no more memory than a 750-frame one beyond its output. A listener's shifts are computed
once, when the stream starts.

Offline (:func:`offline_sequences`), a sequence is cut into chunks of the protocol's crop
(750 frames), each generated as a sequence of its own (its first window sees no past; the
speaker context stops at the chunk's edges), all chunks of a batch at once; the chunks are
concatenated and cut to ``T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from perfrdiff.features import EMOTION_DIM, FACE_DIM
from perfrdiff.generation.sampler import ReactionSampler
from perfrdiff.models.personalised import PerFRDiff

#: ``(begin, end) -> (n, end - begin, a + 58 + 25)`` speaker frames of ``n`` sequences (zeros
#: outside each sequence): how the drivers read speakers, e.g. from memory-mapped files.
SpeakerReader = Callable[[int, int], Tensor]


class WindowStream:
    """Online generation for ``n`` sequences at once, ``M`` samples each, with bounded state.

    Args:
        sampler: generic or personalised sampler; its denoiser's ``window``,
            ``speaker_frames`` and ``audio_dim``, and its config's overlap.
        samples: ``M``.
        context: ``(before, after)`` speaker frames each window sees around its start
            (``Protocol.context_frames(w)``); ``before + after`` must be the denoiser's
            ``speaker_frames``.
        history: ``(l, h, c)`` listener histories (personalised) or ``None``.
        listener_of: ``(n,)`` int64 listener row of each sequence (default: row ``i`` for
            sequence ``i``; offline chunks of one item share their item's row).
        seed: seed of the noise.
        batch: ``n`` when there is no listener (generic).
        personality: ``(l, 5)`` the listeners' Big Five in ``[0, 1]``, for a model whose
            ``pwsg.condition`` reads it (then personalised even without ``history``).
    """

    def __init__(
        self,
        sampler: ReactionSampler,
        samples: int,
        context: tuple[int, int],
        history: Tensor | None = None,
        listener_of: Tensor | None = None,
        seed: int = 0,
        batch: int | None = None,
        personality: Tensor | None = None,
    ) -> None:
        gafrg = sampler.gafrg
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if sum(context) != gafrg.speaker_frames:
            raise ValueError(
                f"context {context} sees {sum(context)} speaker frames, the denoiser reads "
                f"{gafrg.speaker_frames}"
            )
        self.sampler, self.samples, self.context = sampler, samples, context
        self.window, self.overlap = gafrg.window, sampler.config.overlap
        self.stride = self.window - self.overlap
        self.widths = [gafrg.audio_dim, FACE_DIM, EMOTION_DIM]
        self.device = next(gafrg.parameters()).device
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.shifts = self.centre = self.index = self.response = None
        listeners = history if history is not None else personality
        if listeners is not None:
            self._bind(history, personality, listeners.shape[0], listener_of)
            self.n = len(listener_of) if listener_of is not None else listeners.shape[0]
        else:
            self.n = batch or 1
        self.buffer = torch.zeros(self.n, 0, sum(self.widths))  # speaker frames from `first`
        self.first = 0
        self.received = 0
        self.next_start = 0
        self.generated = 0
        self.tail: Tensor | None = None  # (n·M, ≤ w + o, 25): the last generated frames

    def _bind(
        self,
        history: Tensor | None,
        personality: Tensor | None,
        listeners: int,
        listener_of: Tensor | None,
    ) -> None:
        """The ``listeners`` shifts and prior centres, once for the whole stream."""
        model = self.sampler.model
        if not isinstance(model, PerFRDiff):
            raise TypeError("a listener given but the sampler's model is not a PerFRDiff")
        history = history.to(self.device) if history is not None else None
        personality = personality.to(self.device) if personality is not None else None
        with torch.no_grad():
            self.shifts = self.sampler.bind(model.listener_shifts(history, personality))
            self.centre = model.listener_centre(history, personality)
            self.response = model.listener_response(history)
        rows = torch.arange(listeners) if listener_of is None else listener_of
        self.index = rows.to(self.device).repeat_interleave(self.samples)

    def _speaker(self, begin: int, end: int) -> Tensor:
        """``(n, end - begin, c)`` buffered speaker frames, zeros outside what was received."""
        out = torch.zeros(self.n, end - begin, self.buffer.shape[2])
        lo, hi = max(begin, self.first), min(end, self.first + self.buffer.shape[1])
        if hi > lo:
            out[:, lo - begin : hi - begin] = self.buffer[:, lo - self.first : hi - self.first]
        return out

    def _generate(self, start: int) -> Tensor:
        """The window starting at ``start``; returns its new frames ``(n, M, f, 25)``."""
        w, m, rows = self.window, self.samples, self.n * self.samples
        before, after = self.context
        speaker = self._speaker(start - before, start + after).to(self.device)
        speaker = speaker.repeat_interleave(m, dim=0)
        has_past = start >= w
        if has_past:
            prev = self.tail[:, -(w + self.overlap) : self.tail.shape[1] - self.overlap]
        else:
            prev = torch.zeros(rows, w, EMOTION_DIM, device=self.device)
        known = self.tail[:, start - self.generated :] if start < self.generated else None
        centre = self.centre
        if self.response is not None:  # the listener's response to what the window sees
            centre = self.sampler.model.window_centre(
                centre, self.response, self.index, speaker[..., -EMOTION_DIM:], start, has_past
            )
        window = self.sampler.sample_speaker(
            speaker, prev, has_past, self.generator, self.shifts, self.index, known, centre
        )
        new = window[:, self.generated - start :]
        tail = new if self.tail is None else torch.cat([self.tail, new], dim=1)
        self.tail = tail[:, -(w + self.overlap) :]
        self.generated += new.shape[1]
        return new.reshape(self.n, m, new.shape[1], EMOTION_DIM)

    def _windows(self, ready: Callable[[int], bool]) -> list[Tensor]:
        out = []
        while ready(self.next_start):
            out.append(self._generate(self.next_start))
            self.next_start += self.stride
        keep = self.next_start - self.context[0]  # no later window sees a frame before it
        if keep > self.first:
            self.buffer = self.buffer[:, min(keep - self.first, self.buffer.shape[1]) :]
            self.first = keep
        return out

    def push(self, speaker: Tensor) -> list[Tensor]:
        """Add speaker frames ``(n, f, a + 58 + 25)`` (audio, 3DMM, emotion side by side).

        Returns:
            the newly computable listener frames in order, one ``(n, M, f', 25)`` per window
                (a window is computable once the speaker frames it sees have arrived).
        """
        if speaker.dim() != 3 or speaker.shape[0] != self.n or speaker.shape[2] != sum(self.widths):
            raise ValueError(
                f"speaker must be (n={self.n}, f, {sum(self.widths)}), got {tuple(speaker.shape)}"
            )
        self.buffer = torch.cat([self.buffer, speaker.float().cpu()], dim=1)
        self.received += speaker.shape[1]
        return self._windows(lambda s: s + self.context[1] <= self.received)

    def close(self, frames: int) -> list[Tensor]:
        """The sequence ended after ``frames`` frames: the windows left that start before it
        (seeing zeros past the end)."""
        return self._windows(lambda s: s < frames and self.generated < frames)


def stream_sequences(
    stream: WindowStream, read: SpeakerReader, frames: int, out: np.ndarray, chunk: int = 750
) -> np.ndarray:
    """Drive ``stream`` over ``frames`` frames read ``chunk`` at a time by ``read``, writing
    the reactions into ``out (n, M, frames, 25)`` (cut at ``frames``); returns ``out``."""
    written = 0

    def write(pieces: list[Tensor]) -> None:
        nonlocal written
        for piece in pieces:
            f = min(piece.shape[2], frames - written)
            out[:, :, written : written + f] = piece[:, :, :f].float().cpu().numpy()
            written += f

    for begin in range(0, frames, chunk):
        write(stream.push(read(begin, min(begin + chunk, frames))))
    write(stream.close(frames))
    return out


def online_sequences(
    make_stream: Callable[..., WindowStream],
    read: SpeakerReader,
    frames: int,
    n: int,
    samples: int,
) -> np.ndarray:
    """``(n, M, frames, 25)`` online reactions of ``n`` sequences (read by ``read``, zeros past
    each one's end), from ``make_stream(listener_of=None, batch=n)``."""
    out = np.zeros((n, samples, frames, EMOTION_DIM), dtype=np.float32)
    return stream_sequences(make_stream(listener_of=None, batch=n), read, frames, out)


def offline_sequences(
    make_stream: Callable[..., WindowStream],
    read: SpeakerReader,
    frames: int,
    n: int,
    samples: int,
    chunk: int,
) -> np.ndarray:
    """``(n, M, frames, 25)`` offline reactions: every ``chunk``-frame piece of each sequence
    generated as a sequence of its own, all pieces in one stream, concatenated and cut."""
    pieces = -(-frames // chunk)
    listener_of = torch.arange(n).repeat_interleave(pieces)  # row (item, piece)

    def read_pieces(begin: int, end: int) -> Tensor:
        parts = [read(p * chunk + begin, p * chunk + end) for p in range(pieces)]
        return torch.stack(parts, dim=1).flatten(0, 1)  # (n·pieces, f, c), item-major

    stream = make_stream(listener_of=listener_of, batch=n * pieces)
    out = np.zeros((n * pieces, samples, chunk, EMOTION_DIM), dtype=np.float32)
    stream_sequences(stream, read_pieces, chunk, out)
    out = out.reshape(n, pieces, samples, chunk, EMOTION_DIM).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(out.reshape(n, samples, pieces * chunk, EMOTION_DIM)[:, :, :frames])


def batches_by_length(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Item indices in batches of ``size``, shortest sequences first (little padding)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + size] for i in range(0, len(order), size)]
