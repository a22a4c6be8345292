"""What weditlib reads from a PEFT LoRA ``adapter_config.json``.

:class:`LoraSettings` keeps the whole configuration (it is written back unchanged on save) and
interprets the few fields that decide the forward pass: ``r``, ``lora_alpha``, ``use_rslora``,
``rank_pattern``, ``alpha_pattern``, ``lora_bias``, ``use_dora`` and ``lora_dropout``. A field
that would change the forward pass in a way these shifts cannot express (trained base biases,
extra trainable modules, ...) is refused when the adapter is loaded, never silently ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Fields that change what an adapter computes in ways a low-rank weight shift cannot express.
# Each must be unset (``None``, ``False``, ``"none"``, ``{}`` or ``[]``, as PEFT's defaults are).
_UNSUPPORTED_FIELDS: tuple[str, ...] = (
    "bias",  # "all" / "lora_only" train the base layers' biases
    "modules_to_save",  # full trainable copies of whole modules
    "layer_replication",
    "trainable_token_indices",
    "target_parameters",
    "alora_invocation_tokens",
    "use_qalora",
    "use_bdlora",
    "arrow_config",
    "velora_config",
    "monteclora_config",
    "kasa_config",
    "megatron_config",
)


def _unset(value: Any) -> bool:
    return value is None or value is False or value == "none" or value in ({}, [])


def jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with sets as sorted lists and enums as their values, as PEFT writes it."""

    def convert(value: Any) -> Any:
        if isinstance(value, set | frozenset):
            return sorted(value)
        if isinstance(value, Mapping):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [convert(item) for item in value]
        enum_value = getattr(value, "value", None)  # PEFT's PeftType / TaskType are str enums
        return enum_value if isinstance(value, str) and enum_value is not None else value

    return {key: convert(value) for key, value in config.items()}


def _hint(field: str, config: Mapping[str, Any]) -> str:
    """How to make PEFT write a config without ``field`` where PEFT set it by default."""
    task = config.get("task_type")
    if field == "modules_to_save" and task in ("SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS"):
        return (
            f"; PEFT adds the task head to modules_to_save itself for task_type={task!r}: create "
            "the adapter with task_type=None (and train or load the head apart from it)"
        )
    return ""


def _is_rank(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_alpha(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value > 0


def _check_numbers(adapter: str, config: Mapping[str, Any]) -> None:
    """``r`` and ``rank_pattern``'s values are ints >= 1, ``lora_alpha`` and ``alpha_pattern``'s
    finite numbers > 0, ``lora_dropout`` in [0, 1): PEFT itself refuses or fails on anything
    else, and a NaN scaling would make every output of the adapter NaN.

    Raises:
        ValueError: naming the adapter, the field (and the pattern) and the value.
    """
    checks = (("r", _is_rank, "an int >= 1"), ("lora_alpha", _is_alpha, "a finite number > 0"))
    for field, valid, expected in checks:
        if not valid(config.get(field)):
            raise ValueError(
                f"adapter {adapter!r}: config field {field!r} must be a positive number, got "
                f"{config.get(field)!r} (expected {expected})"
            )
    for field, valid, expected in (
        ("rank_pattern", _is_rank, "an int >= 1"),
        ("alpha_pattern", _is_alpha, "a finite number > 0"),
    ):
        for pattern, value in (config.get(field) or {}).items():
            if not valid(value):
                raise ValueError(
                    f"adapter {adapter!r}: config field {field!r} gives {value!r} for pattern "
                    f"{pattern!r}, expected {expected}"
                )
    dropout = config.get("lora_dropout") or 0.0
    if not (isinstance(dropout, int | float) and 0 <= dropout < 1):
        raise ValueError(
            f"adapter {adapter!r}: config field 'lora_dropout' must be in [0, 1), got {dropout!r}"
        )


def _pattern_value(patterns: Mapping[str, Any], module_path: str, default: Any) -> Any:
    """PEFT's ``get_pattern_key``: the first pattern matching a suffix of ``module_path``."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            return value
    return default


@dataclass(frozen=True)
class LoraSettings:
    """The configuration of one PEFT LoRA adapter.

    Attributes:
        adapter: the adapter's name (used in error messages).
        config: the full ``adapter_config.json`` as a JSON-ready dict, written back on save.
    """

    adapter: str
    config: dict[str, Any]

    @staticmethod
    def parse(adapter: str, config: Mapping[str, Any] | Any) -> LoraSettings:
        """Read and check a LoRA config (a dict, or an object with ``to_dict()`` like
        ``peft.LoraConfig``).

        Raises:
            TypeError: ``config`` is neither a mapping nor has ``to_dict()``.
            ValueError: it is not a LoRA config, or sets a field that low-rank shifts cannot
                express (the message names the adapter and the field).
        """
        if not isinstance(config, Mapping):
            to_dict = getattr(config, "to_dict", None)
            if to_dict is None:
                raise TypeError(
                    f"adapter {adapter!r}: config must be a dict or a peft.LoraConfig, "
                    f"got {type(config).__name__}"
                )
            config = to_dict()
        config = jsonable(config)
        peft_type = config.get("peft_type")
        if peft_type != "LORA":
            raise ValueError(f"adapter {adapter!r}: peft_type must be 'LORA', got {peft_type!r}")
        _check_numbers(adapter, config)
        for field in _UNSUPPORTED_FIELDS:
            if not _unset(value := config.get(field)):
                raise ValueError(
                    f"adapter {adapter!r}: config sets {field}={value!r}, which weditlib.peft "
                    "cannot apply as a low-rank weight shift (it must be unset)"
                    + _hint(field, config)
                )
        return LoraSettings(adapter, config)

    @property
    def lora_bias(self) -> bool:
        """Whether ``lora_B`` has a bias (a bias shift ``scaling · bias``, as PEFT adds it)."""
        return bool(self.config.get("lora_bias"))

    @property
    def use_dora(self) -> bool:
        """Whether the adapter is DoRA: ``m ⊙ (W + ΔW) / ‖W + ΔW‖`` per output row."""
        return bool(self.config.get("use_dora"))

    @property
    def lora_dropout(self) -> float:
        return float(self.config.get("lora_dropout") or 0.0)

    def rank(self, module_path: str) -> int:
        """``r`` of the module at ``module_path`` (``rank_pattern`` first, then ``r``)."""
        return int(
            _pattern_value(self.config.get("rank_pattern") or {}, module_path, self.config["r"])
        )

    def scaling(self, module_path: str) -> float:
        """PEFT's ``scaling``: ``alpha / r``, or ``alpha / sqrt(r)`` with ``use_rslora``."""
        rank = self.rank(module_path)
        alpha = _pattern_value(
            self.config.get("alpha_pattern") or {}, module_path, self.config["lora_alpha"]
        )
        return alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank
