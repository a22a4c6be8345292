"""benchmarks/react2026_batching.py: weditlib's batched listeners and the REACT 2026 baseline's
per-listener weight assignment give the same losses, gradients and samples; the timed rounds
report ours / official per round."""

import pytest
import torch

from tests.benchmarks.scripts import benchmark_script

SMALL = {"listeners": 2, "samples": 2, "batch": 2, "train_steps": 1}


@pytest.fixture(scope="module")
def bench():
    with benchmark_script("react2026_batching") as module:
        yield module


@pytest.fixture(scope="module")
def models(bench):
    return bench.build("tiny", seed=0)


def test_both_ways_give_the_same_losses_gradients_and_samples(bench, models):
    differences = bench.equality(models, bench.Setting(**SMALL))
    assert set(differences) == {"loss", "generator_grads", "samples"}
    assert all(value <= 1e-5 for value in differences.values())


def test_the_listeners_shifts_differ_so_the_check_is_not_vacuous(bench, models):
    history = bench.generation_inputs(models, bench.Setting(**SMALL))["history"]
    with torch.no_grad():
        shifts = models.model.listener_shifts(history)
    for shift in shifts.values():
        matrix = shift.matrix()
        assert matrix.abs().max() > 0
        assert (matrix[0] - matrix[1]).abs().max() > 1e-4 * matrix.abs().max()


def test_the_check_fails_when_the_official_way_edits_differently(bench, models, monkeypatch):
    assign = bench.assign

    def doubled(models, shifts):  # every shift tensor doubled: (2U)(2V), 2Δb
        assign(models, {name: s.map_tensors(lambda t: 2 * t) for name, s in shifts.items()})

    monkeypatch.setattr(bench, "assign", doubled)
    with pytest.raises(AssertionError, match="the two ways differ"):
        bench.equality(models, bench.Setting(**SMALL))


def test_assign_refuses_more_than_one_listener(bench, models):
    history = bench.generation_inputs(models, bench.Setting(**SMALL))["history"]
    with torch.no_grad(), pytest.raises(ValueError, match="one listener"):
        bench.assign(models, models.model.listener_shifts(history))


def test_a_timed_round_reports_the_ratio_of_each_task(bench, models):
    setting = bench.Setting(**SMALL)
    clocks = bench.timed_rounds(models, setting, rounds=1)
    assert set(clocks) == {"wall", "cpu"}
    seconds = clocks["wall"]
    rows = {row["task"]: row for row in bench.summary(seconds, setting)}
    tasks = (("training", 2), ("training, style given", 2), ("generation", 4),
             ("training, unedited", 2), ("generation, unedited", 4))  # fmt: skip
    assert set(seconds) == {task for task, _ in tasks}
    for task, unit in tasks:
        ours, official = seconds[task]["ours"], seconds[task]["official"]
        assert len(ours) == len(official) == 1 and min(ours + official) > 0
        row = rows[task]
        assert row["samples"] == unit
        assert row["ratio"] == pytest.approx(official[0] / ours[0])
        assert row["ours_per_s"] == pytest.approx(unit / ours[0])
        assert row["target_hit"] == (row["ratio"] >= bench.TARGET)


def test_a_given_style_trains_as_the_style_encoded_in_the_step(bench, models):
    inputs = bench.training_inputs(models, bench.Setting(**SMALL))
    bench._generator_grads(models)  # clears gradients an earlier test left
    for way in (bench.train_ours, bench.train_official):
        losses, grads = [], []
        for given in (False, True):
            losses.append(way(models, inputs, given))
            grads.append(bench._generator_grads(models))
        # the given styles were encoded as one batch, the official way encodes one at a time
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-7)
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_the_unedited_ceiling_gives_the_same_work_whatever_the_split(bench, models):
    """One batch or a listener's samples per forward: the same samples and weight gradients,
    and no listener's edit is left in the plain denoiser."""
    setting = bench.Setting(**SMALL)
    gen = bench.generation_inputs(models, setting)
    with torch.no_grad():
        bench.assign(models, models.model.listener_shifts(gen["history"][:1]))
    together = bench.generate_unedited(models, gen, per_forward=4)
    apart = bench.generate_unedited(models, gen, per_forward=2)
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        x = bench.ddim(models, models.model.gafrg, gen["memory"], gen["noise"])
    torch.testing.assert_close(together, x, rtol=1e-5, atol=1e-6)

    train = bench.training_inputs(models, setting)
    grads = []
    for per_forward in (2, 1):
        bench.train_unedited(models, train, per_forward)
        module, weight, _ = bench._weight_slots(models.plain, next(iter(models.base)))
        grads.append(getattr(module, weight).grad.clone())
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)
