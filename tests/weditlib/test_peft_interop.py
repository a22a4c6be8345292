"""weditlib.peft against the real PEFT: same outputs, same gradients, files PEFT loads unchanged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from weditlib.peft import BASE, LoraAdapters

peft = pytest.importorskip("peft", reason="PEFT is not installed: pip install weditlib[peft]")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors ships with peft")
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402

ADAPTERS = {
    # different ranks, alphas, rslora, per-module rank/alpha patterns and target sets
    "default": LoraConfig(r=4, lora_alpha=8, target_modules=["up", "down"]),
    "bob": LoraConfig(r=2, lora_alpha=3, use_rslora=True, target_modules=["up"]),
    "carol": LoraConfig(
        r=3, lora_alpha=6, target_modules=["up", "down", "head"],
        rank_pattern={"down": 1}, alpha_pattern={"head": 2},
    ),
    "dave": LoraConfig(r=5, lora_alpha=5, target_modules=["head"]),
}  # fmt: skip
# PEFT's state-dict export warns that a 1-d tensor is an ungathered FSDP shard; lora_B's bias
# (lora_bias=True) is 1-d.
ONE_D_LORA_BIAS = pytest.mark.filterwarnings("ignore:Adapter .*invalid shape")
NAMES = ["carol", BASE, "bob", "default", "carol", "dave", BASE, "bob", "default"]


def assert_written_back(written: Path, original: dict[str, torch.Tensor]) -> None:
    """The adapter weights file ``written`` holds ``original``'s tensors in its order, bit for
    bit (what PEFT's save_pretrained wrote, saved back by weditlib)."""
    tensors = safetensors_torch.load_file(written)
    assert list(tensors) == list(original)
    assert all(torch.equal(tensors[key], original[key]) for key in original)


class Mlp(nn.Module):
    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width, bias=False)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        return self.head(x + self.down(torch.relu(self.up(x))))


def make_base(dtype: torch.dtype) -> Mlp:
    torch.manual_seed(0)
    return Mlp().to(dtype).eval()


def peft_model_of(base: nn.Module, configs: dict[str, LoraConfig]) -> PeftModel:
    """A copy of ``base`` with PEFT adapters ``configs``, random (non-zero) A and B, eval mode."""
    configs = {name: copy.deepcopy(config) for name, config in configs.items()}
    for config in configs.values():
        config.init_lora_weights = False  # random A and B, so every adapter changes the output
    names = list(configs)
    model = get_peft_model(copy.deepcopy(base), configs[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, configs[name])
    return model.eval()


def randomise_lora_biases(peft_model: PeftModel) -> None:
    """PEFT zero-initialises ``lora_B``'s bias (``lora_bias=True``): make it change the output."""
    for module in peft_model.modules():
        if isinstance(module, nn.ModuleDict) and all(
            isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d) for layer in module.values()
        ):
            for layer in module.values():
                if layer.bias is not None:
                    nn.init.normal_(layer.bias)


def make_peft(base: nn.Module) -> PeftModel:
    torch.manual_seed(1)
    return peft_model_of(base, ADAPTERS)


def sources_of(peft_model: PeftModel) -> dict:
    """Adapter name -> (config, state dict) of every adapter of ``peft_model``."""
    return {
        name: (config, get_peft_model_state_dict(peft_model, adapter_name=name))
        for name, config in peft_model.peft_config.items()
    }


def mixed_batch_equals_peft(base, peft_model, names, x) -> LoraAdapters:
    """``peft_model``'s adapters loaded onto a copy of ``base``: the mixed batch ``x`` equals PEFT's
    ``adapter_names`` output (float64, 1e-12); then one backward of its sum of squares."""
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(peft_model))
    with torch.no_grad():
        expected = peft_model(x, adapter_names=names)
        with adapters.edit(model, names):
            got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    adapters.train()
    with adapters.edit(model, names):
        model(x).square().sum().backward()
    return adapters


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_outputs_equal_peft_adapter_names(dtype, tolerance):
    base = make_base(dtype)
    peft_model = make_peft(base)
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(peft_model))
    x = torch.randn(len(NAMES), 4, 12, dtype=dtype)
    with torch.no_grad():
        expected = peft_model(x, adapter_names=NAMES)
        with adapters.edit(model, NAMES):
            got = model(x)
        plain = base(x)
    torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
    rows = [i for i, name in enumerate(NAMES) if name == BASE]
    torch.testing.assert_close(got[rows], plain[rows], rtol=tolerance, atol=tolerance)
    assert not torch.allclose(got, plain)  # the adapters do something


