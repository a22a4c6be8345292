"""Every shift-generator setting (``pwsg.*``) is explained in the "Knobs" table of the
personalisation page."""

from __future__ import annotations

import re

from perfrdiff.config import field_roles

from tests.docs.markdown_blocks import ROOT

PAGE = ROOT / "docs" / "perfrdiff" / "personalisation.md"


def knobs_keys() -> set[str]:
    """The keys in backticks in the first column of the page's "## Knobs" table."""
    text = PAGE.read_text()
    section = text.split("## Knobs", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([\w.]+)`", row.split("|")[1])}


def test_the_knobs_table_lists_every_pwsg_key():
    keys = {key for key in field_roles() if key.startswith("pwsg.")}
    assert keys - knobs_keys() == set()


def test_the_knobs_table_names_only_config_keys():
    assert knobs_keys() - set(field_roles()) == set()
