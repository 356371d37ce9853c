"""The CLI over an ember store: a .db file queried wherever a profile file goes,
and ``ember endpoints``; checked against the same windows summed by hand."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import store_windows as sw
from ember import formats
from ember.cli.inputs import parse_time
from ember.cli.main import main
from ember.errors import EmberError
from ember.store.sqlite import SqliteStore
from ember.summary import BOUNDS_NS, BUCKETS, EndpointSummary, WindowSummary, histogram_quantile
from ember.window import Window

T0 = 1_780_000_000.0
"""The first window's start (the writer's clock is set just after the last)."""


def run(argv: list[str]) -> tuple[int, str, str]:
    """``ember ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, tz=datetime.UTC).isoformat()


def write_store(path: Path, windows: list[Window]) -> str:
    store = SqliteStore(path, clock=lambda: T0 + 600)  # no roll-up of the windows
    for w in windows:
        store.write(w)
    store.close()
    return str(path)


@pytest.fixture
def held(tmp_path: Path) -> tuple[str, list[Window]]:
    """A store of 8 windows: minutes 0-3, pids 1000 and 1001, version a then b."""
    windows = [sw.window(T0 + 60 * minute, pid=pid, version="a" if minute < 2 else "b",
                         seed=minute * 10 + pid, rows=60)
               for minute in range(4) for pid in (1000, 1001)]
    return write_store(tmp_path / "ember.db", windows), windows


def test_top_over_a_store_is_top_over_its_windows_merged(held: tuple[str, list[Window]]
                                                         ) -> None:
    path, windows = held
    code, out, _ = run(["top", path, "--json", "-n", "15", "--by", "total"])
    assert code == 0
    want = sw.expected(windows).profile.top_functions(15, by="total", value="cpu_ns")
    assert [(row["function"], row["file"], row["self"], row["total"])
            for row in json.loads(out)] == \
        [(s.frame.name, s.frame.file, s.self_value, s.total_value) for s in want]


SELECTIONS: list[tuple[list[str], Callable[[Window], bool]]] = [
    ([], lambda w: True),
    (["--since", iso(T0 + 60)], lambda w: w.start >= T0 + 60),
    (["--until", iso(T0 + 120)], lambda w: w.start < T0 + 120),
    (["--version", "b"], lambda w: w.meta.version == "b"),
    (["--pid", "1001"], lambda w: w.pid == 1001),
    (["--since", iso(T0 + 60), "--until", iso(T0 + 180), "--pid", "1000"],
     lambda w: T0 + 60 <= w.start < T0 + 180 and w.pid == 1000),
]


@pytest.mark.parametrize(("options", "chosen"), SELECTIONS,
                         ids=["all", "since", "until", "version", "pid", "range-and-pid"])
def test_convert_of_a_store_reads_back_as_the_selected_windows(
        held: tuple[str, list[Window]], tmp_path: Path, options: list[str],
        chosen: Callable[[Window], bool]) -> None:
    path, windows = held
    output = str(tmp_path / "out.pb.gz")
    code, _, err = run(["convert", path, "-o", output, *options])
    assert code == 0, err
    subset = [w for w in windows if chosen(w)]
    assert 0 < len(subset) < len(windows) or not options
    want = sw.expected(subset).profile
    assert formats.load(output).canonical() == want.canonical()
    # and the store query itself: the same windows
    store = SqliteStore(path)
    try:
        assert store.query().windows == len(windows)
    finally:
        store.close()


def test_endpoint_selects_its_samples_of_the_store(held: tuple[str, list[Window]],
                                                   tmp_path: Path) -> None:
    path, windows = held
    output = str(tmp_path / "out.pb.gz")
    code, _, err = run(["convert", path, "-o", output, "--endpoint", "GET /search",
                        "--version", "a"])
    assert code == 0, err
    subset = [w for w in windows if w.meta.version == "a"]
    want = sw.expected(subset, endpoint="GET /search").profile
    assert want.values
    assert formats.load(output).canonical() == want.canonical()


def test_endpoints_match_the_windows_summed_by_hand(held: tuple[str, list[Window]]) -> None:
    path, windows = held
    code, out, err = run(["endpoints", path, "--version", "a", "--json"])
    assert code == 0, err
    subset = [w for w in windows if w.meta.version == "a"]
    summary = sw.expected(subset).summary
    sampled: Counter[str] = Counter()
    total = 0
    for w in subset:
        for (_, labels), (_, cpu, _) in w.values.items():
            sampled[dict(labels)["endpoint"]] += cpu
            total += cpu
    rows = json.loads(out)
    assert {row["endpoint"] for row in rows} == set(sampled) | set(summary.endpoints)
    for row in rows:
        e = summary.endpoints.get(row["endpoint"], EndpointSummary())
        assert (row["requests"], row["errors"]) == (e.requests, e.errors)
        assert row["cpu_per_request_ns"] == pytest.approx(e.cpu_ns / sum(e.cpu))
        assert row["cpu_ns"] == sampled[row["endpoint"]]
        assert row["cpu_share"] == pytest.approx(sampled[row["endpoint"]] / total)
    assert [row["cpu_ns"] for row in rows] == sorted(sampled.values(), reverse=True)


