"""Checked access to decoded JSON: each helper returns a value of the expected type or
raises :class:`Malformed` saying where (``profiles[2].weights[7]``) and what was found.

Whole numbers can be held to ``0..MAX_VALUE``, a profile value's range.
"""

from __future__ import annotations

import math

from ember.profile import MAX_VALUE

LIMIT = 2**63
"""Largest magnitude accepted for a weight or an event time (keeps all arithmetic finite)."""


class Malformed(Exception):
    """Raised inside a reader; the reader turns it into a FormatError naming the path."""


def show(value: object) -> str:
    """A short repr for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: object) -> str:
    """What a JSON value is, in words."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def object_(value: object, where: str) -> dict[str, object]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise Malformed(f"{where}: expected an object, found {type_name(value)}")
    return value


def list_(value: object, where: str) -> list[object]:
    """A JSON array."""
    if not isinstance(value, list):
        raise Malformed(f"{where}: expected an array, found {type_name(value)}")
    return value


def string(value: object, where: str) -> str:
    """A string (lone surrogates kept: they are how Python spells undecodable file names)."""
    if not isinstance(value, str):
        raise Malformed(f"{where}: expected a string, found {type_name(value)}")
    return value


def key(obj: dict[str, object], name: str, prefix: str) -> object:
    """``obj[name]``, which must be there."""
    try:
        return obj[name]
    except KeyError:
        raise Malformed(f"{prefix}{name}: missing") from None


def number(value: object, where: str, limit: int | None = LIMIT) -> int | float:
    """A finite number below ``limit`` in magnitude (None: any that a float can hold)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{where}: expected a number, found {type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise Malformed(f"{where}: {value!r} is not a finite number")
    if limit is not None and abs(value) >= limit:
        raise Malformed(f"{where}: {show(value)} is too large")
    if limit is None and isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise Malformed(f"{where}: {show(value)} is too large") from None
    return value


def integer(value: object, where: str) -> int:
    """A whole number (``3.0`` too)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise Malformed(f"{where}: expected a whole number, found {show(value)}")
    return value




def count(value: object, where: str) -> int:
    """A whole number in ``0..MAX_VALUE``: a profile value."""
    number = integer(value, where)
    if not 0 <= number <= MAX_VALUE:
        raise Malformed(f"{where}: {show(number)} is outside 0..{MAX_VALUE}")
    return number
