"""pprof: gzip-compressed ``perftools.profiles.Profile`` protobuf, as ``go tool pprof`` reads.

Writing
    Sample types ``samples/count``, ``cpu/nanoseconds`` and ``wall/nanoseconds``
    (in that order), one Function and one Location (with one Line) per frame,
    labels as string labels. Period type is ``cpu/nanoseconds``; the default
    sample type is ``cpu``, or ``samples`` when no CPU time was recorded.
    Metadata pprof has no field for (host, service, version, pids, mode, GC
    pauses, truncated samples) travels in ``ember.KEY=VALUE`` comments, along
    with the exact float start/duration/period. No mappings are written: every
    location is fully symbolized. The output depends only on the profile's
    content (samples are sorted, gzip mtime is 0), so equal profiles give equal
    bytes.

Sniffing
    Raw protobuf whose first fields are Profile fields with the right wire
    types; for gzip, the inflated start of the data must be that too, so a
    gzipped text file is still "not a profile" (too short to inflate: trusted).

Reading (profiles from any tool, gzip-compressed or raw)
    Values map by sample type: ``samples``/``sample`` in unit ``count`` ->
    ``samples``; ``cpu`` -> ``cpu_ns``; ``wall`` -> ``wall_ns``, with units of
    time (``nanoseconds``, ``microseconds``, ``milliseconds``, ``seconds`` and
    their short forms) converted to nanoseconds. Other sample types are dropped.
    Without a ``samples/count`` type, ``samples`` comes from, in order: the
    default sample type if its unit is ``count``, else the first ``count`` type
    (``contentions``, ``alloc_objects``, ...); else CPU (or wall) time divided by
    a time period, rounded (how many sampling ticks the time represents); else 1
    per pprof sample record that has any non-zero value.
    A location with several lines (inlined calls) becomes several frames, the
    last line being the outermost caller. A location without lines is named by
    its address (``0x4a3f10``, file = mapping file name), or ``[unknown]`` when
    it has no address either. Numeric labels become ``"<num>"`` or
    ``"<num> <unit>"``. Strings that are not UTF-8 are decoded with replacement
    characters rather than rejected (Go does not validate them either).
    Function names come from ``system_name`` unless it looks mangled (``_Z...``,
    ``_R...``, ``?...``), then from ``name``: ``go tool pprof`` simplifies
    ``name`` when re-encoding (``<module>`` would become empty). Metadata comes
    from time/duration/period and ember's comments; a period whose unit is not
    time (heap ``space/bytes``) gives ``period = 0``. Anything else malformed
    raises :class:`FormatError` naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

from ember.errors import FormatError
from ember.formats._protobuf import (
    LEN,
    VARINT,
    Field,
    MessageWriter,
    ProtobufError,
    iter_fields,
)
from ember.profile import Frame, Metadata, Profile

NAME = "pprof"
EXTENSIONS = (".pb.gz", ".pprof", ".pb")

_GZIP_MAGIC = b"\x1f\x8b"
_COMMENT_PREFIX = "ember."
_MANGLED = ("_Z", "__Z", "_R", "?")

# Field numbers of profile.proto (perftools.profiles).
_P_SAMPLE_TYPE, _P_SAMPLE, _P_MAPPING, _P_LOCATION, _P_FUNCTION = 1, 2, 3, 4, 5
_P_STRING_TABLE, _P_DROP_FRAMES, _P_KEEP_FRAMES, _P_TIME, _P_DURATION = 6, 7, 8, 9, 10
_P_PERIOD_TYPE, _P_PERIOD, _P_COMMENT, _P_DEFAULT_SAMPLE_TYPE, _P_DOC_URL = 11, 12, 13, 14, 15
_VT_TYPE, _VT_UNIT = 1, 2
_S_LOCATION_ID, _S_VALUE, _S_LABEL = 1, 2, 3
_L_KEY, _L_STR, _L_NUM, _L_NUM_UNIT = 1, 2, 3, 4
_M_ID, _M_FILENAME = 1, 5
_LOC_ID, _LOC_MAPPING_ID, _LOC_ADDRESS, _LOC_LINE = 1, 2, 3, 4
_LINE_FUNCTION_ID, _LINE_LINE = 1, 2
_F_ID, _F_NAME, _F_SYSTEM_NAME, _F_FILENAME, _F_START_LINE = 1, 2, 3, 4, 5

# Wire types a top-level Profile field may have (for sniffing raw protobuf).
_PROFILE_WIRES: dict[int, tuple[int, ...]] = {
    _P_SAMPLE_TYPE: (LEN,), _P_SAMPLE: (LEN,), _P_MAPPING: (LEN,), _P_LOCATION: (LEN,),
    _P_FUNCTION: (LEN,), _P_STRING_TABLE: (LEN,), _P_DROP_FRAMES: (VARINT,),
    _P_KEEP_FRAMES: (VARINT,), _P_TIME: (VARINT,), _P_DURATION: (VARINT,),
    _P_PERIOD_TYPE: (LEN,), _P_PERIOD: (VARINT,), _P_COMMENT: (VARINT, LEN),
    _P_DEFAULT_SAMPLE_TYPE: (VARINT,), _P_DOC_URL: (LEN,),
}
_SUBMESSAGES = (_P_SAMPLE_TYPE, _P_SAMPLE, _P_MAPPING, _P_LOCATION, _P_FUNCTION, _P_PERIOD_TYPE)

_NS_PER_UNIT = {
    "nanoseconds": 1, "nanosecond": 1, "ns": 1,
    "microseconds": 1_000, "microsecond": 1_000, "us": 1_000,
    "milliseconds": 1_000_000, "millisecond": 1_000_000, "ms": 1_000_000,
    "seconds": 1_000_000_000, "second": 1_000_000_000, "s": 1_000_000_000,
}


class _Invalid(ValueError):
    """Well-formed protobuf that is not a valid profile."""


# -- sniffing -------------------------------------------------------------------------


def sniff(head: bytes) -> bool:
    """Raw protobuf whose first fields are Profile fields of the right wire types, or gzip
    data whose decompressed start is that (a gzipped text file is not claimed)."""
    if head[:2] == _GZIP_MAGIC:
        inflate = zlib.decompressobj(wbits=31)
        try:
            head = inflate.decompress(head, 1 << 16)
        except zlib.error:
            return False
        if not head and not inflate.eof:
            return True  # too few bytes to inflate anything yet: trust the magic
    if not head:
        return False
    seen = 0
    try:
        for field in iter_fields(head, allow_truncated=True):
            if field.wire not in _PROFILE_WIRES.get(field.number, ()):
                return False
            if field.number in _SUBMESSAGES:
                for _ in iter_fields(field.data):
                    pass
            seen += 1
    except ProtobufError:
        return False
    return seen > 0


# -- reading --------------------------------------------------------------------------


MAX_INFLATED = 1 << 30
"""Largest decompressed profile accepted (1 GiB): a gzip bomb is an error, not a crash."""


def _inflate(data: bytes, path: str, limit: int | None = None) -> bytes:
    limit = MAX_INFLATED if limit is None else limit
    inflate = zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data, limit + 1)
    except zlib.error as exc:
        raise FormatError(f"bad gzip data: {exc}", path=path) from None
    if len(out) > limit:
        raise FormatError(f"decompresses to more than {limit} bytes: refused", path=path)
    if not inflate.eof:
        raise FormatError("bad gzip data: truncated", path=path)
    return out


def read(stream: IO[bytes], path: str = "<stream>") -> Profile:
    data = stream.read()
    if not data:
        raise FormatError("empty file", path=path)
    if data[:2] == _GZIP_MAGIC:
        data = _inflate(data, path)
    try:
        return _decode(data)
    except (ProtobufError, _Invalid) as exc:
        raise FormatError(f"not a valid pprof profile ({exc})", path=path) from None


class _Strings:
    def __init__(self, table: list[str]) -> None:
        if not table:
            table = [""]
        if table[0] != "":
            raise _Invalid("string_table[0] must be the empty string")
        self.table = table

    def __call__(self, index: int) -> str:
        if not 0 <= index < len(self.table):
            raise _Invalid(f"string index {index} out of range "
                           f"(string_table has {len(self.table)} entries)")
        return self.table[index]


def _value_type(data: memoryview, strings: _Strings) -> tuple[str, str]:
    kind = unit = 0
    for f in iter_fields(data):
        if f.number == _VT_TYPE:
            kind = f.int64()
        elif f.number == _VT_UNIT:
            unit = f.int64()
    return strings(kind), strings(unit)


def _by_id(kind: str, items: Iterable[tuple[int, Any]]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for ident, item in items:
        if ident == 0:
            raise _Invalid(f"{kind} with id 0")
        if ident in out:
            raise _Invalid(f"duplicate {kind} id {ident}")
        out[ident] = item
    return out


def _function(data: memoryview, strings: _Strings) -> tuple[int, tuple[str, str, int]]:
    ident = name = system_name = filename = start_line = 0
    for f in iter_fields(data):
        if f.number == _F_ID:
            ident = f.uint()
        elif f.number == _F_NAME:
            name = f.int64()
        elif f.number == _F_SYSTEM_NAME:
            system_name = f.int64()
        elif f.number == _F_FILENAME:
            filename = f.int64()
        elif f.number == _F_START_LINE:
            start_line = f.int64()
    return ident, (_function_name(strings(name), strings(system_name)), strings(filename),
                   start_line)


def _function_name(name: str, system_name: str) -> str:
    """The unsimplified name: ``system_name`` unless it is a mangled symbol.

    ``go tool pprof`` rewrites ``name`` when it re-encodes a profile, dropping
    ``<...>`` and ``(...)`` parts (so ``<module>`` would vanish) but keeps
    ``system_name``; C++ and Rust profiles carry the mangled symbol there.
    """
    if system_name and not (name and system_name.startswith(_MANGLED)):
        return system_name
    return name


def _mapping(data: memoryview, strings: _Strings) -> tuple[int, str]:
    ident = filename = 0
    for f in iter_fields(data):
        if f.number == _M_ID:
            ident = f.uint()
        elif f.number == _M_FILENAME:
            filename = f.int64()
    return ident, strings(filename)


def _location(data: memoryview, functions: dict[int, tuple[str, str, int]],
              mappings: dict[int, str]) -> tuple[int, tuple[Frame, ...]]:
    """A location's frames, root (outermost caller, the last Line) first."""
    ident = mapping_id = address = 0
    lines: list[tuple[int, int]] = []
    for f in iter_fields(data):
        if f.number == _LOC_ID:
            ident = f.uint()
        elif f.number == _LOC_MAPPING_ID:
            mapping_id = f.uint()
        elif f.number == _LOC_ADDRESS:
            address = f.uint()
        elif f.number == _LOC_LINE:
            function_id = line = 0
            for g in iter_fields(f.message()):
                if g.number == _LINE_FUNCTION_ID:
                    function_id = g.uint()
                elif g.number == _LINE_LINE:
                    line = g.int64()
            lines.append((function_id, line))
    mapping_file = ""
    if mapping_id:
        if mapping_id not in mappings:
            raise _Invalid(f"location {ident} refers to missing mapping {mapping_id}")
        mapping_file = mappings[mapping_id]
    by_address = f"0x{address:x}" if address else "[unknown]"
    if not lines:
        return ident, (Frame(by_address, mapping_file, 0),)
    frames = []
    for function_id, line in reversed(lines):
        if not function_id:
            frames.append(Frame(by_address, mapping_file, line))
            continue
        function = functions.get(function_id)
        if function is None:
            raise _Invalid(f"location {ident} refers to missing function {function_id}")
        name, filename, start_line = function
        frames.append(Frame(name, filename or mapping_file, line or start_line))
    return ident, tuple(frames)