def test_endpoints_quantiles_and_cpu_of_a_constructed_histogram(tmp_path: Path) -> None:
    e = EndpointSummary(requests=10, errors=3, wall_ns=1, cpu_ns=5_000_000)
    e.latency[3] = 4  # 500us < v <= 1ms
    e.latency[5] = 6  # 2.5ms < v <= 5ms
    e.cpu[3] = 5  # CPU measured for 5 of the 10 requests
    w = sw.window(T0, endpoints=["GET /x"], seed=1, rows=20)
    w.summary = WindowSummary({"GET /x": e})
    path = write_store(tmp_path / "one.db", [w])
    code, out, err = run(["endpoints", path, "--json"])
    assert code == 0, err
    row, = json.loads(out)
    assert (row["endpoint"], row["requests"], row["errors"]) == ("GET /x", 10, 3)
    # p50: rank 5, the 1st of 6 past the 4 below: 2.5ms + 2.5ms * 1/6
    assert row["p50_ns"] == pytest.approx(2_500_000 + 2_500_000 * 1 / 6)
    # p95: rank 9.5: 2.5ms + 2.5ms * 5.5/6
    assert row["p95_ns"] == pytest.approx(2_500_000 + 2_500_000 * 5.5 / 6)
    assert row["cpu_per_request_ns"] == pytest.approx(1_000_000)
    assert row["cpu_share"] == pytest.approx(1.0)
    code, out, _ = run(["endpoints", path])
    assert code == 0 and "2.9ms" in out and "4.8ms" in out and "1.0ms" in out


def test_histogram_quantile_edges() -> None:
    above = [0] * BUCKETS
    above[-1] = 3
    assert histogram_quantile(0.5, above) == BOUNDS_NS[-1]
    first = [0] * BUCKETS
    first[0] = 2
    assert histogram_quantile(0.5, first) == pytest.approx(BOUNDS_NS[0] / 2)
    assert histogram_quantile(0.5, [0] * BUCKETS) is None


def test_relative_and_absolute_times() -> None:
    now = 1_000_000.0
    assert parse_time("10m", lambda: now) == now - 600
    assert parse_time("2h", lambda: now) == now - 7200
    assert parse_time("1d", lambda: now) == now - 86400
    assert parse_time("2026-01-02T03:04:05+00:00") == \
        datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC).timestamp()
    with pytest.raises(EmberError):
        parse_time("10 minutes")


def one_line_exit_2(argv: list[str], says: str) -> None:
    code, out, err = run(argv)
    assert code == 2
    assert err.count("\n") == 1 and says in err, err
    assert "Traceback" not in err and not out


def test_a_bad_time_is_one_line(held: tuple[str, list[Window]]) -> None:
    one_line_exit_2(["top", held[0], "--since", "yesterday"], "'yesterday' is not a time")
    one_line_exit_2(["endpoints", held[0], "--until", "5x"], "'5x' is not a time")


def test_store_options_with_only_profile_files_are_one_line(tmp_path: Path) -> None:
    profile = sw.window(T0, seed=2, rows=10).profile()
    path = str(tmp_path / "p.pb.gz")
    formats.dump(profile, path)
    one_line_exit_2(["top", path, "--since", "10m"], "--since applies to a store")
    one_line_exit_2(["flamegraph", path, "-o", str(tmp_path / "x.svg"), "--pid", "3"],
                    "--pid applies to a store")
    one_line_exit_2(["endpoints", path], "is not an ember store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pb.gz"]


def test_a_db_file_that_is_not_a_store_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    one_line_exit_2(["top", str(junk)], "is not an ember store")
    one_line_exit_2(["endpoints", str(junk), "--since", "1h"], "is not an ember store")


def test_a_selection_matching_nothing_says_what_the_store_holds(
        held: tuple[str, list[Window]]) -> None:
    one_line_exit_2(["top", held[0], "--version", "zzz"], "no windows match --version")
    one_line_exit_2(["top", held[0], "--version", "zzz"], "versions a, b, pids 1000, 1001")


def test_diff_applies_the_options_to_each_store_side(held: tuple[str, list[Window]],
                                                     tmp_path: Path) -> None:
    path, windows = held
    files = {}
    for pid in (1000, 1001):
        files[pid] = str(tmp_path / f"{pid}.pb.gz")
        formats.dump(sw.expected([w for w in windows if w.pid == pid]).profile, files[pid])
    code, by_hand, _ = run(["diff", files[1000], files[1001], "--json"])
    assert code == 0 and json.loads(by_hand)
    code, out, err = run(["diff", path, files[1001], "--pid", "1000", "--json"])
    assert code == 0, err
    assert json.loads(out) == json.loads(by_hand)
    code, out, err = run(["diff", path, path, "--pid", "1000", "--json"])
    assert code == 0, err
    assert json.loads(out) == []  # the same windows on both sides: nothing changed
