"""``ember convert`` and ``ember merge``: rewrite profiles in another format."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ember import formats
from ember.cli.command import (
    VALUE_RULE,
    VALUES,
    Command,
    choose_value,
    combine,
    load_each,
    value_choice,
)
from ember.cli.inputs import Selection, add_store_arguments, selection
from ember.errors import EmberError

WEIGHED = ("svg", "speedscope")
"""Output formats that weigh their samples by one value (the others hold them all)."""


class Convert(Command):
    name = "convert"
    help = "Convert a profile to the format the output's extension names."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("input", metavar="IN", help="a profile in any supported format")
        parser.add_argument("-o", "--output", required=True,
                            help="output file: .txt/.folded, .pb.gz/.pprof, .json, .svg")
        _add_value_argument(parser)
        _add_selection_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return convert([args.input], args.output, args.value, self.name, args.endpoint,
                       selection(args))


class Merge(Command):
    name = "merge"
    help = ("Merge profiles (summing their samples) into one file; a function recorded "
            "with a relative file name in one and an absolute one in another is one function.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN", help="profiles to sum")
        parser.add_argument("-o", "--output", required=True,
                            help="output file; the format comes from the extension")
        _add_value_argument(parser)
        _add_selection_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return convert(args.inputs, args.output, args.value, self.name, args.endpoint,
                       selection(args))


def _add_value_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--value", choices=sorted(VALUES),
                        help="what an .svg or .json (speedscope) output weighs by: sample "
                             f"counts, CPU time or wall time ({VALUE_RULE}); .pb.gz holds "
                             "all three, .txt sample counts only")


def _add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="only samples of this endpoint label")
    add_store_arguments(parser)


def convert(paths: list[str], output: str, asked: str | None, verb: str,
            endpoint: str | None = None, chosen: Selection | None = None) -> int:
    """Read ``paths``, merge them and write ``output`` in the format its extension names."""
    fmt = formats.for_path(output)  # unknown extension: one clear line, nothing read
    if asked is not None and fmt.NAME not in WEIGHED:
        held = "sample counts only" if fmt.NAME == "collapsed" else "every value"
        raise EmberError(f"--value applies to .svg and .json outputs; {output} holds {held}")
    each = load_each(paths, endpoint, chosen)
    options: dict[str, Any] = {}
    if fmt.NAME in WEIGHED:
        options["value"] = choose_value(list(zip(paths, each, strict=True)), asked)
    profile = combine(each)
    formats.dump(profile, output, **options)
    weighed = f", by {value_choice(options['value'])}" if options else ""
    print(f"ember {verb}: wrote {output} ({profile.totals().samples} samples{weighed})",
          file=sys.stderr)
    return 0
