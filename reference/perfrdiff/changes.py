"""What a change of config touches, derived from the roles its fields declare
(:class:`perfrdiff.config.Role`); nothing here lists config keys.

Three questions, each asked of two configs as nested mappings (a saved ``model.json`` or
checkpoint record against the current config), over the values both hold:

* :func:`weights_changes` — may ``stage``'s trained weights be used under the new config?
  Only if no value that defines them, or a stage they are built on, changed.
* :func:`resume_changes` — may a training of ``stage`` continue under the new config? Values its
  training reads split into those a resume applies and those it refuses.
* :func:`retrained_stages` — which stages does a variant of a run have to train again?
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from perfrdiff.config import Config, Role, config_to_dict, field_roles, with_current_names
from perfrdiff.stages import STAGE_NAMES, STAGES, upstream

Changes = dict[str, tuple[Any, Any]]


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one ``dotted.key -> value`` dict."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_values(old: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    """``dotted key -> (old, new)`` for the config values both nested mappings hold and that
    differ (keys no config field declares, e.g. from an older version, are skipped; a value an
    older version wrote under another name is compared by its current one,
    :data:`perfrdiff.config.OLD_VALUES`)."""
    roles = field_roles()
    flat_old, flat_new = flat_keys(with_current_names(old)), flat_keys(with_current_names(new))
    return {
        key: (flat_old[key], flat_new[key])
        for key in sorted(set(flat_old) & set(flat_new))
        if key in roles and flat_old[key] != flat_new[key]
    }


def _changes(
    old: Mapping[str, Any], new: Mapping[str, Any], selected: Callable[[Role], bool]
) -> Changes:
    roles = field_roles()
    return {k: v for k, v in changed_values(old, new).items() if selected(roles[k])}


def weights_changes(old: Mapping[str, Any], new: Mapping[str, Any], stage: str) -> Changes:
    """The changed values that define ``stage``'s weights or those of a stage it is built on:
    weights trained under ``old`` do not mean the same under ``new``."""
    stages = {stage, *upstream(stage)}
    return _changes(old, new, lambda role: bool(stages & set(role.defines)))


def resume_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], stage: str
) -> tuple[Changes, Changes]:
    """``(applied, refused)``: the changed values ``stage``'s training reads (or that define a
    stage it is built on), split by whether a resumed training may take the new value."""
    stages = set(upstream(stage))
    changes = _changes(
        old, new, lambda role: stage in role.trains or bool(stages & set(role.defines))
    )
    applied = {k: v for k, v in changes.items() if field_roles()[k].resumable}
    refused = {k: v for k, v in changes.items() if k not in applied}
    return applied, refused


def retrained_stages(base: Config, variant: Config) -> list[str]:
    """The stages (in training order) whose weights under ``variant`` differ from those trained
    under ``base``: a value their training reads changed, or a stage they are built on is
    retrained."""
    changes = changed_values(config_to_dict(base), config_to_dict(variant))
    retrained: list[str] = []
    for name in STAGE_NAMES:
        reads = any(name in field_roles()[key].trains for key in changes)
        if reads or any(r in retrained for r in STAGES[name].requires):
            retrained.append(name)
    return retrained
