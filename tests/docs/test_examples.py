"""The code in the documentation runs: every Python block of docs/*.md and README.md is executed,
and every documented ``perfrdiff`` command line parses with the real CLI.

Python blocks of one page run in order in one namespace (like a notebook), in a fresh temporary
working directory, with torch seeded. A block right after ``<!-- docs-test: skip (reason) -->`` is
not run (it needs data or hardware that the tests do not have); keep those rare. A block right
after ``<!-- docs-test: fresh-process (reason) -->`` runs alone in a new interpreter (e.g. one that
must set an environment variable before an import).
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import ROOT, doc_files, python_blocks, shell_blocks

PAGES_WITH_PYTHON = [p for p in doc_files() if python_blocks(p)]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_docs_have_python_examples():
    pages = {_id(p) for p in PAGES_WITH_PYTHON}
    assert "README.md" in pages
    assert "docs/quickstart.md" in pages
    assert len(pages) >= 5, pages


@pytest.mark.parametrize("page", PAGES_WITH_PYTHON, ids=_id)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    # The examples use tiny tensors: one thread avoids oversubscribing a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_page(page, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _run_page(page: Path, tmp_path: Path) -> None:
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in python_blocks(page):
        if block.skipped:
            continue
        if block.fresh_process:
            _run_in_fresh_process(block, tmp_path)
            ran += 1
            continue
        code = compile(block.code, block.where, "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"example at {block.where} failed: {error!r}") from error
        ran += 1
    assert ran, f"{_id(page)}: every Python block is skipped"


def _run_in_fresh_process(block, cwd: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", block.code], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"example at {block.where} failed:\n{result.stderr[-3000:]}"


def _documented_commands() -> list[tuple[str, list[str]]]:
    """``perfrdiff`` invocations in shell blocks: ``perfrdiff …``, ``python -m perfrdiff …`` and
    ``torchrun … -m perfrdiff …``; line continuations joined, ``$VARS`` left as they are."""
    commands = []
    for page in doc_files():
        for block in shell_blocks(page):
            joined = block.code.replace("\\\n", " ")
            for line in joined.splitlines():
                line = line.strip().removeprefix("$ ")
                if not line or line.startswith("#"):
                    continue
                for part in line.split("&&"):
                    words = shlex.split(part, comments=True)
                    if "perfrdiff" in words and (
                        words[0] == "perfrdiff" or words[words.index("perfrdiff") - 1] == "-m"
                    ):
                        commands.append((block.where, words[words.index("perfrdiff") + 1 :]))
    return commands


def test_documented_cli_commands_parse():
    from perfrdiff.cli import build_parser

    commands = _documented_commands()
    assert commands, "the docs show no perfrdiff command"
    parser = build_parser()
    for where, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as error:
            if error.code != 0:  # `--help` exits 0
                raise AssertionError(
                    f"{where}: `perfrdiff {shlex.join(argv)}` does not parse"
                ) from error


def _documented_scripts() -> dict[tuple[str, ...], list[tuple[str, str]]]:
    """``python benchmarks/x.py …`` and ``python -m weditlib.demo …`` lines: script -> flags."""
    found: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for page in doc_files():
        for block in shell_blocks(page):
            for line in block.code.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if len(words) < 2 or words[0] not in ("python", "python3"):
                    continue
                if words[1].startswith("benchmarks/") and words[1].endswith(".py"):
                    script, rest = (words[1],), words[2:]
                elif words[1:3] == ["-m", "weditlib.demo"]:
                    script, rest = ("-m", "weditlib.demo"), words[3:]
                else:
                    continue
                flags = found.setdefault(script, [])
                flags += [(block.where, w.split("=")[0]) for w in rest if w.startswith("--")]
    return found


def _argparse_flags(path: Path) -> set[str]:
    """Option strings passed to ``add_argument`` anywhere in ``path`` (read, not imported)."""
    flags = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags |= {
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            }
    return flags


def test_documented_script_flags_exist():
    scripts = _documented_scripts()
    assert scripts, "the docs show no benchmark or demo command"
    for script, flags in scripts.items():
        path = ROOT / (script[0] if len(script) == 1 else script[1].replace(".", "/") + ".py")
        assert path.is_file(), f"documented script {shlex.join(script)} does not exist"
        known = _argparse_flags(path) | {"--help"}
        for where, flag in flags:
            assert flag in known, f"{where}: {shlex.join(script)} has no flag {flag}"


def test_readme_and_ci_run_the_same_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_commands = [line for line in ci.splitlines() if line.startswith("pip install")]
    assert len(ci_commands) == 1, ci_commands
    assert ci_commands[0] in readme, "README's test command differs from .ci/run's"
    assert os.access(ROOT / ".ci" / "run", os.R_OK)
