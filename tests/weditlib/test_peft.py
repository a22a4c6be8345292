"""weditlib.peft without PEFT installed: LoRA factors in PEFT's format, stacked as shifts.

Adapters here are hand-written state dicts in PEFT's key format; tests against the real PEFT are
in test_peft_interop.py.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weditlib import LowRankShift, edit, edited_linear
from weditlib.peft import BASE, LoraAdapters, LoraSettings

SHAPES = {"inner": (6, 5), "outer": (3, 6)}  # module path -> (n, k) of its nn.Linear


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(5, 6)
        self.outer = nn.Linear(6, 3, bias=False)
        self.norm = nn.LayerNorm(3)

    def forward(self, x):
        return self.norm(self.outer(torch.tanh(self.inner(x))))


def base_model() -> TwoLayers:
    torch.manual_seed(0)
    return TwoLayers().double().eval()


def lora_config(r: int, alpha: float = 8, **fields) -> dict:
    return {"peft_type": "LORA", "r": r, "lora_alpha": alpha, **fields}


def lora_state(
    ranks: dict[str, int], seed: int, dtype=torch.float64, bias: bool = False
) -> dict[str, torch.Tensor]:
    """PEFT-style state dict with random factors of the given rank per module (and a random
    ``lora_B`` bias per module with ``bias``, as PEFT's ``lora_bias=True`` saves it)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for path, rank in ranks.items():
        n, k = SHAPES[path]
        prefix = f"base_model.model.{path}"
        state[f"{prefix}.lora_A.weight"] = torch.randn(rank, k, generator=g, dtype=dtype)
        state[f"{prefix}.lora_B.weight"] = torch.randn(n, rank, generator=g, dtype=dtype)
        if bias:
            state[f"{prefix}.lora_B.bias"] = torch.randn(n, generator=g, dtype=dtype)
    return state


def merged_reference(base: nn.Module, sources: dict, names: list, x: torch.Tensor):
    """Each sample through a copy of the base model with its adapter merged, in float64."""
    outputs = []
    for b, name in enumerate(names):
        model = copy.deepcopy(base).double()
        if name not in (None, BASE):
            config, state = sources[name]
            settings_ = LoraSettings.parse(name, config)
            for path in SHAPES:
                key = f"base_model.model.{path}.lora_A.weight"
                if key in state:
                    layer, scaling = getattr(model, path), settings_.scaling(path)
                    up = state[key.replace("lora_A", "lora_B")].double()
                    layer.weight.data += scaling * up @ state[key].double()
                    bias_key = key.replace("lora_A.weight", "lora_B.bias")
                    if bias_key in state:
                        if layer.bias is None:
                            layer.bias = nn.Parameter(torch.zeros_like(state[bias_key].double()))
                        layer.bias.data += scaling * state[bias_key].double()
        outputs.append(model(x[b : b + 1].double()))
    return torch.cat(outputs)


@st.composite
def mixed_batches(draw):
    count = draw(st.integers(1, 4))
    sources = {}
    for i in range(count):
        targets = draw(st.lists(st.sampled_from(sorted(SHAPES)), min_size=1, unique=True))
        ranks = {path: draw(st.integers(1, 4)) for path in targets}
        r = draw(st.integers(1, 4))
        rslora, bias = draw(st.booleans()), draw(st.booleans())
        config = lora_config(
            r,
            draw(st.sampled_from([1, 4, 16])),
            use_rslora=rslora,
            target_modules=targets,
            lora_bias=bias,
        )
        if not rslora:
            config["rank_pattern"] = ranks  # per-module ranks, as PEFT's rank_pattern
        else:
            ranks = dict.fromkeys(targets, r)
        sources[f"a{i}"] = (config, lora_state(ranks, seed=i, bias=bias))
    choices = [*sources, None, BASE]
    names = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=7))
    tokens = draw(st.integers(1, 3))
    return sources, names, tokens


@settings(max_examples=30, deadline=None)
@given(mixed_batches())
def test_mixed_batch_equals_each_sample_with_its_adapter_merged(batch):
    sources, names, tokens = batch
    base = base_model()
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources)
    x = torch.randn(len(names), tokens, 5, dtype=torch.float64)
    with adapters.edit(model, names):
        y = model(x)
    torch.testing.assert_close(y, merged_reference(base, sources, names, x), rtol=1e-10, atol=1e-10)


