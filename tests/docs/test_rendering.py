"""How the documentation renders: no docstring ``Returns`` section split into fake return values,
no paragraph too long to read, no Markdown list run into a paragraph. The checks on the built
site are in test_site.py; these test the checks themselves and the docstrings."""

from __future__ import annotations

import pytest
import yaml

from tests.docs.markdown_blocks import ROOT
from tests.docs.rendering import (
    inline_lists,
    long_paragraphs,
    overfull_returns,
    paragraphs,
    returned_values,
)


def test_paragraph_text_and_word_counts():
    html = "<p>one <code>two</code> three</p><pre><code>not a paragraph</code></pre><p>four</p>"
    assert [(p.text, p.words) for p in paragraphs(html)] == [("one two three", 3), ("four", 1)]
    assert long_paragraphs("<p>" + "word " * 151 + "</p>")[0].words == 151
    assert long_paragraphs("<p>" + "word " * 150 + "</p>") == []


def test_a_list_without_a_blank_line_before_it_is_found():
    ran_in = "<p>Three things:\n- one\n- two</p>"
    numbered = "<p>Steps:\n1. first</p>"
    rendered = "<p>Three things:</p><ul><li>one</li><li>two</li></ul>"
    assert len(inline_lists(ran_in)) == len(inline_lists(numbered)) == 1
    assert inline_lists(rendered) == [] and inline_lists("<p>a - b, 3 - 1</p>") == []


@pytest.mark.parametrize(
    ("annotation", "values"),
    [("Tensor", 1), ("tuple[Tensor, Tensor | None]", 2), ("tuple[int, ...]", None), (None, None)],
)
def test_returned_values_reads_the_annotation(annotation, values):
    assert returned_values(annotation) == values


def _griffe_options() -> dict:
    """mkdocs.yml's docstring options for the python handler (the tests parse like the site)."""
    text = (ROOT / "mkdocs.yml").read_text()
    config = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: skip !!python tags
    handler = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["options"]
    return {key: value == "true" for key, value in handler["docstring_options"].items()}


def _objects(tree):
    for member in tree.members.values():
        if member.is_alias:
            continue
        yield member
        if member.is_module or member.is_class:
            yield from _objects(member)


def test_a_wrapped_returns_sentence_is_caught():
    griffe = pytest.importorskip("griffe")
    code = (
        "def f() -> int:\n"
        '    """Do.\n\n    Returns:\n'
        "        a sentence that wraps\n        onto a second line.\n"
        '    """\n'
    )
    with griffe.temporary_visited_module(code, docstring_parser="google") as module:
        assert overfull_returns(_objects(module)) == ["module.f: 2 Returns entries, 1 value"]


@pytest.mark.parametrize("package", ["weditlib", "perfrdiff"])
def test_no_returns_section_has_more_entries_than_values(package):
    griffe = pytest.importorskip("griffe")
    tree = griffe.load(
        package,
        search_paths=[str(ROOT), str(ROOT / "reference")],
        docstring_parser="google",
        docstring_options=_griffe_options(),
    )
    assert overfull_returns(_objects(tree)) == []


def test_the_docs_extra_installs_a_signature_formatter():
    # mkdocstrings formats long signatures with Black or Ruff; without either they run off the page.
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {requirement.split(">")[0].split("=")[0].strip() for requirement in extras["docs"]}
    assert names & {"black", "ruff"}, extras["docs"]
