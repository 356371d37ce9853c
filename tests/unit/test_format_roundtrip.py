"""Every format against every other: generated profiles (awkward names, labels, values
at the range's edges) written in every format read back equal, or equal after the
format's documented loss; and fuzzed inputs of every format either load or raise
FormatError, within a deadline, and whatever loads can be written in every format."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ember import FormatError, Frame, Metadata, Profile, formats, make_labels
from ember.errors import ValueRangeError
from ember.formats import collapsed, svg
from ember.formats._protobuf import MessageWriter, encode_varint
from ember.profile import MAX_VALUE
from profiles import awkward_profile, mutate, sample_profile
from support import deadline

DATA_FORMATS = ("collapsed", "pprof", "speedscope")
# Generous: a loaded CI machine is slow, and a real hang is caught by the alarm anyway.
DEADLINE = timedelta(seconds=10)
ROUND_TRIP = settings(max_examples=150, deadline=DEADLINE,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings(max_examples=300, deadline=DEADLINE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# -- generated profiles ------------------------------------------------------------------

_chars = st.characters(exclude_categories=("Cs",))  # lone surrogates: see test_surrogates...
_awkward = st.sampled_from([" ", "(", ")", ";", ":", "\n", "\r", "\t", "\0", "<", ">", "&",
                            '"', "'", "\u2028", "\x85", "\u3000", "[unknown]", " (a.py:3)",
                            "<module>", "日本", "\U0001f525"])
names = st.lists(st.one_of(st.text(_chars, max_size=5), _awkward), max_size=4).map("".join)
line_numbers = st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, MAX_VALUE]),
                         st.integers(0, MAX_VALUE))
frames = st.builds(Frame, names, names, line_numbers)
values = st.one_of(st.integers(0, 1000), st.sampled_from([0, 1, MAX_VALUE - 1, MAX_VALUE]),
                   st.integers(0, MAX_VALUE))
label_sets = st.lists(st.tuples(st.one_of(st.sampled_from(["endpoint", "thread"]), names),
                                names), max_size=3).map(make_labels)
_seconds = st.one_of(st.floats(-9e9, 9e9), st.sampled_from([0.0, -0.0, 5e-324, 1e-9]))
metas = st.builds(
    Metadata, start=_seconds, duration=_seconds,
    period=st.one_of(st.floats(0, 9e9), st.sampled_from([0.0, 0.01])),
    mode=names, pids=st.lists(st.integers(0, 2**31), max_size=3).map(tuple),
    host=names, service=names, version=names,
    gc=st.dictionaries(st.integers(0, 2), st.tuples(st.integers(0, 10**9), st.floats(0, 1e4)),
                       max_size=3),
    truncated=st.integers(0, 10**12))


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    pool = draw(st.lists(frames, min_size=1, max_size=6))
    p = Profile(draw(metas))
    for _ in range(draw(st.integers(0, 6))):
        stack = draw(st.lists(st.sampled_from(pool), max_size=5))
        if draw(st.integers(0, 9)) == 0:
            stack *= 100  # deep: lines longer than the sniffed head
        # past the range of the totals Profile refuses, as it should: the entry is left out
        with contextlib.suppress(ValueRangeError):
            p.add(stack, draw(values), draw(values), draw(values), labels=draw(label_sets))
    return p


def written(profile: Profile, name: str, **options: Any) -> bytes:
    stream = io.BytesIO()
    formats.by_name(name).write(profile, stream, **options)
    return stream.getvalue()


def loaded(data: bytes, path: str = "mem") -> Profile:
    """What ``ember.load`` makes of a file holding ``data``: detection, then the reader."""
    fmt = formats.detect(data[:formats.HEAD_SIZE], path)
    return fmt.read(io.BytesIO(data), path)


# -- what each format keeps -------------------------------------------------------------


def replaced(text: str) -> str:
    """Strings as UTF-8 writers write them: lone surrogates become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def frame_text(frame: Frame, leaf: bool) -> str:
    """The collapsed format's documented spelling of a frame."""
    text = frame.name if not frame.file and not frame.line else (
        f"{frame.name} ({frame.file}:{frame.line})")
    for old, new in ((";", ":"), ("\n", " "), ("\r", " "), ("\0", "\ufffd")):
        text = text.replace(old, new)
    text = replaced(text)
    if leaf:
        text = text.rstrip()
    return text or "[unknown]"


