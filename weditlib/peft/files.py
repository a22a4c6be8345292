"""PEFT's on-disk format for one LoRA adapter, and the names of its tensors.

A directory written by ``PeftModel.save_pretrained`` holds ``adapter_config.json`` and
``adapter_model.safetensors`` (older versions: ``adapter_model.bin``). The state dict names each
LoRA factor ``base_model.model.<module path>.lora_A.weight`` (``lora_B``), with the adapter's name
removed; an adapter saved with ``lora_bias=True`` also holds ``<module path>.lora_B.bias``, and a
DoRA adapter (``use_dora=True``) ``<module path>.lora_magnitude_vector``.
Reading needs only ``safetensors`` (or torch); PEFT itself is not imported.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CONFIG_NAME = "adapter_config.json"
SAFETENSORS_NAME = "adapter_model.safetensors"
TORCH_NAME = "adapter_model.bin"

_FACTOR_KEY = re.compile(r"(?P<module>.+)\.lora_(?P<factor>[AB])\.(?P<tensor>weight|bias)")
# PEFT writes the magnitude without the ".weight" of its module; accept both spellings
_MAGNITUDE_KEY = re.compile(r"(?P<module>.+)\.lora_magnitude_vector(\.weight)?")
# LoRA on an nn.Embedding: not a shift of a linear or conv weight
_EMBEDDING_KEY = re.compile(r"(?P<module>.+)\.lora_embedding_[AB]")
# a base model tensor, as save_embedding_layers saves embedding layers (wrapped or not)
_BASE_KEY = re.compile(r"(?P<module>.+?)(\.base_layer)?\.(?P<tensor>weight|bias)")
_PEFT_PREFIX = "base_model.model."


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as error:  # pragma: no cover - safetensors ships with peft
        raise ImportError(
            "reading and writing PEFT adapters needs safetensors: pip install safetensors (or the "
            "peft extra: pip install -e '.[peft]' in a clone of weditlib)"
        ) from error
    return safetensors.torch


def read_adapter_dir(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state_dict)`` of the adapter saved in ``directory``.

    Raises:
        FileNotFoundError: the directory lacks ``adapter_config.json`` or the weights file.
        ValueError: either file is damaged (truncated, not JSON, not safetensors); the message
            names the file.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist (not a PEFT adapter directory)")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path}: not a readable adapter config ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    weights = directory / SAFETENSORS_NAME
    if not weights.is_file():
        weights = directory / TORCH_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{directory} has neither {SAFETENSORS_NAME} nor {TORCH_NAME} (adapter weights)"
        )
    try:
        if weights.name == SAFETENSORS_NAME:
            state = _safetensors().load_file(weights)
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise their own types for a bad file
        raise ValueError(f"{weights}: not readable adapter weights ({error})") from None
    return config, state


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in the same directory and ``os.replace``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_adapter_dir(
    directory: str | os.PathLike, config: Mapping[str, Any], state: Mapping[str, Tensor]
) -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` as PEFT does."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().contiguous().cpu() for key, value in state.items()}
    text = json.dumps(dict(config), indent=2, sort_keys=True)
    _write_atomically(
        directory / SAFETENSORS_NAME,
        lambda path: _safetensors().save_file(tensors, path, metadata={"format": "pt"}),
    )
    _write_atomically(directory / CONFIG_NAME, lambda path: path.write_text(text))


@dataclass(frozen=True)
class Factors:
    """The LoRA factors of one module: ``ΔW = scaling · B @ A`` and ``Δb = scaling · bias``.

    Attributes:
        module: the module's path in the base model.
        lora_a: ``(r, k)`` (linear) as stored.
        lora_b: ``(n, r)`` as stored.
        key_a: the state-dict key ``lora_a`` was read from (written back unchanged).
        key_b: the same for ``lora_b``.
        lora_bias: ``(n,)``, the bias of PEFT's ``lora_B`` layer (``lora_bias=True``), else
            ``None``.
        key_bias: the state-dict key ``lora_bias`` was read from, else ``None``.
        magnitude: DoRA's magnitude as stored (linear ``(n,)``, conv ``(1, out, 1, ...)``),
            else ``None``.
        key_magnitude: the state-dict key ``magnitude`` was read from, else ``None``.
    """

    module: str
    lora_a: Tensor
    lora_b: Tensor
    key_a: str
    key_b: str
    lora_bias: Tensor | None = None
    key_bias: str | None = None
    magnitude: Tensor | None = None
    key_magnitude: str | None = None


def split_base_tensors(
    adapter: str, state: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor], dict[str, tuple[str, Tensor]]]:
    """``(LoRA state, base tensors)``: the tensors of the base model that PEFT's
    ``save_embedding_layers`` (``"auto"`` by default) writes beside the factors, split off as
    key → ``(the model's parameter name, tensor)``.

    Raises:
        ValueError: the adapter holds LoRA factors of an embedding layer (the message says to
            remove it from ``target_modules``).
    """
    lora, base = {}, {}
    for key, value in state.items():
        if (match := _EMBEDDING_KEY.match(key)) is not None:
            module = match["module"].removeprefix(_PEFT_PREFIX)
            raise ValueError(
                f"adapter {adapter!r} holds LoRA factors of the embedding {module!r} ({key!r}): "
                "weditlib.peft loads LoRA onto linear and conv layers; create the adapter "
                f"without {module.rpartition('.')[2]!r} in target_modules"
            )
        if ".lora_" not in key and (match := _BASE_KEY.fullmatch(key)) is not None:
            module = match["module"].removeprefix(_PEFT_PREFIX)
            base[key] = (f"{module}.{match['tensor']}", value)
        else:
            lora[key] = value
    return lora, base


def split_state_dict(adapter: str, state: Mapping[str, Tensor]) -> list[Factors]:
    """The LoRA factors of every module in a PEFT adapter state dict, in key order.

    Raises:
        TypeError: a value is not a floating-point tensor.
        ValueError: a value holds NaN or infinite entries, a key is not a LoRA factor (or
            ``lora_B``'s bias), or a module has only one of ``lora_A`` and ``lora_B`` (the
            message names the adapter and the key or module).
    """
    found: dict[str, dict[str, tuple[str, Tensor]]] = {}
    for key, value in state.items():
        module, part = _parse_key(adapter, key)
        if not isinstance(value, Tensor) or not value.dtype.is_floating_point:
            kind = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"adapter {adapter!r}: {key!r} must be a floating tensor, got {kind}")
        if (bad := int((~value.isfinite()).sum())) > 0:  # every output of the adapter: NaN
            raise ValueError(
                f"adapter {adapter!r}: {key!r} holds {bad} NaN or infinite values of "
                f"{value.numel()}; the adapter's training diverged or the file is damaged"
            )
        found.setdefault(module, {})[part] = (key, value)
    factors = []
    for module, parts in found.items():
        if not {"A", "B"} <= set(parts):
            missing = "lora_B" if "A" in parts else "lora_A"
            raise ValueError(f"adapter {adapter!r}: module {module!r} has no {missing} weight")
        (key_a, lora_a), (key_b, lora_b) = parts["A"], parts["B"]
        key_bias, lora_bias = parts.get("bias", (None, None))
        key_magnitude, magnitude = parts.get("magnitude", (None, None))
        factors.append(
            Factors(
                module, lora_a, lora_b, key_a, key_b, lora_bias, key_bias, magnitude, key_magnitude
            )
        )
    return factors


def _parse_key(adapter: str, key: str) -> tuple[str, str]:
    """``(module path, part)`` of a state-dict key; part is ``A``, ``B``, ``bias`` or
    ``magnitude``."""
    if (match := _MAGNITUDE_KEY.fullmatch(key)) is not None:
        return match["module"].removeprefix(_PEFT_PREFIX), "magnitude"
    match = _FACTOR_KEY.fullmatch(key)
    if match is None or (match["factor"], match["tensor"]) == ("A", "bias"):
        raise ValueError(
            f"adapter {adapter!r}: state-dict key {key!r} is not a LoRA factor "
            "'<module>.lora_A.weight' / '<module>.lora_B.weight' / '<module>.lora_B.bias' / "
            "'<module>.lora_magnitude_vector' (keys of a PeftModel's own state_dict carry the "
            "adapter name: use peft.get_peft_model_state_dict)"
        )
    module = match["module"].removeprefix(_PEFT_PREFIX)
    return module, "bias" if match["tensor"] == "bias" else match["factor"]
