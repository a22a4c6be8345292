"""pwsg.mode 'shift' (the previous name of 'add') keeps loading, and runs saved with it still
match their configs."""

import json
import shutil

import pytest
import yaml
from perfrdiff import Run
from perfrdiff.changes import changed_values, resume_changes, weights_changes
from perfrdiff.config import config_from_dict, config_to_dict, load_config, with_current_names
from perfrdiff.rundir import StageMismatch
from perfrdiff.stages import run_stages


def old_spelling(config):
    """``config`` as nested mappings with ``pwsg.mode`` written the old way."""
    data = config_to_dict(config)
    assert data["pwsg"]["mode"] == "add"
    data["pwsg"]["mode"] = "shift"
    return data


def test_the_old_name_loads_as_add_from_an_override_a_file_and_a_mapping(tmp_path):
    assert load_config("tiny", ["pwsg.mode=shift"]).pwsg.mode == "add"
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old_spelling(load_config("tiny"))))
    assert load_config(path) == load_config("tiny")
    assert config_from_dict({"pwsg": {"mode": "shift"}}).pwsg.mode == "add"


def test_renaming_copies_only_what_it_changes():
    old = old_spelling(load_config("tiny"))
    renamed = with_current_names(old)
    assert old["pwsg"]["mode"] == "shift" and renamed["pwsg"]["mode"] == "add"
    assert renamed["denoiser"] is old["denoiser"]
    current = config_to_dict(load_config("tiny"))
    assert with_current_names(current) is current
    assert with_current_names({"pwsg": 3}) == {"pwsg": 3}  # not a mapping: left to the checks


def test_a_record_written_with_the_old_name_has_no_changes():
    config = load_config("tiny")
    old, new = old_spelling(config), config_to_dict(config)
    assert changed_values(old, new) == {} and changed_values(new, old) == {}
    assert weights_changes(old, new, "pwsg") == {}
    assert resume_changes(old, new, "pwsg") == ({}, {})
    scale = config_to_dict(load_config("tiny", ["pwsg.mode=scale"]))
    assert weights_changes(old, scale, "pwsg") == {"pwsg.mode": ("add", "scale")}


def rewrite_mode(run_dir, mode):
    """Write ``mode`` as ``pwsg.mode`` into the run's config.yaml and every stage record."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["pwsg"]["mode"] = mode
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for stage in run_stages(load_config(run_dir / "config.yaml")):
        record_path = run_dir / stage / "model.json"
        record = json.loads(record_path.read_text())
        record["config"]["pwsg"]["mode"] = mode
        record_path.write_text(json.dumps(record))


def test_a_run_saved_with_the_old_name_generates(quick_run, tmp_path):
    run_dir = tmp_path / "old_run"
    shutil.copytree(quick_run, run_dir)
    rewrite_mode(run_dir, "shift")
    run = Run.load(run_dir, "cpu")
    assert run.config.pwsg.mode == "add"
    run.sampler("personalised")  # its stage records are checked against the config
    with pytest.raises(StageMismatch, match=r"pwsg\.mode: trained with 'add', now 'scale'"):
        Run.load(run_dir, "cpu", overrides=["pwsg.mode=scale"]).sampler("personalised")