def _decode(data: bytes) -> Profile:
    parts: dict[int, list[Field]] = {}
    for field in iter_fields(data):
        parts.setdefault(field.number, []).append(field)

    def scalar(number: int, convert: Callable[[Field], int]) -> int:
        fields = parts.get(number, [])
        return convert(fields[-1]) if fields else 0

    def messages(number: int) -> list[memoryview]:
        return [f.message() for f in parts.get(number, [])]

    strings = _Strings([f.string() for f in parts.get(_P_STRING_TABLE, [])])
    sample_types = [_value_type(m, strings) for m in messages(_P_SAMPLE_TYPE)]
    period_type = ("", "")
    for m in messages(_P_PERIOD_TYPE):
        period_type = _value_type(m, strings)
    comments = [strings(i) for f in parts.get(_P_COMMENT, []) for i in f.int64s()]
    default_type = strings(scalar(_P_DEFAULT_SAMPLE_TYPE, Field.int64))
    for number in (_P_DROP_FRAMES, _P_KEEP_FRAMES):
        strings(scalar(number, Field.int64))

    mappings: dict[int, str] = _by_id("mapping", (_mapping(m, strings)
                                                  for m in messages(_P_MAPPING)))
    functions: dict[int, tuple[str, str, int]] = _by_id(
        "function", (_function(m, strings) for m in messages(_P_FUNCTION)))
    locations: dict[int, tuple[Frame, ...]] = _by_id(
        "location", (_location(m, functions, mappings) for m in messages(_P_LOCATION)))

    meta = _metadata(comments, scalar(_P_TIME, Field.int64), scalar(_P_DURATION, Field.int64),
                     period_type, scalar(_P_PERIOD, Field.int64))
    period_ns = round(meta.period * 1e9)
    pick = _value_picker(sample_types, default_type, period_ns)
    profile = Profile(meta)
    for m in messages(_P_SAMPLE):
        location_ids: list[int] = []
        values: list[int] = []
        labels: list[tuple[str, str]] = []
        for f in iter_fields(m):
            if f.number == _S_LOCATION_ID:
                location_ids.extend(f.uints())
            elif f.number == _S_VALUE:
                values.extend(f.int64s())
            elif f.number == _S_LABEL:
                labels.append(_label(f.message(), strings))
        if len(values) != len(sample_types):
            raise _Invalid(f"a sample has {len(values)} values for "
                           f"{len(sample_types)} sample types")
        stack: list[Frame] = []
        for lid in reversed(location_ids):
            frames = locations.get(lid)
            if frames is None:
                raise _Invalid(f"a sample refers to missing location {lid}")
            stack.extend(frames)
        samples, cpu_ns, wall_ns = pick(values)
        profile.add(stack, samples, cpu_ns, wall_ns, tuple(sorted(labels)))
    return profile


