"""Bad command-line input, one row each, run as the installed ``perfrdiff`` command runs it (in
process): exit status 2, one line on stderr that names the option, key or file, no traceback,
and nothing written — outputs are checked before any work, and a trained run is left as it was.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from perfrdiff.cli import console
from perfrdiff.data import read_split_csv

# {run}: a copy of a trained run; {data}: its dataset; {file}: an existing file; {tmp}: an
# empty folder; {int16}, {text}, {preds_t700}, {preds_nan}: files written by `inputs`.
CASES = [
    # (argv, words the one line must contain)
    # the command itself
    ("", ["required", "<command>"]),
    ("--log-level BOGUS train all", ["--log-level", "'BOGUS'", "DEBUG"]),
    ("train bogus", ["argument stage", "invalid choice: 'bogus'", "perfrdiff train --help"]),
    ("train all --precision fp8", ["--precision", "'fp8'"]),
    ("generate --samples abc", ["--samples", "invalid int value: 'abc'"]),
    # train: output, config, data, device
    ("train gafrg --run-dir {file}", ["--run-dir", "{file} is a file"]),
    ("train gafrg --run-dir {file}/run", ["--run-dir {file}/run", "{file} is a file"]),
    ("train gafrg --run-dir {run} --set bogus.key=1", ["no config section 'bogus'"]),
    ("train gafrg --run-dir {run} --set denoiser.d_modle=3", ["unknown key 'd_modle'"]),
    ("train gafrg --run-dir {run} --set train.gafrg.lr=nan", ["train.gafrg.lr", "finite"]),
    ("train gafrg --run-dir {run} --set denoiser=3", ["denoiser", "mapping"]),
    ("train gafrg --run-dir {run} --set seed=4294967296", ["seed", "<= 4294967295"]),
    ("train gafrg --run-dir {run} --set threads=1000000", ["threads", "<= 1024"]),
    ("train gafrg --run-dir {run} --config {tmp}/none.yaml", ["{tmp}/none.yaml", "no file"]),
    ("train gafrg --run-dir {run} --config nopreset", ["'nopreset'", "presets"]),
    ("train gafrg --run-dir {run} --config {text}", ["{text}", "YAML mapping", "str"]),
    ("train gafrg --run-dir {run} --device tpu", ["device", "'tpu'"]),
    ("train gafrg --run-dir {run} --data-root {tmp}/nodata", ["{tmp}/nodata/train.csv", "missing"]),
    # train: stages and weights that do not fit
    ("train pwsg --run-dir {tmp}/new --data-root {data}",
     ["{tmp}/new/gafrg/model.safetensors", "train the stage"]),
    ("train pwsg --run-dir {run} --data-root {data} --set diffusion.prediction=x0",
     ["gafrg/model.safetensors does not fit", "diffusion.prediction: trained with 'v', now 'x0'"]),
    ("train gafrg --run-dir {run} --data-root {data} --resume --set denoiser.d_model=32",
     ["cannot resume gafrg", "denoiser.d_model: 64 -> 32"]),
    ("train pwsg --run-dir {run} --data-root {data} --set pwsg.targets=[nomatch.*]",
     ["pwsg.targets", "['nomatch.*'] select no editable weight"]),
    # generate
    ("generate --run-dir {run} --out {file}", ["--out {file}", "is a file"]),
    ("generate --run-dir {run} --out {file}/sub", ["--out {file}/sub", "{file} is a file"]),
    ("generate --run-dir {run} --samples 0", ["samples", ">= 1", "got 0"]),
    ("generate --run-dir {run} --steps -1", ["steps", ">= 1", "-1"]),
    ("generate --run-dir {run} --guidance nan", ["guidance", "finite", "nan"]),
    ("generate --run-dir {run} --guidance inf", ["guidance", "finite", "inf"]),
    ("generate --run-dir {run} --limit 0", ["limit", ">= 1"]),
    ("generate --run-dir {run} --plots -1", ["plots", ">= 0"]),
    ("generate --run-dir {run} --seed -1", ["seed", "[0, 4294967295]", "-1"]),
    ("generate --run-dir {run} --seed 99999999999999999999999", ["seed", "[0, 4294967295]"]),
    ("generate --run-dir {run} --split nosplit --out {tmp}/g", ["nosplit.csv", "missing"]),
    ("generate --run-dir {run} --history {int16} --out {tmp}/g",
     ["{int16}", "floating-point", "int16"]),
    ("generate --run-dir {run} --history {tmp}/none.npy --out {tmp}/g",
     ["{tmp}/none.npy", "missing"]),
    ("generate --run-dir {run} --history {text} --out {tmp}/g", ["{text}", "not a NumPy"]),
    ("generate --run-dir {run} --set diffusion.prediction=x0 --out {tmp}/g",
     ["gafrg/model.safetensors does not fit", "diffusion.prediction"]),
    ("generate --run-dir {run} --set pwsg.rank=3 --out {tmp}/g",
     ["pwsg/model.safetensors does not fit", "pwsg.rank: trained with 4, now 3"]),
    ("generate --run-dir {run} --set data.window=40 --out {tmp}/g", ["data.window", "50", "40"]),
    ("generate --run-dir {run} --set generate.overlap=50 --out {tmp}/g",
     ["generate.overlap", "[0, 50)", "50"]),
    ("generate --run-dir {tmp}/norun", ["{tmp}/norun/config.yaml not found", "perfrdiff train"]),
    # evaluate
    ("evaluate {preds_t700} --data-root {data}", ["{preds_t700}", "700", "750 frames"]),
    ("evaluate {preds_nan} --data-root {data}", ["{preds_nan}", "NaN or infinite"]),
    ("evaluate {tmp}/none.npy --data-root {data}", ["{tmp}/none.npy", "missing"]),
    ("evaluate {int16} --data-root {data}", ["{int16}", "floating-point", "int16"]),
    ("evaluate {file} --data-root {data}", ["{file}", ".npy or .npz"]),
    ("evaluate {preds_nan} --data-root {data} --output {file}", ["--output", "is a file"]),
    ("evaluate {preds_nan} --data-root {data} --n-jobs 0", ["n_jobs", ">= 1", "0"]),
    ("evaluate {preds_nan} --data-root {data} --window 0", ["window", ">= 1"]),
    ("evaluate {preds_nan} --data-root {data} --stride -5", ["stride", ">= 1", "-5"]),
    ("evaluate {preds_nan} {preds_t700} --name x", ["--name labels one predictions file"]),
    ("evaluate {preds_nan} --nan-policy maybe", ["--nan-policy", "'maybe'"]),
    # make-synthetic
    ("make-synthetic --root {file}", ["--root {file}", "is a file"]),
    ("make-synthetic --root {data}", ["{data}", "other settings", "--overwrite"]),
    ("make-synthetic --root {tmp}/d --min-clips 3 --max-clips 1", ["clips_per_session", "(3, 1)"]),
    ("make-synthetic --root {tmp}/d --train-sessions 0", ["sessions", "positive", "'train': 0"]),
    ("make-synthetic --root {tmp}/d --noise nan", ["noise", "finite", "nan"]),
    ("make-synthetic --root {tmp}/d --sample-rate 44099", ["sample_rate", "multiple of 50"]),
    ("make-synthetic --root {tmp}/d --family other", ["--family", "'other'"]),
    # demo: refused before any data is written or anything trained
    ("demo --out {file}", ["--out {file}", "is a file"]),
    ("demo --out {tmp}/demo --set generate.samples=1", ["generate.samples = 1"]),
    ("demo --out {tmp}/demo --sessions 0 1 1", ["sessions", "positive"]),
    ("demo --out {tmp}/demo --set data.window=0", ["data.window", ">= 1"]),
    # view: options before reading predictions
    ("view {tmp}/nogen", ["{tmp}/nogen", "predictions.npy", "perfrdiff generate"]),
    ("view {tmp}/nogen --out {file}/v.html", ["--out {file}/v.html", "{file} is a file"]),
    ("view {tmp}/nogen --out {tmp}", ["--out {tmp}", "is a folder"]),
    ("view {tmp}/nogen --max-frames 0", ["max_frames", ">= 1"]),
    ("view {tmp}/nogen --start -1", ["start", ">= 0"]),
    ("view {tmp}/nogen --duration nan", ["duration", "nan"]),
    ("view {tmp}/nogen --audio-rate 0", ["audio_rate", ">= 1"]),
    ("view {tmp}/nogen --channel AU99", ["channel", "AU12", "'AU99'"]),
    # ablate
    ("ablate --run-dir {run} --out {file}", ["--out {file}", "is a file"]),
    ("ablate --run-dir {tmp}/norun", ["{tmp}/norun/config.yaml not found"]),
    ("ablate --run-dir {run} --out {tmp}/ab --limit 0", ["limit", ">= 1"]),
]  # fmt: skip


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING) ")  # logging, not the refusal


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every path under ``directory`` (files with their bytes): what a refusal must not touch."""
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(directory.rglob("*"))
    }


