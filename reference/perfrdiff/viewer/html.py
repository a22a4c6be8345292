"""Write the viewer as one self-contained HTML file: inline CSS and JavaScript, data as JSON,
audio as a base64 data URI. It needs no server, no network and no installed package to open."""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from perfrdiff.atomic import atomic_write_text
from perfrdiff.viewer.items import ViewerItem
from perfrdiff.viewer.page import ViewOptions, page_payload


def _static(name: str) -> str:
    return resources.files("perfrdiff.viewer").joinpath("static", name).read_text()


def render_page(payload: dict) -> str:
    """The HTML text of a page for :func:`~perfrdiff.viewer.page.page_payload`'s ``payload``."""
    # "</" inside a <script> element would end it early; JSON allows the escaped "<\/".
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    page = _static("page.html")
    parts = {
        "{{title}}": html.escape(payload["title"]),
        "{{css}}": _static("viewer.css"),
        "{{js}}": _static("viewer.js"),
    }
    for placeholder, text in parts.items():
        page = page.replace(placeholder, text)
    return page.replace("{{data}}", data)  # last: the data may contain a placeholder's text


def write_viewer(
    items: list[ViewerItem], path: str | Path, options: ViewOptions | None = None
) -> Path:
    """Write the page for ``items`` to ``path`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_page(page_payload(items, options or ViewOptions())))
    return path
