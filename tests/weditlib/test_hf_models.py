"""make_editable on Hugging Face transformers models built from tiny configs (random weights).

Each edited model's per-sample outputs equal those of deep copies with the sample's shift baked
into the weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

transformers = pytest.importorskip(
    "transformers", reason="Hugging Face transformers is needed to build the models"
)

from weditlib import DenseShift, LowRankShift, edit, make_editable, merge, unmerge  # noqa: E402
from weditlib.layers_hf import EditableConv1D  # noqa: E402


def shifts_for(names: dict[str, tuple[int, int]], count: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    shifts = {}
    for i, (name, (n, k)) in enumerate(names.items()):
        if i % 2:
            up = torch.randn(count, n, 2, generator=generator, dtype=torch.float64)
            down = torch.randn(count, 2, k, generator=generator, dtype=torch.float64)
            shifts[name] = LowRankShift(0.1 * up, 0.1 * down)
        else:
            weight = torch.randn(count, n, k, generator=generator, dtype=torch.float64)
            shifts[name] = DenseShift(0.1 * weight)
    return shifts


def baked_copy(base: nn.Module, shifts, which: int) -> nn.Module:
    """A deep copy of ``base`` with shift number ``which`` added to each named weight."""
    clone = copy.deepcopy(base)
    with torch.no_grad():
        for name, delta in shifts.items():
            module = clone.get_submodule(name)
            shift = delta.matrix()[which]
            if isinstance(module, transformers.pytorch_utils.Conv1D):
                module.weight += shift.T  # stored (k, n)
            else:
                module.weight += shift
    return clone


def assert_equals_baked_copies(base, model, shifts, index, run):
    with edit(model, shifts, index=index):
        edited = run(model, slice(None))
    for b, which in enumerate(index.tolist()):
        expected = run(baked_copy(base, shifts, which), slice(b, b + 1))
        torch.testing.assert_close(edited[b : b + 1], expected)


def gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).double().eval()


def test_gpt2_conv1d_layers_are_editable_as_n_by_k_weights():
    model = gpt2()
    names = make_editable(model, ["transformer.h.*.attn.c_attn", "transformer.h.0.mlp.*"])
    assert names == {
        "transformer.h.0.attn.c_attn": (48, 16),
        "transformer.h.0.mlp.c_fc": (64, 16),
        "transformer.h.0.mlp.c_proj": (16, 64),
        "transformer.h.1.attn.c_attn": (48, 16),
    }
    assert isinstance(model.transformer.h[0].attn.c_attn, EditableConv1D)


def test_edited_gpt2_equals_per_sample_weight_copies():
    base = gpt2()
    model = copy.deepcopy(base)
    names = make_editable(model, ["transformer.h.*.attn.*", "transformer.h.1.mlp.c_fc"])
    shifts = shifts_for(names, count=2)
    tokens = torch.randint(0, 40, (3, 6))
    assert_equals_baked_copies(
        base, model, shifts, torch.tensor([1, 0, 1]), lambda m, s: m(tokens[s]).logits
    )


def test_merged_gpt2_equals_the_copy_with_that_shift_and_unmerges():
    base = gpt2()
    model = copy.deepcopy(base)
    shifts = shifts_for(make_editable(model, ["transformer.h.*.attn.c_attn"]), count=2)
    tokens = torch.randint(0, 40, (2, 5))
    merge(model, shifts, which=1)
    torch.testing.assert_close(model(tokens).logits, baked_copy(base, shifts, 1)(tokens).logits)
    unmerge(model)
    assert torch.equal(model(tokens).logits, base(tokens).logits)


def test_editable_conv1d_without_shift_is_bit_identical():
    base = transformers.pytorch_utils.Conv1D(6, 4)
    x = torch.randn(2, 3, 4)
    assert torch.equal(EditableConv1D.from_module(base)(x), base(x))


def test_editable_conv1d_prints_its_editable_weight():
    layer = EditableConv1D.from_module(transformers.pytorch_utils.Conv1D(6, 4))
    assert (
        repr(layer) == "EditableConv1D(nf=6, nx=4, batch_dim=0, editable(weight*=6x4; *selected))"
    )


def test_editable_conv1d_rejects_other_modules():
    with pytest.raises(TypeError, match=r"base must be a transformers\.pytorch_utils\.Conv1D"):
        EditableConv1D.from_module(nn.Linear(4, 6))


def test_edited_llama_equals_per_sample_weight_copies():
    config = transformers.LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
        attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    base = transformers.LlamaForCausalLM(config).double().eval()
    model = copy.deepcopy(base)
    names = make_editable(model, ["model.layers.*.self_attn.*", "model.layers.0.mlp.down_proj"])
    assert names["model.layers.0.self_attn.k_proj"] == (8, 16)  # one key/value head of 8
    shifts = shifts_for(names, count=3)
    tokens = torch.randint(0, 40, (3, 7))
    assert_equals_baked_copies(
        base, model, shifts, torch.tensor([2, 0, 1]), lambda m, s: m(tokens[s]).logits
    )


def test_edited_vit_equals_per_sample_weight_copies():
    config = transformers.ViTConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        image_size=8, patch_size=4, num_channels=3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    base = transformers.ViTModel(config).double().eval()
    model = copy.deepcopy(base)
    # module names differ across transformers versions: select the attention linears by type
    attention = [
        path
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear) and "attention" in path and ".0." in f".{path}."
    ]
    names = make_editable(model, attention)
    assert len(names) == 4 and all(shape == (16, 16) for shape in names.values())
    shifts = shifts_for(names, count=2)
    pixels = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert_equals_baked_copies(
        base, model, shifts, torch.tensor([1, 0]), lambda m, s: m(pixels[s]).last_hidden_state
    )


def test_editable_conv1d_with_weight_and_bias_shifts_equals_per_sample_copies():
    torch.manual_seed(0)
    base = transformers.pytorch_utils.Conv1D(6, 4).double()
    holder = nn.Sequential(EditableConv1D.from_module(copy.deepcopy(base)))
    weight = torch.randn(2, 6, 4, dtype=torch.float64)
    bias = torch.randn(2, 6, dtype=torch.float64)
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    index = torch.tensor([1, 0, 1])
    with edit(holder, {"0": DenseShift(weight, bias=bias)}, index=index):
        y = holder(x)
    for b, which in enumerate(index.tolist()):
        expected = x[b] @ (base.weight + weight[which].T) + base.bias + bias[which]
        torch.testing.assert_close(y[b], expected)


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_gpt2_with_gradient_checkpointing_has_the_shift_gradients_of_the_plain_model(reentrant):
    model = gpt2().train()  # transformers checkpoints only in training mode; dropout is 0
    names = make_editable(model, ["transformer.h.*.attn.c_attn"])
    shifts = {
        name: DenseShift((0.1 * torch.randn(2, *shape, dtype=torch.float64)).requires_grad_())
        for name, shape in names.items()
    }
    tokens = torch.randint(0, 40, (2, 6))

    def shift_gradients() -> list[torch.Tensor]:
        for delta in shifts.values():
            delta.weight.grad = None
        with edit(model, shifts):
            loss = model(tokens, labels=tokens).loss
        loss.backward()  # after the block: checkpoints recompute then
        return [delta.weight.grad for delta in shifts.values()]

    expected = shift_gradients()
    # transformers >= 5 renamed the switch; older versions only have the first name
    enable = getattr(model, "activation_checkpointing_enable", None)
    (enable or model.gradient_checkpointing_enable)({"use_reentrant": reentrant})
    for got, want in zip(shift_gradients(), expected, strict=True):
        torch.testing.assert_close(got, want)
