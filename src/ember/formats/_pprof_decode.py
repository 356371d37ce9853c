"""Decoding pprof's protobuf into a :class:`Profile`, within a budget.

A few bytes of protobuf can ask for many Python objects (two bytes are a
whole sample, a label, a string), so decoding is metered: every field read
and every object built is charged an estimate of its size in bytes, before it
is built, and past the budget decoding stops with :class:`TooLarge`. Time is
bounded with it, since nothing is read or built without a charge.

The estimates are CPython's sizes of what stays (strings, frames, stacks, an
entry per sample, labels) plus a charge per field and per packed byte for
what is only walked through. What the values, frames and metadata mean is
described in :mod:`ember.formats.pprof`.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ember.errors import ValueRangeError
from ember.formats import _pprof_proto as pb
from ember.formats._limits import line_problem
from ember.formats._pprof_proto import Invalid
from ember.formats._pprof_values import metadata, value_picker
from ember.formats._protobuf import LEN, VARINT, scan, to_int64, unpack_varints
from ember.profile import Frame, Labels, Profile

T = TypeVar("T")
_MANGLED = ("_Z", "__Z", "_R", "?")
_WIRE_NAMES = {VARINT: "varint", 1: "64-bit", LEN: "length-delimited", 5: "32-bit"}

# Estimated bytes, charged before the thing is built.
FIELD = 32  # any field walked through (which bounds the time too)
PACKED_BYTE = 8  # a byte of a packed field: at most one list slot
STRING = 72  # a str and its slot, plus its length
SAMPLE = 320  # an entry: Values, its three ints, the key tuple and dict slot
STACK = 80  # a new stack tuple and its intern-table slot, plus 8 per frame
FRAME = 8  # a frame id in a stack
LINE = 160  # a Frame of a location (namedtuple, slot, intern-table slot)
RECORD = 240  # a function, mapping or location record
LABEL = 160  # a distinct label pair (and its text)


class TooLarge(Exception):
    """Decoding would take more than its budget; the message says where it stopped."""


class _Meter:
    __slots__ = ("left",)

    def __init__(self, budget: int) -> None:
        self.left = budget

    def charge(self, cost: int, where: str) -> None:
        self.left -= cost
        if self.left < 0:
            raise TooLarge(where)


def _wire(number: int, wire: int, expected: int) -> None:
    if wire != expected:
        raise Invalid(f"field {number} has wire type {_WIRE_NAMES.get(wire, wire)}, "
                      f"expected {_WIRE_NAMES[expected]}")


def _fields(data: bytes, a: int, b: int, meter: _Meter, where: str
            ) -> Iterator[tuple[int, int, int, int]]:
    for field in scan(data, a, b):
        meter.left -= FIELD
        if meter.left < 0:
            raise TooLarge(where)
        yield field


def _varints(data: bytes, number: int, wire: int, a: int, b: int, meter: _Meter,
             where: str) -> list[int]:
    """A repeated integer field, packed or not."""
    if wire == VARINT:
        return [a]
    _wire(number, wire, LEN)
    meter.charge(PACKED_BYTE * (b - a), where)
    return unpack_varints(data, a, b)


class _Strings:
    def __init__(self, table: list[str]) -> None:
        if not table:
            table = [""]
        if table[0] != "":
            raise Invalid("string_table[0] must be the empty string")
        self.table = table

    def __call__(self, index: int) -> str:
        if not 0 <= index < len(self.table):
            raise Invalid(f"string index {index} out of range "
                          f"(string_table has {len(self.table)} entries)")
        return self.table[index]


class _Top:
    """The top-level fields: strings decoded, repeated messages as (start, end) offsets."""

    MESSAGES = {pb.SAMPLE_TYPE: RECORD, pb.SAMPLE: SAMPLE, pb.MAPPING: RECORD,
                pb.LOCATION: RECORD, pb.FUNCTION: RECORD, pb.PERIOD_TYPE: RECORD}
    SCALARS = (pb.DROP_FRAMES, pb.KEEP_FRAMES, pb.TIME, pb.DURATION, pb.PERIOD,
               pb.DEFAULT_SAMPLE_TYPE)

    def __init__(self, data: bytes, meter: _Meter) -> None:
        self.spans = {number: array("Q") for number in self.MESSAGES}
        self.scalars = dict.fromkeys(self.SCALARS, 0)
        self.comments: list[int] = []
        strings: list[str] = []
        spans, scalars, costs = self.spans, self.scalars, self.MESSAGES
        for number, wire, a, b in scan(data):
            meter.left -= FIELD
            if number == pb.STRING_TABLE and wire == LEN:
                meter.charge(STRING + b - a, f"string {len(strings)}")
                strings.append(str(data[a:b], "utf-8", "replace"))
            elif number in spans and wire == LEN:
                meter.left -= costs[number]
                spans[number].extend((a, b))
            elif number in scalars and wire == VARINT:
                scalars[number] = to_int64(a)
            elif number == pb.COMMENT:
                self.comments += _varints(data, number, wire, a, b, meter, "the comments")
            elif number in spans or number in scalars or number == pb.STRING_TABLE:
                _wire(number, wire, VARINT if number in scalars else LEN)
            if meter.left < 0:
                raise TooLarge(f"the profile's fields (at a field {number}, after "
                               f"{len(strings)} strings, {len(spans[pb.SAMPLE]) // 2} samples)")
        self.strings = _Strings(strings)

    def messages(self, number: int) -> Iterator[tuple[int, int]]:
        spans = self.spans[number]
        return zip(spans[::2], spans[1::2], strict=True)


def decode(data: bytes, budget: int) -> Profile:
    """The profile in ``data`` (uncompressed protobuf); TooLarge past ``budget`` bytes."""
    meter = _Meter(budget)
    top = _Top(data, meter)
    strings = top.strings

    def value_type(a: int, b: int) -> tuple[str, str]:
        kind = unit = 0
        for number, wire, x, _ in _fields(data, a, b, meter, "a sample type"):
            if number == pb.VT_TYPE:
                _wire(number, wire, VARINT)
                kind = to_int64(x)
            elif number == pb.VT_UNIT:
                _wire(number, wire, VARINT)
                unit = to_int64(x)
        return strings(kind), strings(unit)

    sample_types = [value_type(a, b) for a, b in top.messages(pb.SAMPLE_TYPE)]
    period_type = ("", "")
    for a, b in top.messages(pb.PERIOD_TYPE):
        period_type = value_type(a, b)
    comments = [strings(to_int64(i)) for i in top.comments]
    default_type = strings(top.scalars[pb.DEFAULT_SAMPLE_TYPE])
    strings(top.scalars[pb.DROP_FRAMES])
    strings(top.scalars[pb.KEEP_FRAMES])

    mappings = _by_id("mapping", (_mapping(data, a, b, strings, meter)
                                  for a, b in top.messages(pb.MAPPING)))
    functions = _by_id("function", (_function(data, a, b, strings, meter)
                                    for a, b in top.messages(pb.FUNCTION)))
    meta = metadata(comments, top.scalars[pb.TIME], top.scalars[pb.DURATION], period_type,
                    top.scalars[pb.PERIOD])
    profile = Profile(meta)
    locations = _by_id("location", (_location(data, a, b, functions, mappings, profile, meter)
                                    for a, b in top.messages(pb.LOCATION)))
    pick = value_picker(sample_types, default_type, round(meta.period * 1e9))
    _Samples(data, strings, locations, len(sample_types), pick, profile, meter).read(
        top.messages(pb.SAMPLE))
    return profile


def _by_id(kind: str, items: Iterable[tuple[int, T]]) -> dict[int, T]:
    out: dict[int, T] = {}
    for ident, item in items:
        if ident == 0:
            raise Invalid(f"{kind} with id 0")
        if ident in out:
            raise Invalid(f"duplicate {kind} id {ident}")
        out[ident] = item
    return out


def _line_number(line: int, where: str) -> int:
    problem = line_problem(line)
    if problem is not None:
        raise Invalid(f"{where}: {problem}")
    return line


def _function(data: bytes, a: int, b: int, strings: _Strings, meter: _Meter
              ) -> tuple[int, tuple[str, str, int]]:
    ident = name = system_name = filename = start_line = 0
    for number, wire, x, _ in _fields(data, a, b, meter, "a function"):
        if number == pb.F_ID:
            _wire(number, wire, VARINT)
            ident = x
        elif number in (pb.F_NAME, pb.F_SYSTEM_NAME, pb.F_FILENAME, pb.F_START_LINE):
            _wire(number, wire, VARINT)
            value = to_int64(x)
            if number == pb.F_NAME:
                name = value
            elif number == pb.F_SYSTEM_NAME:
                system_name = value
            elif number == pb.F_FILENAME:
                filename = value
            else:
                start_line = value
    _line_number(start_line, f"function {ident}")
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


def _mapping(data: bytes, a: int, b: int, strings: _Strings, meter: _Meter
             ) -> tuple[int, str]:
    ident = filename = 0
    for number, wire, x, _ in _fields(data, a, b, meter, "a mapping"):
        if number == pb.M_ID:
            _wire(number, wire, VARINT)
            ident = x
        elif number == pb.M_FILENAME:
            _wire(number, wire, VARINT)
            filename = to_int64(x)
    return ident, strings(filename)


def _location(data: bytes, a: int, b: int, functions: dict[int, tuple[str, str, int]],
              mappings: dict[int, str], profile: Profile, meter: _Meter
              ) -> tuple[int, tuple[int, ...]]:
    """A location's frames as frame ids of ``profile``, root (the last Line) first."""
    ident = mapping_id = address = 0
    lines: list[tuple[int, int]] = []
    for number, wire, x, y in _fields(data, a, b, meter, "a location"):
        if number == pb.LOC_ID:
            _wire(number, wire, VARINT)
            ident = x
        elif number == pb.LOC_MAPPING_ID:
            _wire(number, wire, VARINT)
            mapping_id = x
        elif number == pb.LOC_ADDRESS:
            _wire(number, wire, VARINT)
            address = x
        elif number == pb.LOC_LINE:
            _wire(number, wire, LEN)
            meter.charge(LINE, "a location's lines")
            function_id = line = 0
            for inner, inner_wire, value, _ in _fields(data, x, y, meter, "a location's lines"):
                if inner == pb.LINE_FUNCTION_ID:
                    _wire(inner, inner_wire, VARINT)
                    function_id = value
                elif inner == pb.LINE_LINE:
                    _wire(inner, inner_wire, VARINT)
                    line = to_int64(value)
            lines.append((function_id, _line_number(line, f"location {ident}")))
    mapping_file = ""
    if mapping_id:
        if mapping_id not in mappings:
            raise Invalid(f"location {ident} refers to missing mapping {mapping_id}")
        mapping_file = mappings[mapping_id]
    by_address = f"0x{address:x}" if address else "[unknown]"
    if not lines:
        return ident, (profile.frame_id(Frame(by_address, mapping_file, 0)),)
    frames = []
    for function_id, line in reversed(lines):
        if not function_id:
            frames.append(Frame(by_address, mapping_file, line))
            continue
        function = functions.get(function_id)
        if function is None:
            raise Invalid(f"location {ident} refers to missing function {function_id}")
        name, filename, start_line = function
        frames.append(Frame(name, filename or mapping_file, line or start_line))
    return ident, tuple(profile.frame_id(frame) for frame in frames)


