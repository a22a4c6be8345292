"""The edit state is scoped to the block, thread and task that opened it, and to the model edited.

Numbered as in the make-editable guide's "Edit-state rules": 1 out-of-order exits, threads and
asyncio tasks; 2 modules used at two places; 3 copies made inside an edit; 4 activation
checkpointing; and torch.compile of an edited forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import pickle
import threading

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from weditlib import DenseShift, EditableLinear, LowRankShift, edit, make_editable
from weditlib.edit_state import current_state
from weditlib.layers import EditableMixin


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    make_editable(model, ["0", "2"])
    return model


def shift_of(model: nn.Sequential, scale: float, count: int = 2) -> dict[str, DenseShift]:
    generator = torch.Generator().manual_seed(int(scale * 100))
    return {
        "0": DenseShift(scale * torch.randn(count, 6, 4, generator=generator, dtype=torch.float64)),
        "2": DenseShift(scale * torch.randn(count, 3, 6, generator=generator, dtype=torch.float64)),
    }


def reference(model: nn.Sequential, shifts: dict[str, DenseShift], x: torch.Tensor) -> torch.Tensor:
    """Per-sample weight copies with the shift baked in."""
    rows = []
    for b in range(x.shape[0]):
        clone = copy.deepcopy(model)
        with torch.no_grad():
            for name, delta in shifts.items():
                clone.get_submodule(name).weight += delta.weight[b]
        rows.append(clone(x[b : b + 1]))
    return torch.cat(rows)


X = torch.randn(2, 4, dtype=torch.float64)


# 1. out-of-order exits, threads, asyncio tasks ----------------------------------------------


def test_edits_exited_out_of_order_leave_the_model_unedited():
    model = mlp()
    base = model(X)
    first, second = edit(model, shift_of(model, 1.0)), edit(model, shift_of(model, 2.0))
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert torch.equal(model(X), base)
    assert model[0].active_shifts == {}


def test_exiting_the_outer_edit_first_keeps_only_the_inner_shift():
    model = mlp()
    outer, inner = shift_of(model, 1.0), shift_of(model, 2.0)
    with contextlib.ExitStack() as stack_a, contextlib.ExitStack() as stack_b:
        stack_a.enter_context(edit(model, outer))
        stack_b.enter_context(edit(model, inner))
        stack_a.close()
        torch.testing.assert_close(model(X), reference(model, inner, X))
    assert model[0].active_shifts == {}


def test_an_inner_edit_overrides_the_outer_one_only_for_its_own_weights():
    model = mlp()
    outer, inner = shift_of(model, 1.0), {"2": shift_of(model, 2.0)["2"]}
    with edit(model, outer), edit(model, inner):
        got = model(X)
    torch.testing.assert_close(got, reference(model, {"0": outer["0"], "2": inner["2"]}, X))


def test_threads_sharing_a_model_see_only_their_own_edit():
    model = mlp()
    both_inside = threading.Barrier(2)
    results: dict[float, torch.Tensor] = {}

    def worker(scale: float) -> None:
        with edit(model, shift_of(model, scale)):
            both_inside.wait(timeout=10)
            results[scale] = model(X)
            both_inside.wait(timeout=10)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for scale, got in results.items():
        torch.testing.assert_close(got, reference(model, shift_of(model, scale), X))


def test_a_thread_does_not_see_the_edit_of_the_thread_that_started_it():
    model = mlp()
    base = model(X)
    seen: list[torch.Tensor] = []
    with edit(model, shift_of(model, 1.0)):
        thread = threading.Thread(target=lambda: seen.append(model(X)))
        thread.start()
        thread.join()
    assert torch.equal(seen[0], base)


def test_asyncio_tasks_see_only_their_own_edit():
    model = mlp()

    async def task(scale: float) -> torch.Tensor:
        with edit(model, shift_of(model, scale)):
            await asyncio.sleep(0)  # the other task enters its edit meanwhile
            return model(X)

    async def both() -> list[torch.Tensor]:
        return await asyncio.gather(task(1.0), task(2.0))

    for scale, got in zip((1.0, 2.0), asyncio.run(both()), strict=True):
        torch.testing.assert_close(got, reference(model, shift_of(model, scale), X))


def test_exiting_an_edit_in_another_thread_is_an_error():
    model = mlp()
    block = edit(model, shift_of(model, 1.0))
    block.__enter__()
    errors: list[BaseException] = []

    def leave() -> None:
        try:
            block.__exit__(None, None, None)
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=leave)
    thread.start()
    thread.join()
    assert errors and "exited in the context that entered it" in str(errors[0])
    # the failed exit left the block open for its owner, fast path still off
    assert current_state() is not None and not torch.backends.mha.get_fastpath_enabled()
    block.__exit__(None, None, None)
    assert current_state() is None and torch.backends.mha.get_fastpath_enabled()
    with pytest.raises(RuntimeError, match="only once"):
        block.__exit__(None, None, None)
    with pytest.raises(RuntimeError, match="entered already"):
        block.__enter__()


def test_fast_path_stays_off_until_the_last_open_edit_closes():
    model = mlp()
    first, second = edit(model, shift_of(model, 1.0)), edit(model, shift_of(model, 2.0))
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not torch.backends.mha.get_fastpath_enabled()
    second.__exit__(None, None, None)
    assert torch.backends.mha.get_fastpath_enabled()


# 2. a module used at two places -------------------------------------------------------------


def test_a_module_used_at_two_places_is_edited_at_both():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4).double()
    model = nn.Sequential(shared, nn.ReLU(), shared)
    names = make_editable(model, ["0"])
    assert names == {"0": (4, 4)}
    assert model[0] is model[2] and isinstance(model[2], EditableLinear)
    delta = DenseShift(torch.randn(2, 4, 4, dtype=torch.float64))
    with edit(model, {"0": delta}):
        got = model(X)
    for b in range(2):
        weight = shared.weight + delta.weight[b]
        hidden = torch.relu(nn.functional.linear(X[b], weight, shared.bias))
        torch.testing.assert_close(got[b], nn.functional.linear(hidden, weight, shared.bias))


def test_a_module_used_at_two_places_is_selected_by_its_second_path_too():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert make_editable(model, ["2"]) == {"0": (4, 4)}
    assert isinstance(model[0], EditableLinear)


# 3. copies made inside an edit --------------------------------------------------------------


def test_a_deep_copy_made_inside_an_edit_is_unedited():
    model = mlp()
    base = model(X)
    with edit(model, shift_of(model, 1.0)):
        clone = copy.deepcopy(model)
    assert torch.equal(clone(X), base)


def test_a_pickled_copy_made_inside_an_edit_is_unedited():
    model = mlp()
    base = model(X)
    with edit(model, shift_of(model, 1.0)):
        clone = pickle.loads(pickle.dumps(model))
        buffer = io.BytesIO()
        torch.save(model, buffer)
        assert torch.equal(clone(X), base)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(X), base)


def test_a_copy_made_inside_an_edit_can_be_edited_on_its_own():
    model = mlp()
    shifts = shift_of(model, 1.0)
    with edit(model, shifts):
        clone = copy.deepcopy(model)
    with edit(clone, shifts):
        torch.testing.assert_close(clone(X), reference(model, shifts, X))


# 4. activation checkpointing ----------------------------------------------------------------


def gradients(model, shifts, x, run, backward_inside: bool) -> list[torch.Tensor]:
    leaves = [x, *(d.weight for d in shifts.values()), *model.parameters()]
    for leaf in leaves:
        leaf.grad = None
    with edit(model, shifts):
        y = run(x)
        if backward_inside:
            y.square().sum().backward()
    if not backward_inside:
        y.square().sum().backward()
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("backward_inside", [True, False], ids=["backward-inside", "after"])
@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_checkpointed_edited_forward_has_the_gradients_of_the_plain_one(reentrant, backward_inside):
    model = mlp()
    shifts = {n: DenseShift(d.weight.requires_grad_()) for n, d in shift_of(model, 1.0).items()}
    x = X.clone().requires_grad_()
    expected = gradients(model, shifts, x, model, backward_inside=True)
    got = gradients(
        model, shifts, x, lambda t: checkpoint(model, t, use_reentrant=reentrant), backward_inside
    )
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_nested_checkpoints_recompute_under_the_edit(reentrant):
    model = mlp()
    shifts = {n: DenseShift(d.weight.requires_grad_()) for n, d in shift_of(model, 1.0).items()}
    x = X.clone().requires_grad_()

    def outer(t):
        inner = checkpoint(model[0], t, use_reentrant=reentrant)
        return model[2](model[1](inner))

    expected = gradients(model, shifts, x, model, backward_inside=True)
    got = gradients(
        model, shifts, x, lambda t: checkpoint(outer, t, use_reentrant=reentrant), False
    )
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_a_checkpointed_function_that_switches_edits_fails_clearly_in_backward():
    model = mlp()
    first, second = shift_of(model, 1.0), shift_of(model, 2.0)
    x = X.clone().requires_grad_()

    def switching(t):
        with edit(model, first):
            h = model(t)
        with edit(model, second):
            return model(t) + h

    y = checkpoint(switching, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match="two different edit"):
        y.sum().backward()


# torch.compile of an edited forward -----------------------------------------------------------


class ProbeLinear(EditableMixin, nn.Linear):
    """Reads the edit state like every editable layer, computes the edit with plain torch ops."""

    def __init__(self, features: int) -> None:
        super().__init__(features, features)
        self.editable_weights = {"": (features, features)}
        self._init_edit_state()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self._active_shift("")
        if active is None:
            return super().forward(x)
        delta, grouping = active
        return super().forward(x) + torch.einsum("bk,bnk->bn", x, delta.weight[grouping.index])


def test_edit_state_lookup_compiles_fullgraph_and_new_shifts_reuse_the_graph():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # dynamo's counters are process-wide: count this test's graphs only
    torch.manual_seed(0)
    model = nn.Sequential(ProbeLinear(4), nn.ReLU(), ProbeLinear(4))
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x, index = torch.randn(3, 4), torch.tensor([0, 1, 0])
    for _ in range(3):
        with edit(model, {"0": DenseShift(torch.randn(2, 4, 4))}, index):
            torch.testing.assert_close(compiled(x), model(x))
    assert counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(compiled(x), model(x))  # unedited: its own graph


def test_a_compiled_forward_sees_the_edit_of_its_own_thread_only():
    torch._dynamo.reset()
    model = nn.Sequential(ProbeLinear(4), nn.ReLU(), ProbeLinear(4))
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randn(2, 4)
    base = model(x)
    seen: list[torch.Tensor] = []
    with edit(model, {"0": DenseShift(torch.randn(2, 4, 4))}):
        edited = compiled(x)
        thread = threading.Thread(target=lambda: seen.append(compiled(x)))
        thread.start()
        thread.join()
    assert not torch.allclose(edited, base)
    torch.testing.assert_close(seen[0], base)


def edited_encoder_and_shifts():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    names = make_editable(model, ["layers.*.self_attn", "layers.*.linear1"])
    shifts = {
        name: LowRankShift(0.1 * torch.randn(2, n, 2), torch.randn(2, 2, k))
        for name, (n, k) in names.items()
    }
    return model, shifts


def edited_mlp_and_shifts():
    torch.manual_seed(0)
    model = nn.Sequential(EditableLinear(16, 32), nn.GELU(), EditableLinear(32, 16))
    shifts = {
        "0": DenseShift(0.1 * torch.randn(2, 32, 16)),
        "2": DenseShift(torch.randn(2, 16, 32)),
    }
    return model, shifts


@pytest.mark.parametrize(
    ("build", "backend"),
    [(edited_encoder_and_shifts, "eager"), (edited_mlp_and_shifts, "aot_eager")],
    ids=["encoder-dynamo", "mlp-aot-eager"],
)
def test_an_edited_model_forward_compiles_fullgraph_and_equals_eager(build, backend):
    model, shifts = build()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    x, index = torch.randn(4, 3, 16), torch.tensor([0, 1, 1, 0])
    with torch.no_grad(), edit(model, shifts, index):
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
