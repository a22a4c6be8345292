"""Online generation: streaming equals offline, the delay is respected, shifts are cached."""

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import ReactionSampler, SamplerConfig, StreamingGenerator, generate_clips
from perfrdiff.models import DDIMSchedule, build_perfrdiff

from .tiny_preset import HISTORY_DIM as H

T = 200  # 4 windows of 50 frames

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(one_thread):
    torch.manual_seed(0)
    config = load_config("tiny")
    model = build_perfrdiff(config).eval()
    for p in model.generator.parameters():  # untrained heads are zero: make the edit visible
        torch.nn.init.normal_(p, std=0.05)
    return model


def sampler(model, guidance=1.0, steps=3, overlap=0, eta=0.0):
    return ReactionSampler(model, DDIMSchedule(1000, eta), SamplerConfig(steps, guidance, overlap))


def speaker(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, T, 78, generator=g),
        torch.randn(n, T, 58, generator=g),
        torch.randn(n, T, 25, generator=g),
    )


@pytest.mark.parametrize("overlap", [0, 20])
@pytest.mark.parametrize("chunks", [[T], [1] * 20 + [T - 20], [49, 1, 75, 75]])
def test_streaming_in_any_chunks_equals_offline_for_the_same_seed(model, chunks, overlap):
    audio, face, emotion = speaker(2)
    history = torch.randn(2, 250, H)
    s = sampler(model, guidance=2.0, overlap=overlap, eta=0.5 if overlap else 0.0)
    offline = generate_clips(s, audio, face, emotion, samples=3, history=history, seed=7)
    stream = StreamingGenerator(s, samples=3, history=history, seed=7, max_frames=T)
    windows, at = [], 0
    for size in chunks:
        windows += stream.push(
            audio[:, at : at + size], face[:, at : at + size], emotion[:, at : at + size]
        )
        at += size
    assert offline.shape == (2, 3, T, 25)
    torch.testing.assert_close(torch.cat(windows, dim=2), offline, rtol=0, atol=0)


def test_a_window_is_released_once_the_speaker_frames_before_it_arrived(model):
    audio, face, emotion = speaker(1)
    stream = StreamingGenerator(sampler(model), samples=2, seed=0, batch=1)
    assert len(stream.push(audio[:, :1], face[:, :1], emotion[:, :1])) == 1  # window 0
    assert len(stream.push(audio[:, 1:49], face[:, 1:49], emotion[:, 1:49])) == 0
    released = stream.push(audio[:, 49:50], face[:, 49:50], emotion[:, 49:50])
    assert len(released) == 1 and released[0].shape == (1, 2, 50, 25)


def test_a_window_ignores_speaker_frames_after_its_start(model):
    # Window k may only use speaker frames before k·w (the 2 s delay of the online setting).
    audio, face, emotion = speaker(1)
    changed = [x.clone() for x in (audio, face, emotion)]
    for x in changed:
        x[:, 100:] = 0
    a = generate_clips(sampler(model), audio, face, emotion, samples=2, seed=3)
    b = generate_clips(sampler(model), *changed, samples=2, seed=3)
    torch.testing.assert_close(a[:, :, :150], b[:, :, :150], rtol=0, atol=0)
    assert not torch.allclose(a[:, :, 150:], b[:, :, 150:])


def test_different_seeds_give_different_samples(model):
    audio, face, emotion = speaker(1)
    a = generate_clips(sampler(model), audio, face, emotion, samples=2, seed=0)
    b = generate_clips(sampler(model), audio, face, emotion, samples=2, seed=1)
    assert not torch.allclose(a, b)


def test_the_shift_generator_runs_once_per_listener_batch(model):
    calls = []
    handle = model.generator.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        audio, face, emotion = speaker(2)
        generate_clips(
            sampler(model, guidance=2.0),
            audio,
            face,
            emotion,
            samples=4,
            history=torch.randn(2, 250, H),
            seed=0,
        )
    finally:
        handle.remove()
    assert calls == [2]  # one call, one style per listener, reused for 4 windows x 3 steps x M


