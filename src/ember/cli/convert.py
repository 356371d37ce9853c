"""``ember convert`` and ``ember merge``: rewrite profiles in another format."""

from __future__ import annotations

import argparse
import sys

from ember import formats
from ember.cli.command import Command, load_inputs
from ember.profile import Profile


class Convert(Command):
    name = "convert"
    help = "Convert a profile to the format the output's extension names."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("input", metavar="IN", help="a profile in any supported format")
        parser.add_argument("-o", "--output", required=True,
                            help="output file: .txt/.folded, .pb.gz/.pprof, .json, .svg")

    def run(self, args: argparse.Namespace) -> int:
        return write(load_inputs([args.input]), args.output, self.name)


class Merge(Command):
    name = "merge"
    help = "Merge profiles (summing their samples) into one file."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IN", help="profiles to sum")
        parser.add_argument("-o", "--output", required=True,
                            help="output file; the format comes from the extension")

    def run(self, args: argparse.Namespace) -> int:
        return write(load_inputs(args.inputs), args.output, self.name)


def write(profile: Profile, output: str, verb: str) -> int:
    formats.for_path(output)  # unknown extension: one clear line, nothing written
    formats.dump(profile, output)
    print(f"ember {verb}: wrote {output} ({profile.totals().samples} samples)", file=sys.stderr)
    return 0