def test_no_adapter_rows_are_exactly_the_base_output_under_the_lowrank_algorithm():
    adapters = LoraAdapters.load(
        copy.deepcopy(base_model()),
        {
            "a": (lora_config(2), lora_state({"inner": 2}, 0)),
            "b": (lora_config(3), lora_state({"inner": 3}, 1)),
        },
    )
    names = ["a", None, "b", BASE, "a"]
    shifts, index = adapters.shifts(names)
    delta = shifts["inner"]
    weight, bias = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    x = torch.randn(5, 4, 5, dtype=torch.float64)
    y = edited_linear(x, weight, bias, delta, index, algorithm="lowrank")
    base = nn.functional.linear(x, weight, bias)
    assert torch.equal(y[[1, 3]], base[[1, 3]])


def test_shifts_stack_used_adapters_in_order_of_appearance_zero_padded_to_the_largest_rank():
    sources = {
        "small": (lora_config(1, alpha=2), lora_state({"inner": 1}, 0)),
        "unused": (lora_config(4), lora_state({"inner": 4}, 1)),
        "large": (lora_config(3, alpha=6, target_modules=["inner", "outer"]),
                  lora_state({"inner": 3, "outer": 3}, 2)),
    }  # fmt: skip
    adapters = LoraAdapters.load(copy.deepcopy(base_model()), sources)
    shifts, index = adapters.shifts(["large", None, "small", "large"])
    assert index.tolist() == [0, 1, 2, 0]
    inner = shifts["inner"]
    assert isinstance(inner, LowRankShift)
    assert inner.up.shape == (3, 6, 3) and inner.down.shape == (3, 3, 5)
    small_a = sources["small"][1]["base_model.model.inner.lora_A.weight"]
    small_b = sources["small"][1]["base_model.model.inner.lora_B.weight"]
    assert torch.equal(inner.down[2, :1], small_a) and not inner.down[2, 1:].any()
    assert torch.equal(inner.up[2, :, :1], 2.0 * small_b) and not inner.up[2, :, 1:].any()
    assert not inner.up[1].any() and not inner.down[1].any()  # the base slot
    # "outer": only "large" targets it; the other slots are zero shifts
    assert not shifts["outer"].up[1:].any()
    # a batch whose adapters target no weight edits nothing
    assert adapters.shifts([None, BASE])[0] == {}


def test_rslora_and_alpha_pattern_set_the_scaling():
    settings_ = LoraSettings.parse("a", lora_config(4, alpha=8, alpha_pattern={"outer": 2}))
    assert settings_.scaling("inner") == 2.0
    assert settings_.scaling("block.outer") == 0.5
    assert LoraSettings.parse("a", lora_config(4, alpha=8, use_rslora=True)).scaling("x") == 4.0
    ranked = LoraSettings.parse("a", lora_config(4, rank_pattern={r"layers\.1\.q": 2}))
    assert ranked.rank("model.layers.1.q") == 2 and ranked.rank("model.layers.11.q") == 4
    assert math.isclose(ranked.scaling("model.layers.1.q"), 4.0)


def test_gradients_reach_every_adapter_in_one_mixed_batch():
    base = base_model()
    model = copy.deepcopy(base)
    sources = {
        "a": (lora_config(2), lora_state({"inner": 2, "outer": 2}, 0)),
        "b": (lora_config(3), lora_state({"outer": 3}, 1)),
        "c": (lora_config(1), lora_state({"inner": 1}, 2)),
    }
    adapters = LoraAdapters.load(model, sources).train()
    names = ["a", "b", None, "a", "c"]
    x = torch.randn(5, 2, 5, dtype=torch.float64)
    with adapters.edit(model, names):
        model(x).pow(2).sum().backward()
    for adapter in adapters.adapters.values():
        for parameter in [*adapter.lora_A, *adapter.lora_B]:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_parameters_are_the_adapters_factors_only():
    model = copy.deepcopy(base_model())
    adapters = LoraAdapters.load(model, {"a": (lora_config(2), lora_state({"inner": 2}, 0))})
    assert [name for name, _ in adapters.named_parameters()] == [
        "adapters.a.lora_A.0",
        "adapters.a.lora_B.0",
    ]
    assert not adapters.training
    assert adapters["a"].module_paths == ("inner",)


# --- bad input ------------------------------------------------------------------------------


