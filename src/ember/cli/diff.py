"""``ember diff``: a differential flamegraph of two profiles, and what grew most."""

from __future__ import annotations

import argparse
import sys

from ember.cli.command import (
    VALUES,
    Command,
    add_value_argument,
    load_inputs,
    require_extension,
)
from ember.compare import share_changes
from ember.errors import FormatError


class Diff(Command):
    name = "diff"
    help = ("Differential flamegraph from BASE to HEAD (normalised by totals: red grew, "
            "blue shrank); prints the functions whose share grew most.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("base", metavar="BASE", help="the profile before")
        parser.add_argument("head", metavar="HEAD", help="the profile after")
        parser.add_argument("-o", "--output", help="output .svg file (optional)")
        parser.add_argument("-n", type=int, default=10, help="functions to print (default 10)")
        parser.add_argument("--title", help="title of the SVG")
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        add_value_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        if args.output:
            require_extension(args.output, ".svg")
        base = load_inputs([args.base], args.endpoint)
        head = load_inputs([args.head], args.endpoint)
        value = VALUES[args.value]
        if args.output:
            from ember.formats import svg

            title = args.title or f"Differential flame graph: {args.base} -> {args.head}"
            try:
                with open(args.output, "wb") as stream:
                    svg.write_diff(base, head, stream, title=title, value=value)
            except OSError as exc:
                raise FormatError(exc.strerror or str(exc), path=args.output) from None
            print(f"ember diff: wrote {args.output}", file=sys.stderr)
        changes = [c for c in share_changes(base, head, value) if c.delta > 0][: args.n]
        print(f"{'before':>8} {'after':>8} {'change':>8}  function (self share of {args.value})")
        for c in changes:
            print(f"{c.base_share:8.2%} {c.head_share:8.2%} {c.delta:+8.2%}  {c.frame.render()}")
        if not changes:
            print("no function's share grew")
        return 0
