"""Online generation of listener reactions: sampling (DDIM or a higher-order solver, the
sampler's ``solver``) with classifier-free guidance, streamed window by window, generic (GAFRG)
or personalised (PerFRDiff with a listener's shifts).

Listener windows are ``w`` frames long and start every ``s = w - o`` frames (``o``: the sampler's
``overlap``, 0 by default): window ``k`` covers ``[k·s, k·s + w)`` and is conditioned on the
speaker frames ``[k·s - w, k·s)``, i.e. on speaker behaviour up to ``t - w`` for a window ending
at ``t`` (a window starting before ``w`` sees no speaker or listener past, as in training), on the
previously generated ``w`` frames when configured, and, with ``o > 0``, it starts with the ``o``
frames already generated (held fixed while it is denoised). :class:`StreamingGenerator` accepts
speaker frames as they arrive and yields each newly generated stretch for ``M`` samples;
:func:`generate_clips` drives it offline over whole clips, so streaming and offline generation are
the same computation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from perfrdiff.features import EMOTION_DIM, FACE_DIM
from perfrdiff.generation.sampler import ReactionSampler
from perfrdiff.models.personalised import PerFRDiff

log = logging.getLogger(__name__)


class StreamingGenerator:
    """Online generation for ``n`` speakers at once, ``M`` samples each.

    Speaker frames are pushed as they arrive; each call returns the listener frames that became
    computable. A listener's shifts are computed once, here, and reused for all windows, samples
    and denoising steps.

    Args:
        sampler: the sampler (generic or personalised model; its config's solver, steps and
            ``overlap``).
        samples: ``M``.
        history: ``(n, h, c)`` listener histories for personalised generation, else ``None``.
        seed: seed of the noise; the same seed gives the same reactions, whatever the chunking.
        max_frames: stop after frame ``w·⌊max_frames / w⌋`` (``None``: unbounded).
        batch: ``n`` (only needed without ``history``).
    """

    def __init__(
        self,
        sampler: ReactionSampler,
        samples: int,
        history: Tensor | None = None,
        seed: int = 0,
        max_frames: int | None = None,
        batch: int | None = None,
    ) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if sampler.gafrg.speaker_frames != sampler.gafrg.window:
            raise ValueError(
                f"this denoiser reads {sampler.gafrg.speaker_frames} speaker frames per "
                f"{sampler.gafrg.window}-frame window (a protocol whose windows see the speaker "
                "after their start): generate with perfrdiff.generation.sequences.WindowStream"
            )
        self.sampler = sampler
        self.samples = samples
        self.window = sampler.gafrg.window
        self.overlap = sampler.config.overlap
        self.stride = self.window - self.overlap
        self.max_frames = None if max_frames is None else max_frames // self.window * self.window
        self.n = history.shape[0] if history is not None else (batch or 1)
        self.device = next(sampler.gafrg.parameters()).device
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.shifts = None
        self.index = None
        self.centre = None
        self.response = None  # each listener's response fit (pwsg.listener_response)
        if history is not None:
            if not isinstance(sampler.model, PerFRDiff):
                raise TypeError("history given but the sampler's model is not a PerFRDiff")
            history = history.to(self.device)
            with torch.no_grad():
                self.shifts = sampler.bind(sampler.model.listener_shifts(history))
                self.centre = sampler.model.listener_centre(history)
                self.response = sampler.model.listener_response(history)
            self.index = torch.arange(self.n, device=self.device).repeat_interleave(samples)
        self.frames: list[Tensor] = []  # received speaker frames, chunks of (n, f, 78+58+25)
        self.received = 0
        self.next_window = 0
        self.generated = 0  # listener frames generated so far
        # (n·M, ≤ w + o, 25): the last generated frames (the next window's past and overlap).
        self.tail: Tensor | None = None

    def _speaker(self, start: int, end: int) -> Tensor:
        """``(n, end - start, 161)`` received speaker frames."""
        frames = torch.cat(self.frames, dim=1)
        self.frames = [frames]
        return frames[:, start:end]

    def _generate(self, start: int) -> Tensor:
        """The window starting at frame ``start``; returns its new frames ``(n, M, f, 25)``."""
        w, m, rows = self.window, self.samples, self.n * self.samples
        has_past = start >= w  # as in training: a window before frame w sees no past at all
        width = self.sampler.gafrg.audio_dim + FACE_DIM + EMOTION_DIM  # speaker channels
        if has_past:
            speaker = self._speaker(start - w, start).to(self.device, non_blocking=True)
            speaker = speaker.repeat_interleave(m, dim=0)
            prev = self.tail[:, -(w + self.overlap) : self.tail.shape[1] - self.overlap]
        else:
            speaker = torch.zeros(rows, w, width, device=self.device)
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
        if self.max_frames is not None:
            new = new[:, : self.max_frames - self.generated]
        self.tail = new if self.tail is None else torch.cat([self.tail, new], dim=1)
        self.tail = self.tail[:, -(w + self.overlap) :]
        self.generated += new.shape[1]
        return new.reshape(self.n, m, new.shape[1], EMOTION_DIM)

    def push(self, audio: Tensor, face: Tensor, emotion: Tensor) -> list[Tensor]:
        """Add speaker frames ``audio: (n, f, 78)``, ``face: (n, f, 58)``, ``emotion: (n, f, 25)``.

        Returns:
            the newly computable listener frames in time order, one ``(n, M, f', 25)`` tensor
                per window: its ``w`` frames for the first, the ``s`` frames after the overlap for
                the others (the first call also returns window 0, which needs no speaker frames).
        """
        if not (audio.shape[:2] == face.shape[:2] == emotion.shape[:2]) or audio.shape[0] != self.n:
            raise ValueError(
                f"audio, face, emotion must be (n={self.n}, f, c) with the same f, got "
                f"{tuple(audio.shape)}, {tuple(face.shape)}, {tuple(emotion.shape)}"
            )
        self.frames.append(torch.cat([audio, face, emotion], dim=-1).float().cpu())
        self.received += audio.shape[1]
        out = []
        while self.next_window * self.stride <= self.received and (
            self.max_frames is None or self.generated < self.max_frames
        ):
            out.append(self._generate(self.next_window * self.stride))
            self.next_window += 1
        return out


def generate_clips(
    sampler: ReactionSampler,
    audio: Tensor,
    face: Tensor,
    emotion: Tensor,
    samples: int,
    history: Tensor | None = None,
    seed: int = 0,
) -> Tensor:
    """Offline generation for whole clips (the streaming computation over all frames at once).

    Args:
        audio: ``(n, T, 78)`` speaker audio features.
        face: ``(n, T, 58)`` speaker 3DMM.
        emotion: ``(n, T, 25)`` speaker emotion.
        samples: ``M``.
        history: ``(n, h, c)`` listener histories (personalised) or ``None`` (generic).

    Returns:
        ``(n, M, T', 25)`` reactions, ``T' = w·⌊T / w⌋`` (the last window cut at ``T'``).
    """
    stream = StreamingGenerator(
        sampler, samples, history, seed, max_frames=audio.shape[1], batch=audio.shape[0]
    )
    return torch.cat(stream.push(audio, face, emotion), dim=2)


def iter_batches(n: int, size: int) -> Iterator[Sequence[int]]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def generate_batches(
    sampler: ReactionSampler,
    clips: Sequence[dict[str, Tensor]],
    samples: int,
    personalised: bool,
    clips_per_batch: int,
    seed: int = 0,
    batches: Sequence[int] | None = None,
    progress: bool = True,
) -> list[Tensor]:
    """Reactions ``(b, M, T, 25)`` of the batches numbered ``batches`` (default: all).

    Batch ``i`` holds clips ``[i·c, (i + 1)·c)`` (``c = clips_per_batch``) and draws its noise
    from its own generator seeded ``seed + i``: its reactions do not depend on which other
    batches are generated, nor where (what :func:`perfrdiff.distributed.run_shards` relies on).

    Args:
        clips: items with ``speaker_audio (T, 78)``, ``speaker_face (T, 58)``,
            ``speaker_emotion (T, 25)`` and, for personalised generation, ``history (h, c)``.
        personalised: use each item's listener history to edit the denoiser.
        progress: show a progress bar.
    """
    every = list(iter_batches(len(clips), clips_per_batch))
    chosen = range(len(every)) if batches is None else batches
    label = "personalised" if personalised else "generic"
    out = []
    bar = tqdm(chosen, desc=f"generate ({label})", unit="batch", disable=not progress)
    for i in bar:
        items = [clips[j] for j in every[i]]
        stack = {
            key: torch.stack([torch.as_tensor(it[key]) for it in items]).float()
            for key in ("speaker_audio", "speaker_face", "speaker_emotion")
        }
        history = (
            torch.stack([torch.as_tensor(it["history"]) for it in items]).float()
            if personalised
            else None
        )
        out.append(
            generate_clips(
                sampler,
                stack["speaker_audio"],
                stack["speaker_face"],
                stack["speaker_emotion"],
                samples,
                history,
                seed=seed + i,
            )
        )
    return out


def batch_count(clips: int, clips_per_batch: int) -> int:
    """How many batches :func:`generate_batches` splits ``clips`` clips into."""
    return -(-clips // clips_per_batch)


def generate_dataset(
    sampler: ReactionSampler,
    clips: Sequence[dict[str, Tensor]],
    samples: int,
    personalised: bool,
    clips_per_batch: int,
    seed: int = 0,
) -> Tensor:
    """Reactions for every evaluation clip: ``(N, M, T, 25)``, every batch of
    :func:`generate_batches` in order.

    Args:
        clips: items with ``speaker_audio (T, 78)``, ``speaker_face (T, 58)``,
            ``speaker_emotion (T, 25)`` and, for personalised generation, ``history (h, c)``.
        personalised: use each item's listener history to edit the denoiser.
    """
    return torch.cat(generate_batches(sampler, clips, samples, personalised, clips_per_batch, seed))