def load_one(config=None, state=None, name="a"):
    model = copy.deepcopy(base_model())
    config = lora_config(2) if config is None else config
    state = lora_state({"inner": 2}, 0) if state is None else state
    return LoraAdapters.load(model, {name: (config, state)})


def test_a_module_the_model_does_not_have_names_the_adapter_and_module():
    state = lora_state({"inner": 2}, 0)
    state = {k.replace(".inner.", ".missing."): v for k, v in state.items()}
    with pytest.raises(
        ValueError,
        match=r"adapter 'a' targets module 'missing' \(lora_A \(2, 5\), lora_B \(6, 2\)\), "
        "which the model does not have",
    ):
        load_one(state=state)


def test_factors_of_the_wrong_shape_name_the_adapter_module_and_both_shapes():
    state = lora_state({"inner": 2}, 0)
    state["base_model.model.inner.lora_A.weight"] = torch.randn(2, 7, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"adapter 'a', module 'inner': LoRA factors lora_A \(2, 7\), lora_B \(6, 2\) do not "
        r"fit the model's nn.Linear weight \(6, 5\) \(expected lora_A \(2, 5\), lora_B \(6, 2\)\)",
    ):
        load_one(state=state)
    state["base_model.model.inner.lora_A.weight"] = torch.randn(3, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"the config gives rank 2 but the factors have rank 3"):
        load_one(state=state)
    with pytest.raises(ValueError, match=r"the config gives rank 4 but the factors have rank 2"):
        load_one(config=lora_config(4))


def test_a_module_of_a_type_lora_does_not_load_onto_is_refused():
    model = copy.deepcopy(base_model())
    state = {
        "base_model.model.norm.lora_A.weight": torch.randn(2, 3),
        "base_model.model.norm.lora_B.weight": torch.randn(3, 2),
    }
    with pytest.raises(TypeError, match=r"adapter 'a' targets module 'norm', a LayerNorm"):
        LoraAdapters.load(model, {"a": (lora_config(2), state)})


def test_a_linear_inside_multihead_attention_is_refused():
    model = nn.Sequential(nn.MultiheadAttention(4, 2, batch_first=True))
    state = {
        "base_model.model.0.out_proj.lora_A.weight": torch.randn(2, 4),
        "base_model.model.0.out_proj.lora_B.weight": torch.randn(4, 2),
    }
    with pytest.raises(TypeError, match=r"'0.out_proj'.*not inside nn.MultiheadAttention"):
        LoraAdapters.load(model, {"a": (lora_config(2), state)})


@pytest.mark.parametrize(
    ("field", "value"),
    [("bias", "all"), ("modules_to_save", ["head"]),
     ("use_qalora", True), ("layer_replication", [[0, 1]])],
)  # fmt: skip
def test_config_fields_a_shift_cannot_express_are_refused(field, value):
    with pytest.raises(ValueError, match=rf"adapter 'a': config sets {field}="):
        load_one(config=lora_config(2, **{field: value}))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match=r"peft_type must be 'LORA', got 'IA3'"):
        load_one(config={**lora_config(2), "peft_type": "IA3"})
    with pytest.raises(ValueError, match=r"'r' must be a positive number, got 0"):
        load_one(config=lora_config(0))
    with pytest.raises(TypeError, match=r"config must be a dict or a peft.LoraConfig, got int"):
        load_one(config=3)


def test_bad_state_dicts_are_refused():
    state = lora_state({"inner": 2}, 0)
    with pytest.raises(
        ValueError, match=r"key 'base_model.model.inner.lora_A.default.weight' is not a LoRA factor"
    ):
        load_one(state={k.replace(".weight", ".default.weight"): v for k, v in state.items()})
    del state["base_model.model.inner.lora_B.weight"]
    with pytest.raises(ValueError, match=r"adapter 'a': module 'inner' has no lora_B weight"):
        load_one(state=state)
    with pytest.raises(TypeError, match=r"must be a floating tensor, got torch.int64"):
        load_one(state={k: v.long() for k, v in lora_state({"inner": 2}, 0).items()})
    with pytest.raises(ValueError, match=r"the state dict holds no LoRA factors"):
        load_one(state={})


