"""``ember top``: the heaviest functions (or call paths) of a profile."""

from __future__ import annotations

import argparse
import json

from ember.cli.command import (
    Command,
    add_value_argument,
    format_value,
    load_weighed,
    positive_int,
)
from ember.cli.inputs import add_store_arguments, selection


class Top(Command):
    name = "top"
    help = "List the heaviest functions (self or total) or call paths of a profile."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN", help="profiles (merged)")
        parser.add_argument("-n", type=positive_int, default=20, help="rows (default 20)")
        parser.add_argument("--by", choices=("self", "total"), default="self",
                            help="rank by self (own code) or total (with callees) value")
        parser.add_argument("--paths", action="store_true",
                            help="list whole call paths instead of functions")
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_value_argument(parser)
        add_store_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        profile, value = load_weighed(args.inputs, args.endpoint, args.value,
                                      selection(args))
        total = profile.totals().get(value) or 1
        if args.paths:
            paths = profile.top_paths(args.n, value=value)
            if args.json:
                print(json.dumps([{"path": [f.render() for f in path], "value": v,
                                   "share": v / total} for path, v in paths], indent=1))
            else:
                for path, v in paths:
                    print(f"{v / total:7.2%} {format_value(v, value):>10}  "
                          + ";".join(f.render() for f in path))
            return 0
        stats = profile.top_functions(args.n, by=args.by, value=value)
        if args.json:
            print(json.dumps([{"function": s.frame.name, "file": s.frame.file,
                               "line": s.frame.line, "self": s.self_value,
                               "total": s.total_value, "self_share": s.self_value / total,
                               "total_share": s.total_value / total} for s in stats], indent=1))
            return 0
        print(f"{'self%':>7} {'total%':>7} {'self':>10} {'total':>10}  function")
        for s in stats:
            print(f"{s.self_value / total:7.2%} {s.total_value / total:7.2%} "
                  f"{format_value(s.self_value, value):>10} "
                  f"{format_value(s.total_value, value):>10}  {s.frame.render()}")
        return 0
