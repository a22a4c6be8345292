"""``perfrdiff`` command line: one sub-command per stage.

The CLI is thin: each command module parses its flags into a config dataclass and calls library
functions that the tests call too. Commands are listed explicitly below.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> module under perfrdiff.commands exposing `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, str] = {
    "make-synthetic": "make_synthetic",
    "evaluate": "evaluate",
    "train": "train",
    "generate": "generate",
    "demo": "demo",
    "ablate": "ablate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfrdiff", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
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


if __name__ == "__main__":
    sys.exit(main())
