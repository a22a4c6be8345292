"""Shifts written as PEFT adapter directories: PeftModel.from_pretrained reproduces the edit."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    LowRankShift,
    MultiBranchShiftGenerator,
    RowScaledShift,
    edit,
    make_editable,
)
from weditlib.peft import LoraAdapters, export_adapter, export_adapters

peft = pytest.importorskip("peft", reason="PEFT is not installed: pip install weditlib[peft]")
from peft import PeftModel  # noqa: E402

from tests.weditlib.test_peft_interop import ConvNet, Mlp  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*lora_bias=True. was passed but the targeted layer",  # "down" has no bias
    "ignore:Adapter .*invalid shape",
)


def edited_rows(model, shifts, x) -> torch.Tensor:
    """Each row of ``x`` through ``model`` under the shift of the same row."""
    with torch.no_grad(), edit(model, shifts, torch.arange(x.shape[0])):
        return model(x)


def peft_output(base, directory, x) -> torch.Tensor:
    with torch.no_grad():
        return PeftModel.from_pretrained(copy.deepcopy(base), directory).eval()(x)


def assert_relative(got, expected, tolerance):
    error = ((got - expected).norm() / expected.norm()).item()
    assert error <= tolerance, f"relative error {error:.2e} > {tolerance:.0e}"


def generated_shifts(model, bias_shifts: bool, users: int = 3):
    """A generator's low-rank shifts (ranks differ per layer) for ``users`` random styles, made
    non-zero (a fresh generator's heads are zero)."""
    shapes = make_editable(model, ["up", "down", "head"])
    torch.manual_seed(3)
    generator = MultiBranchShiftGenerator(8, shapes, rank=4, bias_shifts=bias_shifts)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        shifts = generator(torch.randn(users, 8))
    for name, rank in (("down", 2), ("head", 3)):  # layers of different ranks
        delta = shifts[name]
        shifts[name] = delta.replace(up=delta.up[..., :rank], down=delta.down[:, :rank])
    return shifts


@pytest.mark.parametrize("bias_shifts", [False, True])
def test_exported_rows_reproduce_the_edited_model_in_peft(tmp_path, bias_shifts):
    torch.manual_seed(0)
    base = Mlp().eval()
    model = copy.deepcopy(base)
    shifts = generated_shifts(model, bias_shifts)
    x = torch.randn(3, 4, 12)
    expected = edited_rows(model, shifts, x)
    assert not torch.allclose(expected, base(x), atol=1e-3)  # the shifts do something
    exports = export_adapters(tmp_path, model, shifts, {"ann": 0, "ben": 1, "cat": 2})
    for row, name in enumerate(["ann", "ben", "cat"]):
        got = peft_output(base, tmp_path / name, x[row : row + 1])
        assert_relative(got, expected[row : row + 1], 1e-6)
        assert exports[name].ranks == {"up": 4, "down": 2, "head": 3}
        assert exports[name].relative_errors == dict.fromkeys(["up", "down", "head"], 0.0)
        assert exports[name].lora_bias == bias_shifts
    config = json.loads((tmp_path / "ann/adapter_config.json").read_text())
    assert config["r"] == 4 and config["rank_pattern"] == {"^down": 2, "^head": 3}
    # weditlib's own loader reads them back to the same edit
    again = copy.deepcopy(base)
    adapters = LoraAdapters.load(again, {n: tmp_path / n for n in ["ann", "ben", "cat"]})
    with torch.no_grad(), adapters.edit(again, ["ann", "ben", "cat"]):
        assert_relative(again(x), expected, 1e-6)


def test_row_scaled_shifts_export_as_dora_adapters(tmp_path):
    torch.manual_seed(0)
    base = ConvNet().eval()
    model = copy.deepcopy(base)
    shapes = make_editable(model, ["conv2", "conv1", "head"])
    g = torch.Generator().manual_seed(1)
    shifts = {
        name: RowScaledShift(
            LowRankShift(
                0.3 * torch.randn(2, n, 2, generator=g), 0.3 * torch.randn(2, 2, k, generator=g)
            ),
            torch.rand(2, n, generator=g) + 0.5,
        )
        for name, (n, k) in shapes.items()
    }
    x = torch.randn(2, 3, 8, 8)
    expected = edited_rows(model, shifts, x)
    for row in range(2):
        export = export_adapter(tmp_path / f"u{row}", model, shifts, row)
        assert export.use_dora
        got = peft_output(base, tmp_path / f"u{row}", x[row : row + 1])
        assert_relative(got, expected[row : row + 1], 1e-6)


def test_gpt2_conv1d_shifts_export_with_fan_in_fan_out(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers ships with peft")
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=4)
    torch.manual_seed(0)
    base = transformers.GPT2LMHeadModel(config).eval()
    model = copy.deepcopy(base)
    shapes = make_editable(model, ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_fc"])
    g = torch.Generator().manual_seed(1)
    shifts = {
        name: LowRankShift(
            0.1 * torch.randn(1, n, 3, generator=g), 0.1 * torch.randn(1, 3, k, generator=g)
        )
        for name, (n, k) in shapes.items()
    }
    tokens = torch.randint(0, 64, (1, 6))
    with torch.no_grad(), edit(model, shifts):
        expected = model(input_ids=tokens).logits
    export_adapter(tmp_path, model, shifts)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["fan_in_fan_out"]
    with torch.no_grad():
        got = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path)(input_ids=tokens).logits
    assert_relative(got, expected, 1e-6)


def test_dense_shifts_are_refused_unless_a_truncated_svd_is_asked_for(tmp_path):
    torch.manual_seed(0)
    base = Mlp().eval()
    model = copy.deepcopy(base)
    shapes = make_editable(model, ["up", "head"])
    g = torch.Generator().manual_seed(1)
    shifts = {
        "up": DenseShift(0.1 * torch.randn(1, *shapes["up"], generator=g)),
        "head": LowRankShift(
            0.1 * torch.randn(1, 5, 2, generator=g), torch.randn(1, 2, 12, generator=g)
        ),
    }
    with pytest.raises(ValueError, match=r"shift 'up' is a dense shift.*pass svd_rank=r"):
        export_adapter(tmp_path / "refused", model, shifts)
    truncated = export_adapter(tmp_path / "r4", model, shifts, svd_rank=4)
    assert truncated.ranks["up"] == 4 and 0.1 < truncated.relative_errors["up"] < 1
    assert truncated.relative_errors["head"] == 0.0  # low-rank shifts are written as they are
    full = export_adapter(tmp_path / "full", model, shifts, svd_rank=12)
    assert full.relative_errors["up"] < 1e-6
    x = torch.randn(1, 12)
    assert_relative(peft_output(base, tmp_path / "full", x), edited_rows(model, shifts, x), 1e-5)


def test_scale_mode_shifts_need_an_svd_too(tmp_path):
    model = Mlp()
    make_editable(model, ["up"])
    shift = LowRankShift(torch.randn(1, 24, 1), torch.randn(1, 1, 12), mode="scale")
    with pytest.raises(ValueError, match=r"shift 'up' is a mode='scale' shift"):
        export_adapter(tmp_path, model, {"up": shift})
    assert export_adapter(tmp_path, model, {"up": shift}, svd_rank=2).ranks == {"up": 2}


def test_unexportable_shifts_are_refused_with_the_reason(tmp_path):
    attention = nn.Sequential(nn.MultiheadAttention(8, 2, batch_first=True))
    make_editable(attention, ["0.out_proj"])
    shift = LowRankShift(torch.zeros(1, 8, 1), torch.zeros(1, 1, 8))
    with pytest.raises(TypeError, match=r"'out_proj' weight of a EditableMultiheadAttention"):
        export_adapter(tmp_path, attention, {"0.out_proj": shift})
    model = Mlp()
    make_editable(model, ["up"])
    biased = RowScaledShift(
        LowRankShift(torch.zeros(1, 24, 1), torch.zeros(1, 1, 12), bias=torch.ones(1, 24)),
        torch.ones(1, 24),
    )
    with pytest.raises(ValueError, match="PEFT refuses lora_bias with use_dora"):
        export_adapter(tmp_path, model, {"up": biased})
    with pytest.raises(ValueError, match=r"which must be an int in \[0, 1\)"):
        export_adapter(tmp_path, model, {"up": biased.inner}, which=1)
    with pytest.raises(ValueError, match="plain directory names"):
        export_adapters(tmp_path, model, {"up": biased.inner}, {"../x": 0})