def test_lora_bias_is_a_bias_shift_scaled_like_the_factors():
    state = lora_state({"inner": 2}, 0, bias=True)
    adapters = load_one(config=lora_config(2, alpha=6, lora_bias=True), state=state)
    shifts, index = adapters.shifts(["a", None])
    bias = state["base_model.model.inner.lora_B.bias"]
    assert index.tolist() == [0, 1]
    expected = torch.stack([3 * bias, torch.zeros_like(bias)])
    torch.testing.assert_close(shifts["inner"].bias, expected)
    assert torch.equal(adapters["a"].lora_bias[0], bias)
    assert list(adapters.peft_state_dict("a")) == list(state)  # written back under its key
    # adapters without a bias give no bias tensor (the planner keeps its bias-free paths)
    shifts, _ = load_one().shifts(["a"])
    assert shifts["inner"].bias is None


def test_lora_bias_must_agree_with_the_state_dict():
    with pytest.raises(ValueError, match=r"sets lora_bias=True but the state dict lacks 'inner"):
        load_one(config=lora_config(2, lora_bias=True))
    with pytest.raises(ValueError, match=r"sets lora_bias=False but the state dict holds 'inner"):
        load_one(state=lora_state({"inner": 2}, 0, bias=True))
    state = lora_state({"inner": 2}, 0, bias=True)
    state["base_model.model.inner.lora_B.bias"] = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lora_B bias \(4,\) does not fit the layer's 6 outputs"):
        load_one(config=lora_config(2, lora_bias=True), state=state)
    state = lora_state({"inner": 2}, 0)
    state["base_model.model.inner.lora_A.bias"] = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'base_model.model.inner.lora_A.bias' is not a LoRA"):
        load_one(state=state)


def test_bad_sources_and_names_are_refused(tmp_path):
    model = copy.deepcopy(base_model())
    with pytest.raises(ValueError, match="sources must name at least one adapter"):
        LoraAdapters.load(model, {})
    with pytest.raises(
        TypeError, match=r"source must be a directory or a \(config, state_dict\) pair, got list"
    ):
        LoraAdapters.load(model, {"a": []})
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json does not exist"):
        LoraAdapters.load(model, {"a": tmp_path})
    for name in ("", "a.b", BASE, "train"):
        with pytest.raises(ValueError, match="adapter names must be non-empty strings"):
            load_one(name=name)
    adapters = load_one()
    with pytest.raises(ValueError, match="adapter 'a' is already loaded"):
        adapters.add_adapter(model, "a", (lora_config(2), lora_state({"inner": 2}, 0)))


def test_bad_adapter_names_in_a_batch_are_refused():
    adapters = load_one()
    with pytest.raises(TypeError, match="adapter_names must be a sequence"):
        adapters.shifts("a")
    with pytest.raises(ValueError, match="at least one sample"):
        adapters.shifts([])
    with pytest.raises(TypeError, match="entries must be str or None, got int"):
        adapters.shifts(["a", 0])
    with pytest.raises(KeyError, match=r"no adapter named 'z'; loaded: \['a'\]"):
        adapters.shifts(["a", "z"])
    with pytest.raises(KeyError, match="no adapter named 'z'"):
        adapters.save_pretrained("unused", names=["z"])


def test_a_batch_of_another_length_than_adapter_names_is_refused():
    model = copy.deepcopy(base_model())
    adapters = LoraAdapters.load(model, {"a": (lora_config(2), lora_state({"inner": 2}, 0))})
    with pytest.raises(ValueError, match=r"grouping is for b=2"), adapters.edit(model, ["a", None]):
        model(torch.randn(3, 5, dtype=torch.float64))


def test_lora_dropout_is_refused_in_training_unless_ignored():
    config = lora_config(2, lora_dropout=0.1)
    adapters = load_one(config=config)
    adapters.shifts(["a"])  # eval mode: dropout does nothing in PEFT either
    with pytest.raises(ValueError, match=r"adapter 'a' has lora_dropout=0.1"):
        adapters.train().shifts(["a"])
    model = copy.deepcopy(base_model())
    lenient = LoraAdapters.load(
        model, {"a": (config, lora_state({"inner": 2}, 0))}, ignore_lora_dropout=True
    )
    lenient.train().shifts(["a"])


