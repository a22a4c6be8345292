"""Generation passes each listener's personality to a model whose pwsg.condition reads it (REACT
2026 data: the online windows of :class:`~perfrdiff.generation.sequences.WindowStream`)."""

import numpy as np
import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import ReactionSampler, SamplerConfig
from perfrdiff.generation.sequences import WindowStream, stream_sequences
from perfrdiff.models import DDIMSchedule, build_perfrdiff
from perfrdiff.protocol import REACT2026

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
    return torch.randn(n, T, 78 + 58 + 25, generator=torch.Generator().manual_seed(seed))


def listeners(seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 250, H, generator=g), torch.rand(2, 5, generator=g)


def generate(s, x, history=None, personality=None, seed=3):
    """``(n, 2, T, 25)`` online reactions to the speaker ``x: (n, T, c)``."""
    stream = WindowStream(s, 2, REACT2026.context_frames(50), history, seed=seed,
                          batch=x.shape[0], personality=personality)  # fmt: skip
    out = np.zeros((x.shape[0], 2, T, 25), np.float32)
    return torch.from_numpy(stream_sequences(stream, lambda b, e: x[:, b:e], T, out))


def test_each_sample_reads_its_own_listeners_personality():
    s, (history, personality) = sampler(model_of("both")), listeners()
    two = speaker(1).expand(2, -1, -1)
    mixed = generate(s, two, history, personality)
    first = generate(s, two, history[[0, 0]], personality[[0, 0]])
    torch.testing.assert_close(mixed[0], first[0], rtol=0, atol=1e-6)
    assert not torch.allclose(mixed[1], first[1])


def test_another_personality_gives_other_reactions():
    s, (history, personality) = sampler(model_of("personality")), listeners()
    a = generate(s, speaker(2), history, personality)
    b = generate(s, speaker(2), history, 1 - personality)
    assert not torch.allclose(a, b)


def test_a_personality_only_model_generates_without_history():
    model = model_of("personality", "pwsg.history_stats=false", "pwsg.listener_prior=false")
    s, (history, personality) = sampler(model), listeners()
    alone = generate(s, speaker(2), personality=personality)
    given = generate(s, speaker(2), history, personality)
    torch.testing.assert_close(alone, given, rtol=0, atol=0)


def test_generation_without_a_needed_personality_is_refused_by_name():
    s, (history, _) = sampler(model_of("both")), listeners()
    with pytest.raises(ValueError, match=r"needs each listener's 'personality'"):
        generate(s, speaker(2), history)
