"""Work shared by ``torchrun`` processes: disjoint balanced shards, results merged in unit order
(on rank 0 or everywhere), and a rank's failure stopping every rank instead of leaving the others
waiting. Two gloo processes on the CPU stand in for ``torchrun``'s."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from perfrdiff.distributed import (
    Distributed,
    RankFailed,
    init_distributed,
    run_shards,
    shard,
    shutdown,
)
from perfrdiff.metrics import evaluate_all
from perfrdiff.metrics.react2026 import appropriate_sets, evaluate_sequences


@given(st.integers(0, 50), st.integers(1, 8))
def test_shards_are_disjoint_cover_every_unit_and_differ_by_at_most_one(n, world):
    shards = [list(shard(n, Distributed(rank, world))) for rank in range(world)]
    assert sorted(u for s in shards for u in s) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_one_process_computes_every_unit_in_order():
    assert run_shards(Distributed(), 5, lambda units: [u * u for u in units]) == [0, 1, 4, 9, 16]


def test_one_process_reraises_its_own_error():
    def compute(units):
        raise KeyError("no such item")

    with pytest.raises(KeyError, match="no such item"):
        run_shards(Distributed(), 3, compute)


def test_compute_must_return_one_result_per_unit():
    with pytest.raises(ValueError, match="expected 3 results, got 2"):
        run_shards(Distributed(), 3, lambda units: [0, 1])


# Jobs run by each spawned rank: (env) -> a JSON-able result.
def _merge_to_main(env):
    return run_shards(env, 7, lambda units: [f"unit {u} on rank {env.rank}" for u in units])


def _merge_to_all(env):
    return run_shards(env, 5, lambda units: [10 * u for u in units], to="all")


def _rank_one_fails(env):
    def compute(units):
        if env.rank == 1:
            raise FloatingPointError("NaN in batch 1")
        return list(units)

    run_shards(env, 4, compute)
    # Not reached: the next collective would wait forever for rank 1.
    return run_shards(env, 4, lambda units: list(units), to="all")


#: Items' sessions for the REACT 2026 appropriate-set draw: sessions of 12, 3 and 1 items.
SESSIONS = ["s1"] * 12 + ["s2"] * 3 + ["s3"]


def _draw(env):
    return appropriate_sets(SESSIONS, others=9, seed=1234)


def _react2024_inputs():
    """5 items (rank 0 scores 3, rank 1 two) of 2 samples, 2 listeners, random neighbours."""
    rng = np.random.default_rng(3)
    neighbours = rng.random((5, 5)) < 0.5
    np.fill_diagonal(neighbours, True)
    return dict(
        predictions=rng.random((5, 2, 60, 25)),
        listener_emotion=rng.random((5, 60, 25)),
        speaker_emotion=rng.random((5, 60, 25)),
        neighbours=neighbours,
        n_jobs=1,
        listeners=["a", "b", "a", "b", "a"],
    )


def _react2024_metrics(env):
    return evaluate_all(**_react2024_inputs(), distributed=env)


def _react2026_inputs():
    """5 sequences of different lengths and their drawn appropriate sets."""
    rng = np.random.default_rng(4)
    lengths = [58, 90, 61, 120, 75]
    return dict(
        predictions=[rng.random((2, t, 25)) for t in lengths],
        listeners=[rng.random((t, 25)) for t in lengths],
        speakers=[rng.random((t, 25)) for t in lengths],
        sets=appropriate_sets(["s1", "s1", "s1", "s2", "s2"], others=9, seed=1234),
    )


def _react2026_metrics(env):
    return evaluate_sequences(**_react2026_inputs(), distributed=env)


JOBS = {
    "main": _merge_to_main,
    "all": _merge_to_all,
    "fails": _rank_one_fails,
    "draw": _draw,
    "react2024": _react2024_metrics,
    "react2026": _react2026_metrics,
}


def _rank(rank: int, world: int, port: int, job: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
    )
    env = init_distributed(torch.device("cpu"))
    try:
        result = {"value": JOBS[job](env)}
    except Exception as error:
        result = {"error": type(error).__name__, "message": str(error)}
    # Every job returns or raises on every rank alike, so the ranks can meet before leaving.
    shutdown(env, wait_for_peers=True)
    Path(out, f"{rank}.json").write_text(json.dumps(result))


def spawn(job: str, tmp_path: Path, world: int = 2) -> list[dict]:
    """Each rank's ``{"value": …}`` or ``{"error": …, "message": …}`` of ``JOBS[job]``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank, (world, port, job, str(tmp_path)), world, start_method="spawn")
    return [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]


@pytest.mark.slow
def test_two_ranks_merge_on_rank_zero_in_unit_order(tmp_path):
    main, other = spawn("main", tmp_path)
    assert main["value"] == [f"unit {u} on rank {u % 2}" for u in range(7)]
    assert other["value"] is None


@pytest.mark.slow
def test_two_ranks_merge_everywhere(tmp_path):
    assert [r["value"] for r in spawn("all", tmp_path)] == [[0, 10, 20, 30, 40]] * 2


@pytest.mark.slow
def test_a_failing_rank_stops_the_others_naming_it(tmp_path):
    main, failed = spawn("fails", tmp_path)
    assert failed == {"error": "FloatingPointError", "message": "NaN in batch 1"}
    assert main["error"] == RankFailed.__name__
    assert "rank 1 of 2 failed: FloatingPointError: NaN in batch 1" in main["message"]


@pytest.mark.slow
def test_the_appropriate_set_draw_is_the_same_on_every_rank(tmp_path):
    draws = [r["value"] for r in spawn("draw", tmp_path)]
    assert draws[0] == draws[1] == _draw(Distributed())
    assert _draw(Distributed()) != appropriate_sets(SESSIONS, others=9, seed=1235)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("job", "alone"),
    [
        ("react2024", lambda: evaluate_all(**_react2024_inputs())),
        ("react2026", lambda: evaluate_sequences(**_react2026_inputs())),
    ],
)
def test_sharded_metrics_are_those_of_one_process_bit_for_bit(job, alone, tmp_path):
    expected = alone()
    assert "PMAFRG FRdist" in expected or job == "react2026"
    for rank in spawn(job, tmp_path):
        assert rank["value"] == expected  # JSON round-trips a float exactly