def test_gradients_equal_training_each_adapter_with_peft_on_its_own_samples():
    dtype = torch.float64
    base = make_base(dtype)
    peft_model = make_peft(base).train()
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(peft_model)).train()
    x = torch.randn(len(NAMES), 3, 12, dtype=dtype)
    target = torch.randn(len(NAMES), 3, 5, dtype=dtype)

    with adapters.edit(model, NAMES):
        nn.functional.mse_loss(model(x), target, reduction="sum").backward()

    for name in ADAPTERS:
        rows = [i for i, n in enumerate(NAMES) if n == name]
        peft_model.set_adapter(name)
        peft_model.zero_grad()
        loss = nn.functional.mse_loss(peft_model(x[rows]), target[rows], reduction="sum")
        loss.backward()
        adapter = adapters[name]
        for position, path in enumerate(adapter.module_paths):
            layer = peft_model.base_model.model.get_submodule(path)
            for ours, theirs in (
                (adapter.lora_A[position], layer.lora_A[name].weight),
                (adapter.lora_B[position], layer.lora_B[name].weight),
            ):
                assert theirs.grad is not None and theirs.grad.abs().sum() > 0
                torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-10, atol=1e-12)


def test_round_trip_peft_to_weditlib_to_peft_is_bit_identical(tmp_path):
    base = make_base(torch.float32)
    peft_model = make_peft(base)
    peft_model.save_pretrained(tmp_path / "peft", selected_adapters=list(ADAPTERS))
    directory = {name: tmp_path / "peft" / ("" if name == "default" else name) for name in ADAPTERS}
    adapters = LoraAdapters.load(copy.deepcopy(base), directory)
    adapters.save_pretrained(tmp_path / "ours")

    for name in ADAPTERS:
        theirs = directory[name]
        ours = tmp_path / "ours" / ("" if name == "default" else name)
        original = safetensors_torch.load_file(theirs / "adapter_model.safetensors")
        assert_written_back(ours / "adapter_model.safetensors", original)
        config = json.loads((ours / "adapter_config.json").read_text())
        assert config == json.loads((theirs / "adapter_config.json").read_text())
        # PEFT loads what we wrote, unchanged
        reloaded = PeftModel.from_pretrained(copy.deepcopy(base), ours, adapter_name=name)
        state = get_peft_model_state_dict(reloaded, adapter_name=name)
        assert all(torch.equal(state[key], original[key]) for key in original)


def test_adapters_trained_in_one_mixed_batch_load_back_in_peft(tmp_path):
    dtype = torch.float32
    base = make_base(dtype)
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(make_peft(base))).train()
    optimizer = torch.optim.AdamW(adapters.parameters(), lr=1e-2)
    x = torch.randn(len(NAMES), 3, 12, dtype=dtype)
    for _ in range(3):
        with adapters.edit(model, NAMES):
            loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapters.eval().save_pretrained(tmp_path)

    names = list(ADAPTERS)
    path = {name: tmp_path / ("" if name == "default" else name) for name in names}
    reloaded = PeftModel.from_pretrained(copy.deepcopy(base), path[names[0]], adapter_name=names[0])
    for name in names[1:]:
        reloaded.load_adapter(path[name], adapter_name=name)
    with torch.no_grad():
        expected = reloaded.eval()(x, adapter_names=NAMES)
        with adapters.edit(model, NAMES):
            got = model(x)
    torch.testing.assert_close(got, expected, rtol=2e-6, atol=2e-6)
    for name in names:
        state = get_peft_model_state_dict(reloaded, adapter_name=name)
        ours = adapters.peft_state_dict(name)
        assert all(torch.equal(state[key], ours[key]) for key in ours)


