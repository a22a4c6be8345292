"""Extract fenced code blocks from Markdown files, so that the tests can run them."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SKIP_MARK = "<!-- docs-test: skip"
PROCESS_MARK = "<!-- docs-test: fresh-process"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
PYTHON = ("python", "py")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, code (dedented) and where it starts (1-based line)."""

    path: Path
    line: int
    language: str
    code: str
    skipped: bool
    fresh_process: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``.

    A block right after ``<!-- docs-test: skip (why) -->`` is marked skipped; one right after
    ``<!-- docs-test: fresh-process (why) -->`` is to be run alone in a new interpreter.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match.group("indent"), match.group("fence")
        info = match.group("info").strip()
        language = info.split()[0].lstrip(".{").rstrip("}") if info else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found.append(
            Block(
                path=path,
                line=start + 1,
                language=language.lower(),
                code=textwrap.dedent("\n".join(body)) + "\n",
                skipped=previous.strip().startswith(SKIP_MARK),
                fresh_process=previous.strip().startswith(PROCESS_MARK),
            )
        )
    return found


def doc_files() -> list[Path]:
    """The Markdown files whose examples are tested: every page under docs/ and the README."""
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in PYTHON]


def shell_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in ("bash", "sh", "shell", "console")]
