"""A small protobuf wire-format codec: just what the pprof format needs.

Decoding walks a buffer field by field (:func:`iter_fields`) and hands out
:class:`Field` values whose accessors check the wire type, so a field of the
wrong type is an error rather than garbage. Encoding appends to a
:class:`MessageWriter`. Every decoding problem raises :class:`ProtobufError`;
callers turn it into their own error type.

Wire types supported: varint (0), 64-bit (1), length-delimited (2) and
32-bit (5). Groups (3, 4) are obsolete and rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

VARINT = 0
I64 = 1
LEN = 2
I32 = 5

_WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}
_MAX_VARINT_BYTES = 10
_UINT64 = 1 << 64
_INT64_SIGN = 1 << 63
_EMPTY = memoryview(b"")


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class Truncated(ProtobufError):
    """The buffer ends in the middle of a field."""


def read_varint(data: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode the unsigned varint at ``pos``; returns (value, position after it)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise Truncated(f"truncated varint at byte {start}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if pos - start >= _MAX_VARINT_BYTES:
            raise ProtobufError(f"varint longer than {_MAX_VARINT_BYTES} bytes at byte {start}")
    if result >= _UINT64:
        raise ProtobufError(f"varint does not fit in 64 bits at byte {start}")
    return result, pos


def to_int64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint value as a two's complement int64."""
    return value - _UINT64 if value >= _INT64_SIGN else value


class Field(NamedTuple):
    """One decoded field: its number, wire type, and payload.

    ``value`` holds the number for varint and fixed-width fields; ``data`` holds
    the bytes of a length-delimited field.
    """

    number: int
    wire: int
    value: int = 0
    data: memoryview = _EMPTY

    def _expect(self, *wires: int) -> None:
        if self.wire not in wires:
            expected = " or ".join(_WIRE_NAMES[w] for w in wires)
            raise ProtobufError(
                f"field {self.number} has wire type {_WIRE_NAMES[self.wire]}, expected {expected}")

    def uint(self) -> int:
        """A uint64 (or bool, or enum) field."""
        self._expect(VARINT)
        return self.value

    def int64(self) -> int:
        """An int64 field (negative numbers are ten-byte varints)."""
        self._expect(VARINT)
        return to_int64(self.value)

    def message(self) -> memoryview:
        """The bytes of an embedded message, for :func:`iter_fields`."""
        self._expect(LEN)
        return self.data

    def string(self) -> str:
        """A string field; invalid UTF-8 is replaced rather than rejected."""
        self._expect(LEN)
        return str(self.data, "utf-8", "replace")

    def uints(self) -> list[int]:
        """A repeated uint64 field, packed (one LEN field) or not (one varint)."""
        self._expect(VARINT, LEN)
        if self.wire == VARINT:
            return [self.value]
        return unpack_varints(self.data)

    def int64s(self) -> list[int]:
        """A repeated int64 field, packed or not."""
        return [to_int64(v) for v in self.uints()]


def unpack_varints(data: memoryview | bytes, start: int = 0, end: int | None = None
                   ) -> list[int]:
    """The varints of a packed repeated field (``data[start:end]``)."""
    end = len(data) if end is None else end
    chunk = data[start:end]
    if isinstance(chunk, bytes) and chunk.isascii():  # all one-byte varints: list() in C
        return list(chunk)
    out: list[int] = []
    append = out.append
    pos = start
    last = end - 1
    while pos < end:
        byte = data[pos]
        if byte < 0x80:  # the common short cases, without a call
            append(byte)
            pos += 1
        elif pos < last and data[pos + 1] < 0x80:
            append((byte & 0x7F) | data[pos + 1] << 7)
            pos += 2
        else:
            value, pos = read_varint(data, pos, end)
            append(value)
    return out


def scan(data: bytes | memoryview, start: int = 0, end: int | None = None
         ) -> Iterator[tuple[int, int, int, int]]:
    """The fields of the message in ``data[start:end]`` as ``(number, wire, a, b)``.

    For a length-delimited field its bytes are ``data[a:b]``; for the other
    wire types ``a`` is the value and ``b`` is 0. Offsets rather than slices,
    so that walking a large message builds nothing per field but the tuple.
    """
    pos = start
    end = len(data) if end is None else end
    while pos < end:
        key_at = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number >= 1 << 29:
            raise ProtobufError(f"invalid field number {number} at byte {key_at}")
        if wire == VARINT:
            if pos < end and data[pos] < 0x80:
                yield number, wire, data[pos], 0
                pos += 1
            else:
                value, pos = read_varint(data, pos, end)
                yield number, wire, value, 0
        elif wire == LEN:
            if pos < end and data[pos] < 0x80:
                length = data[pos]
                pos += 1
            else:
                length, pos = read_varint(data, pos, end)
            if length > end - pos:
                raise Truncated(
                    f"field {number} at byte {key_at} claims {length} bytes, "
                    f"only {end - pos} left")
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if size > end - pos:
                raise Truncated(f"truncated {size * 8}-bit field {number} at byte {key_at}")
            yield number, wire, int.from_bytes(data[pos:pos + size], "little"), 0
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire} at byte {key_at}")


def iter_fields(data: memoryview | bytes, allow_truncated: bool = False) -> Iterator[Field]:
    """The fields of one message, in wire order.

    With ``allow_truncated`` a field cut off by the end of ``data`` ends the
    iteration quietly (for sniffing the first bytes of a file).
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    try:
        for number, wire, a, b in scan(view):
            if wire == LEN:
                yield Field(number, wire, b - a, view[a:b])
            else:
                yield Field(number, wire, a)
    except Truncated:
        if not allow_truncated:
            raise


def encode_varint(value: int) -> bytes:
    """The varint bytes of a uint64, or of an int64 (negative: two's complement)."""
    if value < 0:
        value += _UINT64
    if not 0 <= value < _UINT64:
        raise ValueError(f"{value} does not fit in 64 bits")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class MessageWriter:
    """Builds one message. Scalar fields equal to zero are omitted (proto3)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def varint(self, number: int, value: int) -> None:
        """A uint64/int64 field, omitted when 0."""
        if value:
            self._buf += encode_varint(number << 3 | VARINT)
            self._buf += encode_varint(value)

    def blob(self, number: int, data: bytes | bytearray) -> None:
        """A length-delimited field, always written (repeated strings keep empties)."""
        self._buf += encode_varint(number << 3 | LEN)
        self._buf += encode_varint(len(data))
        self._buf += data

    def string(self, number: int, text: str) -> None:
        self.blob(number, text.encode("utf-8", "replace"))

    def message(self, number: int, message: MessageWriter) -> None:
        self.blob(number, message.getvalue())

    def packed(self, number: int, values: Iterable[int]) -> None:
        """A packed repeated uint64/int64 field, omitted when empty."""
        payload = b"".join(encode_varint(v) for v in values)
        if payload:
            self.blob(number, payload)

    def getvalue(self) -> bytes:
        return bytes(self._buf)
