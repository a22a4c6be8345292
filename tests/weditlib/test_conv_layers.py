"""EditableConv1d / EditableConv2d equal their base modules, and equal per-sample weight copies
when edited (directly, through make_editable/edit, and inside diffusers / transformers models)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import weditlib
from weditlib import (
    DenseShift,
    EditableConv1d,
    EditableConv2d,
    LowRankShift,
    edit,
    make_editable,
    merge,
    unmerge,
)

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def bake_(module: nn.Module, delta, shift: int) -> None:
    """Write shift number ``shift`` into ``module``'s weight (any shape, flattened to ``(n, k)``)
    and bias (created when the module has none)."""
    with torch.no_grad():
        flat = module.weight.view(module.weight.shape[0], -1)
        change = delta.matrix()[shift]
        flat.copy_(flat + change if delta.mode == "add" else flat * (1 + change))
        if delta.bias is not None and module.bias is None:
            module.bias = nn.Parameter(delta.bias[shift].clone())
        elif delta.bias is not None:
            module.bias += delta.bias[shift]


def baked_copy(base: nn.Module, delta, shift: int) -> nn.Module:
    """A deep copy of ``base`` with shift number ``shift`` baked in."""
    copy_ = copy.deepcopy(base)
    bake_(copy_, delta, shift)
    return copy_


def random_shift(shape: tuple[int, int], count: int, low_rank: bool, bias: bool, mode="add"):
    n, k = shape
    bias_shift = 0.1 * torch.randn(count, n) if bias else None
    if low_rank:
        return LowRankShift(
            0.1 * torch.randn(count, n, 2), torch.randn(count, 2, k), mode, bias=bias_shift
        )
    return DenseShift(0.1 * torch.randn(count, n, k), mode, bias=bias_shift)


@pytest.mark.parametrize("cls", [EditableConv1d, EditableConv2d])
def test_from_module_shares_parameters_and_state_dict_keys(cls):
    base = (nn.Conv1d if cls is EditableConv1d else nn.Conv2d)(4, 6, 3, groups=2)
    editable = cls.from_module(base)
    assert editable.weight is base.weight and editable.bias is base.bias
    assert set(editable.state_dict()) == set(base.state_dict())
    assert editable.editable_weights == {"": (6, 2 * 3 ** (base.weight.dim() - 2))}


def test_from_module_rejects_other_modules():
    with pytest.raises(TypeError, match=r"base must be an nn\.Conv2d, got Conv1d"):
        EditableConv2d.from_module(nn.Conv1d(2, 2, 1))
    with pytest.raises(TypeError, match=r"base must be an nn\.Conv1d, got Linear"):
        EditableConv1d.from_module(nn.Linear(2, 2))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_without_shift_is_bit_identical(padding_mode):
    conv2d = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding="valid", padding_mode=padding_mode)
    conv1d = nn.Conv1d(3, 4, 3, padding="same", dilation=2, padding_mode=padding_mode)
    x2, x1 = torch.randn(2, 3, 7, 6), torch.randn(2, 3, 9)
    assert torch.equal(EditableConv2d.from_module(conv2d)(x2), conv2d(x2))
    assert torch.equal(EditableConv1d.from_module(conv1d)(x1), conv1d(x1))
    assert torch.equal(EditableConv1d.from_module(conv1d)(x1[0]), conv1d(x1[0]))  # unbatched


def test_built_directly_it_is_an_nn_conv():
    layer = EditableConv2d(3, 8, 3, padding=1, bias=False, padding_mode="circular")
    assert isinstance(layer, nn.Conv2d) and layer.bias is None
    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(layer(x), nn.Conv2d.forward(layer, x))
    assert "editable(weight*=8x27" in repr(layer) and "padding_mode=circular" in repr(layer)


@pytest.mark.parametrize("low_rank", [False, True])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_call_time_shift_equals_per_sample_weight_copies(low_rank, padding_mode):
    base = nn.Conv2d(4, 6, 3, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2,
                     padding_mode=padding_mode)  # fmt: skip
    layer = EditableConv2d.from_module(base)
    x = torch.randn(5, 4, 7, 8)
    delta = random_shift(layer.editable_weights[""], 3, low_rank, bias=True)
    index = torch.tensor([2, 0, 2, 1, 0])
    y = layer(x, delta, index)
    for b in range(5):
        expected = baked_copy(base, delta, int(index[b]))(x[b : b + 1])
        torch.testing.assert_close(y[b : b + 1], expected, atol=1e-5, rtol=1e-5)


def test_edit_context_edits_conv1d_and_conv2d_of_any_model():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.SiLU(),
        nn.Flatten(2),  # (b, 4, h·w): a 1-d signal per channel
        nn.Conv1d(4, 2, 3, padding=1, padding_mode="reflect", bias=False),
    )
    reference = copy.deepcopy(model)
    weights = make_editable(model, ["0", "3"])
    assert weights == {"0": (4, 27), "3": (2, 12)}
    assert isinstance(model[0], EditableConv2d) and isinstance(model[3], EditableConv1d)
    shifts = {
        "0": random_shift(weights["0"], 2, low_rank=True, bias=True),
        "3": random_shift(weights["3"], 2, low_rank=False, bias=True, mode="scale"),
    }
    x = torch.randn(3, 3, 4, 4)
    index = torch.tensor([1, 1, 0])
    with edit(model, shifts, index=index):
        y = model(x)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)  # back to the base
    for b in range(3):
        copy_ = copy.deepcopy(reference)
        copy_[0] = baked_copy(reference[0], shifts["0"], int(index[b]))
        copy_[3] = baked_copy(reference[3], shifts["3"], int(index[b]))
        torch.testing.assert_close(y[b : b + 1], copy_(x[b : b + 1]), atol=1e-5, rtol=1e-5)


def test_merge_bakes_one_shift_into_the_kernel_and_unmerge_restores_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate"))
    original = [p.detach().clone() for p in model[0].parameters()]
    weights = make_editable(model, ["0"])
    shifts = {"0": random_shift(weights["0"], 3, low_rank=True, bias=True)}
    x = torch.randn(2, 3, 5, 5)
    with edit(model, shifts, index=torch.tensor([2, 2])):
        edited = model(x)
    merge(model, shifts, 2)
    torch.testing.assert_close(model(x), edited, atol=1e-5, rtol=1e-5)
    unmerge(model)
    assert all(torch.equal(p, o) for p, o in zip(model[0].parameters(), original, strict=True))


def test_a_shift_on_an_unbatched_input_is_a_named_error():
    layer = EditableConv1d(2, 3, 3)
    with pytest.raises(ValueError, match=r"x must be a batch \(b, c_in, \*s\)"):
        layer(torch.randn(2, 9), DenseShift(torch.randn(1, 3, 6)))


def per_sample_copies_agree(model: nn.Module, names: dict, run, batch: int, **inputs):
    """Edit every selected weight of ``model`` with random per-listener shifts; each sample must
    equal a deep copy of the base model with its shift baked into every weight."""
    reference = copy.deepcopy(model)
    modules = dict(reference.named_modules())
    shifts = {
        name: random_shift(shape, 2, low_rank=i % 2 == 1, bias=modules[name].bias is not None)
        for i, (name, shape) in enumerate(names.items())
    }
    index = torch.tensor([1, 0, 1][:batch])
    with torch.no_grad(), edit(model, shifts, index=index):
        y = run(model, **inputs)
    for b in range(batch):
        baked = copy.deepcopy(reference)
        for name, delta in shifts.items():
            bake_(baked.get_submodule(name), delta, int(index[b]))
        with torch.no_grad():
            sample = {key: value[b : b + 1] for key, value in inputs.items()}
            torch.testing.assert_close(y[b : b + 1], run(baked, **sample), atol=1e-4, rtol=1e-4)


def test_diffusers_unet2d_convs_and_linears_edit_per_sample():
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (dev extra)")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4,
    ).eval()  # fmt: skip
    names = make_editable(unet, ["*"])
    kinds = {type(unet.get_submodule(name)) for name in names}
    assert kinds == {EditableConv2d, weditlib.EditableLinear}
    assert "conv_in" in names and "mid_block.attentions.0.to_q" in names

    def run(model, sample, timestep):
        return model(sample, timestep).sample

    per_sample_copies_agree(
        unet, names, run, 3, sample=torch.randn(3, 3, 8, 8), timestep=torch.tensor([3, 50, 7])
    )


def test_transformers_vit_patch_embedding_edits_per_sample():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32,
    )  # fmt: skip
    vit = transformers.ViTModel(config).eval()
    names = make_editable(vit, ["embeddings.patch_embeddings.projection"])
    assert names == {"embeddings.patch_embeddings.projection": (16, 48)}

    def run(model, pixel_values):
        return model(pixel_values=pixel_values).last_hidden_state

    per_sample_copies_agree(vit, names, run, 3, pixel_values=torch.randn(3, 3, 8, 8))
