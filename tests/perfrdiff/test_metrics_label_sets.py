"""The PMAFRG label set: the appropriate set restricted to the item's own listener."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from perfrdiff.data import SplitIndex
from perfrdiff.metrics import (
    evaluate_all,
    frcorr,
    frdist,
    item_listeners,
    label_set_matrices,
    own_listener_neighbours,
)
from perfrdiff.metrics import reference as loop


def test_own_listener_neighbours_by_hand():
    listeners = ["a/s/r", "a/s/r", "b/s/r", "a/s/r"]
    neighbours = np.array(
        [
            [1, 1, 1, 0],  # item 0: item 3 is its listener's but not appropriate
            [0, 0, 1, 1],  # item 1: its own reaction is not in M, and is added
            [1, 1, 1, 1],  # item 2: listener b has one clip: only its own reaction
            [1, 0, 0, 1],
        ],
        dtype=bool,
    )
    expected = np.array(
        [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [1, 0, 0, 1]],
        dtype=bool,
    )
    np.testing.assert_array_equal(own_listener_neighbours(neighbours, listeners), expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 7), st.integers(0, 2**31 - 1))
def test_pmafrg_is_the_own_listener_part_of_mafrg_plus_the_diagonal(n, seed):
    rng = np.random.default_rng(seed)
    neighbours = rng.random((n, n)) < 0.5
    neighbours[np.arange(n), rng.integers(0, n, n)] = True  # M has no empty row
    listeners = [f"site/s/{int(x)}" for x in rng.integers(0, 3, n)]
    own = own_listener_neighbours(neighbours, listeners)
    for k in range(n):
        for j in range(n):
            want = (neighbours[k, j] and listeners[j] == listeners[k]) or j == k
            assert own[k, j] == want


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_frcorr_on_pmafrg_equals_the_loop_reference_and_is_at_most_mafrg(seed):
    rng = np.random.default_rng(seed)
    n, k, t = 5, 2, 30
    predictions = rng.random((n, k, t, 25)).astype(np.float32)
    listener = rng.random((n, t, 25)).astype(np.float32)
    neighbours = rng.random((n, n)) < 0.6
    np.fill_diagonal(neighbours, True)  # then PMAFRG is a subset of MAFRG
    listeners = [f"x/s/{int(x)}" for x in rng.integers(0, 2, n)]
    own = own_listener_neighbours(neighbours, listeners)
    got = frcorr(predictions, listener, own)
    np.testing.assert_allclose(got, loop.frcorr_loop(predictions, listener, own).mean(), 1e-9)
    assert got <= frcorr(predictions, listener, neighbours) + 1e-12


def test_evaluate_all_adds_pmafrg_scores_only_with_listeners():
    rng = np.random.default_rng(3)
    p = rng.random((4, 2, 60, 25)).astype(np.float32)
    g, s = rng.random((4, 60, 25)), rng.random((4, 60, 25))
    m = np.ones((4, 4), dtype=bool)
    listeners = ["a/s/1", "a/s/1", "b/s/2", "b/s/2"]
    plain = evaluate_all(p, g, s, m, n_jobs=1)
    both = evaluate_all(p, g, s, m, n_jobs=1, listeners=listeners)
    assert "PMAFRG FRCorr" not in plain
    assert {k: both[k] for k in plain} == plain  # the MAFRG (challenge) scores are unchanged
    own = own_listener_neighbours(m, listeners)
    assert both["PMAFRG FRCorr"] == frcorr(p, g, own)
    assert both["PMAFRG FRdist"] == frdist(p, g, own, n_jobs=1)
    assert both["PMAFRG FRdist"] > both["FRdist"]  # fewer candidates: a larger minimum


def test_label_set_matrices_without_listeners_are_mafrg_only():
    m = np.eye(3, dtype=bool)
    assert list(label_set_matrices(m, None)) == ["MAFRG"]
    assert list(label_set_matrices(m, ["a/b/c"] * 3)) == ["MAFRG", "PMAFRG"]


def test_item_listeners_follow_the_mirrored_items(synthetic_root):
    index = SplitIndex(synthetic_root, "test")
    listeners = item_listeners(index.items)
    rows = len(index.items) // 2
    for k, pair in enumerate(index.items):
        assert listeners[k] == pair.listener.rsplit("/", 1)[0]
        # a mirrored item's listener is the row's speaker
        partner = index.items[(k + rows) % (2 * rows)]
        assert listeners[k] == partner.speaker.rsplit("/", 1)[0]


@pytest.mark.parametrize(
    ("listeners", "error", "match"),
    [
        (["a/b/c"] * 2, ValueError, r"listeners: expected one identity per item \(n = 3"),
        ("a/b/c", TypeError, "listeners: expected a sequence"),
        ([1, 2, 3], TypeError, "listeners: expected a flat sequence of str"),
    ],
)
def test_bad_listeners_are_named(listeners, error, match):
    with pytest.raises(error, match=match):
        own_listener_neighbours(np.eye(3, dtype=bool), listeners)


def test_the_table_has_a_column_per_label_set_when_a_result_has_pmafrg_scores():
    from perfrdiff.metrics import markdown_table

    both = {"FRCorr": 0.5, "PMAFRG FRCorr": 0.4, "FRdist": 90.0, "PMAFRG FRdist": 99.0}
    table = markdown_table({"generic": both, "chance": {"FRCorr": 0.3, "FRdist": 120.0}})
    assert table.splitlines()[0] == (
        "| run | FRCorr MAFRG ↑ | FRCorr PMAFRG ↑ | FRdist MAFRG ↓ | FRdist PMAFRG ↓ |"
    )
    assert "| generic | 0.5000 | 0.4000 | 90.0000 | 99.0000 |" in table
    assert "| chance | 0.3000 |  | 120.0000 |  |" in table
    assert markdown_table({"a": {"FRCorr": 0.5}}).splitlines()[0] == "| run | FRCorr ↑ |"