def collapsed_view(p: Profile) -> dict[Any, tuple[int, int, int]]:
    """What the collapsed format keeps: samples per stack of re-read frame texts."""
    sums: dict[tuple[Frame, ...], int] = {}
    for stack, _, v in p.samples():
        key = tuple(collapsed.parse_frame(frame_text(f, i == len(stack) - 1))
                    for i, f in enumerate(stack))
        sums[key] = sums.get(key, 0) + v.samples
    return {(key, ()): (n, 0, 0) for key, n in sums.items() if n}


def without_surrogates(p: Profile) -> Profile:
    """``p`` as pprof keeps it: every string through UTF-8 with replacement."""
    meta = dataclasses.replace(p.meta, mode=replaced(p.meta.mode), host=replaced(p.meta.host),
                               service=replaced(p.meta.service),
                               version=replaced(p.meta.version))
    out = Profile(meta)
    for stack, labels, v in p.samples():
        out.add([Frame(replaced(f.name), replaced(f.file), f.line) for f in stack],
                *v.astuple(), labels=make_labels((replaced(k), replaced(x)) for k, x in labels))
    return out


def check_every_format(p: Profile) -> None:
    """``p`` written in every format reads back as each format promises; SVG is valid."""
    for name in DATA_FORMATS:
        back = loaded(written(p, name), f"p.{name}")
        if name == "collapsed":
            assert back.canonical() == collapsed_view(p)
        elif name == "pprof":
            assert back == without_surrogates(p)
        else:
            assert back == p  # speedscope keeps everything, surrogates too
    check_svg(written(p, "svg"))
    stream = io.BytesIO()
    svg.write_diff(p, sample_profile(), stream)
    check_svg(stream.getvalue())


def check_svg(data: bytes) -> None:
    root = ET.fromstring(data)  # well-formed: every name escaped
    scripts = root.findall(".//{http://www.w3.org/2000/svg}script")
    assert len(scripts) == 2  # flamegraph.js and the JSON payload, whatever the names
    payload = next(s for s in scripts if s.get("type") == "application/json")
    json.loads(payload.text or "")


@ROUND_TRIP
@given(profiles())
def test_generated_profiles_survive_every_format(p: Profile) -> None:
    check_every_format(p)


@ROUND_TRIP
@given(profiles(), st.sampled_from(["endpoint", "thread", "none", "k"]),
       st.sampled_from(["samples", "cpu_ns", "wall_ns"]))
def test_speedscope_options_lose_nothing(p: Profile, group_by: str, value: str) -> None:
    assert loaded(written(p, "speedscope", group_by=group_by, value=value)) == p


def test_surrogates_are_kept_by_speedscope_and_replaced_by_the_others() -> None:
    p = Profile(Metadata(host="h\udcff"))
    p.add([Frame("lone \udcff", "\udc80.py", 5)], 3, labels=(("k\ud800", "v"),))
    check_every_format(p)


def test_the_range_edges_in_every_format() -> None:
    for samples, cpu, wall in ((MAX_VALUE, 0, 0), (0, MAX_VALUE, 0), (0, 0, MAX_VALUE),
                               (MAX_VALUE, MAX_VALUE, MAX_VALUE), (1, 1, 1)):
        p = Profile(Metadata(start=9.2e9, duration=-9.2e9, period=9.2e9))
        p.add([Frame("f", "f.py", MAX_VALUE)], samples, cpu, wall, labels=(("a", "b"),))
        check_every_format(p)


