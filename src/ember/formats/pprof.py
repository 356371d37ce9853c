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

Limits (what every other format can hold too)
    Values must be within ``0..MAX_VALUE`` after conversion to nanoseconds, and
    so must their totals: a negative value (a ``-diff_base`` profile) or one
    past the range is a :class:`FormatError`, as are negative line numbers and
    times beyond int64 nanoseconds. Decoding is bounded by :data:`BUDGET`
    (384 MiB): the inflated bytes plus an estimate of every Python object
    built (see :mod:`ember.formats._pprof_decode`); a file that needs more --
    a gzip bomb of tiny fields, or a profile of millions of samples -- is a
    :class:`FormatError` saying so, never a MemoryError.
"""

from __future__ import annotations

import gzip
import zlib
from typing import IO, Any

from ember.errors import FormatError
from ember.formats import _pprof_proto as pb
from ember.formats._pprof_decode import TooLarge, decode
from ember.formats._pprof_proto import Invalid
from ember.formats._protobuf import LEN, VARINT, MessageWriter, ProtobufError, iter_fields
from ember.profile import Frame, Metadata, Profile

NAME = "pprof"
EXTENSIONS = (".pb.gz", ".pprof", ".pb")

_GZIP_MAGIC = b"\x1f\x8b"

# Wire types a top-level Profile field may have (for sniffing raw protobuf).
_PROFILE_WIRES: dict[int, tuple[int, ...]] = {
    pb.SAMPLE_TYPE: (LEN,), pb.SAMPLE: (LEN,), pb.MAPPING: (LEN,), pb.LOCATION: (LEN,),
    pb.FUNCTION: (LEN,), pb.STRING_TABLE: (LEN,), pb.DROP_FRAMES: (VARINT,),
    pb.KEEP_FRAMES: (VARINT,), pb.TIME: (VARINT,), pb.DURATION: (VARINT,),
    pb.PERIOD_TYPE: (LEN,), pb.PERIOD: (VARINT,), pb.COMMENT: (VARINT, LEN),
    pb.DEFAULT_SAMPLE_TYPE: (VARINT,), pb.DOC_URL: (LEN,),
}
_SUBMESSAGES = (pb.SAMPLE_TYPE, pb.SAMPLE, pb.MAPPING, pb.LOCATION, pb.FUNCTION, pb.PERIOD_TYPE)


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


BUDGET = 384 << 20
"""Most memory reading one pprof file may take: inflated bytes plus estimated objects."""
MAX_INFLATED = BUDGET
"""Largest decompressed profile accepted: a gzip bomb is an error, not a crash."""


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


def read(stream: IO[bytes], path: str = "<stream>", budget: int | None = None) -> Profile:
    """Read gzip-compressed or raw pprof; ``budget`` (default :data:`BUDGET`) bounds memory."""
    budget = BUDGET if budget is None else budget
    data = stream.read(budget + 1)
    if not data:
        raise FormatError("empty file", path=path)
    if len(data) > budget:
        raise FormatError(f"larger than {budget} bytes: refused", path=path)
    if data[:2] == _GZIP_MAGIC:
        data = _inflate(data, path, limit=budget)
    try:
        return decode(data, budget - len(data))
    except TooLarge as exc:
        raise FormatError(f"too large for ember to read: decoding needs more than the "
                          f"{budget >> 20} MiB allowed for one pprof file (stopped at {exc})",
                          path=path) from None
    except (ProtobufError, Invalid) as exc:
        raise FormatError(f"not a valid pprof profile ({exc})", path=path) from None


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
    message.varint(pb.VT_TYPE, strings(kind))
    message.varint(pb.VT_UNIT, strings(unit))
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
    return [f"{pb.COMMENT_PREFIX}{key}={value}" for key, value in fields.items() if value]


def encode(profile: Profile) -> bytes:
    """The uncompressed protobuf bytes of ``profile``."""
    entries = sorted(profile.canonical().items())
    strings = _StringTable()
    out = MessageWriter()
    for kind, unit in (("samples", "count"), ("cpu", "nanoseconds"), ("wall", "nanoseconds")):
        out.message(pb.SAMPLE_TYPE, _value_type_message(strings, kind, unit))

    location_ids: dict[Frame, int] = {}
    for (stack, labels), values in entries:
        for frame in stack:
            if frame not in location_ids:
                location_ids[frame] = len(location_ids) + 1
        sample = MessageWriter()
        sample.packed(pb.S_LOCATION_ID, (location_ids[f] for f in reversed(stack)))
        sample.packed(pb.S_VALUE, values)
        for key, value in labels:
            label = MessageWriter()
            label.varint(pb.L_KEY, strings(key))
            label.varint(pb.L_STR, strings(value))
            sample.message(pb.S_LABEL, label)
        out.message(pb.SAMPLE, sample)

    for frame, ident in location_ids.items():
        line = MessageWriter()
        line.varint(pb.LINE_FUNCTION_ID, ident)
        line.varint(pb.LINE_LINE, frame.line)
        location = MessageWriter()
        location.varint(pb.LOC_ID, ident)
        location.message(pb.LOC_LINE, line)
        out.message(pb.LOCATION, location)
    for frame, ident in location_ids.items():
        function = MessageWriter()
        function.varint(pb.F_ID, ident)
        function.varint(pb.F_NAME, strings(frame.name))
        function.varint(pb.F_SYSTEM_NAME, strings(frame.name))
        function.varint(pb.F_FILENAME, strings(frame.file))
        function.varint(pb.F_START_LINE, frame.line)
        out.message(pb.FUNCTION, function)

    meta = profile.meta
    cpu_total = sum(values[1] for _, values in entries)
    period_type = _value_type_message(strings, "cpu", "nanoseconds")
    comment_ids = [strings(c) for c in _comments(meta)]
    default_type = strings("cpu" if cpu_total else "samples")

    for text in strings.strings:
        out.string(pb.STRING_TABLE, text)
    out.varint(pb.TIME, round(meta.start * 1e9))
    out.varint(pb.DURATION, round(meta.duration * 1e9))
    out.message(pb.PERIOD_TYPE, period_type)
    out.varint(pb.PERIOD, round(meta.period * 1e9))
    out.packed(pb.COMMENT, comment_ids)
    out.varint(pb.DEFAULT_SAMPLE_TYPE, default_type)
    return out.getvalue()


def write(profile: Profile, stream: IO[bytes], **options: Any) -> None:
    """Write gzip-compressed pprof. ``compresslevel`` (default 6) is the one option."""
    level = int(options.get("compresslevel", 6))
    stream.write(gzip.compress(encode(profile), compresslevel=level, mtime=0))