@pytest.fixture
def inputs(quick_run, synthetic_root, tmp_path) -> dict[str, str]:
    files = tmp_path / "files"
    files.mkdir()
    (files / "afile").write_text("not a folder")
    (files / "history.txt").write_text("0.1, 0.2\n")
    np.save(files / "int16.npy", np.ones((250, 50), np.int16))
    n = 2 * len(read_split_csv(synthetic_root, "test"))
    np.save(files / "t700.npy", np.zeros((n, 2, 700, 25), np.float32))
    np.save(files / "nan.npy", np.full((n, 2, 750, 25), np.nan, np.float32))
    (tmp_path / "empty").mkdir()
    return {
        "run": str(shutil.copytree(quick_run, tmp_path / "run")),
        "data": str(synthetic_root),
        "file": str(files / "afile"),
        "tmp": str(tmp_path / "empty"),
        "int16": str(files / "int16.npy"),
        "text": str(files / "history.txt"),
        "preds_t700": str(files / "t700.npy"),
        "preds_nan": str(files / "nan.npy"),
    }


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[c[0][:60] for c in CASES])
def test_a_bad_command_line_is_refused_in_one_line(inputs, synthetic_root, argv, words, capsys):
    argv = argv.format(**inputs).split()
    tmp = Path(inputs["tmp"]).parent
    before, data_before = snapshot(tmp), snapshot(synthetic_root)
    try:
        status = console(argv)
    except SystemExit as error:  # argparse's own refusals exit
        status = error.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert status == 2, err
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert "error:" in lines[0] and "Traceback" not in err
    for word in words:
        assert word.format(**inputs) in lines[0], f"{word!r} not in {lines[0]}"
    assert snapshot(tmp) == before  # nothing written, the trained run untouched
    assert snapshot(synthetic_root) == data_before