def test_import_weditlib_and_weditlib_peft_do_not_import_peft():
    code = (
        "import sys, weditlib, weditlib.peft; "
        "assert not {'peft', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stacking_without_autograd_is_reused_until_a_factor_changes():
    adapters = load_one()
    names = ["a", None]
    with torch.no_grad():
        first, index = adapters.shifts(names)
        again, same_index = adapters.shifts(names)
        assert again["inner"] is first["inner"] and same_index is index
        adapters["a"].lora_B[0].mul_(2)  # an optimiser step is an in-place update like this
        updated, _ = adapters.shifts(names)
    assert updated["inner"] is not first["inner"]
    torch.testing.assert_close(updated["inner"].up, 2 * first["inner"].up)
    assert adapters.shifts(names)[0]["inner"].up.requires_grad  # with autograd: never reused
    with torch.no_grad():  # .float() makes new storage: the float64 stacking is not reused
        assert adapters.float().shifts(names)[0]["inner"].up.dtype == torch.float32


def test_a_stacking_made_under_inference_mode_is_not_reused_for_autograd():
    model = copy.deepcopy(base_model())
    adapters = LoraAdapters.load(model, {"a": (lora_config(2), lora_state({"inner": 2}, 0))})
    adapters.requires_grad_(False)
    names, x = ["a", None], torch.randn(2, 5, dtype=torch.float64)
    with torch.inference_mode():
        inside = adapters.shifts(names)[0]["inner"]
        assert adapters.shifts(names)[0]["inner"] is inside  # reused under inference_mode
    outside = adapters.shifts(names)[0]["inner"]
    assert outside is not inside and not outside.up.is_inference()
    x.requires_grad_()
    with adapters.edit(model, names):
        model(x).sum().backward()  # inference tensors would not be saved for backward
    assert x.grad is not None


def test_edit_reuses_the_stackings_grouping_and_runs_the_stacked_shifts():
    model = copy.deepcopy(base_model())
    adapters = LoraAdapters.load(model, {"a": (lora_config(2), lora_state({"inner": 2}, 0))})
    names, x = ["a", None, "a"], torch.randn(3, 5, dtype=torch.float64)
    layer = model.get_submodule("inner")
    with torch.no_grad():
        shifts, index = adapters.shifts(names)
        with edit(model, shifts, index):
            expected = model(x)
        groupings = []
        for _ in range(2):
            with adapters.edit(model, names):
                groupings.append(layer.active_shifts[""][1])
                torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert groupings[0] is groupings[1] and groupings[0].index is index


# --- conv layers ----------------------------------------------------------------------------


class ConvNet(nn.Module):
    """``(b, 3, 6, 6) -> (b, 4, 2)``: a Conv2d, then a Conv1d over the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.conv1 = nn.Conv1d(5, 4, 2, bias=False)

    def forward(self, x):
        return self.conv1(torch.tanh(self.conv2(x)).mean(dim=2))


def conv_lora_state(rank: int, seed: int) -> dict[str, torch.Tensor]:
    """PEFT's conv LoRA shapes: A (r, in, *kernel), B (out, r, 1, ...)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv2": ((rank, 3, 3, 3), (5, rank, 1, 1)), "conv1": ((rank, 5, 2), (4, rank, 1))}
    state = {}
    for path, (a, b) in shapes.items():
        state[f"base_model.model.{path}.lora_A.weight"] = torch.randn(a, generator=g).double()
        state[f"base_model.model.{path}.lora_B.weight"] = torch.randn(b, generator=g).double()
    return state


def test_conv_lora_equals_each_sample_with_its_kernel_shift_merged():
    torch.manual_seed(0)
    base = ConvNet().double()
    model = copy.deepcopy(base)
    sources = {
        "a": (lora_config(2, alpha=4), conv_lora_state(2, 0)),
        "b": (lora_config(3, alpha=3, use_rslora=True), conv_lora_state(3, 1)),
    }
    adapters = LoraAdapters.load(model, sources)
    names = ["b", None, "a", "a", BASE]
    x = torch.randn(len(names), 3, 6, 6, dtype=torch.float64)
    with adapters.edit(model, names):
        y = model(x)
    expected = []
    for b, name in enumerate(names):
        merged = copy.deepcopy(base)
        if name in sources:
            config, state = sources[name]
            scaling = LoraSettings.parse(name, config).scaling("")
            for path in ("conv2", "conv1"):
                conv = getattr(merged, path)
                down = state[f"base_model.model.{path}.lora_A.weight"].flatten(1)
                up = state[f"base_model.model.{path}.lora_B.weight"].flatten(1)
                conv.weight.data += (scaling * up @ down).view_as(conv.weight)
        expected.append(merged(x[b : b + 1]))
    torch.testing.assert_close(y, torch.cat(expected), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("conv", "reason"),
    [
        (nn.Conv2d(3, 5, 3, dilation=2), r"dilation=\(2, 2\)"),
        (nn.Conv2d(4, 6, 3, groups=2), "groups=2"),
        (nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    ],
)
def test_conv_geometries_peft_conv_lora_does_not_follow_are_refused(conv, reason):
    model = nn.Sequential(conv)
    state = {
        "base_model.model.0.lora_A.weight": torch.randn(2, conv.in_channels, 3, 3),
        "base_model.model.0.lora_B.weight": torch.randn(conv.out_channels, 2, 1, 1),
    }
    with pytest.raises(ValueError, match=rf"adapter 'a', module '0': .*{reason}"):
        LoraAdapters.load(model, {"a": (lora_config(2), state)})


def test_conv_factors_of_the_wrong_shape_name_both_shapes():
    state = conv_lora_state(2, 0)
    state["base_model.model.conv2.lora_A.weight"] = torch.randn(2, 3, 5, 5).double()
    with pytest.raises(
        ValueError,
        match=r"module 'conv2': LoRA factors lora_A \(2, 3, 5, 5\), lora_B \(5, 2, 1, 1\) do not "
        r"fit the model's nn.Conv1d / nn.Conv2d weight \(5, 3, 3, 3\) "
        r"\(expected lora_A \(2, 3, 3, 3\), lora_B \(5, 2, 1, 1\)\)",
    ):
        LoraAdapters.load(ConvNet().double(), {"a": (lora_config(2), state)})


def test_a_conv3d_is_refused():
    model = nn.Sequential(nn.Conv3d(2, 3, 1))
    state = {
        "base_model.model.0.lora_A.weight": torch.randn(1, 2, 1, 1, 1),
        "base_model.model.0.lora_B.weight": torch.randn(3, 1, 1, 1, 1),
    }
    with pytest.raises(TypeError, match="targets module '0', a Conv3d"):
        LoraAdapters.load(model, {"a": (lora_config(1), state)})


def dora_state(seed: int, magnitude_shape: tuple[int, ...] = (6,)) -> dict[str, torch.Tensor]:
    state = lora_state({"inner": 2}, seed)
    state["base_model.model.inner.lora_magnitude_vector"] = torch.rand(magnitude_shape).double()
    return state


def test_use_dora_must_agree_with_the_state_dict():
    with pytest.raises(ValueError, match=r"sets use_dora=True but the state dict lacks"):
        load_one(lora_config(2, use_dora=True), lora_state({"inner": 2}, 0))
    with pytest.raises(ValueError, match=r"sets use_dora=False but the state dict holds"):
        load_one(lora_config(2), dora_state(0))


def test_a_dora_magnitude_of_the_wrong_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"DoRA magnitude \(5,\) does not fit .*expected \(6,\)"):
        load_one(lora_config(2, use_dora=True), dora_state(0, (5,)))


def test_a_dora_stacking_is_not_reused_once_the_base_weight_changed():
    model = copy.deepcopy(base_model())
    adapters = LoraAdapters.load(model, {"d": (lora_config(2, use_dora=True), dora_state(0))})
    x = torch.randn(2, 5, dtype=torch.float64)
    with torch.no_grad():
        with adapters.edit(model, ["d", None]):
            before = model(x)
        model.inner.weight.mul_(2)  # DoRA's norm ‖W + ΔW‖ changes with W
        with adapters.edit(model, ["d", None]):
            after = model(x)
        model.inner.weight.div_(2)
        with adapters.edit(model, ["d", None]):
            again = model(x)
    assert not torch.allclose(before[0], after[0])
    torch.testing.assert_close(again, before)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "adapter_config.json").write_text('{"r": 4, "lora_al'), "adapter_config"),
        (lambda d: (d / "adapter_config.json").write_text("[1, 2]"), "adapter_config"),
        (lambda d: (d / "adapter_model.safetensors").write_bytes(b"\x08\x00" * 7), "adapter_model"),
    ],
)
def test_a_damaged_adapter_directory_names_the_file(tmp_path, damage, named):
    from weditlib.peft.files import read_adapter_dir, write_adapter_dir

    write_adapter_dir(tmp_path, lora_config(2), lora_state(dict.fromkeys(SHAPES, 2), seed=0))
    damage(tmp_path)
    with pytest.raises(ValueError, match=rf"{named}\.\w+: "):
        read_adapter_dir(tmp_path)
