"""The built site: strict build, every public name in the API reference, search index, and the API
page rendered by a real browser (headless Chromium).

The site is built once per test session into a temporary directory. The browser test skips only
when no Chromium binary exists (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import functools
import http.server
import importlib
import inspect
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import ROOT

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Modules without ``__all__``: their public names are those defined in them without a leading _.
MODULES = ("perfrdiff.config", "perfrdiff.cli", "perfrdiff.stages", "perfrdiff.changes")
#: Subpackages that are not API: the CLI's command modules are documented by their --help.
NOT_API = ("perfrdiff.commands",)


def api_packages() -> list[str]:
    """``weditlib`` and every ``perfrdiff`` subpackage that declares ``__all__``."""
    import perfrdiff

    packages = ["weditlib"]
    for info in pkgutil.iter_modules(perfrdiff.__path__, "perfrdiff."):
        if info.ispkg and info.name not in NOT_API:
            packages.append(info.name)
    return packages


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e .[docs]")
    out = tmp_path_factory.mktemp("site")
    # No --quiet: with it, mkdocs drops warnings before --strict counts them (mkdocs 1.6).
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    assert result.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{log[-5000:]}"
    return out


def inventory(site: Path) -> set[str]:
    """Object names in mkdocstrings' Sphinx inventory ``objects.inv`` (format version 2)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four '#' header lines, then the zlib stream
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def public_names() -> list[str]:
    names = []
    for package in api_packages():
        module = importlib.import_module(package)
        assert hasattr(module, "__all__"), f"{package} must list its public names in __all__"
        names += [f"{package}.{name}" for name in module.__all__]
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            is_definition = inspect.isfunction(value) or inspect.isclass(value)
            defined_here = getattr(value, "__module__", None) == module_name
            if is_definition and defined_here and not name.startswith("_"):
                names.append(f"{module_name}.{name}")
    return names


def test_every_public_name_is_in_the_api_reference(site: Path):
    documented = inventory(site)
    missing = []
    for name in public_names():
        if name not in documented:
            missing.append(name)
    assert not missing, f"public names without an API entry: {missing}"


def test_search_index_lists_the_api(site: Path):
    index = json.loads((site / "search" / "search_index.json").read_text())
    docs = index["docs"]
    assert len(docs) > 50
    api = [d for d in docs if d["location"].startswith("api/weditlib/")]
    assert any("edited_linear" in d["location"] or "edited_linear" in d["title"] for d in api)
    # the client-side search worker that reads the index is shipped too
    assert list((site / "assets" / "javascripts" / "workers").glob("search.*.js"))


def _chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


def dump_dom(url: str, profile: Path, *flags: str) -> str:
    """The DOM of ``url`` after its scripts ran, from headless Chromium (extra ``flags`` too)."""
    browser = _chromium()
    if browser is None:
        pytest.skip(f"no Chromium binary on PATH ({', '.join(CHROMIUM_NAMES)}); CI installs it")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # external scripts (MathJax, Mermaid from a CDN) must fail at once, not time out
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *flags,
        "--dump-dom",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, (
        f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}"
    )
    return result.stdout


def test_api_page_renders_in_chromium(served: str, tmp_path: Path):
    dom = dump_dom(f"{served}/api/weditlib/", tmp_path / "profile")
    assert 'id="weditlib.edited_linear"' in dom
    # the signature block, rendered by mkdocstrings, with its arguments
    signature = dom[dom.index('id="weditlib.edited_linear"') :][:20000]
    for text in ("edited_linear", "weight", "bias", "delta", "index", "Raises"):
        assert text in signature, text
    # the theme's JavaScript ran: it replaces the "no-js" class and adds copy buttons to code
    assert 'class="no-js"' not in dom
    assert "md-code__button" in dom
    assert "md-search__input" in dom


def test_no_page_has_an_overlong_paragraph_or_a_list_run_into_text(site: Path):
    from tests.docs.rendering import MAX_PARAGRAPH_WORDS, inline_lists, long_paragraphs

    problems = []
    for page in sorted(site.rglob("*.html")):
        html, name = page.read_text(encoding="utf-8"), str(page.relative_to(site))
        problems += [
            f"{p.page}: {p.words} words: {p.text[:60]!r}" for p in long_paragraphs(html, name)
        ]
        problems += [
            f"{p.page}: list rendered inline: {p.text[:60]!r}" for p in inline_lists(html, name)
        ]
    assert not problems, f"over {MAX_PARAGRAPH_WORDS} words or inline lists:\n" + "\n".join(
        problems
    )


#: Marks, after the page has loaded, every table that scrolls sideways in a 1280 px window.
OVERFLOW_PROBE = """<script>window.addEventListener("load", () => setTimeout(() => {
  const wide = [...document.querySelectorAll(".md-typeset__table, .md-typeset__scrollwrap")]
    .filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => (e.querySelector("th") || {}).textContent);
  document.body.setAttribute("data-wide-tables", JSON.stringify(wide));
}, 2000));</script></body>"""


def test_diagrams_and_maths_render_offline(served: str, tmp_path: Path):
    # dump_dom resolves no host but 127.0.0.1: a CDN script would fail here.
    diagram = dump_dom(f"{served}/perfrdiff/", tmp_path / "profile")
    # The theme replaces the diagram's source by the drawing (in a shadow root) once Mermaid ran.
    assert '<div class="mermaid">' in diagram and "flowchart TB" not in diagram
    maths = dump_dom(f"{served}/perfrdiff/training/", tmp_path / "profile")
    assert '<mjx-container class="MathJax' in maths and 'jax="SVG"' in maths


@pytest.mark.parametrize("page", ["benchmarks", "roofline", "perfrdiff/generation"])
def test_tables_fit_a_1280px_window(site: Path, served: str, tmp_path: Path, page: str):
    html = (site / page / "index.html").read_text(encoding="utf-8")
    (site / page / "probe.html").write_text(html.replace("</body>", OVERFLOW_PROBE))
    dom = dump_dom(f"{served}/{page}/probe.html", tmp_path / "profile", "--window-size=1280,1000")
    assert 'data-wide-tables="[]"' in dom, dom.split("data-wide-tables=", 1)[-1][:300]
