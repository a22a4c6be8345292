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
