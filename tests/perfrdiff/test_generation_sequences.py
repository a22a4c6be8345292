"""Whole sequences of any length (REACT 2026): online windows see the protocol's speaker context,
state is bounded by the window, any chunking gives the same reactions, offline goes by pieces."""

import numpy as np
import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import ReactionSampler, SamplerConfig, StreamingGenerator, generate_clips
from perfrdiff.generation.sequences import (
    WindowStream,
    batches_by_length,
    offline_sequences,
    online_sequences,
    stream_sequences,
)
from perfrdiff.models import DDIMSchedule, build_perfrdiff
from perfrdiff.protocol import REACT2024, REACT2026

from .tiny_preset import HISTORY_DIM as H

pytestmark = pytest.mark.usefixtures("one_thread")

W = 30  # the REACT 2026 window
C = 78 + 58 + 25


def perfrdiff_model(protocol: str, window: int, *more: str):
    torch.manual_seed(0)
    config = load_config("tiny", [f"protocol={protocol}", f"data.window={window}", *more])
    model = build_perfrdiff(config).eval()
    for p in model.exported.parameters():  # untrained heads are zero: make the edit visible
        torch.nn.init.normal_(p, std=0.05)
    return model


@pytest.fixture(scope="module")
def model(one_thread):
    return perfrdiff_model("react2026", W)


def sampler(model, overlap=0, guidance=1.0, steps=2):
    return ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(steps, guidance, overlap))


def speaker_frames(n: int, frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, frames, C, generator=torch.Generator().manual_seed(seed))


def reader(speaker: torch.Tensor, lengths=None):
    """``(begin, end) -> frames``, zeros past each sequence's end (as MarsSequences.reader)."""
    lengths = lengths or [speaker.shape[1]] * speaker.shape[0]

    def read(begin: int, end: int) -> torch.Tensor:
        out = torch.zeros(speaker.shape[0], end - begin, C)
        for i, t in enumerate(lengths):
            lo, hi = max(begin, 0), min(end, t)
            if hi > lo:
                out[i, lo - begin : hi - begin] = speaker[i, lo:hi]
        return out

    return read


def stream(model, overlap=0, samples=2, history=None, seed=3, batch=2, listener_of=None,
           personality=None):  # fmt: skip
    context = REACT2026.context_frames(W)
    return WindowStream(sampler(model, overlap), samples, context, history, listener_of, seed,
                        batch, personality)  # fmt: skip


def run(s: WindowStream, speaker: torch.Tensor, frames: int, chunk: int) -> np.ndarray:
    out = np.zeros((s.n, s.samples, frames, 25), np.float32)
    return stream_sequences(s, reader(speaker), frames, out, chunk)


@pytest.mark.parametrize("overlap", [0, 10])
def test_any_chunking_gives_the_same_reactions(model, overlap):
    x, history = speaker_frames(2, 170), torch.randn(2, 64, H)
    whole = run(stream(model, overlap, history=history), x, 170, chunk=170)
    pieces = run(stream(model, overlap, history=history), x, 170, chunk=7)
    assert whole.shape == (2, 2, 170, 25)
    np.testing.assert_array_equal(whole, pieces)


def test_a_window_waits_for_the_speaker_frames_it_sees(model):
    s = stream(model, batch=1)
    assert s.push(speaker_frames(1, W - 1)) == []  # window 0 sees [-30, 30): needs frame 29
    assert len(s.push(speaker_frames(1, 1))) == 1
    assert len(s.close(W + 5)) == 1  # window [30, 60) cut at 35, speaker zeros past the end


def test_a_window_sees_the_window_before_and_its_own_zero_padded(model, monkeypatch):
    seen = []
    condition = model.gafrg.condition

    def spy(audio, face, emotion, prev, past):
        seen.append(torch.cat([audio, face, emotion], dim=-1)[0].clone())
        return condition(audio, face, emotion, prev, past)

    monkeypatch.setattr(model.gafrg, "condition", spy)
    x = speaker_frames(1, 95)
    run(stream(model, batch=1), x, 95, chunk=40)
    padded = torch.cat([torch.zeros(1, W, C), x, torch.zeros(1, W, C)], dim=1)[0]
    assert len(seen) == 4  # windows at 0, 30, 60, 90
    for k, frames in enumerate(seen):
        torch.testing.assert_close(frames, padded[k * W : k * W + 2 * W], rtol=0, atol=0)


