"""Entry point of the ``ember`` command: argument parsing and error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

import ember
from ember.cli.advise import Advise
from ember.cli.command import Command
from ember.cli.convert import Convert, Merge
from ember.cli.diff import Diff
from ember.cli.endpoints import Endpoints
from ember.cli.flamegraph import Flamegraph
from ember.cli.record import Record
from ember.cli.top import Top
from ember.errors import EmberError

COMMANDS: list[type[Command]] = [Record, Flamegraph, Diff, Top, Convert, Merge, Advise,
                               Endpoints]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ember", description="Always-on profiler for Python web services.")
    parser.add_argument("--version", action="version", version=f"ember {ember.__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB",
                                  parser_class=_Parser)
    for cls in COMMANDS:
        command = cls()
        # argparse %-formats help (not descriptions): a verb's help may say "40%"
        sub = verbs.add_parser(command.name, help=command.help.replace("%", "%%"),
                               description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=command)
    return parser


def run() -> None:
    """The ``ember`` command: ``main()``, then exit without tearing the heap down.

    A flamegraph of a large file leaves millions of objects; freeing them one by
    one at interpreter exit costs more than some whole commands. Output is
    flushed first, and ember's own exit handlers matter only to a profiled
    process, not to this command.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _printable_output() -> None:
    """Names a profile holds may not encode (a lone surrogate stands for an
    undecodable file name): print them escaped rather than fail."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _printable_output()
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler.run(args)
    except EmberError as exc:
        print(f"ember {args.verb}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code
