"""pprof: round trips and malformed input (``go tool pprof``: tests/integration)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
from ember import FormatError, Frame, Metadata, Profile, make_labels
from ember.formats import _protobuf, detect, pprof
from ember.formats._protobuf import MessageWriter, iter_fields
from profiles import META, awkward_profile


def to_bytes(profile: Profile) -> bytes:
    out = io.BytesIO()
    pprof.write(profile, out)
    return out.getvalue()


def from_bytes(data: bytes, path: str = "mem.pb.gz") -> Profile:
    return pprof.read(io.BytesIO(data), path)


# -- round trips ----------------------------------------------------------------------


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    p = awkward_profile()
    path = tmp_path / "p.pb.gz"
    ember.dump(p, path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = ember.load(path)
    assert back.canonical() == p.canonical()
    assert back.meta == META
    assert back == p


frames = st.builds(Frame, st.text(max_size=12), st.text(max_size=12),
                   st.integers(0, 2**31))
label_sets = st.lists(st.tuples(st.sampled_from(["endpoint", "thread", "ü k", ""]),
                                st.text(max_size=8)), max_size=3).map(make_labels)
entries = st.tuples(st.lists(st.integers(0, 7), max_size=12), label_sets,
                    st.integers(0, 2**40), st.integers(0, 2**50), st.integers(0, 2**50))
metas = st.builds(
    Metadata,
    start=st.floats(0, 2e9), duration=st.floats(0, 1e6), period=st.floats(0, 10),
    mode=st.text(max_size=5), pids=st.lists(st.integers(0, 2**22), max_size=3).map(tuple),
    host=st.text(max_size=8), service=st.text(max_size=8), version=st.text(max_size=8),
    gc=st.dictionaries(st.integers(0, 2), st.tuples(st.integers(0, 10**6), st.floats(0, 100))),
    truncated=st.integers(0, 10**6),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames, min_size=8, max_size=8), st.lists(entries, max_size=10), metas)
def test_round_trip_of_generated_profiles(pool: list[Frame], rows: list[tuple[
        list[int], tuple[tuple[str, str], ...], int, int, int]], meta: Metadata) -> None:
    p = Profile(meta)
    for stack, labels, samples, cpu_ns, wall_ns in rows:
        p.add([pool[i] for i in stack], samples, cpu_ns, wall_ns, labels=labels)
    data = to_bytes(p)
    back = from_bytes(data)
    assert back.canonical() == p.canonical()
    assert back.meta == p.meta
    assert to_bytes(back) == data


def test_output_is_deterministic_and_order_independent() -> None:
    p = awkward_profile()
    q = Profile(dataclasses.replace(META))
    for stack, labels, values in reversed(list(p.samples())):  # other interning order
        q.add(stack, *values.astuple(), labels=labels)
    data = to_bytes(p)
    assert data == to_bytes(p) == to_bytes(q)
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime


def test_raw_uncompressed_protobuf_is_sniffed_and_read(tmp_path: Path) -> None:
    p = awkward_profile()
    raw = pprof.encode(p)
    path = tmp_path / "p.pb"
    path.write_bytes(raw)
    assert pprof.sniff(raw[:4096])
    assert detect(raw[:4096], str(path)) is pprof  # type: ignore[comparison-overlap]
    assert ember.load(path) == p


def test_sniff_rejects_text_and_json() -> None:
    assert not pprof.sniff(b"")
    assert not pprof.sniff(b"main;work 3\n")
    assert not pprof.sniff(b'{"$schema": "https://www.speedscope.app/file-format-schema.json"}')
    assert not pprof.sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>")
    assert not pprof.sniff(gzip.compress(b"main;work 3\n"))
    assert not pprof.sniff(b"\x1f\x8bnot really gzip at all")
    assert not pprof.sniff(gzip.compress(b""))
    assert pprof.sniff(VALID[:4096]) and pprof.sniff(VALID[:300])


def test_collapsed_to_pprof_to_collapsed(tmp_path: Path) -> None:
    text = ("<module> (/srv/app.py:1);handler (/srv/app.py:10);json.dumps (/usr/json.py:230) 7\n"
            "<module> (/srv/app.py:1);handler (/srv/app.py:10) 3\n"
            "main;sleep 2\n"
            "main;Ωmega (ü b.py:5) 1\n")
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    ember.dump(ember.load(src), tmp_path / "mid.pb.gz")
    ember.dump(ember.load(tmp_path / "mid.pb.gz"), tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "".join(
        sorted(text.splitlines(keepends=True)))


def _decoded_strings(raw: bytes) -> tuple[list[str], int]:
    strings = [f.string() for f in iter_fields(raw) if f.number == 6]
    default = [f.int64() for f in iter_fields(raw) if f.number == 14]
    return strings, default[0] if default else 0


def test_written_structure() -> None:
    p = Profile(Metadata(start=1.5, duration=2.0, period=0.005))
    p.add([Frame("main", "m.py", 1), Frame("work", "m.py", 5)], samples=3, cpu_ns=7)
    raw = pprof.encode(p)
    strings, default = _decoded_strings(raw)
    assert strings[0] == ""
    assert strings[default] == "cpu"
    top = {f.number: f for f in iter_fields(raw)}
    assert top[9].int64() == 1_500_000_000 and top[10].int64() == 2_000_000_000
    assert top[12].int64() == 5_000_000
    sample = dict((f.number, f) for f in iter_fields(top[2].message()))
    locations = {}
    for loc in (f for f in iter_fields(raw) if f.number == 4):
        fields = {g.number: g for g in iter_fields(loc.message())}
        line = {g.number: g.uint() for g in iter_fields(fields[4].message())}
        locations[fields[1].uint()] = line
    functions = {}
    for fn in (f for f in iter_fields(raw) if f.number == 5):
        fields = {g.number: g for g in iter_fields(fn.message())}
        functions[fields[1].uint()] = strings[fields[2].int64()]
    leaf_first = [functions[locations[i][1]] for i in sample[1].uints()]
    assert leaf_first == ["work", "main"]
    assert sample[2].int64s() == [3, 7, 0]

    no_cpu = Profile()
    no_cpu.add([Frame("main")], samples=1, wall_ns=5)
    strings, default = _decoded_strings(pprof.encode(no_cpu))
    assert strings[default] == "samples"


# -- reading what other tools write ---------------------------------------------------


def _vt(strings: list[str], kind: str, unit: str) -> MessageWriter:
    m = MessageWriter()
    for number, text in ((1, kind), (2, unit)):
        if text not in strings:
            strings.append(text)
        m.varint(number, strings.index(text))
    return m


def _foreign_profile() -> bytes:
    """Like a C++/Go profile: inlined lines, address-only locations, numeric labels, us."""
    strings = [""]

    def s(text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    out = MessageWriter()
    out.message(1, _vt(strings, "cpu", "microseconds"))
    out.message(1, _vt(strings, "wall", "milliseconds"))
    mapping = MessageWriter()
    mapping.varint(1, 7)
    mapping.varint(5, s("/usr/lib/libfoo.so"))
    out.message(3, mapping)
    for fid, name in ((1, "main"), (2, "outer"), (3, "inlined")):
        fn = MessageWriter()
        fn.varint(1, fid)
        fn.varint(2, s(name))
        fn.varint(3, s(name))
        fn.varint(4, s("src.cc"))
        fn.varint(5, 10 * fid)
        out.message(5, fn)

    def location(lid: int, lines: list[tuple[int, int]], address: int = 0) -> None:
        loc = MessageWriter()
        loc.varint(1, lid)
        loc.varint(2, 7)
        loc.varint(3, address)
        for fid, number in lines:
            line = MessageWriter()
            line.varint(1, fid)
            line.varint(2, number)
            loc.message(4, line)
        out.message(4, loc)

    location(1, [(1, 0)])  # line 0 -> function start line
    location(2, [(3, 31), (2, 22)])  # inlined: callee first, caller last
    location(3, [], address=0x4A3F10)
    sample = MessageWriter()
    sample.packed(1, [3, 2, 1])  # leaf first
    sample.packed(2, [250, 4])
    label = MessageWriter()
    label.varint(1, s("bytes"))
    label.varint(3, 4096)
    label.varint(4, s("bytes"))
    sample.message(3, label)
    label = MessageWriter()
    label.varint(1, s("goroutine"))
    label.varint(3, 17)
    sample.message(3, label)
    out.message(2, sample)
    period_type = _vt(strings, "cpu", "microseconds")
    comment = s("generated by hand")
    for text in strings:
        out.string(6, text)
    out.varint(9, 5_000_000_000)
    out.varint(10, 3_000_000_000)
    out.message(11, period_type)
    out.varint(12, 50)
    out.packed(13, [comment])
    return out.getvalue()


def test_reads_foreign_features() -> None:
    p = from_bytes(_foreign_profile())
    frames = (Frame("main", "src.cc", 10), Frame("outer", "src.cc", 22),
              Frame("inlined", "src.cc", 31), Frame("0x4a3f10", "/usr/lib/libfoo.so", 0))
    labels = (("bytes", "4096 bytes"), ("goroutine", "17"))
    # no count type: samples = cpu time / period = 250 us / 50 us
    assert p.canonical() == {(frames, labels): (5, 250_000, 4_000_000)}
    assert (p.meta.start, p.meta.duration, p.meta.period) == (5.0, 3.0, 0.00005)
    assert p.meta.host == "" and p.meta.pids == ()


# -- malformed input ------------------------------------------------------------------


def _with_fields(*fields: tuple[bytes, bytes]) -> bytes:
    """A valid little profile plus extra raw top-level fields."""
    p = Profile()
    p.add([Frame("main", "m.py", 1)], samples=1, cpu_ns=1)
    return pprof.encode(p) + b"".join(key + value for key, value in fields)


def _profile_with_sample(sample: MessageWriter, nstrings: int = 1) -> bytes:
    out = MessageWriter()
    out.message(2, sample)
    for i in range(nstrings):
        out.string(6, "" if i == 0 else f"s{i}")
    return out.getvalue()


def _bad_string_index() -> bytes:
    sample = MessageWriter()
    label = MessageWriter()
    label.varint(1, 5)
    label.varint(2, 1)
    sample.message(3, label)
    return _profile_with_sample(sample, nstrings=2)


def _missing_location() -> bytes:
    sample = MessageWriter()
    sample.packed(1, [42])
    return _profile_with_sample(sample)


VALID = to_bytes(awkward_profile())
RAW = pprof.encode(awkward_profile())

MALFORMED = {
    "truncated gzip": VALID[: len(VALID) // 2],
    "gzip with bad crc": VALID[:-8] + bytes(8),
    "gzip of garbage": gzip.compress(b"\xff" * 40, mtime=0),
    "not gzip, not protobuf": b"\xff\xfe\xfd hello, world",
    "truncated protobuf": RAW[: len(RAW) // 3],
    "truncated protobuf in gzip": gzip.compress(RAW[:-5], mtime=0),
    "wrong wire type": _with_fields((b"\x10", b"\x05")),  # sample as varint
    "wrong wire type in string table": _with_fields((b"\x30", b"\x01")),
    "group wire type": _with_fields((b"\x0b", b"")),
    "string index out of range": _bad_string_index(),
    "missing location id": _missing_location(),
    "absurd varint": _with_fields((b"\x48", b"\xff" * 11 + b"\x01")),
    "varint over 64 bits": _with_fields((b"\x48", b"\xff" * 9 + b"\x7f")),
    "absurd length": _with_fields((b"\x12", b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f")),
    "field number 0": _with_fields((b"\x00", b"\x01")),
    "value count mismatch": _with_fields((b"\x12", b"\x04\x12\x02\x01\x02")),
    "negative string index": _with_fields((b"\x70", b"\xff" * 9 + b"\x01")),
    "first string not empty": b"\x32\x01x",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_raises_format_error(name: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.pb.gz"
    path.write_bytes(MALFORMED[name])
    with pytest.raises(FormatError) as info, path.open("rb") as stream:
        pprof.read(stream, str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_load_of_malformed_pprof_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pb.gz"
    path.write_bytes(MALFORMED["truncated gzip"])
    with pytest.raises(FormatError, match=re.escape(str(path))):
        ember.load(path)


def _read_only_profile_or_format_error(data: bytes) -> None:
    try:
        result = from_bytes(data, "fuzz.pb")
    except FormatError as exc:
        assert "fuzz.pb" in str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(result, Profile)


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    _read_only_profile_or_format_error(data)
    _read_only_profile_or_format_error(b"\x1f\x8b" + data)
    pprof.sniff(data)


@FUZZ
@given(st.sampled_from([RAW, _foreign_profile(), VALID]),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       st.integers(0, 10**6), st.booleans())
def test_fuzz_mutations_and_truncations(base: bytes, edits: list[tuple[int, int]],
                                        cut: int, truncate: bool) -> None:
    data = bytearray(base)
    for position, byte in edits:
        data[position % len(data)] = byte
    if truncate:
        del data[cut % len(data):]
    _read_only_profile_or_format_error(bytes(data))
    pprof.sniff(bytes(data[:4096]))


def test_protobuf_codec_basics() -> None:
    for value in (0, 1, 127, 128, 300, 2**63 - 1, 2**64 - 1):
        encoded = _protobuf.encode_varint(value)
        assert _protobuf.read_varint(encoded, 0, len(encoded)) == (value, len(encoded))
    assert _protobuf.to_int64(_protobuf.read_varint(_protobuf.encode_varint(-5), 0, 10)[0]) == -5
    assert len(_protobuf.encode_varint(-1)) == 10
    with pytest.raises(_protobuf.ProtobufError):
        list(iter_fields(b"\x0a\x05ab"))
    assert list(iter_fields(b"\x08\x01\x0a\x05ab", allow_truncated=True)) == [
        _protobuf.Field(1, 0, 1)]


def test_gzip_bomb_is_refused_with_a_format_error(tmp_path: Path) -> None:
    from ember.formats import pprof

    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB of zeros, a few KiB compressed
    with pytest.raises(FormatError, match="more than 1048576 bytes"):
        pprof._inflate(bomb, "bomb.pb.gz", limit=1 << 20)
    assert pprof._inflate(gzip.compress(b"abc"), "ok.pb.gz", limit=1 << 20) == b"abc"