def test_state_is_bounded_by_the_window_not_by_the_sequence(model):
    s = stream(model, overlap=10, batch=1, samples=1)
    before, after = s.context
    for _ in range(40):  # 3,000 frames
        s.push(speaker_frames(1, 75))
        assert s.buffer.shape[1] <= before + after + s.stride + 75
        assert s.tail.shape[1] <= s.window + s.overlap


def test_shifts_are_computed_once_per_listener(model, monkeypatch):
    calls = []
    shifts = model.listener_shifts
    monkeypatch.setattr(model, "listener_shifts",
                        lambda h, p=None: calls.append(h.shape) or shifts(h, p))  # fmt: skip
    s = stream(model, history=torch.randn(2, 64, H))
    run(s, speaker_frames(2, 200), 200, chunk=50)
    assert calls == [(2, 64, H)]


def test_each_sequence_reads_its_own_listeners_personality():
    model = perfrdiff_model("react2026", W, "pwsg.condition=both")
    x = speaker_frames(1, 70).expand(2, -1, -1)  # one speaker, two listeners
    history = torch.randn(1, 64, H).expand(2, -1, -1)
    personality = torch.rand(2, 5, generator=torch.Generator().manual_seed(5))
    mixed = run(stream(model, history=history, personality=personality), x, 70, chunk=70)
    first = run(stream(model, history=history, personality=personality[[0, 0]]), x, 70, 70)
    np.testing.assert_array_equal(mixed[0], first[0])
    assert not np.allclose(mixed[1], first[1])  # row 1 reads its own personality


def test_a_personality_only_stream_needs_no_history():
    more = ("pwsg.condition=personality", "pwsg.history_stats=false", "pwsg.listener_prior=false")
    model = perfrdiff_model("react2026", W, *more)
    x, personality = speaker_frames(2, 70), torch.rand(2, 5)
    alone = run(stream(model, personality=personality), x, 70, chunk=70)
    given = run(stream(model, history=torch.randn(2, 64, H), personality=personality), x, 70, 70)
    generic = run(stream(model), x, 70, chunk=70)
    np.testing.assert_array_equal(alone, given)  # the history is not read
    assert not np.allclose(alone, generic)


def test_sequences_shorter_than_a_window_and_of_any_length(model):
    for frames in (1, 17, W, 61):
        out = online_sequences(lambda **k: stream(model, **k), reader(speaker_frames(2, frames)),
                               frames, 2, 2)  # fmt: skip
        assert out.shape == (2, 2, frames, 25) and np.isfinite(out).all()


def test_offline_of_one_piece_is_the_online_sequence(model):
    x = speaker_frames(2, 100)
    history = torch.randn(2, 64, H)

    def make(**k):
        return stream(model, history=history, **k)

    online = online_sequences(make, reader(x), 100, 2, 2)
    offline = offline_sequences(make, reader(x), 100, 2, 2, chunk=750)
    np.testing.assert_array_equal(online, offline)


def test_offline_pieces_start_afresh_and_are_cut_to_the_length(model, monkeypatch):
    starts = []
    generate = WindowStream._generate
    monkeypatch.setattr(WindowStream, "_generate",
                        lambda self, s: starts.append(s) or generate(self, s))  # fmt: skip
    x = speaker_frames(1, 130)
    out = offline_sequences(lambda **k: stream(model, **k), reader(x), 130, 1, 2, chunk=60)
    assert out.shape == (1, 2, 130, 25)
    assert starts == [0, 30]  # three 60-frame pieces in one batch, each from frame 0


def test_the_react2024_context_reproduces_the_streaming_generator():
    model = perfrdiff_model("react2024", 50)
    s = sampler(model)
    x, history = speaker_frames(2, 200), torch.randn(2, 64, H)
    audio, face, emotion = x.split([78, 58, 25], dim=-1)
    expected = generate_clips(s, audio, face, emotion, samples=2, history=history, seed=4)
    window = WindowStream(s, 2, REACT2024.context_frames(50), history, seed=4)
    got = run(window, x, 200, chunk=64)
    np.testing.assert_array_equal(got, expected.numpy())
    with pytest.raises(ValueError, match="sees 60 speaker frames, the denoiser reads 50"):
        WindowStream(s, 2, REACT2026.context_frames(W), history)
    with pytest.raises(ValueError, match="WindowStream"):
        StreamingGenerator(sampler(perfrdiff_model("react2026", W)), 2, batch=1)


def test_batches_go_shortest_first():
    assert batches_by_length([5, 1, 9, 1], 3) == [[1, 3, 0], [2]]
