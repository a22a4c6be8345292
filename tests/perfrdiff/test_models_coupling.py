"""pwsg.history_lags: lagged listener-partner correlations of a dyadic history."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.config import ConfigError, load_config
from perfrdiff.models import build_perfrdiff, lagged_correlations


def reference(history: np.ndarray, lags: list[int]) -> np.ndarray:
    """float64 Pearson correlations, one listener, channel and lag at a time."""
    frames, out = history.shape[1], []
    for row in history:
        values = []
        for k in lags:
            for c in range(25):
                own, other = row[k:, c], row[: frames - k, 25 + c]
                values.append(np.corrcoef(own, other)[0, 1])
        out.append(values)
    return np.asarray(out)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(12, 60),
    st.lists(st.integers(0, 10), min_size=1, max_size=3, unique=True),
    st.integers(0, 2**31 - 1),
)
def test_equals_a_float64_pearson_reference(listeners, frames, lags, seed):
    history = np.random.default_rng(seed).normal(size=(listeners, frames, 50))
    got = lagged_correlations(torch.from_numpy(history).float(), lags)
    assert got.shape == (listeners, 25 * len(lags))
    np.testing.assert_allclose(got.numpy(), reference(history, lags), atol=2e-5)


def test_finds_the_delay_a_listener_follows_their_partner_at():
    g = torch.Generator().manual_seed(0)
    partner = torch.randn(1, 400, 25, generator=g).cumsum(dim=1)  # slow, like a face
    listener = torch.roll(partner, shifts=12, dims=1)  # the partner's, 12 frames late
    history = torch.cat([listener, partner], dim=-1)[:, 12:]  # drop the wrapped frames
    got = lagged_correlations(history, [0, 12, 30]).view(3, 25)
    torch.testing.assert_close(got[1], torch.ones(25))
    assert (got[0] < got[1]).all() and (got[2] < got[1]).all()


def test_a_still_channel_correlates_zero_not_nan():
    history = torch.randn(2, 100, 50)
    history[..., 3] = 0.4  # an AU the listener never moves
    history[..., 25 + 7] = 0.0  # a partner channel that never moves
    got = lagged_correlations(history, [0, 5]).view(2, 2, 25)
    assert torch.isfinite(got).all() and got.abs().max() <= 1
    assert (got[..., 3] == 0).all() and (got[..., 7] == 0).all()


@pytest.mark.parametrize(
    ("shape", "lags", "match"),
    [
        ((2, 100, 25), [0], r"dyadic history \(l, h, 50\).*\(2, 100, 25\)"),
        ((100, 50), [0], r"dyadic history"),
        ((2, 10, 50), [9], r"lags \[9\] do not fit a history of 10 frames"),
        ((2, 10, 50), [-1], r"lags \[-1\]"),
    ],
)
def test_bad_histories_and_lags_are_named(shape, lags, match):
    with pytest.raises(ValueError, match=match):
        lagged_correlations(torch.zeros(shape), lags)


def test_the_generator_reads_the_correlations_after_the_history_stats():
    torch.manual_seed(0)
    config = load_config("tiny", ["pwsg.history_stats=true", "pwsg.history_lags=[0,4]"])
    model = build_perfrdiff(config).eval()
    history = torch.randn(3, 250, 50)
    with torch.no_grad():
        features = model.style(history)
    stats_end = 32 + 2 * 50
    assert features.shape == (3, stats_end + 2 * 25)
    torch.testing.assert_close(features[:, stats_end:], lagged_correlations(history, [0, 4]))
    assert model.needs_history and model.listener_shifts(history)["output"].bias.shape == (3, 25)


def test_lags_alone_make_the_generator_read_the_history():
    config = load_config("tiny", ["pwsg.history_stats=false", "pwsg.history_lags=[2]"])
    model = build_perfrdiff(config).eval()
    history = torch.randn(2, 250, 50)
    with torch.no_grad():
        features = model.style(history)
        torch.testing.assert_close(features[:, 32:], lagged_correlations(history, [2]))
    with pytest.raises(ValueError, match=r"history is required.*pwsg.history_lags"):
        model.style(None)


def test_lags_need_a_dyadic_history():
    config = load_config("tiny", ["pwsg.history_lags=[3]", "style.input=emotion"])
    with pytest.raises(ConfigError, match=r"pwsg.history_lags.*style.input='emotion'"):
        build_perfrdiff(config)


@pytest.mark.parametrize(
    ("value", "match"), [("[1,1]", "must be distinct"), ("[-2]", "must be >= 0 frames")]
)
def test_the_config_refuses_repeated_or_negative_lags(value, match):
    with pytest.raises(ConfigError, match=rf"pwsg.history_lags: lags {match}"):
        load_config("tiny", [f"pwsg.history_lags={value}"])
