"""``perfrdiff`` command line: one sub-command per stage.

The CLI is thin: each command module parses its flags into a config dataclass and calls library
functions that the tests call too. Commands are listed explicitly below.

:func:`main` raises what the command raises (the tests call it); the installed ``perfrdiff``
command is :func:`console`, which prints a user's mistake (a bad value, a missing or damaged file,
a device this machine lacks) as one line instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from perfrdiff.device import DeviceUnavailable
from perfrdiff.rundir import RunDirLocked
from perfrdiff.weights import CheckpointError

#: What a user fixes by changing an argument, a config value or a file. Config, data, resume and
#: stage-mismatch errors are ValueErrors; every message names the value or the file.
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError, FileNotFoundError, DeviceUnavailable, RunDirLocked, CheckpointError,
)  # fmt: skip

# name -> module under perfrdiff.commands exposing `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, str] = {
    "make-synthetic": "make_synthetic",
    "evaluate": "evaluate",
    "train": "train",
    "generate": "generate",
    "demo": "demo",
    "ablate": "ablate",
    "view": "view",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfrdiff", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an input error"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"perfrdiff.commands.{module_name}")
        doc = (module.__doc__ or name).strip().splitlines()[0]
        command_parser = sub.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args._module.run(args) or 0)


def console(argv: Sequence[str] | None = None) -> int:
    """The ``perfrdiff`` command: :func:`main`, with an input error (:data:`USER_ERRORS`) printed
    as ``perfrdiff: error: <message>`` on stderr and exit status 2, like argparse's own errors.
    ``--traceback`` re-raises it instead; any other exception keeps its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(argv)
    except USER_ERRORS as error:
        if "--traceback" in argv:
            raise
        notes = "".join(f"\n  {note}" for note in getattr(error, "__notes__", ()))
        print(f"perfrdiff: error: {error}{notes}", file=sys.stderr)
        print("perfrdiff: (--traceback before the command shows where)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(console())
