"""The speaker-coupling diagnosis: own correlation, the linear listener recovering a planted
coupling from what a window may see, and chance draws that leave the mirror item out."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from perfrdiff.generation import chance_predictions
from perfrdiff.protocol import protocol_named

from tests.benchmarks.scripts import benchmark_script


@pytest.fixture(scope="module")
def benchmark():
    with benchmark_script("speaker_coupling") as module:
        yield module


def dataset(speaker: np.ndarray, listener: np.ndarray, neighbours=None) -> SimpleNamespace:
    n, frames, _ = speaker.shape
    clips = [
        {
            "speaker_emotion": torch.from_numpy(s.astype(np.float32)),
            "speaker_face": torch.zeros(frames, 2),
            "speaker_audio": torch.zeros(frames, 3),
        }
        for s in speaker
    ]
    if neighbours is None:
        neighbours = np.eye(n, dtype=bool)
    return SimpleNamespace(
        clips=clips,
        speaker_emotion=speaker.astype(np.float32),
        listener_emotion=listener.astype(np.float32),
        neighbours=neighbours,
        listeners=[f"person {i}" for i in range(n)],
    )


def smooth_walks(rng, n: int, frames: int) -> np.ndarray:
    steps = rng.normal(size=(n, frames + 20, 25))
    kernel = np.ones(20) / 20
    return np.apply_along_axis(lambda x: np.convolve(x, kernel, "valid")[:frames], 1, steps)


def test_own_correlation_of_a_copy_its_negation_and_a_constant(benchmark):
    real = np.random.default_rng(0).normal(size=(3, 120, 25))
    data = dataset(real, real)
    copies = np.stack([real, -real, np.zeros_like(real)], axis=1)  # (n, 3, T, 25)
    for sample, expected in enumerate([1.0, -1.0, 0.0]):
        own = benchmark.own_correlation(copies[:, sample : sample + 1], data, skip=50)
        assert set(own) == {*benchmark.GROUPS, "all"}
        assert all(v == pytest.approx(expected, abs=1e-6) for v in own.values())


def test_linear_listener_finds_a_coupling_the_window_can_see(benchmark):
    rng = np.random.default_rng(0)
    run = SimpleNamespace(
        config=SimpleNamespace(data=SimpleNamespace(window=50)),
        protocol=protocol_named("react2024"),  # window [s, s + 50) sees the speaker's [s - 50, s)
    )

    def split(n: int, coupled: bool):
        speaker = smooth_walks(rng, n, 400)
        listener = np.zeros_like(speaker)
        listener[:, 50:] = speaker[:, :-50]  # the listener repeats the speaker 2 s later
        if not coupled:
            listener = np.roll(listener, 1, axis=0)  # every item gets another speaker's listener
        return dataset(speaker, listener + 0.05 * rng.normal(size=listener.shape))

    linear = benchmark.LinearListener(run, pool=5, stride=10)
    tried = linear.fit(split(24, True), split(6, True))
    assert set(tried) == {str(w) for w in benchmark.RIDGE_WEIGHTS}
    test = split(6, True)
    assert benchmark.own_correlation(linear.predict(test)[:, None], test, 50)["all"] > 0.8
    unrelated = split(6, False)  # the same speakers' statistics, listeners of other speakers
    assert (
        abs(benchmark.own_correlation(linear.predict(unrelated)[:, None], unrelated, 50)["all"])
        < 0.2
    )


def test_chance_without_the_mirror_never_draws_the_speakers_own_clip(benchmark):
    rng = np.random.default_rng(1)
    speaker = rng.normal(size=(4, 60, 25))
    listener = rng.normal(size=(4, 60, 25))
    listener[1] = speaker[0]  # item 1 is item 0's mirror: its listener clip is 0's speaker clip
    data = dataset(speaker, listener)
    mirrors = benchmark.mirror_items(data)
    assert mirrors == [[1], [], [], []]
    drawn = chance_predictions(data, samples=50, seed=0, exclude=mirrors)
    for sample in drawn[0]:
        real = data.listener_emotion
        assert not np.array_equal(sample, real[1]) and not np.array_equal(sample, real[0])
        assert any(np.array_equal(sample, real[j]) for j in (2, 3))
