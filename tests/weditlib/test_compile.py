"""An edited model compiled once serves every batch size and index pattern.

Compilations are counted by a backend that counts the graphs it is given (``torch.compile`` hands
one graph to the backend per compilation); ``eager``/``aot_eager``-style backends keep the tests
fast (inductor's C++ compile is slow on a CPU), and one inductor run checks the real compiler.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from weditlib import DenseShift, LowRankShift, RowScaledShift, edit, make_editable
from weditlib.peft import BASE, LoraAdapters

#: 8 batch sizes (none equal to a static size of the models below at the first call: dynamo
#: "duck-sizes" a batch equal to the channel count into one symbol and specialises both)
BATCHES = (5, 11, 2, 13, 7, 16, 9, 23)
#: 12 random index patterns at one batch size
PATTERNS = 12
SHIFTS = 4


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: dynamo caches per code object (a module class's
    ``forward``), across ``torch.compile`` calls and instances."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class CountingBackend:
    """A ``torch.compile`` backend that runs graphs eagerly and counts them."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs):
        self.graphs += 1
        return graph.forward


def transformer() -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(12, 2, 24, dropout=0.0, batch_first=True).eval()
    return layer, make_editable(layer, ["self_attn", "linear1", "linear2"])


def mlp() -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 12)).eval()
    return model, make_editable(model, ["0", "2"])


def convnet() -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(8, 4, 3, stride=2, groups=2),
        nn.Flatten(2),
        nn.Conv1d(4, 6, 3, padding=2, dilation=2, padding_mode="reflect"),
    ).eval()
    return model, make_editable(model, ["0", "2", "4"])


def low_rank(shapes, mode="add", bias=True):
    g = torch.Generator().manual_seed(1)
    return {
        name: LowRankShift(
            0.1 * torch.randn(SHIFTS, n, 2, generator=g),
            torch.randn(SHIFTS, 2, k, generator=g),
            mode=mode,
            bias=torch.randn(SHIFTS, n, generator=g) if bias else None,
        )
        for name, (n, k) in shapes.items()
    }


def dense(shapes):
    g = torch.Generator().manual_seed(1)
    return {
        name: DenseShift(0.1 * torch.randn(SHIFTS, n, k, generator=g))
        for name, (n, k) in shapes.items()
    }


def row_scaled(shapes):
    g = torch.Generator().manual_seed(2)
    return {
        name: RowScaledShift(delta, torch.rand(SHIFTS, delta.out_features, generator=g) + 0.5)
        for name, delta in low_rank(shapes).items()
    }


MODELS = {"transformer": transformer, "mlp": mlp, "conv": convnet}


def inputs(model_kind: str, batch: int, generator: torch.Generator) -> torch.Tensor:
    if model_kind in ("transformer", "mlp"):
        return torch.randn(batch, 6, 12, generator=generator)
    return torch.randn(batch, 3, 9, 9, generator=generator)


