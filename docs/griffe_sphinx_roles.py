"""Griffe extension: Sphinx cross-reference roles in docstrings become links in the API reference.

The code's docstrings use Sphinx roles (``:class:`~weditlib.deltas.DenseShift```, ``:func:`edit```,
``:mod:`.synchrony```), which Markdown would print verbatim. Each role becomes an *optional*
mkdocs-autorefs reference: a link when the target is documented on the site, plain code otherwise,
never a broken link. A leading ``~`` shows only the last name, as in Sphinx. Relative and
unqualified names are resolved in the scope of the object whose docstring it is.

Registered in ``mkdocs.yml`` under the python handler's ``extensions``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|obj|exc|const):`(?P<tilde>~?)(?P<target>[^`]+)`"
)
ROOTS = ("weditlib", "perfrdiff")


def _package_of(obj: griffe.Object) -> griffe.Object:
    module = obj.module
    return module if module.is_init_module else (module.parent or module)


def resolve(obj: griffe.Object, target: str) -> str:
    """Best guess of the full path of ``target`` as written in ``obj``'s docstring."""
    if target.startswith("."):
        base = _package_of(obj)
        dots = len(target) - len(target.lstrip("."))
        for _ in range(dots - 1):
            base = base.parent or base
        return f"{base.path}.{target.lstrip('.')}"
    first, _, rest = target.partition(".")
    if first in ROOTS:
        return target
    scope = obj if (obj.is_module or obj.is_class) else (obj.parent or obj)
    while scope is not None:
        try:
            resolved = scope.resolve(first)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
            continue
        return f"{resolved}.{rest}" if rest else resolved
    return f"{obj.module.path}.{target}"


def convert(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        target = match["target"].strip()
        shown = target.lstrip(".").rsplit(".", 1)[-1] if match["tilde"] else target.lstrip(".")
        identifier = resolve(obj, target)
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(replace, text)


CODE_SPAN = re.compile(r"(`+).*?\1", re.S)
#: ``](`` followed by a destination with a space or comma: maths such as ``[a + b](x, y)``, which
#: Markdown would otherwise turn into a link to "x, y".
NOT_A_LINK = re.compile(r"\]\((?=[^)\n]*[ ,])")


def escape_false_links(text: str) -> str:
    """Escape ``[...](a, b)`` outside code spans so that it prints as written."""
    parts, last = [], 0
    for match in CODE_SPAN.finditer(text):
        parts += [NOT_A_LINK.sub(r"\\](", text[last : match.start()]), match.group(0)]
        last = match.end()
    parts.append(NOT_A_LINK.sub(r"\\](", text[last:]))
    return "".join(parts)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring once the object tree is complete, and keep maths
    that looks like a Markdown link from becoming one."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if ":" in text:
            text = convert(obj, text)
        if "](" in text:
            text = escape_false_links(text)
        obj.docstring.value = text


class HideUndocumentedInstanceAttributes(griffe.Extension):
    """Drop attributes assigned in methods (``self.x = x``) that have no docstring.

    They are implementation state, not API: without this, ``show_if_no_docstring`` would list
    every ``self.seed = seed``. Documented ones, dataclass fields and class attributes stay.
    """

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        if "dataclass" in cls.labels:
            return  # annotation-only fields are the dataclass's parameters
        for name, member in list(cls.members.items()):
            if (
                not member.is_alias
                and member.is_attribute
                and "instance-attribute" in member.labels
                and "class-attribute" not in member.labels
                and member.value is not None  # an assignment, not a `name: type` declaration
                and member.docstring is None
            ):
                del cls.members[name]