# -- fuzz: every input loads or is a FormatError; what loads goes everywhere ----------------


def load_or_format_error(data: bytes) -> None:
    with deadline(30):
        try:
            p = loaded(data, "fuzz.in")
        except FormatError as exc:
            assert str(exc).startswith("fuzz.in") and "\n" not in str(exc)
            event("refused")
            return
        event("loaded")
        check_every_format(p)


# collapsed: valid lines, near misses and noise
_count = st.one_of(st.integers(0, 10**6).map(str), st.integers(0, 2**70).map(str), st.sampled_from(
    ["", "x", "-1", "1.5", "0" * 30 + "7", str(MAX_VALUE), str(MAX_VALUE + 1), "9" * 5000]),
    st.text("0123456789", max_size=25))
_line = st.builds(lambda stack, sep, count: ";".join(stack) + sep + count,
                  st.lists(names, max_size=4), st.sampled_from([" ", " ", " ", "\t", "  ", ""]),
                  st.one_of(st.integers(0, 10**6).map(str), _count))
_good_line = st.builds(lambda stack, count: ";".join(stack) + f" {count}",
                       st.lists(names.filter(lambda n: n.strip() and ";" not in n
                                             and "\n" not in n), max_size=4),
                       st.integers(0, 10**6))
_text = st.lists(st.one_of(_good_line, _good_line, _good_line, _line, st.text(max_size=30)),
                 max_size=8).map(lambda lines: "\n".join(lines))


@FUZZ
@given(_text, st.sampled_from(["utf-8", "utf-8-sig"]))
def test_fuzz_collapsed_text(text: str, encoding: str) -> None:
    load_or_format_error(text.encode(encoding, "surrogatepass"))


# pprof: random protobuf of profile.proto's shapes, raw and gzipped, and plain noise
@st.composite
def protobuf(draw: st.DrawFn, depth: int = 0) -> bytes:
    out = bytearray()
    for _ in range(draw(st.integers(0, 8))):
        number = draw(st.integers(1, 16))
        wire = draw(st.sampled_from([0, 0, 2, 2, 2, 1, 5]))
        out += encode_varint(number << 3 | wire)
        if wire == 0:
            out += encode_varint(draw(st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1))))
        elif wire == 2:
            if depth < 3 and draw(st.booleans()):
                payload = draw(protobuf(depth + 1))
            else:
                payload = draw(st.one_of(st.binary(max_size=12), st.text(max_size=8).map(
                    lambda t: t.encode("utf-8", "surrogatepass"))))
            out += encode_varint(len(payload)) + payload
        else:
            out += draw(st.binary(min_size=8 if wire == 1 else 4, max_size=8 if wire == 1 else 4))
    return bytes(out)