# --- a diverged training replaces nothing ---------------------------------------------------


def test_a_diverged_training_exits_non_zero_and_leaves_the_run_byte_identical(
    quick_run, synthetic_root, tmp_path, capsys
):
    from .conftest import QUICK_TRAINING

    run = shutil.copytree(quick_run, tmp_path / "run")
    before = snapshot(run)
    quick = [arg for setting in QUICK_TRAINING for arg in ("--set", setting)]
    argv = ["train", "gafrg", "--run-dir", str(run), "--data-root", str(synthetic_root), *quick]
    status = console([*argv, "--device", "cpu", "--set", "train.gafrg.lr=1e6"])
    err = capsys.readouterr().err
    assert status == 2
    refusal = [line for line in err.splitlines() if "perfrdiff: error:" in line]
    assert len(refusal) == 1 and refusal[0].startswith("perfrdiff: error: gafrg: training diverged")
    assert "keeps its previous weights" in refusal[0] and "train.gafrg.lr" in refusal[0]
    # weights, record, checkpoints, metrics log and config.yaml: all byte-identical
    assert snapshot(run) == before


def test_a_new_training_of_a_stage_swaps_its_weights_only_when_it_finished(
    quick_run, synthetic_root, tmp_path
):
    from perfrdiff import Run
    from perfrdiff.config import load_config
    from perfrdiff.rundir import check_stage
    from perfrdiff.training.train import train_stage_of

    from .conftest import QUICK_TRAINING

    run_dir = shutil.copytree(quick_run, tmp_path / "run")
    weights = run_dir / "gafrg" / "model.safetensors"
    old = weights.read_bytes(), (run_dir / "gafrg" / "model.json").read_bytes()
    config = load_config("tiny", [f"data.root={synthetic_root}", *QUICK_TRAINING, "seed=5"])
    seen = []

    def old_weights_in_place(step: int) -> None:
        seen.append(step)
        assert weights.read_bytes() == old[0]  # the new weights are not written yet
        assert not [p for p in weights.parent.iterdir() if p.suffix == ".tmp"]

    train_stage_of(Run(config, run_dir, device="cpu"), "gafrg", on_step=old_weights_in_place)
    assert seen == [1, 2]
    assert weights.read_bytes() != old[0]  # swapped once finished, with its record
    assert (run_dir / "gafrg" / "model.json").read_bytes() != old[1]
    check_stage(run_dir, "gafrg", config)  # the record and checksum describe the new file