def test_edited_weights_are_built_once_per_stream(model, monkeypatch):
    import perfrdiff.generation.sampler as sampler_module

    builds = []
    real = sampler_module.materialise_shifts
    monkeypatch.setattr(
        sampler_module, "materialise_shifts", lambda *a: builds.append(1) or real(*a)
    )
    audio, face, emotion = speaker(2)
    history = torch.randn(2, 250, H)
    s = sampler(model, guidance=2.0)
    bound = generate_clips(s, audio, face, emotion, samples=2, history=history, seed=3)
    assert builds == [1]  # once for the 4 windows, not once per window
    monkeypatch.setattr(sampler_module, "DENSE_LIMIT", 0)  # built per call by the planner instead
    unbound = generate_clips(s, audio, face, emotion, samples=2, history=history, seed=3)
    assert builds == [1]
    torch.testing.assert_close(bound, unbound, rtol=1e-5, atol=1e-5)  # float32 rounding


def test_personalised_samples_depend_on_the_listener_history(model):
    audio, face, emotion = speaker(1)
    a = generate_clips(sampler(model), audio, face, emotion, 2, torch.randn(1, 250, H), seed=0)
    b = generate_clips(sampler(model), audio, face, emotion, 2, torch.randn(1, 250, H), seed=0)
    assert not torch.allclose(a, b)


def test_a_generic_model_rejects_a_history(model):
    with pytest.raises(TypeError, match="PerFRDiff"):
        StreamingGenerator(sampler(model.gafrg), samples=1, history=torch.randn(1, 250, H))


class Recorded(ReactionSampler):
    """A sampler that records each window it returns and the frames it was told to keep."""

    def __init__(self, *args):
        super().__init__(*args)
        self.windows, self.known = [], []

    def sample(self, memory, generator, shifts=None, index=None, known=None, centre=None):
        window = super().sample(memory, generator, shifts, index, known, centre)
        self.windows.append(window)
        self.known.append(known)
        return window


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_overlapping_windows_start_with_exactly_the_frames_generated_before(model, eta):
    audio, face, emotion = speaker(2)
    w, o = 50, 20
    s = Recorded(model, DDIMSchedule(1000, eta), SamplerConfig(3, 2.0, overlap=o))
    clips = generate_clips(s, audio, face, emotion, samples=3, history=torch.randn(2, 250, H))
    assert clips.shape == (2, 3, T, 25)  # windows start at 0, 30, …, 150
    assert len(s.windows) == 6 and s.known[0] is None
    flat = clips.reshape(6, T, 25)
    for k, (window, known) in enumerate(zip(s.windows[1:], s.known[1:], strict=True), 1):
        start = k * (w - o)
        torch.testing.assert_close(window[:, :o], known, rtol=0, atol=0)
        torch.testing.assert_close(known, flat[:, start : start + o], rtol=0, atol=0)
        frames = min(w, T - start)
        torch.testing.assert_close(window[:, :frames], flat[:, start : start + frames])


def test_an_overlapping_window_uses_only_speaker_frames_before_its_start(model):
    audio, face, emotion = speaker(1)
    changed = [x.clone() for x in (audio, face, emotion)]
    for x in changed:
        x[:, 90:] = 0  # window 3 starts at 90: frames before 90 + 50 = 140 are its own
    a = generate_clips(sampler(model, overlap=20), audio, face, emotion, samples=2, seed=3)
    b = generate_clips(sampler(model, overlap=20), *changed, samples=2, seed=3)
    torch.testing.assert_close(a[:, :, :140], b[:, :, :140], rtol=0, atol=0)
    assert not torch.allclose(a[:, :, 140:], b[:, :, 140:])


def test_overlapping_windows_are_released_when_the_speaker_reaches_their_start(model):
    audio, face, emotion = speaker(1)
    stream = StreamingGenerator(sampler(model, overlap=20), samples=2, seed=0, batch=1)
    first = stream.push(audio[:, :29], face[:, :29], emotion[:, :29])
    assert [x.shape[2] for x in first] == [50]  # window 0
    second = stream.push(audio[:, 29:30], face[:, 29:30], emotion[:, 29:30])
    assert [x.shape[2] for x in second] == [30]  # window 1 at 30 adds frames 50..79


def test_the_overlap_must_be_shorter_than_the_window(model):
    with pytest.raises(ValueError, match=r"a run's generate\.overlap\) must be in \[0, 50\)"):
        sampler(model, overlap=50)
