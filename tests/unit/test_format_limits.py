"""The limits every format shares: values within 0..MAX_VALUE (pprof's int64) in every
reader and in Profile itself, and the pprof decoder's memory budget against bombs."""

from __future__ import annotations

import gzip
import io
import json
import random
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

import ember
from ember import FormatError, Frame, Metadata, Profile
from ember.errors import EmberError, ValueRangeError
from ember.formats import pprof, speedscope
from ember.formats._protobuf import MessageWriter
from ember.profile import MAX_VALUE

# -- Profile itself ------------------------------------------------------------------------


def test_values_at_the_edge_are_kept_and_beyond_it_refused() -> None:
    p = Profile()
    p.add([Frame("a")], MAX_VALUE, MAX_VALUE, MAX_VALUE)
    assert p.totals().astuple() == (MAX_VALUE,) * 3
    for bad in ({"samples": -1}, {"cpu_ns": MAX_VALUE + 1}, {"wall_ns": 1.5},
                {"samples": "3"}):
        with pytest.raises(ValueRangeError):
            Profile().add([Frame("a")], **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueRangeError, match="total samples would exceed"):
        p.add([Frame("b")], 1)  # the total would leave the range
    assert p.totals().astuple() == (MAX_VALUE,) * 3  # and nothing was added
    assert issubclass(ValueRangeError, EmberError)  # the CLI says it in one line


