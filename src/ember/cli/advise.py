"""``ember advise``: the functions worth migrating to Cython, and the time in C."""

from __future__ import annotations

import argparse
import json

from ember import packages
from ember.advice import MIN_OWN, advise
from ember.cli.command import (
    Command,
    add_value_argument,
    load_weighed,
    percentage,
    positive_int,
    value_choice,
)
from ember.cli.inputs import add_store_arguments, selection


class Advise(Command):
    name = "advise"
    help = (f"Name the Python functions whose own bytecode (self time) holds the time: at "
            f"least --min-share of the total and {MIN_OWN:.0%} of their own total, so callers "
            f"such as main are not candidates. Time in C they call is reported apart when "
            f"the profile has native frames (py-spy --native); ember's own frames are left "
            f"out.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN", help="profiles (merged)")
        parser.add_argument("-n", type=positive_int, default=10,
                            help="candidates (default 10)")
        parser.add_argument("--include-stdlib", action="store_true",
                            help="consider standard-library functions too")
        parser.add_argument("--include-third-party", action="store_true",
                            help="consider installed packages (site-packages) too")
        parser.add_argument("--min-share", type=percentage, default=1.0,
                            help="ignore functions under this %% of the total (0-100, "
                                 "default 1)")
        add_value_argument(parser)
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_store_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        profile, value = load_weighed(args.inputs, args.endpoint, args.value,
                                      selection(args))
        kinds: tuple[str, ...] = (packages.APP,)
        if args.include_stdlib:
            kinds += (packages.STDLIB,)
        if args.include_third_party:
            kinds += (packages.THIRD_PARTY,)
        advice = advise(profile, args.n, value=value, kinds=kinds,
                        min_share=args.min_share / 100)
        if args.json:
            print(json.dumps(advice.as_json(), indent=1))
            return 0
        if not advice.candidates:
            print(f"no {'/'.join(kinds)} function's own bytecode holds {args.min_share:g}% "
                  f"or more of the {value_choice(value)} and {MIN_OWN:.0%} of its own time")
        for rank, c in enumerate(advice.candidates, 1):
            print(f"{rank}. {c.frame.render()}  self {c.self_share:.1%}, "
                  f"total {c.total_share:.1%}")
            print(f"   why: {c.reason}")
            for path, share in c.paths:
                chain = " <- ".join(f.name for f in path) or "(called at the root)"
                print(f"   via {chain}  ({share:.1%})")
        if advice.native:
            print("time in C called from Python (compiling the caller does not speed it up):")
            for n in advice.native:
                callees = ", ".join(f"{f.name} {share:.1%}" for f, share in n.callees)
                print(f"   {n.frame.render()}  {n.share:.1%} in {callees}")
        elif advice.candidates and not advice.native_frames:
            print("note: the profile has no native frames, so time in C functions called "
                  "from a Python line counts as that line's own; 'ember record --backend "
                  "py-spy --native' tells them apart")
        return 0
