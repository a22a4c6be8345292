"""What ``perfrdiff --help`` and each command's ``--help`` show a newcomer, and what the command
says without the ``[reference]`` extra."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from perfrdiff import __version__
from perfrdiff.cli import COMMANDS, build_parser, console, plain_text, summary


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_commands_are_listed_in_pipeline_order():
    order = list(COMMANDS)
    steps = ["make-synthetic", "train", "generate", "evaluate"]
    assert [order.index(step) for step in steps] == sorted(order.index(step) for step in steps)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_that_states_its_default(name):
    parser = command_parsers()[name]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        text = parser.formatter_class("x")._get_help_string(action) or ""
        assert text.strip(), f"perfrdiff {name} {action.option_strings[0]} has no help"
        if action.default is not False and action.default != []:  # off / none unless given
            assert "default" in text, f"perfrdiff {name} {action.option_strings[0]}: {text!r}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_no_rest_markup_and_whole_sentences(name):
    parser = command_parsers()[name]
    text = parser.format_help()
    assert "``" not in text and ":mod:`" not in text and ":func:`" not in text, text
    line = summary(parser.description)
    assert line.endswith("."), f"perfrdiff {name}'s summary is cut: {line!r}"


def test_top_level_help_has_examples_and_no_markup(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and "examples" in out
    assert "perfrdiff make-synthetic && perfrdiff train all && perfrdiff generate" in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"perfrdiff {__version__}"


def test_plain_text_strips_roles_and_literals():
    assert (
        plain_text("see :class:`~perfrdiff.run.Run` and ``--x``") == "see perfrdiff.run.Run and --x"
    )
    assert summary("One line\nwrapped here.\n\nMore.") == "One line wrapped here."


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys):
    monkeypatch.setattr("perfrdiff._extra.REFERENCE_MODULES", ("yaml", "no_such_module_xyz"))
    assert console(["--help"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "perfrdiff: error: perfrdiff needs the [reference] extra: "
        "pip install 'weditlib[reference]', or pip install -e '.[reference]' in a clone "
        "(missing: no_such_module_xyz)\n"
    )


def test_subpackages_name_the_extra_when_it_is_missing():
    # yaml hidden from a fresh interpreter: import perfrdiff.models must name the extra.
    code = (
        "import sys; sys.modules['yaml'] = None\n"
        "try:\n    import perfrdiff.models\n"
        "except ModuleNotFoundError as e:\n    print(type(e).__name__, e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.startswith("MissingExtraError perfrdiff needs the [reference] extra"), (
        result.stdout + result.stderr
    )
