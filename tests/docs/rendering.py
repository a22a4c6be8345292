"""Checks of how documentation renders, shared by the tests: docstring ``Returns`` sections that
griffe would split into fake return values, paragraphs too long to read, and Markdown lists that
rendered as running text (a list needs a blank line before it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

#: Words in one rendered paragraph above which the docs test fails.
MAX_PARAGRAPH_WORDS = 150
#: A line of a paragraph that Markdown would have made a list item after a blank line.
LIST_MARKER = re.compile(r"\n\s*(?:[-*+]|\d+\.)\s+\S")


@dataclass(frozen=True)
class Paragraph:
    page: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


class _Paragraphs(HTMLParser):
    """The text of every ``<p>`` of a page (admonitions and list items included), outside
    ``<pre>`` and ``<code>`` blocks' markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "p":
            self._depth += 1
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._depth:
            self._depth -= 1
            self.found.append("".join(self._text))

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._text.append(data)


def paragraphs(html: str, page: str = "") -> list[Paragraph]:
    parser = _Paragraphs()
    parser.feed(html)
    return [Paragraph(page, text) for text in parser.found]


def long_paragraphs(html: str, page: str = "", limit: int = MAX_PARAGRAPH_WORDS):
    """Paragraphs of ``html`` with more than ``limit`` words."""
    return [p for p in paragraphs(html, page) if p.words > limit]


def inline_lists(html: str, page: str = "") -> list[Paragraph]:
    """Paragraphs holding a line that starts like a list item: a list Markdown ran into the
    paragraph before it."""
    return [p for p in paragraphs(html, page) if LIST_MARKER.search(p.text)]


def returned_values(annotation: str | None) -> int | None:
    """How many values a return annotation holds: ``tuple[a, b]`` -> 2, ``tuple[a, ...]`` or
    no annotation -> None (any number), anything else -> 1."""
    if not annotation:
        return None
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") in ("tuple", "Tuple"):
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in elements):
            return None
        return len(elements)
    return 1


def overfull_returns(objects: Iterator) -> list[str]:
    """``path: n entries for m values`` for every griffe function whose parsed ``Returns``
    section has more entries than its return annotation has values."""
    problems = []
    for obj in objects:
        if not obj.is_function or obj.docstring is None:
            continue
        limit = returned_values(str(obj.returns) if obj.returns else None)
        for section in obj.docstring.parsed:
            if section.kind.value == "returns" and limit and len(section.value) > limit:
                problems.append(f"{obj.path}: {len(section.value)} Returns entries, {limit} value")
    return problems
