"""Every ``perfrdiff`` command shown in README.md and docs/ runs, in the order a reader meets them.

The commands of all pages run one after another in one temporary working directory (README.md
first, then the pages in the site's order), so the default paths must chain: what
``make-synthetic`` writes, ``train`` reads; what ``generate`` writes, ``evaluate`` reads. Each
command is parsed by the real CLI, then shrunk (:func:`shrink`: two training steps per stage, two
samples of two DDIM steps, a dataset of four sessions) and run in-process. A block after
``<!-- docs-test: skip (reason) -->`` is not run (e.g. it needs REACT 2024 or a GPU); a command
that is the same as an earlier one once shrunk (e.g. ``demo`` with its default flags spelt out)
runs once.
"""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

import pytest
import yaml

from tests.docs.markdown_blocks import DOCS, ROOT, shell_blocks

pytestmark = pytest.mark.slow

#: Per training stage: two steps of four items, validated and checkpointed once.
QUICK_TRAINING = {
    "steps": 2,
    "batch_size": 4,
    "val_every": 2,
    "ckpt_every": 2,
    "val_batches": 1,
    "log_every": 1,
}


def site_order() -> list[Path]:
    """README.md, then the pages in mkdocs.yml's nav order."""

    def pages(entry) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [page for item in entry for page in pages(item)]
        return [page for value in entry.values() for page in pages(value)]

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nplugins:")[0])["nav"]
    return [ROOT / "README.md", *(DOCS / page for page in pages(nav))]


def split_commands(code: str) -> list[list[str]]:
    """The argv after ``perfrdiff`` of each command in a shell block (``&&`` chains split,
    continuations joined, ``python -m perfrdiff`` and ``torchrun … -m perfrdiff`` included)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        for part in line.strip().removeprefix("$ ").split("&&"):
            words = shlex.split(part, comments=True)
            if "perfrdiff" not in words:
                continue
            at = words.index("perfrdiff")
            if at == 0 or words[at - 1] == "-m":
                commands.append(words[at + 1 :])
    return commands


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command that is not in a skipped block, in reading order."""
    found = []
    for page in site_order():
        for block in shell_blocks(page):
            if not block.skipped:
                found += [(block.where, argv) for argv in split_commands(block.code)]
    return found


def shrink(args: argparse.Namespace) -> None:
    """Tiny settings on a parsed command, whatever the page asked for."""
    from perfrdiff.config import STAGES

    if hasattr(args, "device"):
        args.device = "cpu"
    if args.command == "make-synthetic":
        args.train_sessions, args.val_sessions, args.test_sessions = 2, 1, 1
        args.min_clips = args.max_clips = 2
    if args.command == "demo":
        args.sessions = [2, 1, 1]
    # New lists: the parsed default is the parser's own list object, shared by later parses.
    if args.command in ("train", "demo", "ablate"):
        args.overrides = args.overrides + [
            f"train.{stage}.{key}={value}"
            for stage in STAGES
            for key, value in QUICK_TRAINING.items()
        ]
        # The shrunk MARS twin's training split has 3 listeners with EEG: a smaller batch.
        args.overrides.append("train.eeg.batch_size=2")
    if args.command in ("generate", "demo"):
        args.overrides = [*args.overrides, "generate.samples=2", "diffusion.sample_steps=2"]
    if args.command == "generate":
        args.samples = None if args.samples is None else 2
        args.steps = None if args.steps is None else 2
        args.plots = min(args.plots, 1)
    if args.command == "evaluate":
        args.n_jobs = 1
    if args.command == "view":  # the shrunk split holds 4 items of 2 samples
        args.items = sorted({i % 4 for i in args.items})
        args.sample = min(args.sample, 1)


def test_the_readme_chains_the_pipeline_with_default_paths():
    readme = [" ".join(argv[:1]) for where, argv in documented_commands() if "README" in where]
    assert readme[:4] == ["make-synthetic", "train", "generate", "evaluate"], readme


def test_every_documented_command_runs_in_order(tmp_path, monkeypatch, caplog):
    torch = pytest.importorskip("torch")
    from perfrdiff.cli import build_parser

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.WARNING)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    parser, seen = build_parser(), set()
    try:
        for where, argv in documented_commands():
            args = parser.parse_args(argv)
            shrink(args)
            if repr(vars(args)) in seen:
                continue
            seen.add(repr(vars(args)))
            try:
                assert args._module.run(args) == 0
            except Exception as error:
                raise AssertionError(f"{where}: `perfrdiff {shlex.join(argv)}` failed") from error
    finally:
        torch.set_num_threads(threads)