def _label(data: memoryview, strings: _Strings) -> tuple[str, str]:
    key = text = num = unit = 0
    for f in iter_fields(data):
        if f.number == _L_KEY:
            key = f.int64()
        elif f.number == _L_STR:
            text = f.int64()
        elif f.number == _L_NUM:
            num = f.int64()
        elif f.number == _L_NUM_UNIT:
            unit = f.int64()
    if text or not (num or unit):
        return strings(key), strings(text)
    unit_name = strings(unit)
    return strings(key), f"{num} {unit_name}" if unit_name else f"{num}"


def _value_picker(sample_types: list[tuple[str, str]], default_type: str,
                  period_ns: int) -> Callable[[list[int]], tuple[int, int, int]]:
    """A function from a sample's values to (samples, cpu_ns, wall_ns); see the module doc."""
    def find(kinds: tuple[str, ...], units: Iterable[str]) -> tuple[int, int]:
        for i, (kind, unit) in enumerate(sample_types):
            if kind in kinds and unit in units:
                return i, _NS_PER_UNIT.get(unit, 1)
        return -1, 1

    cpu, cpu_scale = find(("cpu",), _NS_PER_UNIT)
    wall, wall_scale = find(("wall",), _NS_PER_UNIT)
    count, _ = find(("samples", "sample"), ("count",))
    if count < 0:
        count, _ = find((default_type,), ("count",))
    if count < 0:
        count = next((i for i, (_, unit) in enumerate(sample_types) if unit == "count"), -1)
    timed, timed_scale = (cpu, cpu_scale) if cpu >= 0 else (wall, wall_scale)

    def pick(values: list[int]) -> tuple[int, int, int]:
        cpu_ns = values[cpu] * cpu_scale if cpu >= 0 else 0
        wall_ns = values[wall] * wall_scale if wall >= 0 else 0
        if count >= 0:
            samples = values[count]
        elif timed >= 0 and period_ns > 0:
            samples = round(values[timed] * timed_scale / period_ns)
        else:
            samples = 1 if any(values) else 0
        return samples, cpu_ns, wall_ns

    return pick


