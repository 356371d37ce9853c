"""A small CPU-bound program to profile: ``python -m ember.demo [--seconds S]``.

Three request handlers share the CPU in known proportions, each measured with
the thread's own CPU clock and printed at the end, so a profile of this
program can be checked against the truth.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time


def parse_payload(rounds: int) -> int:
    text = json.dumps({"items": [{"id": i, "name": f"item-{i}"} for i in range(rounds)]})
    return len(json.loads(text)["items"])


def render_page(rounds: int) -> int:
    return len("".join(f"<li>{i * i}</li>" for i in range(rounds)))


def checksum(rounds: int) -> int:
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest[0]


HANDLERS = {parse_payload: 300, render_page: 2_000, checksum: 2_000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ember.demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run")
    args = parser.parse_args(argv)
    spent = dict.fromkeys(HANDLERS, 0)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for handler, rounds in HANDLERS.items():
            before = time.thread_time_ns()
            handler(rounds)
            spent[handler] += time.thread_time_ns() - before
    total = sum(spent.values()) or 1
    for handler, ns in spent.items():
        print(f"{handler.__name__:>14}: {100 * ns / total:5.1f}% of CPU ({ns / 1e9:.2f} s)")


if __name__ == "__main__":
    main()
