"""Griffe extension: Sphinx cross-reference roles in docstrings become links in the API reference.

The code's docstrings use Sphinx roles (``:class:`~weditlib.deltas.DenseDelta```, ``:func:`edit```,
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


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = convert(obj, obj.docstring.value)


class HideUndocumentedInstanceAttributes(griffe.Extension):
    """Drop attributes assigned in methods (``self.x = x``) that have no docstring.

    They are implementation state, not API: without this, ``show_if_no_docstring`` would list
    every ``self.seed = seed``. Documented ones, dataclass fields and class attributes stay.
    """

    def on_class_members(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            if (
                not member.is_alias
                and member.is_attribute
                and "instance-attribute" in member.labels
                and "class-attribute" not in member.labels
                and member.docstring is None
            ):
                del cls.members[name]
