"""Bad PEFT adapters, one row each: a directory written by ``save_pretrained`` with one thing
wrong (a missing, truncated or corrupt file, a config this cannot apply, factors of another
model). Loading refuses it with this error class, and the message names the file or the adapter
and the module. Nothing is loaded half way or computed with a silent NaN."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from weditlib.peft import LoraAdapters

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(5, 6)
        self.norm = nn.LayerNorm(6)
        self.embed = nn.Embedding(4, 5)


def good_config(**fields) -> dict:
    return {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["inner"], **fields}


def good_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        f"{PREFIX}inner.lora_A.weight": torch.randn(2, 5, generator=g),
        f"{PREFIX}inner.lora_B.weight": torch.randn(6, 2, generator=g),
    }


def write(directory: Path, config=None, state=None) -> None:
    directory.mkdir(exist_ok=True)
    (directory / CONFIG).write_text(json.dumps(good_config() if config is None else config))
    save_file(good_state() if state is None else state, str(directory / WEIGHTS))


Change = Callable[[Path], None]


def config(**fields) -> Change:
    return lambda d: write(d, config={**good_config(), **fields})


def config_without(field: str) -> Change:
    return lambda d: write(d, config={k: v for k, v in good_config().items() if k != field})


def state(edit: Callable[[dict], dict]) -> Change:
    return lambda d: write(d, state=edit(good_state()))


def replaced(key: str, tensor: torch.Tensor) -> Change:
    return state(lambda s: {**s, f"{PREFIX}{key}": tensor})


def file_bytes(name: str, edit: Callable[[bytes], bytes]) -> Change:
    def change(d: Path) -> None:
        write(d)
        (d / name).write_bytes(edit((d / name).read_bytes()))

    return change


def removed(name: str) -> Change:
    return lambda d: (write(d), (d / name).unlink())


def renamed_keys(old: str, new: str) -> Change:
    return state(lambda s: {k.replace(old, new): v for k, v in s.items()})


def nan_at(key: str) -> Change:
    def edit(s: dict) -> dict:
        s[f"{PREFIX}{key}"][0, 0] = math.nan
        return s

    return state(edit)


CASES = [
    # (what is wrong, change to a good adapter dir, error, words the message must contain)
    ("no config", removed(CONFIG), FileNotFoundError, [CONFIG, "not a PEFT adapter"]),
    ("no weights", removed(WEIGHTS), FileNotFoundError, [WEIGHTS, "adapter_model.bin"]),
    ("config truncated", file_bytes(CONFIG, lambda b: b[:20]), ValueError,
     [CONFIG, "not a readable adapter config"]),
    ("config not text", file_bytes(CONFIG, lambda b: b"\xff\xfe\x00" + b), ValueError,
     [CONFIG, "not a readable adapter config"]),
    ("config a list", file_bytes(CONFIG, lambda b: b"[1, 2]"), ValueError,
     [CONFIG, "expected a JSON object", "list"]),
    ("weights truncated", file_bytes(WEIGHTS, lambda b: b[: len(b) // 2]), ValueError,
     [WEIGHTS, "not readable adapter weights"]),
    ("weights zeroed", file_bytes(WEIGHTS, lambda b: bytes(len(b))), ValueError,
     [WEIGHTS, "not readable adapter weights"]),
    ("weights empty", file_bytes(WEIGHTS, lambda b: b""), ValueError,
     [WEIGHTS, "not readable adapter weights"]),
    ("not LoRA", config(peft_type="IA3"), ValueError, ["adapter 'a'", "peft_type", "'IA3'"]),
    ("r zero", config(r=0), ValueError, ["adapter 'a'", "'r'", "positive number", "got 0"]),
    ("r text", config(r="2"), ValueError, ["adapter 'a'", "'r'", "got '2'"]),
    ("r bool", config(r=True), ValueError, ["adapter 'a'", "'r'", "got True"]),
    ("r fractional", config(r=2.5), ValueError, ["adapter 'a'", "'r'", "got 2.5"]),
    ("alpha missing", config_without("lora_alpha"), ValueError, ["'lora_alpha'", "got None"]),
    ("alpha NaN", config(lora_alpha=math.nan), ValueError, ["'lora_alpha'", "finite", "nan"]),
    ("alpha inf", config(lora_alpha=math.inf), ValueError, ["'lora_alpha'", "finite", "inf"]),
    ("alpha_pattern NaN", config(alpha_pattern={"inner": math.nan}), ValueError,
     ["'alpha_pattern'", "inner", "nan"]),
    ("rank_pattern zero", config(rank_pattern={"inner": 0}), ValueError,
     ["'rank_pattern'", "gives 0", "'inner'"]),
    ("lora_dropout out of range", config(lora_dropout=1.5), ValueError,
     ["'lora_dropout'", "[0, 1)", "1.5"]),
    ("trains base biases", config(bias="all"), ValueError, ["adapter 'a'", "bias='all'"]),
    ("modules_to_save", config(modules_to_save=["norm"]), ValueError, ["modules_to_save"]),
    ("dora without magnitude", config(use_dora=True), ValueError,
     ["module 'inner'", "use_dora=True", "lacks", "lora_magnitude_vector"]),
    ("bias factor not in config", replaced("inner.lora_B.bias", torch.zeros(6)), ValueError,
     ["module 'inner'", "lora_bias=False", "holds"]),
    ("rank in config differs", config(r=4), ValueError,
     ["module 'inner'", "config gives rank 4", "rank 2"]),
    ("another model's width", replaced("inner.lora_A.weight", torch.zeros(2, 7)), ValueError,
     ["adapter 'a', module 'inner'", "lora_A (2, 7)", "weight (6, 5)", "expected lora_A (2, 5)"]),
    ("another model's module", renamed_keys(".inner.", ".decoder.out."), ValueError,
     ["targets module 'decoder.out'", "does not have"]),
    ("a LayerNorm", renamed_keys(".inner.", ".norm."), TypeError,
     ["module 'norm'", "LayerNorm", "loads LoRA onto"]),
    ("an embedding", renamed_keys(".inner.lora_A.weight", ".embed.lora_embedding_A"),
     ValueError, ["embedding 'embed'", "target_modules"]),
    ("no lora_B", state(lambda s: {k: v for k, v in s.items() if "lora_B" not in k}),
     ValueError, ["module 'inner' has no lora_B"]),
    ("no factors", state(lambda s: {}), ValueError, ["holds no LoRA factors"]),
    ("keys with adapter name", renamed_keys(".weight", ".default.weight"), ValueError,
     ["'base_model.model.inner.lora_A.default.weight'", "not a LoRA factor",
      "get_peft_model_state_dict"]),
    ("integer factors", state(lambda s: {k: v.long() for k, v in s.items()}), TypeError,
     ["'base_model.model.inner.lora_A.weight'", "floating tensor", "int64"]),
    ("NaN in lora_A", nan_at("inner.lora_A.weight"), ValueError,
     ["adapter 'a'", "'base_model.model.inner.lora_A.weight'", "1 NaN or infinite"]),
    ("inf in lora_B", replaced("inner.lora_B.weight", torch.full((6, 2), math.inf)), ValueError,
     ["adapter 'a'", "lora_B.weight", "12 NaN or infinite"]),
    ("stale base tensor", replaced("embed.weight", torch.zeros(4, 5)), ValueError,
     ["'embed.weight'", "differs from the model's", "save_embedding_layers"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_bad_adapter_directory_is_refused_naming_it(tmp_path, change, error, words):
    change(tmp_path / "adapter")
    model = Model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error) as caught:
        LoraAdapters.load(model, {"a": tmp_path / "adapter"})
    for word in words:
        assert word in str(caught.value), f"{word!r} not in {caught.value}"
    assert type(model.inner) is nn.Linear  # refused before the model was changed
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


SOURCE_CASES = [
    # (what is wrong, sources, error, words)
    ("no sources", {}, ValueError, ["sources must name at least one adapter"]),
    ("name with a dot", {"a.b": "dir"}, ValueError, ["adapter names", "'a.b'"]),
    ("reserved name", {"train": "dir"}, ValueError, ["adapter names", "'train'"]),
    ("source a number", {"a": 3}, TypeError, ["adapter 'a'", "source must be", "int"]),
    ("source a triple", {"a": (1, 2, 3)}, TypeError, ["adapter 'a'", "tuple"]),
    ("config an int", {"a": (3, {})}, TypeError, ["adapter 'a'", "config must be", "int"]),
    ("missing directory", {"a": "/nonexistent/adapter"}, FileNotFoundError,
     ["/nonexistent/adapter/adapter_config.json"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sources", "error", "words"), [c[1:] for c in SOURCE_CASES], ids=[c[0] for c in SOURCE_CASES]
)
def test_bad_adapter_sources_are_named(sources, error, words):
    with pytest.raises(error) as caught:
        LoraAdapters.load(Model(), sources)
    for word in words:
        assert word in str(caught.value), f"{word!r} not in {caught.value}"


def test_an_adapter_loaded_twice_is_refused(tmp_path):
    write(tmp_path / "adapter")
    model = Model()
    adapters = LoraAdapters.load(model, {"a": tmp_path / "adapter"})
    with pytest.raises(ValueError, match="adapter 'a' is already loaded"):
        adapters.add_adapter(model, "a", tmp_path / "adapter")


def test_the_good_adapter_of_the_table_loads_and_round_trips(tmp_path):
    write(tmp_path / "adapter")
    adapters = LoraAdapters.load(Model(), {"a": tmp_path / "adapter"})
    adapters.save_pretrained(tmp_path / "saved")
    saved = load_file(str(tmp_path / "saved" / "a" / WEIGHTS))
    assert saved.keys() == good_state().keys()
    assert all(torch.equal(saved[k], v) for k, v in good_state().items())
