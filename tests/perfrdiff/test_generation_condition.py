"""Generation passes each listener's personality to a model whose pwsg.condition reads it."""

import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import (
    ReactionSampler,
    SamplerConfig,
    StreamingGenerator,
    generate_clips,
    generate_dataset,
)
from perfrdiff.models import DDIMSchedule, build_perfrdiff

from .tiny_preset import HISTORY_DIM as H

T = 100  # 2 windows of 50 frames

pytestmark = pytest.mark.usefixtures("one_thread")


def model_of(condition, *more):
    torch.manual_seed(0)
    config = load_config("tiny", ["protocol=react2026", f"pwsg.condition={condition}", *more])
    model = build_perfrdiff(config).eval()
    for p in model.exported.parameters():  # untrained heads are zero: make the edit visible
        torch.nn.init.normal_(p, std=0.05)
    return model


def sampler(model):
    return ReactionSampler(model, DDIMSchedule(1000), SamplerConfig(steps=3))


def speaker(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, T, c, generator=g) for c in (78, 58, 25))


def listeners(seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 250, H, generator=g), torch.rand(2, 5, generator=g)


def test_each_sample_reads_its_own_listeners_personality():
    s, (history, personality) = sampler(model_of("both")), listeners()
    audio, face, emotion = speaker(1)
    two = [x.expand(2, -1, -1) for x in (audio, face, emotion)]
    mixed = generate_clips(s, *two, 2, history, seed=3, personality=personality)
    first = generate_clips(s, *two, 2, history[[0, 0]], seed=3, personality=personality[[0, 0]])
    torch.testing.assert_close(mixed[0], first[0], rtol=0, atol=1e-6)
    assert not torch.allclose(mixed[1], first[1])


def test_another_personality_gives_other_reactions():
    s, (history, personality) = sampler(model_of("personality")), listeners()
    a = generate_clips(s, *speaker(2), 2, history, seed=3, personality=personality)
    b = generate_clips(s, *speaker(2), 2, history, seed=3, personality=1 - personality)
    assert not torch.allclose(a, b)


def test_a_personality_only_model_generates_without_history():
    model = model_of("personality", "pwsg.history_stats=false", "pwsg.listener_prior=false")
    s, (history, personality) = sampler(model), listeners()
    stream = StreamingGenerator(s, samples=2, personality=personality, seed=3, max_frames=T)
    alone = torch.cat(stream.push(*speaker(2)), dim=2)
    given = generate_clips(s, *speaker(2), 2, history, seed=3, personality=personality)
    torch.testing.assert_close(alone, given, rtol=0, atol=0)


def test_generation_without_a_needed_personality_is_refused_by_name():
    s, (history, _) = sampler(model_of("both")), listeners()
    with pytest.raises(ValueError, match=r"needs each listener's 'personality'"):
        generate_clips(s, *speaker(2), 2, history, seed=3)


def test_a_dataset_passes_each_items_personality():
    s, (history, personality) = sampler(model_of("both")), listeners()
    audio, face, emotion = speaker(2)
    clips = [
        {
            "speaker_audio": audio[i],
            "speaker_face": face[i],
            "speaker_emotion": emotion[i],
            "history": history[i],
            "personality": personality[i],
        }
        for i in range(2)
    ]
    got = generate_dataset(s, clips, 2, personalised=True, clips_per_batch=2, seed=3)
    want = generate_clips(s, audio, face, emotion, 2, history, seed=3, personality=personality)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
