"""Split-level helpers: the chance baseline and the reaction plots."""

import numpy as np
import pytest
import torch
from perfrdiff.config import load_config
from perfrdiff.generation import (
    EvaluationSet,
    chance_predictions,
    check_history_frames,
    plot_reactions,
    with_listener_history,
)


def evaluation_set(n=6, t=20):
    rng = np.random.default_rng(0)
    neighbours = np.eye(n, dtype=bool)
    neighbours[0, 1] = neighbours[1, 0] = True
    return EvaluationSet(
        clips=[],
        listener_emotion=np.arange(n, dtype=np.float32)[:, None, None] * np.ones((n, t, 25)),
        speaker_emotion=rng.normal(size=(n, t, 25)).astype(np.float32),
        neighbours=neighbours,
    )


def test_chance_uses_only_inappropriate_real_reactions():
    data = evaluation_set()
    predictions = chance_predictions(data, samples=50, seed=0)
    assert predictions.shape == (6, 50, 20, 25)
    for k in range(6):
        sources = set(predictions[k, :, 0, 0].astype(int).tolist())
        assert not sources & set(np.flatnonzero(data.neighbours[k]).tolist())


def test_chance_is_reproducible_for_a_seed():
    data = evaluation_set()
    np.testing.assert_array_equal(chance_predictions(data, 5, 1), chance_predictions(data, 5, 1))


def test_chance_never_draws_an_excluded_item_and_names_one_that_leaves_nothing():
    data = evaluation_set()
    exclude = [{2, 3}, set(), set(), set(), set(), {0, 1, 2, 3}]
    predictions = chance_predictions(data, samples=50, seed=0, exclude=exclude)
    assert not set(predictions[0, :, 0, 0].astype(int).tolist()) & {2, 3}
    assert set(predictions[5, :, 0, 0].astype(int).tolist()) == {4}
    everything = [set(), set(), set(), {0, 1, 2, 4, 5}, set(), set()]
    with pytest.raises(ValueError, match=r"exclude\[3\] leaves item 3 no other item"):
        chance_predictions(data, samples=2, exclude=everything)
    with pytest.raises(ValueError, match=r"exclude must have one entry per item \(6\), got 2"):
        chance_predictions(data, samples=2, exclude=[set(), set()])


def test_plot_is_written(tmp_path):
    path = plot_reactions(np.zeros((3, 40, 25)), np.ones((40, 25)), tmp_path / "p.png", "t")
    assert path.stat().st_size > 1000


def test_plot_names_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="samples must be"):
        plot_reactions(np.zeros((3, 40, 25)), np.ones((41, 25)), tmp_path / "p.png")


def test_one_listener_history_can_personalise_every_item():
    data = evaluation_set()
    data.clips = [{"history": torch.zeros(250, 25)} for _ in range(6)]
    history = np.ones((250, 25), dtype=np.float32)
    emotion = load_config("tiny", ["style.input=emotion"])
    replaced = with_listener_history(data, history, emotion)
    assert all(torch.equal(c["history"], torch.ones(250, 25)) for c in replaced.clips)
    with pytest.raises(ValueError, match=r"history must have shape \(h, 25\)"):
        with_listener_history(data, np.ones((250, 58)), emotion)


def test_an_evaluation_set_serves_the_history_of_another_runs_style_input(synthetic_root):
    from perfrdiff.generation import load_evaluation_set, with_style_input

    config = load_config(
        "tiny", [f"data.root={synthetic_root}", "style.input=emotion", "data.history_frames=250"]
    )
    emotion = load_evaluation_set(config, "test")
    assert emotion.style_input == "emotion"
    assert emotion.history_frames == 250
    assert all(c["history"].shape == (250, 25) for c in emotion.clips)
    dyadic = with_style_input(emotion, "dyadic")
    assert dyadic.style_input == "dyadic"
    for mine, theirs in zip(dyadic.clips, emotion.clips, strict=True):
        assert mine["history"].shape == (250, 50)
        assert torch.equal(mine["history"][:, :25], theirs["history"])
    assert with_style_input(emotion, "emotion") is emotion
    one = with_listener_history(emotion, np.ones((250, 25), np.float32), config)
    with pytest.raises(ValueError, match=r"holds histories for style.input='emotion', not 'face'"):
        with_style_input(one, "face")  # one given history: the per-item ones are gone


def test_histories_read_for_another_length_are_refused():
    data = evaluation_set()
    data.history_frames = 250
    check_history_frames(data, 250)
    with pytest.raises(ValueError, match=r"histories of 250 frames, but the run reads 750"):
        check_history_frames(data, 750)
    data.history_frames = None  # not recorded: nothing to check
    check_history_frames(data, 750)


def test_a_given_history_has_no_recorded_length():
    data = evaluation_set()
    data.clips = [{"history": torch.zeros(250, 25)} for _ in range(6)]
    data.history_frames = 250
    config = load_config("tiny", ["style.input=emotion"])
    replaced = with_listener_history(data, np.ones((100, 25), np.float32), config)
    assert replaced.history_frames is None
    check_history_frames(replaced, 750)
