"""``ember flamegraph``: an interactive SVG flamegraph of one or more profiles."""

from __future__ import annotations

import argparse
import sys

from ember import formats
from ember.cli.command import VALUES, Command, add_value_argument, load_inputs, require_extension


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

    def run(self, args: argparse.Namespace) -> int:
        require_extension(args.output, ".svg")
        profile = load_inputs(args.inputs, args.endpoint)
        title = args.title or ("Flame graph: " + ", ".join(args.inputs))
        formats.dump(profile, args.output, title=title, subtitle=args.subtitle,
                     inverted=args.inverted, value=VALUES[args.value])
        print(f"ember flamegraph: wrote {args.output} ({profile.totals().samples} samples, "
              f"{len(profile.stacks)} stacks)", file=sys.stderr)
        return 0
