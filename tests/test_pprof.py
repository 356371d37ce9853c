"""pprof: round trips, interoperability with ``go tool pprof``, and malformed input."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
from ember import FormatError, Frame, Metadata, Profile, make_labels
from ember.formats import _protobuf, detect, pprof
from ember.formats._protobuf import MessageWriter, iter_fields

AWKWARD = [
    Frame("<module>", "/srv/app main.py", 1),
    Frame("Ωmega.<locals>.<lambda>", "/srv/ünïcode/mod.py", 42),
    Frame("Klass.method", "C:\\odd (dir)\\x.py", 7),
    Frame("<script>alert('x & \"y\"')</script>", "<string>", 3),
    Frame("bare-native-frame"),
    Frame("with space", "a b.py", 0),
    Frame("日本語.関数", "/srv/日本.py", 99999),
]

META = Metadata(start=1_700_000_000.123456, duration=12.5, period=0.01, mode="cpu",
                pids=(101, 202), host="web-1 ü", service="shop=api", version="2.0<rc>",
                gc={0: (12, 0.0125), 2: (1, 0.5)}, truncated=3)


def awkward_profile() -> Profile:
    p = Profile(dataclasses.replace(META))
    get = make_labels({"endpoint": "GET /items/{id}", "thread": "MainThread"})
    post = make_labels({"endpoint": "POST /ü <&>\"'", "thread": "worker 1"})
    p.add(AWKWARD[:3], samples=5, cpu_ns=50_000_000, wall_ns=52_000_000, labels=get)
    p.add(AWKWARD[:3], samples=2, cpu_ns=20_000_000, wall_ns=90_000_000, labels=post)
    p.add(AWKWARD[:3], samples=1, cpu_ns=10_000_000, wall_ns=10_000_000)
    p.add([AWKWARD[0], AWKWARD[3], AWKWARD[4]], samples=4, cpu_ns=0, wall_ns=40_000_000,
          labels=get)
    p.add([AWKWARD[0], AWKWARD[5], AWKWARD[6]], samples=1, cpu_ns=9_999_999, wall_ns=1)
    deep = [AWKWARD[0]] + [AWKWARD[1], AWKWARD[2]] * 250  # 501 frames, recursive
    p.add(deep, samples=3, cpu_ns=30_000_000, wall_ns=30_000_000, labels=post)
    return p


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
                    st.integers(-(2**40), 2**40), st.integers(0, 2**50), st.integers(0, 2**50))
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


# -- go tool pprof --------------------------------------------------------------------

GO = shutil.which("go")
needs_go = pytest.mark.skipif(GO is None, reason="`go` is not on PATH: cannot run go tool pprof")


def go_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(HOME=str(home), GOCACHE=str(home / "gocache"), GOPATH=str(home / "gopath"),
               GOPROXY="off", GOTOOLCHAIN="local", PPROF_TMPDIR=str(home / "pprof"))
    return env


def go(args: list[str], home: Path, cwd: Path | None = None) -> bytes:
    assert GO is not None
    result = subprocess.run([GO, *args], env=go_env(home), cwd=cwd or home,
                            capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def raw_totals(path: Path, home: Path) -> tuple[list[str], list[int]]:
    """Sample type names and summed values from ``go tool pprof -raw``."""
    text = go(["tool", "pprof", "-raw", str(path)], home).decode()
    body = text.split("\nSamples:\n", 1)[1].split("\nLocations\n", 1)[0]
    header, *rows = body.splitlines()
    names = [n.removesuffix("[dflt]") for n in header.split()]
    totals = [0] * len(names)
    for row in rows:
        match = re.fullmatch(r"\s*((?:-?\d+\s+)*-?\d+):(?:\s+\d+)*\s*", row)
        if match:
            for i, value in enumerate(match.group(1).split()):
                totals[i] += int(value)
    return names, totals


def top_total(path: Path, home: Path, index: str) -> int:
    args = ["tool", "pprof", "-top", f"-sample_index={index}", "-unit=ns", str(path)]
    text = go(args, home).decode()
    match = re.search(r"of (-?\d+)(?:ns)? total", text)
    assert match, text
    return int(match.group(1))


@pytest.fixture(scope="module")
def go_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gohome")


@needs_go
def test_go_tool_pprof_sees_the_same_totals(tmp_path: Path, go_home: Path) -> None:
    p = awkward_profile()
    path = tmp_path / "ember.pb.gz"
    ember.dump(p, path)
    totals = p.totals()
    names, raw = raw_totals(path, go_home)
    assert names == ["samples/count", "cpu/nanoseconds", "wall/nanoseconds"]
    assert raw == [totals.samples, totals.cpu_ns, totals.wall_ns]
    assert top_total(path, go_home, "samples") == totals.samples
    assert top_total(path, go_home, "cpu") == totals.cpu_ns
    assert top_total(path, go_home, "wall") == totals.wall_ns


@needs_go
def test_pprof_reencoding_reads_back_equal(tmp_path: Path, go_home: Path) -> None:
    p = awkward_profile()
    path = tmp_path / "ember.pb.gz"
    ember.dump(p, path)
    other = tmp_path / "other.pb.gz"
    other.write_bytes(go(["tool", "pprof", "-proto", str(path)], go_home))
    back = ember.load(other)
    assert back.canonical() == p.canonical()
    assert back.meta == p.meta


GO_PROGRAM = """\
package main

