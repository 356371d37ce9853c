"""``ember advise``: the pure-Python functions most worth migrating to Cython."""

from __future__ import annotations

import argparse
import json

from ember import packages
from ember.advice import candidates, default_value
from ember.cli.command import VALUES, Command, load_inputs


class Advise(Command):
    name = "advise"
    help = ("Name the pure-Python functions whose self time makes them the best "
            "candidates to migrate to Cython.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN", help="profiles (merged)")
        parser.add_argument("-n", type=int, default=10, help="candidates (default 10)")
        parser.add_argument("--include-stdlib", action="store_true",
                            help="consider standard-library functions too")
        parser.add_argument("--include-third-party", action="store_true",
                            help="consider installed packages (site-packages) too")
        parser.add_argument("--min-share", type=float, default=1.0,
                            help="ignore functions under this %% of the total (default 1)")
        parser.add_argument("--value", choices=sorted(VALUES),
                            help="weigh by (default: cpu when recorded, else samples)")
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> int:
        profile = load_inputs(args.inputs, args.endpoint)
        kinds: tuple[str, ...] = (packages.APP,)
        if args.include_stdlib:
            kinds += (packages.STDLIB,)
        if args.include_third_party:
            kinds += (packages.THIRD_PARTY,)
        value = VALUES[args.value] if args.value else default_value(profile)
        found = candidates(profile, args.n, value=value, kinds=kinds,
                           min_share=args.min_share / 100)
        if args.json:
            print(json.dumps([c.as_json() for c in found], indent=1))
            return 0
        if not found:
            print(f"no {'/'.join(kinds)} function holds {args.min_share:g}% or more of "
                  f"the {value} on its own")
            return 0
        for rank, c in enumerate(found, 1):
            print(f"{rank}. {c.frame.render()}  self {c.self_share:.1%}, "
                  f"total {c.total_share:.1%}")
            print(f"   why: {c.reason}")
            for path, share in c.paths:
                chain = " <- ".join(f.name for f in path) or "(called at the root)"
                print(f"   via {chain}  ({share:.1%})")
        return 0
