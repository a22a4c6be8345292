"""The installed ``perfrdiff`` command: an input error is one line on stderr, not a traceback."""

from __future__ import annotations

import pytest
import torch
from perfrdiff.cli import console
from perfrdiff.device import DeviceUnavailable


def test_a_bad_override_is_one_line_with_status_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert console(["train", "all", "--run-dir", str(run_dir), "--set", "bogus.key=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perfrdiff: error: override 'bogus.key': no config section 'bogus'")
    assert "Traceback" not in err and not run_dir.exists()


def test_a_missing_run_names_its_config_file(tmp_path, capsys):
    assert console(["generate", "--run-dir", str(tmp_path / "none")]) == 2
    assert f"{tmp_path / 'none' / 'config.yaml'} not found" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_a_device_this_host_lacks_is_an_input_error(tmp_path, capsys):
    assert console(["train", "all", "--run-dir", str(tmp_path / "run"), "--device", "cuda"]) == 2
    assert "CUDA is not available here" in capsys.readouterr().err
    with pytest.raises(DeviceUnavailable):
        console(
            ["--traceback", "train", "all", "--run-dir", str(tmp_path / "run"), "--device", "cuda"]
        )


def test_traceback_reraises_the_error(tmp_path):
    with pytest.raises(ValueError, match=r"no config section 'bogus'"):
        console(["--traceback", "train", "all", "--run-dir", str(tmp_path), "--set", "bogus.x=1"])


def test_notes_are_printed_under_the_message(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("denoiser: {d_model: -3}\n")
    code = console(["train", "all", "--run-dir", str(tmp_path / "run"), "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    assert "denoiser.d_model" in err and f"in config file {config}" in err


def test_a_demo_that_cannot_be_scored_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "demo"
    assert console(["demo", "--out", str(out), "--set", "generate.samples=1"]) == 2
    assert "generate.samples = 1" in capsys.readouterr().err
    assert not out.exists()  # no dataset written, nothing trained


def test_ctrl_c_is_one_line_saying_how_to_resume_and_status_130(monkeypatch, capsys):
    import perfrdiff.cli as cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", interrupted)
    assert console(["train", "all", "--run-dir", "r"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "perfrdiff train all --run-dir r --resume" in err
    assert console(["generate"]) == 130
    assert "kept" in capsys.readouterr().err


def test_a_diverged_training_is_one_line_with_status_2(monkeypatch, capsys):
    import perfrdiff.cli as cli
    from perfrdiff.training.loop import TrainingDiverged

    def diverged(argv):
        raise TrainingDiverged("gafrg: training diverged at step 3: lower train.gafrg.lr")

    monkeypatch.setattr(cli, "main", diverged)
    assert console(["train", "gafrg"]) == 2
    assert "perfrdiff: error: gafrg: training diverged at step 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "emotion-vae", "--run-dir", "{file}"],
        ["generate", "--out", "{file}/below"],
        ["evaluate", "--output", "{file}"],
        ["demo", "--out", "{file}"],
    ],
)
def test_an_output_path_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, argv):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    argv = [a.replace("{file}", str(taken)) for a in argv]
    assert console(argv) == 2
    err = capsys.readouterr().err
    assert f"{taken} is a file, not a folder" in err
    assert taken.read_text() == "keep me"
