"""Directories PEFT's save_pretrained writes with its default options load, or are refused with a
message that names the option to change."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from weditlib.peft import LoraAdapters

peft = pytest.importorskip("peft", reason="PEFT is not installed: pip install weditlib[peft]")
transformers = pytest.importorskip("transformers", reason="transformers ships with peft")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors ships with peft")
from peft import LoraConfig, TaskType, get_peft_model  # noqa: E402

from tests.weditlib.test_peft_interop import assert_written_back  # noqa: E402


def llama(**fields) -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32, **fields,
    )  # fmt: skip
    torch.manual_seed(0)
    model_type = (
        transformers.LlamaForSequenceClassification
        if "num_labels" in fields
        else transformers.LlamaForCausalLM
    )
    return model_type(config).eval()


def saved_with_defaults(base, directory, **config):
    """``save_pretrained(directory)`` of a PEFT model of ``base``, every option at its default."""
    model = get_peft_model(copy.deepcopy(base), LoraConfig(init_lora_weights=False, **config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT warns that it saves the embedding layers
        model.save_pretrained(directory)
    return model.eval()


def test_an_adapter_on_lm_head_loads_with_the_base_weights_peft_saved_beside_it(tmp_path):
    base = llama()
    peft_model = saved_with_defaults(base, tmp_path / "peft", target_modules=["q_proj", "lm_head"])
    original = safetensors_torch.load_file(tmp_path / "peft/adapter_model.safetensors")
    assert "base_model.model.lm_head.base_layer.weight" in original  # save_embedding_layers
    model = copy.deepcopy(base)
    adapters = LoraAdapters.load(model, {"a": tmp_path / "peft"})
    tokens = torch.randint(0, 32, (2, 5))
    with torch.no_grad(), adapters.edit(model, ["a", "a"]):
        got = model(input_ids=tokens).logits
    with torch.no_grad():
        expected = peft_model(input_ids=tokens).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    adapters.save_pretrained(tmp_path / "ours", ["a"])
    assert_written_back(tmp_path / "ours/a/adapter_model.safetensors", original)


def test_saved_base_weights_that_differ_from_the_model_name_save_embedding_layers(tmp_path):
    base = llama()
    saved_with_defaults(base, tmp_path, target_modules=["q_proj", "lm_head"])
    other = copy.deepcopy(base)
    with torch.no_grad():
        other.lm_head.weight.add_(1)
    with pytest.raises(ValueError, match=r"'lm_head.weight'.*save_embedding_layers=False"):
        LoraAdapters.load(other, {"a": tmp_path})


def test_an_embedding_adapter_is_refused_naming_target_modules(tmp_path):
    base = llama()
    saved_with_defaults(base, tmp_path, target_modules=["q_proj", "embed_tokens"])
    with pytest.raises(ValueError, match=r"without 'embed_tokens' in target_modules"):
        LoraAdapters.load(copy.deepcopy(base), {"a": tmp_path})


def test_a_classifier_adapter_is_refused_naming_task_type(tmp_path):
    base = llama(num_labels=3, pad_token_id=0)
    saved_with_defaults(base, tmp_path, task_type=TaskType.SEQ_CLS)
    with pytest.raises(ValueError, match=r"modules_to_save.*task_type=None"):
        LoraAdapters.load(copy.deepcopy(base), {"a": tmp_path})
