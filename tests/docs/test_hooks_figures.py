"""docs/hooks.py: the PEFT comparison's readable tables, targets with their bounds and ratio chart;
the roofline figure; report notes cut into readable paragraphs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import DOCS, ROOT


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks_figures", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROW = {
    "model": "two linears",
    "tokens": 50,
    "base_ms": 50.0,
    "peft_ms": 70.0,
    "weditlib_ms": 60.0,
    "weditlib_over_base": 1.2,
    "peft_over_weditlib": 70.0 / 60.0,
    "decode_weditlib_over_base": None,
    "train_peft_loop_ms": 120.0,
    "train_weditlib_ms": 115.0,
    "peft_loop_over_weditlib": 120.0 / 115.0,
    "max_output_diff": 7e-7,
    "max_lora_A_grad_diff": 1e-4,
}
PEFT_MIXED = {
    "device": "cpu",
    "threads": 2,
    "adapters": 16,
    "samples_per_adapter": 10,
    "rank": 8,
    "results": [ROW],
    "targets": [
        {"target": "weditlib / base, T=50 <= 1.1", "model": "two linears", "tokens": 50,
         "measured": 1.2, "hit": False},
        {"target": "PEFT / weditlib, T=50 >= 1.5", "model": "two linears", "tokens": 50,
         "measured": 1.17, "hit": False},
        {"target": "PEFT / weditlib, T=50 >= 1.1", "model": "two linears", "tokens": 50,
         "measured": 1.17, "hit": True},
    ],
}  # fmt: skip


def test_peft_tables_have_readable_headers_and_the_bound_of_each_target(hooks, tmp_path: Path):
    (tmp_path / "peft_mixed.json").write_text(json.dumps(PEFT_MIXED))
    rendered = hooks.render_page("<!-- benchmark: peft_mixed -->", tmp_path)
    assert "| model | T | base ms | weditlib / base | PEFT / base | PEFT / weditlib |" in rendered
    assert "_over_" not in rendered and "_ms" not in rendered  # no raw JSON keys as headers
    # PEFT / weditlib <= PEFT / base = 1.4 < 1.5: out of reach; 1.2 > 1.1: missed; hit: met
    assert "| 1.17 | out of reach (at most 1.40) |" in rendered
    assert "| 1.2 | missed |" in rendered and "| 1.17 | met |" in rendered
    assert "![peft_mixed benchmark plot](benchmarks/peft_mixed.svg)" in rendered


def test_peft_ratio_chart_shows_both_ratios_and_the_target(hooks):
    svg = hooks.plot_peft_mixed(PEFT_MIXED)
    assert svg.lstrip().startswith("<?xml")
    for label in ("weditlib / base", "PEFT / base", "weditlib target", "1: no adapters"):
        assert label in svg


def test_roofline_figure_from_the_committed_json(hooks):
    report = json.loads((ROOT / "benchmarks" / "results" / "roofline.json").read_text())
    svg = hooks.plot_roofline(report)
    assert "arithmetic intensity" in svg and "fused" in svg
    assert all(row["case"] in svg for row in report["rows"])


def test_notes_are_cut_between_sentences(hooks):
    text = " ".join(f"Sentence {i} has five words." for i in range(40))
    paragraphs = hooks.short_paragraphs(text, words=30)
    assert " ".join(paragraphs) == text
    assert all(len(p.split()) <= 30 for p in paragraphs) and len(paragraphs) > 1