def _exact(comment: str | None, nanos: int) -> float:
    """Seconds from a pprof nanosecond field, or the exact float an ember comment kept."""
    if comment is not None:
        try:
            value = float(comment)
        except ValueError:
            value = math.nan
        if math.isfinite(value * 1e9) and round(value * 1e9) == nanos:
            return value
    return nanos / 1e9


def _metadata(comments: list[str], time_ns: int, duration_ns: int,
              period_type: tuple[str, str], period: int) -> Metadata:
    ours: dict[str, str] = {}
    for comment in comments:
        if comment.startswith(_COMMENT_PREFIX) and "=" in comment:
            key, value = comment[len(_COMMENT_PREFIX):].split("=", 1)
            ours[key] = value
    period_ns = period * _NS_PER_UNIT[period_type[1]] if period_type[1] in _NS_PER_UNIT else 0
    meta = Metadata(
        start=_exact(ours.get("start"), time_ns),
        duration=_exact(ours.get("duration"), duration_ns),
        period=_exact(ours.get("period"), max(period_ns, 0)),
        mode=ours.get("mode", ""),
        host=ours.get("host", ""),
        service=ours.get("service", ""),
        version=ours.get("version", ""),
    )
    with contextlib.suppress(ValueError):
        meta.pids = tuple(int(p) for p in ours.get("pids", "").split(",") if p)
    with contextlib.suppress(ValueError):
        meta.truncated = int(ours.get("truncated", "0"))
    gc: dict[int, tuple[int, float]] = {}
    try:
        for entry in ours.get("gc", "").split(","):
            if entry:
                gen, count, seconds = entry.split(":")
                gc[int(gen)] = (int(count), float(seconds))
        meta.gc = gc
    except ValueError:
        pass
    return meta