@st.composite
def pprof_like(draw: st.DrawFn) -> bytes:
    """profile.proto's structure with values, ids and indices that may be wrong."""
    def number(valid: int) -> int:  # mostly in 0..valid, now and then not
        if draw(st.integers(0, 40)):
            return draw(st.integers(0, valid))
        return draw(st.sampled_from([-1, -(2**63), MAX_VALUE, 2**64 - 1, valid + 1]))

    strings = ["", *draw(st.lists(names, max_size=6))]
    out = MessageWriter()
    n_types = draw(st.integers(0, 3))
    for _ in range(n_types):
        vt = MessageWriter()
        vt.varint(1, number(len(strings) - 1))
        vt.varint(2, number(len(strings) - 1))
        out.message(1, vt)
    n_functions = draw(st.integers(0, 4))
    for ident in range(1, n_functions + 1):
        function = MessageWriter()
        function.varint(1, ident)
        for field in (2, 3, 4):
            function.varint(field, number(len(strings) - 1))
        function.varint(5, number(3000))
        out.message(5, function)
    n_locations = draw(st.integers(0, 4))
    for ident in range(1, n_locations + 1):
        location = MessageWriter()
        location.varint(1, ident)
        location.varint(3, draw(st.integers(0, 2**64 - 1)))
        for _ in range(draw(st.integers(0, 3))):
            line = MessageWriter()
            line.varint(1, number(n_functions))
            line.varint(2, number(3000))
            location.message(4, line)
        out.message(4, location)
    for _ in range(draw(st.integers(0, 5))):
        sample = MessageWriter()
        sample.packed(1, [max(1, number(n_locations)) for _ in range(draw(st.integers(0, 4)))])
        sample.packed(2, [number(10**12) for _ in range(draw(st.sampled_from(
            [n_types, n_types, n_types, n_types + 1])))])
        for _ in range(draw(st.integers(0, 2))):
            label = MessageWriter()
            for field in draw(st.lists(st.sampled_from([1, 2, 3, 4]), max_size=3)):
                label.varint(field, number(len(strings) - 1))
            sample.message(3, label)
        out.message(2, sample)
    for field in draw(st.lists(st.sampled_from([9, 10, 12, 14]), max_size=3)):
        out.varint(field, number(10**18))
    if draw(st.booleans()):
        period_type = MessageWriter()
        period_type.varint(1, number(len(strings) - 1))
        period_type.varint(2, number(len(strings) - 1))
        out.message(11, period_type)
    for text in strings:
        out.string(6, text)
    return out.getvalue()


@FUZZ
@given(st.one_of(pprof_like(), pprof_like(), protobuf(), st.binary(max_size=300)), st.booleans())
def test_fuzz_pprof_bytes(data: bytes, compress: bool) -> None:
    load_or_format_error(gzip.compress(data) if compress else data)


# speedscope: random JSON, and valid documents with one part replaced by random JSON
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), names),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


@st.composite
def speedscope_docs(draw: st.DrawFn) -> bytes:
    doc = json.loads(written(draw(st.sampled_from([awkward_profile(), sample_profile()])
                                  | profiles()), "speedscope"))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(_paths(doc))[1:]))
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = draw(_json)
    return json.dumps(doc).encode()


@FUZZ
@given(st.one_of(speedscope_docs(), _json.map(lambda d: json.dumps(
    {"$schema": "https://www.speedscope.app/file-format-schema.json", "x": d}).encode()),
    _json.map(lambda d: json.dumps(d).encode())))
def test_fuzz_speedscope_json(data: bytes) -> None:
    load_or_format_error(data)


# any format: valid files with bytes flipped, cut or inserted
@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(DATA_FORMATS))
    data = written(draw(st.sampled_from([awkward_profile(), sample_profile()]) | profiles()),
                   name)
    return mutate(draw, data, gzipped=name == "pprof", edits=(1, 4))


@FUZZ
@given(mutated())
def test_fuzz_mutated_files(data: bytes) -> None:
    load_or_format_error(data)


def test_a_writer_never_meets_a_profile_its_readers_refuse() -> None:
    # The collapsed parser, the one reader with a grammar, accepts every line the
    # writer makes, even of names that are nothing but separators and spaces.
    p = Profile()
    for name in ("", " ", ";", "\n", " 5", "a 1", "\t", "\u3000"):
        p.add([Frame(name), Frame(name)], 1)
        p.add([Frame(name)], 1)
    back = loaded(written(p, "collapsed"))
    assert back.canonical() == collapsed_view(p)
    with pytest.raises(ValueRangeError):
        p.add([Frame("x")], MAX_VALUE)
    assert loaded(written(p, "pprof")) == p


def test_a_message_names_the_stream_of_a_protobuf_that_is_not_a_profile() -> None:
    bad = MessageWriter()
    bad.varint(9, 1)
    bad.string(6, "not empty")  # string_table[0] must be ""
    with pytest.raises(FormatError, match="string_table"):
        loaded(bad.getvalue())
