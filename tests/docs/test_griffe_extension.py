"""docs/griffe_sphinx_roles.py: Sphinx roles become optional links, maths stays maths."""

from __future__ import annotations

import importlib.util

import pytest

from tests.docs.markdown_blocks import DOCS, ROOT


@pytest.fixture(scope="module")
def ext():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_roles", DOCS / "griffe_sphinx_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weditlib_tree():
    griffe = pytest.importorskip("griffe")
    return griffe.load("weditlib", search_paths=[str(ROOT)])


def test_role_with_tilde_shows_the_last_name(ext, weditlib_tree):
    obj = weditlib_tree["functional.edited_linear"]
    text = ext.convert(obj, "a :class:`~weditlib.deltas.DenseDelta` shift")
    assert text == (
        'a <autoref identifier="weditlib.deltas.DenseDelta" optional>'
        "<code>DenseDelta</code></autoref> shift"
    )


def test_unqualified_role_resolves_in_the_module_scope(ext, weditlib_tree):
    obj = weditlib_tree["editing.edit"]  # editing.py imports Grouping from weditlib.deltas
    text = ext.convert(obj, ":class:`Grouping`")
    assert 'identifier="weditlib.deltas.Grouping"' in text
    assert "<code>Grouping</code>" in text


def test_relative_module_role(ext, weditlib_tree):
    obj = weditlib_tree["kernels.reference"]
    text = ext.convert(obj, ":mod:`.base`")
    assert 'identifier="weditlib.kernels.base"' in text


def test_maths_that_looks_like_a_link_is_escaped(ext):
    text = "sum [a + b](x, y) and [a link](https://example.org) and `[c](d, e)`"
    assert ext.escape_false_links(text) == (
        "sum [a + b\\](x, y) and [a link](https://example.org) and `[c](d, e)`"
    )
