"""``perfrdiff`` command line: one sub-command per stage.

The CLI is thin: each command module parses its flags into a config dataclass and calls library
functions that the tests call too. Commands are listed explicitly below.

:func:`main` raises what the command raises (the tests call it); the installed ``perfrdiff``
command is :func:`console`, which prints a user's mistake (a bad value, a missing or damaged file,
a device this machine lacks, the ``[reference]`` extra not installed) as one line instead of a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import typing
from argparse import SUPPRESS
from collections.abc import Sequence

from perfrdiff import __version__
from perfrdiff._extra import MissingExtraError, require_reference_extra

DESCRIPTION = """\
PerFRDiff, personalised facial reaction generation (ACM MM 2024), built on weditlib:
write or read a REACT 2024 dataset, train the four stages, generate reactions, score them."""
EXAMPLES = """\
examples (the defaults chain: data in runs/demo/data, the run in runs/demo/run):
  perfrdiff make-synthetic && perfrdiff train all && perfrdiff generate && perfrdiff evaluate
  perfrdiff demo                      # the four commands above in one, with a results table
  perfrdiff train all --config paper --data-root /data/react2024 --run-dir runs/react2024
  perfrdiff <command> --help          # every option of one command, with its default
"""

# name -> module under perfrdiff.commands exposing `add_arguments(parser)` and `run(args) -> int`,
# in the order a pipeline runs them.
COMMANDS: dict[str, str] = {
    "make-synthetic": "make_synthetic",
    "train": "train",
    "generate": "generate",
    "evaluate": "evaluate",
    "demo": "demo",
    "ablate": "ablate",
    "view": "view",
    "eeg": "eeg",
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def user_errors() -> tuple[type[Exception], ...]:
    """What a user fixes by changing an argument, a config value or a file. Config, data, resume
    and stage-mismatch errors are ValueErrors; every message names the value or the file."""
    from perfrdiff.device import DeviceUnavailable
    from perfrdiff.rundir import RunDirLocked
    from perfrdiff.weights import CheckpointError

    # FloatingPointError: a training that diverged (TrainingDiverged) or a generation that
    # overflowed; each message names the setting to change.
    return (
        ValueError, FileNotFoundError, FileExistsError, DeviceUnavailable, RunDirLocked,
        CheckpointError, MissingExtraError, FloatingPointError,
    )  # fmt: skip


def plain_text(docstring: str) -> str:
    """A docstring as a terminal shows it: ``code`` and :role:`~a.b.C` markup removed."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", docstring)
    return text.replace("``", "")


def summary(docstring: str) -> str:
    """The first paragraph of a docstring, on one line (a summary may wrap over lines)."""
    paragraph = plain_text(docstring).strip().split("\n\n")[0]
    return " ".join(paragraph.split())


class Parser(argparse.ArgumentParser):
    """An argument parser whose refusal is one line, like every other refusal of the command
    (argparse prints the whole usage first); ``--help`` still shows the usage."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' paragraphs and adds ``(default: …)`` to an option whose help does
    not state its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # `is`: a default of 0 is a value to show, unlike None (a flag's help says what it means).
        stated = "default" in text or any(action.default is v for v in (None, False, SUPPRESS))
        stated |= action.default == []  # a repeatable option given no times
        if stated or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def command_parser(
    sub: argparse._SubParsersAction, name: str, module_name: str
) -> argparse.ArgumentParser:
    """The sub-parser of ``perfrdiff <name>`` from ``perfrdiff.commands.<module_name>``."""
    module = importlib.import_module(f"perfrdiff.commands.{module_name}")
    doc = plain_text(module.__doc__ or name).strip()
    parser = sub.add_parser(
        name,
        help=summary(doc),
        description=doc,
        epilog=getattr(module, "EXAMPLES", None),
        formatter_class=HelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_module=module)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="perfrdiff", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help=f"logging level, one of {', '.join(LOG_LEVELS)} (default: INFO)",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an input error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module_name in COMMANDS.items():
        command_parser(sub, name, module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args._module.run(args) or 0)


def console(argv: Sequence[str] | None = None) -> int:
    """The ``perfrdiff`` command: :func:`main`, with an input error (:func:`user_errors`) printed
    as ``perfrdiff: error: <message>`` on stderr and exit status 2, like argparse's own errors.
    ``--traceback`` re-raises it instead; any other exception keeps its traceback. Without the
    ``[reference]`` extra it prints the one line that names it, and exits 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        require_reference_extra()
    except MissingExtraError as error:
        print(f"perfrdiff: error: {error}", file=sys.stderr)
        return 2
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(interrupted(argv), file=sys.stderr)
        return 130
    except user_errors() as error:
        if "--traceback" in argv:
            raise
        print(f"perfrdiff: error: {one_line(error)}", file=sys.stderr)
        return 2


def one_line(error: BaseException) -> str:
    """``error``'s message and notes on one line: a refusal is one line (a YAML or JSON parser's
    message spans several; ``--traceback`` shows the full error)."""
    parts = [str(error), *(f"({note})" for note in getattr(error, "__notes__", ()))]
    return " ".join(" ".join(parts).split())


def interrupted(argv: Sequence[str]) -> str:
    """The one line Ctrl-C prints: what was kept, and how to go on."""
    line = (
        "perfrdiff: interrupted. Every file is written whole or not at all: finished stages, "
        "checkpoints and outputs are kept"
    )
    if "train" in argv and "--resume" not in argv:
        return f"{line}; continue training from the newest checkpoint with: perfrdiff " + (
            " ".join([*argv, "--resume"])
        )
    return line + ("; run the same command again to go on" if "train" in argv else "")


if __name__ == "__main__":
    sys.exit(console())
