"""The commands' default paths chain (make-synthetic -> train -> generate -> evaluate), and a
command missing its input says which command makes it, before any slow work."""

from __future__ import annotations

import pytest
from perfrdiff.cli import build_parser, console
from perfrdiff.commands.common import DATA_ROOT, RUN_DIR
from perfrdiff.commands.evaluate import DEFAULT_PREDICTIONS
from perfrdiff.config import load_config


def test_default_paths_chain():
    parser = build_parser()
    assert str(parser.parse_args(["make-synthetic"]).root) == DATA_ROOT
    assert load_config("tiny").data.root == DATA_ROOT
    assert parser.parse_args(["train", "all"]).run_dir == RUN_DIR
    generate = parser.parse_args(["generate"])
    assert generate.run_dir == RUN_DIR and generate.out is None  # <run-dir>/generate
    assert {p.parent.parent.as_posix() for p in DEFAULT_PREDICTIONS} == {f"{RUN_DIR}/generate"}
    assert parser.parse_args(["demo"]).out == RUN_DIR.rsplit("/", 1)[0]


def test_evaluate_without_predictions_names_the_generate_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert console(["evaluate"]) == 2
    assert "`perfrdiff generate` writes them there" in capsys.readouterr().err


def test_generate_without_weights_fails_before_reading_the_data(tmp_path, monkeypatch, capsys):
    from perfrdiff.run import Run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}\n")  # a run whose training never finished

    def too_late(*args, **kwargs):
        raise AssertionError("features were computed before the weights were checked")

    monkeypatch.setattr(Run, "evaluation_set", too_late)
    assert console(["generate", "--run-dir", str(run_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no weights at" in err and f"`perfrdiff train all --run-dir {run_dir}`" in err


def test_generate_without_a_run_names_the_train_command(tmp_path, capsys):
    assert console(["generate", "--run-dir", str(tmp_path / "none")]) == 2
    assert f"`perfrdiff train all --run-dir {tmp_path / 'none'}`" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["make-synthetic", "train", "generate", "evaluate", "demo"])
def test_every_pipeline_command_runs_with_no_required_flag(command):
    argv = [command, "all"] if command == "train" else [command]
    build_parser().parse_args(argv)  # raises SystemExit if a flag were required