def test_merging_past_the_range_is_an_error_not_a_wrong_sum() -> None:
    half = Profile()
    half.add([Frame("a")], MAX_VALUE // 2 + 1)
    with pytest.raises(ValueRangeError, match="would exceed"):
        ember.merge([half, half])
    assert ember.merge([half, Profile()]).totals().samples == MAX_VALUE // 2 + 1


def test_whole_numbers_of_other_types_are_taken_as_ints() -> None:
    p = Profile()
    p.add([Frame("a")], True, 0, 0)  # an index-able int subclass
    assert type(p.totals().samples) is int


# -- collapsed --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    (f"main;work {2**63}\n", f":1: count {2**63} is larger than {MAX_VALUE}"),
    ("main;work " + "1" + "0" * 400 + "\n", ":1: count of 401 digits is larger than"),
    (f"a {MAX_VALUE}\nb 1\n", f":2: the counts add up to more than {MAX_VALUE}"),
])
def test_collapsed_counts_beyond_the_range_are_format_errors(
        tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "big.txt"
    path.write_text(text)
    with pytest.raises(FormatError, match=message):
        ember.load(path)


def test_a_collapsed_count_at_the_edge_goes_to_every_format(tmp_path: Path) -> None:
    path = tmp_path / "edge.txt"
    path.write_text(f"main;work {MAX_VALUE}\n")
    p = ember.load(path)
    for name in ("again.txt", "p.pb.gz", "p.json"):
        ember.dump(p, tmp_path / name)
        assert ember.load(tmp_path / name).canonical() == p.canonical()
    ember.dump(p, tmp_path / "p.svg")


# -- pprof ------------------------------------------------------------------------------


def pprof_bytes(values: list[list[int]], types: tuple[tuple[str, str], ...] = (
        ("samples", "count"), ("cpu", "nanoseconds")), line: int = 3) -> bytes:
    """A pprof profile of one function, one sample per entry of ``values``."""
    strings = [""]

    def s(text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    out = MessageWriter()
    for kind, unit in types:
        vt = MessageWriter()
        vt.varint(1, s(kind))
        vt.varint(2, s(unit))
        out.message(1, vt)
    function = MessageWriter()
    function.varint(1, 1)
    function.varint(2, s("main"))
    out.message(5, function)
    line_message = MessageWriter()
    line_message.varint(1, 1)
    line_message.varint(2, line)
    location = MessageWriter()
    location.varint(1, 1)
    location.message(4, line_message)
    out.message(4, location)
    for row in values:
        sample = MessageWriter()
        sample.packed(1, [1])
        sample.packed(2, row)
        out.message(2, sample)
    for text in strings:
        out.string(6, text)
    return gzip.compress(out.getvalue())


@pytest.mark.parametrize(("data", "message"), [
    (pprof_bytes([[-5, 10]]), "negative samples/count value -5"),
    (pprof_bytes([[1, -1]]), "negative cpu/nanoseconds value -1"),
    (pprof_bytes([[5, 2**62]], (("samples", "count"), ("cpu", "seconds"))),
     "cpu/seconds value is 4611686018427387904000000000 ns"),
    (pprof_bytes([[2**62, 0], [2**62, 0]]), "total samples would exceed"),
    (pprof_bytes([[1, 1]], line=-3), "line number -3 is outside"),
])
def test_pprof_values_beyond_the_range_are_format_errors(
        tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.pb.gz"
    path.write_bytes(data)
    with pytest.raises(FormatError) as info:
        ember.load(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_negative_values_in_unused_sample_types_do_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "ok.pb.gz"
    path.write_bytes(pprof_bytes([[3, 7, -1]], (("samples", "count"), ("cpu", "nanoseconds"),
                                                ("alloc", "bytes"))))
    assert ember.load(path).totals().astuple() == (3, 7, 0)


# -- speedscope -------------------------------------------------------------------------


def ember_speedscope(**changes: object) -> dict[str, object]:
    p = Profile(Metadata(start=1.5))
    p.add([Frame("main", "m.py", 1)], 2, 3, 4)
    doc = speedscope.document(p)
    ember_data = doc["ember"]
    for key, value in changes.items():
        if key == "values":
            ember_data["profiles"][0]["values"] = value
        elif key == "start":
            ember_data["meta"]["start"] = value
        elif key == "line":
            doc["shared"]["frames"][0]["line"] = value
    return doc


def foreign_speedscope(weights: list[float], unit: str = "none") -> dict[str, object]:
    return {"$schema": speedscope.SCHEMA, "shared": {"frames": [{"name": "main"}]},
            "profiles": [{"type": "sampled", "name": "p", "unit": unit, "startValue": 0,
                          "endValue": sum(weights), "samples": [[0]] * len(weights),
                          "weights": weights}]}


@pytest.mark.parametrize(("doc", "message"), [
    (ember_speedscope(values=[[-1, 0, 0]]), "values[0][0]: -1 is outside"),
    (ember_speedscope(values=[[0, 2**63, 0]]), f"values[0][1]: {2**63} is outside"),
    (ember_speedscope(start=1e300), "start 1e+300 is out of range"),
    (ember_speedscope(line=-1), "line number -1 is outside"),
    (foreign_speedscope([2.0**62, 2.0**62, 2.0**62]), "samples value 13835058055282163712 is"),
    (foreign_speedscope([2.0**40], "seconds"), "wall_ns value"),
])
def test_speedscope_values_beyond_the_range_are_format_errors(
        tmp_path: Path, doc: dict[str, object], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        ember.load(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


# -- the pprof decoder's budget -----------------------------------------------------------


def bomb(unit: bytes, inflated: int) -> bytes:
    """Gzip of ``unit`` repeated to ``inflated`` bytes: tiny file, endless small fields."""
    return gzip.compress(unit * (inflated // len(unit)), compresslevel=9)


def one_sample_of(field: bytes, inflated: int) -> bytes:
    """A Profile whose single sample (or location) is ``field`` repeated."""
    body = field * (inflated // len(field))
    length = MessageWriter()
    length.blob(2, body)
    return length.getvalue()


BOMBS = {
    "empty samples": b"\x12\x00",
    "empty strings": b"\x32\x00",
    "scalar fields": b"\x48\x00",  # time, again and again
    "unknown fields": b"\xa0\x01\x00",  # field 20
    "empty locations": b"\x22\x00",
    "empty functions": b"\x2a\x00",
}


def test_a_32_kb_gzip_bomb_is_a_format_error_within_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pb.gz"
    path.write_bytes(bomb(BOMBS["empty samples"], 32 << 20))
    assert len(path.read_bytes()) < 40_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    started = time.process_time()
    with pytest.raises(FormatError, match="too large for ember to read"):
        ember.load(path)
    assert time.process_time() - started < 20
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - rss_before
    assert grown < 400 << 20  # far under the 1 GiB that inflating was allowed


def refusal_peak(read: Callable[[], object]) -> int:
    """Peak bytes traced while ``read()`` refuses its input as too large."""
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="too large for ember to read"):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_every_kind_of_tiny_field_meets_the_budget(name: str) -> None:
    budget = 16 << 20
    data = bomb(BOMBS[name], 8 << 20)
    peak = refusal_peak(lambda: pprof.read(io.BytesIO(data), "bomb.pb.gz", budget=budget))
    assert peak < 2 * budget


@pytest.mark.parametrize("field", [b"\x1a\x00", b"\x0a\x01\x01"])  # labels; location ids
def test_one_huge_sample_meets_the_budget(field: bytes) -> None:
    budget = 16 << 20
    data = gzip.compress(one_sample_of(field, 8 << 20))
    peak = refusal_peak(lambda: pprof.read(io.BytesIO(data), "bomb.pb.gz", budget=budget))
    assert peak < 2 * budget


def test_a_location_of_many_lines_in_every_sample_meets_the_budget() -> None:
    out = MessageWriter()
    function = MessageWriter()
    function.varint(1, 1)
    out.message(5, function)
    line = MessageWriter()
    line.varint(1, 1)
    location = MessageWriter()
    location.varint(1, 1)
    for _ in range(20_000):
        location.message(4, line)  # one location, 20 000 inlined frames
    out.message(4, location)
    for i in range(2_000):  # each sample that location 50+ times: 10**6 frames a sample
        sample = MessageWriter()
        sample.packed(1, [1] * (50 + i))
        out.message(2, sample)
    with pytest.raises(FormatError, match="too large for ember to read"):
        pprof.read(io.BytesIO(out.getvalue()), "deep.pb", budget=64 << 20)


def realistic_pprof(n_samples: int, seed: int = 7) -> bytes:
    """Shaped like a Go CPU profile: thousands of functions, inlined frames, labels."""
    rnd = random.Random(seed)
    p = Profile(Metadata(start=1.7e9, duration=30.0, period=0.01))
    functions = [Frame(f"pkg{i % 40}.Type{i % 13}.method_{i}", f"/srv/pkg{i % 40}/f.py", i % 900)
                 for i in range(2_000)]
    endpoints = [f"GET /api/thing{i}/{{id}}" for i in range(20)]
    for _ in range(n_samples):
        stack = [rnd.choice(functions) for _ in range(rnd.randint(8, 40))]
        labels = (("endpoint", rnd.choice(endpoints)), ("thread", f"worker-{rnd.randint(0, 7)}"))
        p.add(stack, rnd.randint(1, 5), rnd.randint(1, 5) * 10_000_000, 0, labels=labels)
    stream = io.BytesIO()
    pprof.write(p, stream)
    return stream.getvalue()


def test_a_realistic_profile_is_far_within_the_budget() -> None:
    data = realistic_pprof(20_000)
    # a tenth of the budget is enough for 20 000 samples: some 300 000 fit in all
    back = pprof.read(io.BytesIO(data), "real.pb.gz", budget=pprof.BUDGET // 10)
    assert len(back.values) == 20_000


# -- the speedscope reader's budget -------------------------------------------------------


def many_samples_speedscope(n: int) -> bytes:
    frames = [{"name": f"f{i}", "file": "m.py", "line": i} for i in range(100)]
    samples = [[i % 100, (i * 7) % 100, (i * 13) % 100] for i in range(n)]
    return json.dumps({"$schema": "https://www.speedscope.app/file-format-schema.json",
                       "shared": {"frames": frames},
                       "profiles": [{"type": "sampled", "name": "p", "unit": "none",
                                     "startValue": 0, "endValue": n, "samples": samples,
                                     "weights": [1] * n}]}).encode()


def test_a_speedscope_file_past_the_budget_is_refused_before_parsing() -> None:
    data = many_samples_speedscope(200_000)  # ~3 MB of text, ~120 MB once parsed
    budget = 32 << 20
    peak = refusal_peak(lambda: speedscope.read(io.BytesIO(data), "big.json", budget=budget))
    assert peak < 3 * len(data)  # refused from the bytes, no object built for them


def test_the_speedscope_estimate_bounds_what_parsing_takes() -> None:
    data = many_samples_speedscope(50_000)
    tracemalloc.start()
    try:
        back = speedscope.read(io.BytesIO(data), "ok.json", budget=speedscope.parse_cost(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert back.totals().samples == 50_000
    assert peak <= speedscope.parse_cost(data)
