"""``ember diff``: a differential flamegraph of two profiles, and what changed most."""

from __future__ import annotations

import argparse
import json
import sys

from ember import formats
from ember.cli.command import (
    Command,
    add_value_argument,
    choose_value,
    only_endpoint,
    positive_int,
    require_extension,
    value_choice,
)
from ember.cli.inputs import add_store_arguments, read_inputs, selection
from ember.compare import GONE, NEW, ShareChange, align, share_changes
from ember.errors import FormatError
from ember.profile import Profile


class Diff(Command):
    name = "diff"
    help = ("Differential flamegraph from BASE to HEAD (normalised by totals: red grew, "
            "blue shrank); prints the functions whose self share changed most, grown, "
            "shrunk, new or gone. Functions are matched by qualified name and file, so a "
            "function whose first line moved is still one function. Either side may be a "
            "store; the store options select the same windows of every store side "
            "(--version is not per side: convert each version to a file to compare them).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("base", metavar="BASE", help="the profile before")
        parser.add_argument("head", metavar="HEAD", help="the profile after")
        parser.add_argument("-o", "--output", help="output .svg file (optional)")
        parser.add_argument("-n", type=positive_int, default=10,
                            help="functions to print (default 10)")
        parser.add_argument("--title", help="title of the SVG")
        parser.add_argument("--endpoint", help="only samples of this endpoint label")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_value_argument(parser)
        add_store_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        if args.output:
            require_extension(args.output, ".svg")
        # the store options select the same windows of both sides (not one per side)
        base, head = read_inputs([args.base, args.head], selection(args))
        base, = only_endpoint([base], args.endpoint)
        head, = only_endpoint([head], args.endpoint)
        value = choose_value([(args.base, base), (args.head, head)], args.value)
        if args.output:
            title = args.title or f"Differential flame graph: {args.base} -> {args.head}"
            _write_svg(*align(base, head), args.output, title, value)
            print(f"ember diff: wrote {args.output}", file=sys.stderr)
        changes = [c for c in share_changes(base, head, value) if c.delta]
        shown = changes[: args.n]
        if args.json:
            print(json.dumps([_as_json(c) for c in shown], indent=1))
            return 0
        print(f"{'before':>8} {'after':>8} {'change':>8}  "
              f"function (self share of {value_choice(value)})")
        for c in shown:
            print(f"{c.base_share:8.2%} {c.head_share:8.2%} {c.delta:+8.2%}  "
                  f"{c.frame.render()}{_note(c)}")
        if not changes:
            print("no function's share changed")
        elif len(changes) > len(shown):
            print(f"... {len(changes) - len(shown)} more (-n {len(changes)} shows all)")
        return 0


def _note(change: ShareChange) -> str:
    if change.state in (NEW, GONE):
        return f"  [{change.state}]"
    assert change.base_frame is not None and change.head_frame is not None
    if change.base_frame.line != change.head_frame.line:
        return f"  [was line {change.base_frame.line}]"
    return ""


def _as_json(change: ShareChange) -> dict[str, object]:
    frame = change.frame
    return {"function": frame.name, "file": frame.file, "line": frame.line,
            "base_line": change.base_frame.line if change.base_frame else None,
            "base_share": round(change.base_share, 6), "head_share": round(change.head_share, 6),
            "change": round(change.delta, 6), "state": change.state}


def _write_svg(base: Profile, head: Profile, output: str, title: str, value: str) -> None:
    from ember.formats import svg

    try:
        with formats.atomic_output(output) as stream:
            svg.write_diff(base, head, stream, title=title, value=value)
    except OSError as exc:
        raise FormatError(exc.strerror or str(exc), path=output) from None