class _Samples:
    """Reads the samples: the hot loop, with what repeats across samples cached."""

    def __init__(self, data: bytes, strings: _Strings, locations: dict[int, tuple[int, ...]],
                 n_types: int, pick: Callable[[list[int]], tuple[int, int, int]],
                 profile: Profile, meter: _Meter) -> None:
        self.data = data
        self.strings = strings
        self.frames = locations
        self.depth = {lid: len(frames) for lid, frames in self.frames.items()}
        self.deepest = max(self.depth.values(), default=1)
        self.single = ({lid: frames[0] for lid, frames in self.frames.items()}
                       if all(n == 1 for n in self.depth.values()) else None)
        self.n_types = n_types
        self.pick = pick
        self.profile = profile
        self.meter = meter
        self.stacks: dict[bytes, int] = {}  # packed location ids -> stack id
        self.labels: dict[bytes, tuple[str, str]] = {}  # Label message -> pair
        self.label_sets: dict[Labels, Labels] = {(): ()}

    def read(self, spans: Iterable[tuple[int, int]]) -> None:
        data, meter, add = self.data, self.meter, self.profile.add_values
        for index, (a, b) in enumerate(spans):
            packed: tuple[int, int] | None = None
            ids: list[int] | None = None
            values: list[int] = []
            labels: list[tuple[str, str]] = []
            for number, wire, x, y in scan(data, a, b):
                meter.left -= FIELD
                if meter.left < 0:
                    raise TooLarge(f"sample {index}")
                if number == pb.S_LOCATION_ID:
                    if wire == LEN and packed is None and ids is None:
                        packed = (x, y)  # the usual case: one packed field
                        continue
                    if ids is None:
                        ids = self._unpack(packed) if packed is not None else []
                        packed = None
                    ids += _varints(data, number, wire, x, y, meter, f"sample {index}")
                elif number == pb.S_VALUE:
                    values += _varints(data, number, wire, x, y, meter, f"sample {index}")
                elif number == pb.S_LABEL:
                    _wire(number, wire, LEN)
                    key = data[x:y]
                    pair = self.labels.get(key)
                    if pair is None:
                        pair = self.labels[key] = self._label(x, y)
                    labels.append(pair)
            if len(values) != self.n_types:
                raise Invalid(f"a sample has {len(values)} values for "
                              f"{self.n_types} sample types")
            sid = self._packed_stack(packed) if ids is None else self._stack(ids)
            label_set: Labels = ()
            if labels:
                label_set = tuple(sorted(labels))
                known = self.label_sets.get(label_set)
                if known is None:
                    meter.charge(STACK + FRAME * len(label_set), f"sample {index}")
                    self.label_sets[label_set] = label_set
                else:
                    label_set = known
            try:
                add(sid, label_set, *self.pick([to_int64(v) for v in values]))
            except ValueRangeError as exc:
                raise Invalid(f"sample {index}: {exc}") from None

    def _unpack(self, packed: tuple[int, int]) -> list[int]:
        self.meter.charge(PACKED_BYTE * (packed[1] - packed[0]), "a sample's locations")
        return unpack_varints(self.data, *packed)

    def _packed_stack(self, packed: tuple[int, int] | None) -> int:
        if packed is None:
            return self.profile.stack_id(())
        key = self.data[packed[0]:packed[1]]
        sid = self.stacks.get(key)
        if sid is None:
            self.meter.charge(STRING + len(key), "a sample's locations")
            sid = self.stacks[key] = self._stack(self._unpack(packed))
        return sid

    def _stack(self, ids: list[int]) -> int:
        meter = self.meter
        try:
            if self.single is not None:
                meter.charge(STACK + FRAME * len(ids), "a sample's stack")
                stack = tuple(map(self.single.__getitem__, reversed(ids)))
            else:
                if len(ids) * self.deepest * FRAME > meter.left:  # may not fit: count first
                    meter.charge(FRAME * sum(map(self.depth.__getitem__, ids)),
                                 "a sample's stack")
                stack = tuple(itertools.chain.from_iterable(
                    map(self.frames.__getitem__, reversed(ids))))
                meter.charge(STACK + FRAME * len(stack), "a sample's stack")
        except KeyError as exc:
            raise Invalid(f"a sample refers to missing location {exc.args[0]}") from None
        return self.profile.stack_id(stack)

    def _label(self, a: int, b: int) -> tuple[str, str]:
        self.meter.charge(LABEL, "a sample's labels")
        key = text = num = unit = 0
        for number, wire, x, _ in _fields(self.data, a, b, self.meter, "a sample's labels"):
            if number in (pb.L_KEY, pb.L_STR, pb.L_NUM, pb.L_NUM_UNIT):
                _wire(number, wire, VARINT)
                value = to_int64(x)
                if number == pb.L_KEY:
                    key = value
                elif number == pb.L_STR:
                    text = value
                elif number == pb.L_NUM:
                    num = value
                else:
                    unit = value
        strings = self.strings
        if text or not (num or unit):
            return strings(key), strings(text)
        unit_name = strings(unit)
        return strings(key), f"{num} {unit_name}" if unit_name else f"{num}"