# -- writing --------------------------------------------------------------------------


class _StringTable:
    def __init__(self) -> None:
        self.strings: list[str] = [""]
        self._index: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.strings)
            self.strings.append(text)
        return index


def _value_type_message(strings: _StringTable, kind: str, unit: str) -> MessageWriter:
    message = MessageWriter()
    message.varint(_VT_TYPE, strings(kind))
    message.varint(_VT_UNIT, strings(unit))
    return message


def _comments(meta: Metadata) -> list[str]:
    fields = {
        "host": meta.host,
        "service": meta.service,
        "version": meta.version,
        "mode": meta.mode,
        "pids": ",".join(str(p) for p in meta.pids),
        "start": repr(meta.start) if meta.start else "",
        "duration": repr(meta.duration) if meta.duration else "",
        "period": repr(meta.period) if meta.period else "",
        "gc": ",".join(f"{gen}:{count}:{seconds!r}"
                       for gen, (count, seconds) in sorted(meta.gc.items())),
        "truncated": str(meta.truncated) if meta.truncated else "",
    }
    return [f"{_COMMENT_PREFIX}{key}={value}" for key, value in fields.items() if value]


def encode(profile: Profile) -> bytes:
    """The uncompressed protobuf bytes of ``profile``."""
    entries = sorted(profile.canonical().items())
    strings = _StringTable()
    out = MessageWriter()
    for kind, unit in (("samples", "count"), ("cpu", "nanoseconds"), ("wall", "nanoseconds")):
        out.message(_P_SAMPLE_TYPE, _value_type_message(strings, kind, unit))

    location_ids: dict[Frame, int] = {}
    for (stack, labels), values in entries:
        for frame in stack:
            if frame not in location_ids:
                location_ids[frame] = len(location_ids) + 1
        sample = MessageWriter()
        sample.packed(_S_LOCATION_ID, (location_ids[f] for f in reversed(stack)))
        sample.packed(_S_VALUE, values)
        for key, value in labels:
            label = MessageWriter()
            label.varint(_L_KEY, strings(key))
            label.varint(_L_STR, strings(value))
            sample.message(_S_LABEL, label)
        out.message(_P_SAMPLE, sample)

    for frame, ident in location_ids.items():
        line = MessageWriter()
        line.varint(_LINE_FUNCTION_ID, ident)
        line.varint(_LINE_LINE, frame.line)
        location = MessageWriter()
        location.varint(_LOC_ID, ident)
        location.message(_LOC_LINE, line)
        out.message(_P_LOCATION, location)
    for frame, ident in location_ids.items():
        function = MessageWriter()
        function.varint(_F_ID, ident)
        function.varint(_F_NAME, strings(frame.name))
        function.varint(_F_SYSTEM_NAME, strings(frame.name))
        function.varint(_F_FILENAME, strings(frame.file))
        function.varint(_F_START_LINE, frame.line)
        out.message(_P_FUNCTION, function)

    meta = profile.meta
    cpu_total = sum(values[1] for _, values in entries)
    period_type = _value_type_message(strings, "cpu", "nanoseconds")
    comment_ids = [strings(c) for c in _comments(meta)]
    default_type = strings("cpu" if cpu_total else "samples")

    for text in strings.strings:
        out.string(_P_STRING_TABLE, text)
    out.varint(_P_TIME, round(meta.start * 1e9))
    out.varint(_P_DURATION, round(meta.duration * 1e9))
    out.message(_P_PERIOD_TYPE, period_type)
    out.varint(_P_PERIOD, round(meta.period * 1e9))
    out.packed(_P_COMMENT, comment_ids)
    out.varint(_P_DEFAULT_SAMPLE_TYPE, default_type)
    return out.getvalue()


def write(profile: Profile, stream: IO[bytes], **options: Any) -> None:
    """Write gzip-compressed pprof. ``compresslevel`` (default 6) is the one option."""
    level = int(options.get("compresslevel", 6))
    stream.write(gzip.compress(encode(profile), compresslevel=level, mtime=0))