import (
	"os"
	"runtime/pprof"
	"time"
)

var sink uint64

func step(x uint64) uint64 { return x*6364136223846793005 + 1442695040888963407 }

//go:noinline
func burn(d time.Duration) uint64 {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 20000; i++ {
			x = step(x)
		}
	}
	return x
}

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	sink = burn(time.Second)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		panic(err)
	}
}
"""


@pytest.fixture(scope="module")
def go_cpu_profile(tmp_path_factory: pytest.TempPathFactory, go_home: Path) -> Path:
    work = tmp_path_factory.mktemp("goprog")
    (work / "main.go").write_text(textwrap.dedent(GO_PROGRAM))
    out = work / "cpu.pprof"
    go(["run", "main.go", str(out)], go_home, cwd=work)
    return out


@needs_go
def test_reads_a_go_runtime_cpu_profile(go_cpu_profile: Path, go_home: Path) -> None:
    p = ember.load(go_cpu_profile)
    names, raw = raw_totals(go_cpu_profile, go_home)
    assert names == ["samples/count", "cpu/nanoseconds"]
    totals = p.totals()
    assert [totals.samples, totals.cpu_ns] == raw
    assert totals.samples > 20 and totals.wall_ns == 0
    assert p.meta.period == 0.01 and p.meta.start > 1e9 and 0.9 < p.meta.duration < 5
    top = p.top_functions(1000, by="total")
    assert {"main.burn", "main.main", "runtime.main"} <= {s.frame.name for s in top}
    assert all(s.frame.file.endswith("main.go") for s in top if s.frame.name.startswith("main."))
    # one frame per line of main.burn; together they hold (nearly) all of the samples
    in_burn = sum(s.total_value for s in top if s.frame.name == "main.burn")
    assert in_burn >= 0.8 * totals.samples
    inlined = 0
    for stack, _, values in p.samples():  # root first: runtime.main > main.main > main.burn
        names = [f.name for f in stack]
        if "main.burn" in names:
            assert names.index("runtime.main") < names.index("main.main") < names.index(
                "main.burn")
        if "main.step" in names:  # inlined into burn: one location, two lines, two frames
            assert names[names.index("main.step") - 1] == "main.burn"
            inlined += values.samples
    assert inlined > 0


@needs_go
def test_go_profile_survives_ember_round_trip(go_cpu_profile: Path, go_home: Path,
                                              tmp_path: Path) -> None:
    p = ember.load(go_cpu_profile)
    out = tmp_path / "again.pb.gz"
    ember.dump(p, out)
    assert ember.load(out) == p
    _, raw = raw_totals(out, go_home)
    assert raw[:2] == [p.totals().samples, p.totals().cpu_ns]


def test_gzip_bomb_is_refused_with_a_format_error(tmp_path: Path) -> None:
    from ember.formats import pprof

    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB of zeros, a few KiB compressed
    with pytest.raises(FormatError, match="more than 1048576 bytes"):
        pprof._inflate(bomb, "bomb.pb.gz", limit=1 << 20)
    assert pprof._inflate(gzip.compress(b"abc"), "ok.pb.gz", limit=1 << 20) == b"abc"