def calls(full: bool = True):
    """(x's batch size, index) of 8 batch sizes, then 12 random patterns at batch size 10 (half
    of each when not ``full``: the other shift kinds run the same traced path, at less cost)."""
    g = torch.Generator().manual_seed(3)
    sizes = list(BATCHES) + [10] * PATTERNS
    if not full:
        sizes = list(BATCHES[:4]) + [10] * (PATTERNS // 2)
    return [(b, torch.randint(0, SHIFTS, (b,), generator=g)) for b in sizes]


CASES = {
    "low-rank": ("transformer", low_rank, {}),
    "low-rank scale mode": ("mlp", lambda s: low_rank(s, "scale", bias=False), {}),
    "dense": ("mlp", dense, {}),
    "row-scaled": ("mlp", row_scaled, {}),
    "materialised": ("mlp", low_rank, {"materialise": True}),
    "conv low-rank and dense": ("conv", lambda s: {**low_rank(s), **dense({"2": s["2"]})}, {}),
}


@pytest.mark.parametrize("case", CASES)
def test_one_compilation_serves_every_batch_size_and_index_pattern(case):
    model_kind, make_shifts, options = CASES[case]
    model, shapes = MODELS[model_kind]()
    shifts = make_shifts(shapes)
    backend = CountingBackend()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    g = torch.Generator().manual_seed(4)
    full = case == "low-rank"
    for batch, index in calls(full):
        x = inputs(model_kind, batch, g)
        with torch.no_grad(), edit(model, shifts, index, **options):
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    # (a convolution compiles once more across batch sizes 15 and 16, edited or not: torch's
    # CPU conv guards on b <= 15 to pick a memory format; these conv calls stay below)
    assert backend.graphs == 1


def test_sorted_equal_groups_take_a_second_graph_and_no_more():
    model, shapes = mlp()
    shifts = low_rank(shapes)
    backend = CountingBackend()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    g = torch.Generator().manual_seed(4)
    # c samples per shift; the first b is no static size of the model (duck sizing)
    uniform = [(SHIFTS * c, torch.arange(SHIFTS * c) // c) for c in (5, 2, 1)]
    for batch, index in uniform + calls(full=False) + uniform:
        x = inputs("mlp", batch, g)
        with torch.no_grad(), edit(model, shifts, index):
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    assert backend.graphs == 2  # grouped products on a view, and gathered per sample


def test_without_dynamic_the_second_batch_size_compiles_once_more_then_none():
    model, shapes = transformer()
    shifts = low_rank(shapes)
    backend = CountingBackend()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    g = torch.Generator().manual_seed(4)
    for batch, index in calls():
        with torch.no_grad(), edit(model, shifts, index):
            compiled(inputs("transformer", batch, g))
    assert backend.graphs == 2  # static first, then dynamic: as for the unedited model


def test_mixed_dora_and_lora_adapters_compile_once_for_every_batch(tmp_path):
    model, _ = transformer()
    g = torch.Generator().manual_seed(5)

    def state(rank, dora):
        out = {}
        for path, (n, k) in {"linear1": (24, 12), "linear2": (12, 24)}.items():
            prefix = f"base_model.model.{path}"
            out[f"{prefix}.lora_A.weight"] = torch.randn(rank, k, generator=g)
            out[f"{prefix}.lora_B.weight"] = 0.1 * torch.randn(n, rank, generator=g)
            if dora:
                out[f"{prefix}.lora_magnitude_vector"] = torch.rand(n, generator=g) + 0.5
        return out

    def config(rank, dora):
        return {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "use_dora": dora}

    sources = {f"a{i}": (config(i + 1, i % 2 == 0), state(i + 1, i % 2 == 0)) for i in range(3)}
    adapters = LoraAdapters.load(model, sources)
    backend = CountingBackend()
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=backend)
    choices = [*sources, BASE]
    for batch, index in calls():
        names = [choices[i] for i in index.tolist()]
        x = inputs("transformer", batch, g)
        with torch.no_grad(), adapters.edit(model, names):
            torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    # the number of adapters in a batch (l) varies too; a batch that happens to hold its
    # adapters in equal sorted groups takes the grouped graph
    assert backend.graphs <= 2


def test_compiled_training_gives_eager_gradients():
    model, shapes = mlp()
    model.double()
    shifts = {
        name: LowRankShift(
            delta.up.double().requires_grad_(), delta.down.double(), bias=delta.bias.double()
        )
        for name, delta in low_rank(shapes).items()
    }
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="aot_eager")
    x = torch.randn(7, 6, 12, dtype=torch.float64)  # (b, t, k)
    index = torch.tensor([3, 0, 1, 1, 2, 0, 3])
    grads = []
    for run in (compiled, model):
        for delta in shifts.values():
            delta.up.grad = None
        with edit(model, shifts, index):
            run(x).square().sum().backward()
        grads.append([delta.up.grad.clone() for delta in shifts.values()])
    for ours, eager in zip(*grads, strict=True):
        torch.testing.assert_close(ours, eager, rtol=1e-10, atol=1e-10)


def test_inductor_compiles_an_edited_linear_once_for_two_batch_sizes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8))
    make_editable(model, ["0"])
    shifts = {"0": LowRankShift(torch.randn(2, 8, 1), torch.randn(2, 1, 8))}
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    with torch.no_grad():
        for batch in (3, 5):
            x = torch.randn(batch, 8)
            index = torch.arange(batch) % 2
            with edit(model, shifts, index):
                torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
