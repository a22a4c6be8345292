"""The library demo (the README's first command before the full pipeline) runs and agrees."""

from weditlib import demo


def test_demo_matches_per_sample_copies_and_prints_plans(capsys):
    assert demo.main(["--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "max |difference|" in out
    assert "-> split" in out and "-> materialise" in out