def test_a_transformers_model_matches_peft_adapter_names():
    transformers = pytest.importorskip("transformers", reason="transformers ships with peft")
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    base = transformers.LlamaForCausalLM(config).eval()
    targets = {
        "q": ["q_proj", "v_proj"],
        "mlp": ["gate_proj", "down_proj"],
        "all": ["q_proj", "o_proj"],
    }
    configs = {
        name: LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules)
        for rank, (name, modules) in enumerate(targets.items(), start=2)
    }
    peft_model = peft_model_of(base, configs)
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(peft_model))
    names = ["mlp", "q", BASE, "all", "q", None]
    tokens = torch.randint(0, 64, (len(names), 7))
    with torch.no_grad():
        expected = peft_model(input_ids=tokens, adapter_names=[n or BASE for n in names]).logits
        with adapters.edit(model, names):
            got = model(input_ids=tokens).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.conv1 = nn.Conv1d(6, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        rows = torch.relu(self.conv2(x)).mean(dim=2)  # (b, 6, w)
        return self.head(self.conv1(rows).transpose(1, 2))


@ONE_D_LORA_BIAS
def test_conv_adapters_match_peft_outputs_gradients_and_files(tmp_path):
    torch.manual_seed(0)
    base = ConvNet().double().eval()
    configs = {
        "wide": LoraConfig(
            r=4, lora_alpha=8, target_modules=["conv2", "conv1", "head"], lora_bias=True
        ),
        "thin": LoraConfig(r=1, lora_alpha=2, use_rslora=True, target_modules=["conv2"]),
    }
    peft_model = peft_model_of(base, configs)
    randomise_lora_biases(peft_model)
    names = ["thin", BASE, "wide", "thin", "wide"]
    x = torch.randn(len(names), 3, 8, 8, dtype=torch.float64)
    adapters = mixed_batch_equals_peft(base, peft_model, names, x)
    peft_model.train()
    for name in configs:
        rows = [i for i, n in enumerate(names) if n == name]
        peft_model.set_adapter(name)
        peft_model.zero_grad()
        peft_model(x[rows]).square().sum().backward()
        adapter = adapters[name]
        for position, path in enumerate(adapter.module_paths):
            layer = peft_model.base_model.model.get_submodule(path)
            torch.testing.assert_close(
                adapter.lora_A[position].grad, layer.lora_A[name].weight.grad
            )
            torch.testing.assert_close(
                adapter.lora_B[position].grad, layer.lora_B[name].weight.grad
            )
            if layer.lora_B[name].bias is not None:
                torch.testing.assert_close(
                    adapter.lora_bias[position].grad, layer.lora_B[name].bias.grad
                )
    assert len(adapters["wide"].lora_bias) == 3


def test_gpt2_conv1d_adapters_match_peft_adapter_names():
    transformers = pytest.importorskip("transformers", reason="transformers ships with peft")
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    base = transformers.GPT2LMHeadModel(config).eval()
    # PEFT sets fan_in_fan_out itself for Conv1D layers (with a warning when it is not set)
    configs = {
        name: LoraConfig(r=rank, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)
        for name, rank in (("x", 2), ("y", 4))
    }
    peft_model = peft_model_of(base, configs)
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, sources_of(peft_model))
    names = ["y", BASE, "x", "y"]
    tokens = torch.randint(0, 64, (len(names), 6))
    with torch.no_grad():
        expected = peft_model(input_ids=tokens, adapter_names=names).logits
        with adapters.edit(model, names):
            got = model(input_ids=tokens).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@ONE_D_LORA_BIAS
def test_lora_bias_adapters_match_peft_outputs_gradients_and_files(tmp_path):
    base = make_base(torch.float64)
    configs = {  # PEFT allows lora_bias only on layers with a bias ("down" has none)
        "biased": LoraConfig(r=3, lora_alpha=6, target_modules=["up", "head"], lora_bias=True),
        "plain": LoraConfig(r=2, lora_alpha=2, target_modules=["up", "down"]),
    }
    torch.manual_seed(2)
    peft_model = peft_model_of(base, configs)
    randomise_lora_biases(peft_model)
    names = ["biased", BASE, "plain", "biased", "plain"]
    x = torch.randn(len(names), 3, 12, dtype=torch.float64)
    adapters = mixed_batch_equals_peft(base, peft_model, names, x)
    peft_model.train()
    rows = [i for i, n in enumerate(names) if n == "biased"]
    peft_model.set_adapter("biased")
    peft_model.zero_grad()
    peft_model(x[rows]).square().sum().backward()
    adapter = adapters["biased"]
    for position, path in enumerate(adapter.module_paths):
        theirs = peft_model.base_model.model.get_submodule(path).lora_B["biased"].bias.grad
        assert theirs.abs().sum() > 0
        torch.testing.assert_close(adapter.lora_bias[position].grad, theirs, rtol=1e-10, atol=1e-12)

    peft_model.save_pretrained(tmp_path / "peft", selected_adapters=["biased"])
    original = safetensors_torch.load_file(tmp_path / "peft/biased/adapter_model.safetensors")
    assert any(key.endswith("lora_B.bias") for key in original)
    reloaded = LoraAdapters.load(copy.deepcopy(base), {"biased": tmp_path / "peft/biased"})
    reloaded.save_pretrained(tmp_path / "ours")
    assert_written_back(tmp_path / "ours/biased/adapter_model.safetensors", original)
    back = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours/biased", "biased")
    state = get_peft_model_state_dict(back, adapter_name="biased")
    assert all(torch.equal(state[key], original[key]) for key in original)
