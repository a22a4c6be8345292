"""make_editable on real models, and the edit context."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    EditableEntry,
    EditableLinear,
    EditableMultiheadAttention,
    Grouping,
    LowRankShift,
    MultiBranchShiftGenerator,
    edit,
    edited_call,
    edited_linear,
    editing,
    make_editable,
    register_editable,
)
from weditlib.layers import EditableMixin


def decoder(batch_first: bool) -> nn.TransformerDecoder:
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=batch_first)
    return nn.TransformerDecoder(layer, num_layers=2).double().eval()


def test_make_editable_on_a_transformer_decoder_names_and_shapes():
    model = decoder(batch_first=True)
    names = make_editable(model, ["layers.*.multihead_attn.in_proj", "layers.1.linear2"])
    assert names == {
        "layers.0.multihead_attn.in_proj": (48, 16),
        "layers.1.multihead_attn.in_proj": (48, 16),
        "layers.1.linear2": (16, 32),
    }
    assert isinstance(model.layers[0].multihead_attn, EditableMultiheadAttention)
    assert not isinstance(model.layers[0].self_attn, EditableMultiheadAttention)
    assert isinstance(model.layers[1].linear2, EditableLinear)
    assert not isinstance(model.layers[0].linear2, EditableLinear)


def test_make_editable_shares_parameters_and_keeps_state_dict_keys():
    model = decoder(batch_first=True)
    before = {name: p for name, p in model.named_parameters()}
    keys = set(model.state_dict())
    make_editable(model, ["layers.*"])
    after = dict(model.named_parameters())
    assert set(model.state_dict()) == keys
    assert all(after[name] is before[name] for name in before)


@pytest.mark.parametrize("batch_first", [True, False])
def test_edited_decoder_equals_per_sample_weight_copies(batch_first):
    base = decoder(batch_first)
    model = copy.deepcopy(base)
    names = make_editable(model, ["layers.*.multihead_attn", "layers.*.linear1"])
    torch.manual_seed(1)
    shifts = {
        n: DenseShift(0.05 * torch.randn(2, *s, dtype=torch.float64)) for n, s in names.items()
    }
    index = torch.tensor([0, 1, 1])
    tgt, memory = (
        torch.randn(3, 5, 16, dtype=torch.float64),
        torch.randn(3, 7, 16, dtype=torch.float64),
    )
    layout = (lambda t: t) if batch_first else (lambda t: t.transpose(0, 1))
    with edit(model, shifts, index=index):
        y = layout(model(layout(tgt), layout(memory)))
    for b in range(3):
        clone = copy.deepcopy(base)
        params = dict(clone.named_parameters())
        with torch.no_grad():
            for name, delta in shifts.items():
                key = name.replace(".in_proj", ".in_proj_weight")
                key = key if key.endswith("_weight") else key + ".weight"
                params[key] += delta.weight[index[b]]
        expected = layout(clone(layout(tgt[b : b + 1]), layout(memory[b : b + 1])))
        torch.testing.assert_close(y[b], expected[0])
    # leaving the context restores the base model exactly
    assert torch.equal(model(layout(tgt), layout(memory)), base(layout(tgt), layout(memory)))


def test_make_editable_on_a_model_with_nested_attention():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.ModuleDict({"inner": nn.MultiheadAttention(8, 2, batch_first=True)})
            self.proj = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))

        def forward(self, x):
            h, _ = self.attention["inner"](x, x, x)
            return self.proj(h)

    model = nn.Sequential(Block(), Block().proj[0].__class__(4, 4))
    names = make_editable(model, ["0.attention.inner.out_proj", "0.proj.2", "1"])
    assert names == {
        "0.attention.inner.out_proj": (8, 8),
        "0.proj.2": (4, 8),
        "1": (4, 4),
    }
    x = torch.randn(2, 3, 8)
    shifts = {n: DenseShift(torch.zeros(2, *s)) for n, s in names.items()}
    with edit(model, shifts):
        y = model(x)
    assert torch.allclose(y, model(x), atol=1e-6)


def test_make_editable_is_idempotent_and_extends_selection():
    model = decoder(batch_first=True)
    first = make_editable(model, ["layers.0.linear1"])
    second = make_editable(model, ["layers.0.linear1", "layers.1.linear1"])
    assert list(first) == ["layers.0.linear1"]
    assert list(second) == ["layers.0.linear1", "layers.1.linear1"]


def test_a_pattern_that_selects_nothing_is_an_error():
    model = decoder(batch_first=True)
    with pytest.raises(ValueError, match=r"targets \['layers.\*.cross_attn'\] select no"):
        make_editable(model, ["layers.*.linear1", "layers.*.cross_attn"])
    with pytest.raises(TypeError, match="sequence of glob patterns"):
        make_editable(model, "layers.*")


def test_edit_restores_the_base_model_when_the_forward_raises():
    model = decoder(batch_first=True)
    names = make_editable(model, ["layers.0.linear1"])
    shifts = {n: DenseShift(torch.ones(2, *s, dtype=torch.float64)) for n, s in names.items()}
    with pytest.raises(ValueError), edit(model, shifts):
        assert model.layers[0].linear1.active_shifts
        model(
            torch.randn(3, 5, 16, dtype=torch.float64), torch.randn(3, 5, 16, dtype=torch.float64)
        )
    assert model.layers[0].linear1.active_shifts == {}
    assert torch.backends.mha.get_fastpath_enabled()


def test_edit_rejects_unknown_names_and_inconsistent_counts():
    model = decoder(batch_first=True)
    names = make_editable(model, ["layers.*.linear1"])
    unknown = {"layers.0.linear9": DenseShift(torch.zeros(1, 32, 16))}
    with pytest.raises(KeyError, match="not editable weights"), edit(model, unknown):
        pass
    a, b = list(names)
    with (
        pytest.raises(ValueError, match="same number l of shifts"),
        edit(model, {a: DenseShift(torch.zeros(1, 32, 16)), b: DenseShift(torch.zeros(2, 32, 16))}),
    ):
        pass


def test_edit_with_a_prebuilt_grouping_equals_edit_with_its_index():
    model = decoder(batch_first=True)
    (name,) = make_editable(model, ["layers.0.linear1"])
    shifts = {name: DenseShift(torch.randn(3, 32, 16, dtype=torch.float64))}
    index = torch.tensor([2, 0, 2, 1])
    grouping = Grouping.from_index(index, 3, None)
    x = torch.randn(4, 5, 16, dtype=torch.float64)
    memory = torch.randn(4, 6, 16, dtype=torch.float64)
    with edit(model, shifts, index):
        expected = model(x, memory)
    with edit(model, shifts, grouping=grouping):
        assert model.layers[0].linear1.active_shifts[""][1] is grouping  # shared, not rebuilt
        torch.testing.assert_close(model(x, memory), expected, rtol=0, atol=0)


def test_edit_rejects_a_grouping_that_does_not_fit_the_shifts():
    model = decoder(batch_first=True)
    (name,) = make_editable(model, ["layers.0.linear1"])
    shifts = {name: DenseShift(torch.zeros(2, 32, 16))}
    index = torch.tensor([0, 1, 1])
    cases = [
        (ValueError, "not both", dict(index=index, grouping=Grouping.from_index(index, 2, None))),
        (ValueError, "grouping is for l=3 shifts; the shifts hold 2",
         dict(grouping=Grouping.from_index(index, 3, None))),
        (TypeError, "grouping must be a Grouping or None, got Tensor", dict(grouping=index)),
        (ValueError, "grouping is on meta but the shifts are on cpu",
         dict(grouping=Grouping.from_index(index, 2, None).to("meta"))),
    ]  # fmt: skip
    for error, message, arguments in cases:
        with pytest.raises(error, match=message), edit(model, shifts, **arguments):
            pass


def test_nested_edits_restore_the_outer_shift():
    model = decoder(batch_first=True)
    (name,) = make_editable(model, ["layers.0.linear1"])
    outer = {name: DenseShift(torch.zeros(1, 32, 16, dtype=torch.float64))}
    inner = {name: DenseShift(torch.ones(1, 32, 16, dtype=torch.float64))}
    layer = model.layers[0].linear1
    with edit(model, outer):
        with edit(model, inner):
            assert layer.active_shifts[""][0] is inner[name]
        assert layer.active_shifts[""][0] is outer[name]
    assert layer.active_shifts == {}


def test_encoder_fast_path_cannot_bypass_an_edit():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
    base = copy.deepcopy(model)
    names = make_editable(model, ["layers.0.self_attn.in_proj"])
    shift = {n: DenseShift(torch.randn(2, *s)) for n, s in names.items()}
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        edited = edited_call(model, shift, x)
        assert not torch.allclose(edited, base(x))
        clone = copy.deepcopy(base)
        clone.layers[0].self_attn.in_proj_weight += shift["layers.0.self_attn.in_proj"].weight[1]
        torch.testing.assert_close(edited[1], clone(x[1:2])[0], atol=1e-5, rtol=1e-5)


def test_generator_shifts_leave_the_model_unchanged_at_initialisation():
    model = decoder(batch_first=True)
    names = make_editable(model, ["layers.*.multihead_attn", "layers.*.linear2"])
    for rank in (None, 3):
        generator = MultiBranchShiftGenerator(6, names, hidden_dim=12, rank=rank).double()
        tgt, memory = (
            torch.randn(4, 5, 16, dtype=torch.float64),
            torch.randn(4, 3, 16, dtype=torch.float64),
        )
        shifts = generator(torch.randn(2, 6, dtype=torch.float64))
        kind = DenseShift if rank is None else LowRankShift
        assert all(isinstance(d, kind) and d.num_shifts == 2 for d in shifts.values())
        with edit(model, shifts, index=torch.tensor([0, 1, 1, 0])):
            y = model(tgt, memory)
        torch.testing.assert_close(y, model(tgt, memory))


# the wrapping table ---------------------------------------------------------------------------


class Scaler(nn.Module):
    """A custom layer type with a weight: y = x Wᵀ (no bias)."""

    def __init__(self, k: int, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, k))

    def forward(self, x):
        return x @ self.weight.T


class EditableScaler(EditableMixin, Scaler):
    @classmethod
    def from_module(cls, base: Scaler) -> EditableScaler:
        module = cls.__new__(cls)
        module.__dict__.update({k: dict(v) if isinstance(v, dict) else v
                                for k, v in base.__dict__.items()})  # fmt: skip
        module.editable_weights = {"": tuple(module.weight.shape)}
        module._init_edit_state()
        return module

    def forward(self, x):
        active = self._active_shift("")
        if active is None:
            return super().forward(x)
        delta, grouping = active
        return edited_linear(x, self.weight, None, delta, grouping=grouping)


def test_register_editable_makes_a_custom_layer_type_editable(monkeypatch):
    monkeypatch.setattr(editing, "_TABLE", list(editing._TABLE))
    register_editable(EditableEntry(Scaler, EditableScaler))
    model = nn.Sequential(Scaler(3, 2))
    assert make_editable(model, ["0"]) == {"0": (2, 3)}
    x, shift = torch.randn(2, 3), torch.randn(2, 2, 3)
    with edit(model, {"0": DenseShift(shift)}):
        y = model(x)
    for b in range(2):
        torch.testing.assert_close(y[b], x[b] @ (model[0].weight + shift[b]).T)


def test_an_entry_for_an_optional_package_does_not_match_until_it_is_imported():
    entry = EditableEntry("weditlib_absent_package.layers:Thing", "weditlib_absent_package:Ed")
    assert not entry.matches(nn.Linear(2, 2))


def test_making_a_model_editable_does_not_import_transformers():
    code = (
        "import sys, torch, weditlib; m = torch.nn.Sequential(torch.nn.Linear(2, 2)); "
        "weditlib.make_editable(m, ['0']); assert 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# batch dims -------------------------------------------------------------------------------------


def test_linears_of_a_sequence_first_torch_transformer_layer_get_batch_dim_1():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=False)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    make_editable(model, ["layers.*.linear1", "layers.0.linear2"])
    assert model.layers[0].linear1.batch_dim == 1 and model.layers[0].linear2.batch_dim == 1


def test_a_sequence_first_attention_outside_torch_layers_needs_an_explicit_batch_dim():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = nn.MultiheadAttention(8, 2)  # sequence first
            self.proj = nn.Linear(8, 8)

    with pytest.raises(ValueError, match=r"cannot tell the batch dim .*'0\.proj'.*batch_dim="):
        make_editable(nn.Sequential(Block()), ["0.proj"])
    model = nn.Sequential(Block())
    make_editable(model, ["0.proj"], batch_dim=1)
    assert model[0].proj.batch_dim == 1


def test_batch_dim_mapping_sets_each_layer_by_pattern_first_match_wins():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    make_editable(model, ["*"], batch_dim={"0": 1, "[01]": 2})
    assert [layer.batch_dim for layer in model] == [1, 2, 0]


def test_a_batch_dim_pattern_that_matches_no_layer_is_an_error():
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"batch_dim patterns \['enc\.\*'\] match no layer"):
        make_editable(model, ["0"], batch_dim={"enc.*": 1})


@pytest.mark.parametrize(
    ("batch_dim", "error", "message"),
    [
        ("1", TypeError, "batch_dim must be an int"),
        (True, TypeError, "batch_dim must be an int"),
        (-1, ValueError, "batch_dim must be >= 0"),
        ({"0": 1.0}, TypeError, r"batch_dim\['0'\] must be an int"),
    ],
)
def test_a_batch_dim_of_the_wrong_type_or_value_is_an_error(batch_dim, error, message):
    with pytest.raises(error, match=message):
        make_editable(nn.Sequential(nn.Linear(4, 4)), ["0"], batch_dim=batch_dim)


def test_a_linear_with_the_batch_dim_at_1_equals_per_sample_weight_copies():
    model = nn.Sequential(nn.Linear(4, 3)).double()
    make_editable(model, ["0"], batch_dim={"0": 1})
    x = torch.randn(5, 2, 4, dtype=torch.float64)  # (t, b, k)
    shift = torch.randn(2, 3, 4, dtype=torch.float64)
    with edit(model, {"0": DenseShift(shift)}):
        y = model(x)
    for b in range(2):
        expected = nn.functional.linear(x[:, b], model[0].weight + shift[b], model[0].bias)
        torch.testing.assert_close(y[:, b], expected)


# printing -------------------------------------------------------------------------------------


def test_print_shows_editable_and_selected_weights_and_the_batch_dim():
    model = nn.Sequential(nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 4))
    make_editable(model, ["0.out_proj", "1"], batch_dim=0)
    text = str(model)
    assert "batch_first=True, editable(in_proj=24x8, out_proj*=8x8; *selected)" in text
    assert "out_features=4, bias=True, batch_dim=0, editable(weight*=4x8; *selected)" in text


def test_asking_an_already_editable_layer_for_another_batch_dim_is_an_error():
    model = nn.Sequential(nn.Linear(4, 4))
    make_editable(model, ["0"])
    with pytest.raises(
        ValueError, match="editable already with batch_dim=0; batch_dim= asks for 1"
    ):
        make_editable(model, ["0"], batch_dim=1)


def test_a_failing_make_editable_leaves_the_model_unchanged():
    model = nn.Sequential(
        nn.Linear(8, 8), nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)
    )
    with pytest.raises(ValueError, match="add_bias_kv"):
        make_editable(model, ["0", "1"])
    assert type(model[0]) is nn.Linear and type(model[1]) is nn.MultiheadAttention
