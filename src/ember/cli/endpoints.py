"""``ember endpoints``: per endpoint of a store, over a range, what its requests
did (count, errors, latency quantiles, CPU per request) and its share of the CPU
samples."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass

from ember.cli.command import Command, positive_int
from ember.cli.inputs import add_store_arguments, is_store, query_store, selection
from ember.errors import EmberError
from ember.store import QueryResult
from ember.summary import EndpointSummary, histogram_quantile


@dataclass
class EndpointRow:
    """One line of the table (times in ns; ``None`` where no request measured it)."""

    endpoint: str
    requests: int
    errors: int
    p50_ns: float | None
    p95_ns: float | None
    cpu_per_request_ns: float | None
    cpu_ns: int
    """CPU of the endpoint's samples."""
    cpu_share: float
    """``cpu_ns`` of the profile's total CPU."""


def endpoint_rows(result: QueryResult) -> list[EndpointRow]:
    """The rows of ``result``: every endpoint with requests or samples, the most
    sampled CPU first (then requests' CPU, then name)."""
    sampled: Counter[str] = Counter()
    for (_, labels), values in result.profile.values.items():
        endpoint = dict(labels).get("endpoint")
        if endpoint is not None:
            sampled[endpoint] += values.cpu_ns
    total = result.profile.totals().cpu_ns
    rows = []
    for name in set(sampled) | set(result.summary.endpoints):
        summary = result.summary.endpoints.get(name) or EndpointSummary()
        measured = sum(summary.cpu)
        rows.append(EndpointRow(
            name, summary.requests, summary.errors,
            histogram_quantile(0.5, summary.latency), histogram_quantile(0.95, summary.latency),
            summary.cpu_ns / measured if measured else None,
            sampled[name], sampled[name] / total if total else 0.0))
    rows.sort(key=lambda r: (-r.cpu_ns, -(r.cpu_per_request_ns or 0) * r.requests, r.endpoint))
    return rows


def _ms(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.1f}ms"


class Endpoints(Command):
    name = "endpoints"
    help = ("Per endpoint of a store over a range: requests, errors (5xx), p50 and p95 "
            "latency, CPU per request (of the requests whose CPU was measured) and share "
            "of the CPU samples, most CPU first. Quantiles come from the latency "
            "histogram as Prometheus' histogram_quantile estimates them: the bucket where "
            "the cumulative count crosses the quantile, interpolated linearly within it.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("store", metavar="STORE", help="an ember store (.db file)")
        parser.add_argument("-n", type=positive_int, default=20, help="rows (default 20)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_store_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        chosen = selection(args)
        if not is_store(args.store):
            raise EmberError(f"{args.store} is not an ember store (an SQLite .db file); "
                             "'ember top' reads profile files")
        rows = endpoint_rows(query_store(args.store, chosen))[: args.n]
        if args.json:
            print(json.dumps([asdict(row) for row in rows], indent=1))
            return 0
        print(f"{'requests':>9} {'errors':>7} {'p50':>9} {'p95':>9} {'cpu/req':>9} "
              f"{'cpu%':>7}  endpoint")
        for r in rows:
            print(f"{r.requests:>9} {r.errors:>7} {_ms(r.p50_ns):>9} {_ms(r.p95_ns):>9} "
                  f"{_ms(r.cpu_per_request_ns):>9} {r.cpu_share:7.2%}  {r.endpoint}")
        return 0
