"""A float32 PEFT adapter on a bfloat16 model (PEFT's default: it keeps adapters of a half
precision model in float32): applied in float32 as PEFT applies it, and written back unchanged."""

from __future__ import annotations

import copy

import pytest
import torch

from weditlib import LowRankShift, edited_linear
from weditlib.peft import BASE, LoraAdapters

peft = pytest.importorskip("peft", reason="PEFT is not installed: pip install weditlib[peft]")
transformers = pytest.importorskip("transformers", reason="transformers ships with peft")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors ships with peft")
from peft import LoraConfig  # noqa: E402

from tests.weditlib.test_peft_dora import dora_peft_model  # noqa: E402
from tests.weditlib.test_peft_interop import assert_written_back  # noqa: E402

# PEFT's state-dict export warns that a 1-d tensor may be an ungathered FSDP shard
pytestmark = pytest.mark.filterwarnings("ignore:Adapter .*invalid shape")

BF16 = torch.bfloat16
ADAPTERS = {
    "plain": LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]),
    "dora": LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "o_proj"], use_dora=True),
}
NAMES = ["dora", "plain", BASE, "plain", "dora"]
#: The tolerance PEFT's own tests give bfloat16 outputs (torch's default for bfloat16).
BF16_TOLERANCE = {"rtol": 1.6e-2, "atol": 1e-5}


def bf16_llama() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).to(BF16).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A bfloat16 model, PEFT adapters on it (float32), and their save_pretrained directory."""
    base = bf16_llama()
    peft_model = dora_peft_model(base, ADAPTERS)
    directory = tmp_path_factory.mktemp("peft")
    peft_model.save_pretrained(directory)
    return base, peft_model, directory


def peft_logits(base, peft_model, tokens: torch.Tensor, names: list[str]) -> torch.Tensor:
    """PEFT's logits, each sample run alone with its adapter (PEFT's plain forward)."""
    rows = []
    with torch.no_grad():
        for i, name in enumerate(names):
            if name == BASE:
                rows.append(base(input_ids=tokens[i : i + 1]).logits)
            else:
                peft_model.set_adapter(name)
                rows.append(peft_model(input_ids=tokens[i : i + 1]).logits)
    return torch.cat(rows)


def test_peft_keeps_the_adapters_in_float32(saved):
    _, _, directory = saved
    for name in ADAPTERS:
        folder = directory if name == "default" else directory / name
        tensors = safetensors_torch.load_file(folder / "adapter_model.safetensors")
        assert {t.dtype for t in tensors.values()} == {torch.float32}


def test_float32_adapters_on_a_bfloat16_model_equal_peft(saved):
    base, peft_model, directory = saved
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, {name: directory / name for name in ADAPTERS})
    assert {p.dtype for p in adapters.parameters()} == {torch.float32}
    tokens = torch.randint(0, 64, (len(NAMES), 7), generator=torch.Generator().manual_seed(3))
    expected = peft_logits(base, peft_model, tokens, NAMES)
    with torch.no_grad(), adapters.edit(model, NAMES):
        got = model(input_ids=tokens).logits
    assert got.dtype == BF16
    torch.testing.assert_close(got, expected, **BF16_TOLERANCE)
    # the same adapters rounded to bfloat16 first (what the interop did before) miss PEFT by far
    # more than bfloat16's rounding of the output
    adapters.to(BF16)
    with torch.no_grad(), adapters.edit(model, NAMES):
        rounded = model(input_ids=tokens).logits
    ours = (got.float() - expected.float()).abs().max()
    assert (rounded.float() - expected.float()).abs().max() > 4 * ours


def test_float32_adapters_write_back_bit_identical(saved, tmp_path):
    base, _, directory = saved
    adapters = LoraAdapters.load(copy.deepcopy(base), {n: directory / n for n in ADAPTERS})
    adapters.save_pretrained(tmp_path)
    for name in ADAPTERS:
        original = safetensors_torch.load_file(directory / name / "adapter_model.safetensors")
        assert_written_back(tmp_path / name / "adapter_model.safetensors", original)


def test_a_float32_low_rank_shift_on_bfloat16_is_peft_arithmetic():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 16, generator=g).to(BF16)
    weight, bias = torch.randn(8, 16, generator=g).to(BF16), torch.randn(8, generator=g).to(BF16)
    up, down = torch.randn(2, 8, 3, generator=g), torch.randn(2, 3, 16, generator=g)
    shift_bias = torch.randn(2, 8, generator=g)
    index = torch.tensor([1, 0, 0, 1])
    y = edited_linear(x, weight, bias, LowRankShift(up, down, bias=shift_bias), index)
    base = torch.nn.functional.linear(x, weight, bias)  # bfloat16, as PEFT's base layer
    lora = torch.einsum("btk,brk->btr", x.float(), down[index])
    lora = torch.einsum("btr,bnr->btn", lora, up[index]) + shift_bias[index].unsqueeze(1)
    assert y.dtype == BF16
    torch.testing.assert_close(y, (base + lora).to(BF16), rtol=0, atol=0)


def test_float32_adapter_gradients_on_a_bfloat16_model_equal_peft(saved):
    base, peft_model, directory = saved
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, {"plain": directory / "plain"}).train()
    tokens = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(4))
    with adapters.edit(model, ["plain"] * 3):
        model(input_ids=tokens).logits.float().square().mean().backward()
    theirs = copy.deepcopy(peft_model)
    theirs.set_adapter("plain")
    theirs(input_ids=tokens).logits.float().square().mean().backward()
    grads = {n: p.grad for n, p in theirs.named_parameters() if p.grad is not None}
    adapter = adapters["plain"]
    for position, path in enumerate(adapter.module_paths):
        for part, factor in (("lora_A", adapter.lora_A), ("lora_B", adapter.lora_B)):
            own = factor[position].grad
            peft_grad = next(
                g for n, g in grads.items() if n.endswith(f"{path}.{part}.plain.weight")
            )
            assert own.dtype == torch.float32
            error = (own - peft_grad).norm() / peft_grad.norm()
            assert error < 1e-2, (path, part, float(error))
