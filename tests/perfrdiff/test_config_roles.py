"""Every config field declares what depends on it; every "does this key matter here?" answer is
derived from those roles (perfrdiff.changes), not from a list of keys."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from perfrdiff.changes import flat_keys, resume_changes, retrained_stages, weights_changes
from perfrdiff.config import (
    OWN_STAGE,
    Config,
    Role,
    StageConfig,
    config_to_dict,
    field_roles,
    load_config,
    training_of,
    weights_of,
)
from perfrdiff.stages import STAGE_NAMES, STAGES, upstream

KINDS = {"weights", "training", "sampling", "runtime"}


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += leaf_fields(hints[f.name], f"{prefix}{f.name}.")
        elif cls is Config and f.name == "train":
            out += leaf_fields(StageConfig, "train.<stage>.")
        else:
            out.append((f"{prefix}{f.name}", f))
    return out


@pytest.mark.parametrize(("key", "f"), leaf_fields(Config), ids=lambda v: str(v)[:40])
def test_every_config_field_declares_a_role(key, f):
    role = f.metadata.get("role")
    assert isinstance(role, Role), f"{key} declares no role"
    assert role.kind in KINDS
    assert set(role.defines) <= set(role.trains), f"{key}: a value that defines weights trains them"
    assert set(role.trains) <= {*STAGE_NAMES, OWN_STAGE}
    if role.kind in ("sampling", "runtime"):
        assert not role.trains, f"{key}: a {role.kind} value concerns no stage's training"


def test_field_roles_cover_every_value_of_a_config():
    assert set(flat_keys(config_to_dict(Config()))) == set(field_roles())
    for stage in STAGE_NAMES:  # a stage's own settings train that stage alone
        assert field_roles()[f"train.{stage}.lr"].trains == (stage,)


def test_a_role_naming_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match=r"unknown stages \['gafgr'\]"):
        weights_of("gafgr")
    with pytest.raises(ValueError, match="unknown stages"):
        training_of("pwsg", "nope")


def test_the_stage_registry_is_in_training_order_and_closed():
    for position, name in enumerate(STAGE_NAMES):
        assert all(STAGE_NAMES.index(r) < position for r in STAGES[name].requires)
    assert upstream("pwsg") == ("emotion-vae", "style", "gafrg")
    assert upstream("emotion-vae") == ()


@pytest.mark.parametrize("stage", ["gafrg", "pwsg"])
def test_the_diffusion_target_defines_the_denoiser_and_what_is_built_on_it(stage):
    base = config_to_dict(load_config("tiny"))
    other = config_to_dict(load_config("tiny", ["diffusion.prediction=x0"]))
    assert weights_changes(base, other, stage) == {"diffusion.prediction": ("v", "x0")}
    assert weights_changes(base, other, "style") == {}
    applied, refused = resume_changes(base, other, stage)
    assert (applied, refused) == ({}, {"diffusion.prediction": ("v", "x0")})


@pytest.mark.parametrize(
    "override",
    ["diffusion.sample_steps=3", "diffusion.guidance=2", "generate.overlap=0", "threads=1",
     "data.num_workers=2", "data.allow_same_clip_history=true", "train.gafrg.lr=0.5",
     "denoiser.dropout=0.3", "style.temperature=0.2", "data.root=elsewhere"],
)  # fmt: skip
def test_sampling_runtime_and_training_values_leave_trained_weights_usable(override):
    base = config_to_dict(load_config("tiny"))
    other = config_to_dict(load_config("tiny", [override]))
    for stage in STAGE_NAMES:
        assert weights_changes(base, other, stage) == {}


def test_resume_applies_resumable_values_refuses_the_others_and_ignores_other_stages():
    base = config_to_dict(load_config("tiny"))
    overrides = ["train.gafrg.lr=0.5", "train.gafrg.batch_size=3", "data.root=moved", "seed=3",
                 "style.temperature=0.2", "diffusion.guidance=2", "train.pwsg.lr=0.1"]  # fmt: skip
    other = config_to_dict(load_config("tiny", overrides))
    applied, refused = resume_changes(base, other, "gafrg")
    assert set(applied) == {"train.gafrg.lr", "data.root"}
    assert set(refused) == {"train.gafrg.batch_size", "seed"}


def test_retrained_stages_follow_the_roles_and_the_registry():
    base = load_config("tiny")
    assert retrained_stages(base, load_config("tiny", ["diffusion.prediction=x0"])) == [
        "gafrg",
        "pwsg",
    ]
    assert retrained_stages(base, load_config("tiny", ["data.allow_same_clip_history=true"])) == []
    assert retrained_stages(base, load_config("tiny", ["data.root=other"])) == list(STAGE_NAMES)
