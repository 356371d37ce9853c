"""``ember flamegraph``: an interactive SVG flamegraph of one or more profiles."""

from __future__ import annotations

import argparse
import sys

from ember import formats
from ember.cli.command import (
    Command,
    add_value_argument,
    load_weighed,
    require_extension,
    value_choice,
)
from ember.cli.inputs import add_store_arguments, selection


class Flamegraph(Command):
    name = "flamegraph"
    help = "Draw an interactive SVG flamegraph of one or more profiles (merged)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN",
                            help="profiles in any supported format")
        parser.add_argument("-o", "--output", required=True, help="output .svg file")
        parser.add_argument("--title", help="title (default: the input names)")
        parser.add_argument("--subtitle", help="subtitle")
        parser.add_argument("--inverted", action="store_true",
                            help="icicle graph: callers hang below the functions that ran")
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        add_value_argument(parser)
        add_store_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        require_extension(args.output, ".svg")
        profile, value = load_weighed(args.inputs, args.endpoint, args.value,
                                      selection(args))
        title = args.title or ("Flame graph: " + ", ".join(args.inputs))
        formats.dump(profile, args.output, title=title, subtitle=args.subtitle,
                     inverted=args.inverted, value=value)
        print(f"ember flamegraph: wrote {args.output} ({profile.totals().samples} samples, "
              f"{len(profile.stacks)} stacks, by {value_choice(value)})", file=sys.stderr)
        return 0
