"""Command line: ``medactive <command>``. The only place that builds configs from user input.

Each feature area contributes its subcommands through an ``add_parsers(subparsers)`` function
(listed in ``_COMMAND_MODULES``); each subparser sets ``func`` to a handler taking the parsed
arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from medactive._version import __version__
from medactive.errors import MedactiveError

_COMMAND_MODULES = (
    "medactive.commands.run",
    "medactive.commands.pretrain",
    "medactive.project.cli",
    "medactive.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medactive",
        description="Deep active learning for medical image analysis (Wang et al., 2024).")
    parser.add_argument("--version", action="version", version=f"medactive {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # which flags were given, for commands that merge them with a file
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        # run.log files get INFO; the console only what --verbose asks for
        handler.setLevel(level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MedactiveError as exc:
        print(f"medactive: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medactive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
