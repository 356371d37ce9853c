"""speedscope JSON (https://www.speedscope.app), the file format of its ``file-format-spec``.

Writing
    One ``"sampled"`` speedscope profile per group: by the ``endpoint`` label
    when any entry has one, else by ``thread``, else a single profile ``all``
    (option ``group_by="endpoint" | "thread" | "none"``, or any other label
    key, overrides). Each (stack, labels) entry of the ember profile is one
    sample, a stack of indices into ``shared.frames`` root first, in a stable
    order (frames sorted, samples sorted by stack), so equal profiles give
    identical bytes. Weights are sample counts (unit ``"none"``) or, with
    option ``value="cpu_ns" | "wall_ns"``, nanoseconds. Frames carry ``name``
    and, when set, ``file`` and ``line``.

    What speedscope cannot hold goes into an extra top-level key ``"ember"``
    that speedscope ignores (its schema allows additional properties): every
    sample's label set and its three values, and the metadata. Reading an
    ember file therefore restores the profile exactly (``read(write(p)) == p``).

Reading
    Files from ember and from other tools. Without ember's data each
    speedscope profile becomes the label ``("profile", name)``, and:

    * ``"sampled"``: a weight in ``"none"`` (or ``"bytes"``) units counts as
      samples; a weight in nanoseconds, microseconds, milliseconds or seconds
      becomes ``wall_ns`` and the sample counts as 1 sample.
    * ``"evented"``: open/close events are replayed; each interval of
      positive length between two events during which a stack is open gives
      that stack the interval's length, as ``wall_ns`` plus 1 sample for time
      units, as samples for ``"none"``/``"bytes"``.

    Weights are summed per (stack, labels) and rounded to whole numbers once,
    at the end; profiles sharing a name share a label. With ember's data
    present, labels and values come from it (weights and units are then not
    used) and a mismatch between it and the profiles is an error.

    Anything malformed (not JSON, wrong types, missing keys, frame indices out
    of range, unbalanced or unordered events, negative weights, no profiles)
    raises one :class:`FormatError` naming the file, and so does anything no
    other format could hold: a value or a total of values past
    ``MAX_VALUE``, a negative or huge line number, times beyond int64
    nanoseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from ember.errors import FormatError
from ember.formats._json_checks import Malformed as _Malformed
from ember.profile import Frame, Labels, Metadata, Profile

NAME = "speedscope"
EXTENSIONS = (".json", ".speedscope.json")

SCHEMA = "https://www.speedscope.app/file-format-schema.json"
EMBER_KEY = "ember"
EMBER_DATA_VERSION = 1
VALUES = ("samples", "cpu_ns", "wall_ns")
UNITS = ("none", "bytes", "nanoseconds", "microseconds", "milliseconds", "seconds")
NS_PER_UNIT = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000,
                "seconds": 1_000_000_000}
_NO_GROUP = "(none)"


# -- sniffing -----------------------------------------------------------------------
def sniff(head: bytes) -> bool:
    """A JSON object that names the speedscope schema URL within its first bytes."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("{"):
        return False
    return SCHEMA in text or SCHEMA.replace("/", "\\/") in text


# -- writing ------------------------------------------------------------------------
def write(profile: Profile, stream: IO[bytes], **options: Any) -> None:
    """Write ``profile`` as a speedscope file.

    Options: ``group_by`` (``"endpoint"``, ``"thread"``, ``"none"`` or another
    label key; default: automatic) and ``value`` (``"samples"``, ``"cpu_ns"``,
    ``"wall_ns"``; default ``"samples"``). Unknown options are ignored.
    """
    stream.write(dumps(profile, **options).encode("ascii"))


def dumps(profile: Profile, **options: Any) -> str:
    """The speedscope document for ``profile`` as JSON text (ASCII, lossless)."""
    return json.dumps(document(profile, **options), sort_keys=True, ensure_ascii=True,
                      allow_nan=False, separators=(",", ":"))


def document(profile: Profile, *, group_by: str | None = None, value: str = "samples",
             **_ignored: Any) -> dict[str, Any]:
    """The speedscope document for ``profile`` as plain JSON-able data."""
    from ember import __version__

    if value not in VALUES:
        raise ValueError(f"value must be one of {', '.join(VALUES)}, not {value!r}")
    entries = sorted(profile.canonical().items())  # zeros dropped, order stable
    key = _group_key(group_by, (labels for (_, labels), _ in entries))

    frame_list = sorted({f for (stack, _), _ in entries for f in stack})
    index = {f: i for i, f in enumerate(frame_list)}
    label_sets = sorted({labels for (_, labels), _ in entries})
    label_index = {labels: i for i, labels in enumerate(label_sets)}

    groups: dict[tuple[bool, str], list[tuple[list[int], Labels, tuple[int, int, int]]]] = {}
    for (stack, labels), values in entries:
        group = dict(labels).get(key) if key is not None else None
        groups.setdefault((group is None, group or ""), []).append(
            ([index[f] for f in stack], labels, values))
    if not groups:
        groups[(True, "")] = []
    column = VALUES.index(value)

    profiles: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for (missing, group), samples in sorted(groups.items()):
        samples.sort(key=lambda s: (s[0], s[1]))
        weights = [values[column] for _, _, values in samples]
        if key is None:
            title = f"all ({value})"
        else:
            title = f"{key}={_NO_GROUP if missing else group} ({value})"
        profiles.append({
            "type": "sampled",
            "name": title,
            "unit": "none" if value == "samples" else "nanoseconds",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": [stack for stack, _, _ in samples],
            "weights": weights,
        })
        extra.append({
            "labels": [label_index[labels] for _, labels, _ in samples],
            "values": [list(values) for _, _, values in samples],
        })
    heaviest = max(range(len(profiles)), key=lambda i: (profiles[i]["endValue"], -i))
    return {
        "$schema": SCHEMA,
        "exporter": f"ember {__version__}",
        "name": profile.meta.service or "ember profile",
        "activeProfileIndex": heaviest,
        "shared": {"frames": [_frame_json(f) for f in frame_list]},
        "profiles": profiles,
        EMBER_KEY: {
            "version": EMBER_DATA_VERSION,
            "groupBy": key or "none",
            "value": value,
            "labelSets": [[list(pair) for pair in labels] for labels in label_sets],
            "profiles": extra,
            "meta": _meta_json(profile.meta),
        },
    }


def _group_key(group_by: str | None, label_sets: Iterable[Labels]) -> str | None:
    if group_by is not None:
        if not isinstance(group_by, str) or not group_by:
            raise ValueError(f"group_by must be a label key or 'none', not {group_by!r}")
        return None if group_by == "none" else group_by
    keys = {k for labels in label_sets for k, _ in labels}
    return next((k for k in ("endpoint", "thread") if k in keys), None)


def _frame_json(frame: Frame) -> dict[str, Any]:
    out: dict[str, Any] = {"name": frame.name}
    if frame.file:
        out["file"] = frame.file
    if frame.line:
        out["line"] = frame.line
    return out


def _meta_json(meta: Metadata) -> dict[str, Any]:
    return {
        "start": meta.start, "duration": meta.duration, "period": meta.period,
        "mode": meta.mode, "pids": list(meta.pids), "host": meta.host,
        "service": meta.service, "version": meta.version,
        "gc": [[gen, count, seconds] for gen, (count, seconds) in sorted(meta.gc.items())],
        "truncated": meta.truncated,
    }


# -- reading ------------------------------------------------------------------------
BUDGET = 384 << 20
"""Bytes reading one speedscope file may take: the text, and the objects
``json`` builds for it, estimated from the file before any is built."""
VALUE = 96  # bytes per JSON value once parsed (measured: 57-86 with its list slot)


def parse_cost(data: bytes) -> int:
    """What parsing ``data`` will take, from its bytes and a count of its values."""
    values = data.count(b",") + data.count(b"[") + data.count(b"{") + 1
    return 2 * len(data) + VALUE * values


def read(stream: IO[bytes], path: str = "<stream>", budget: int | None = None) -> Profile:
    """Read a speedscope file; ``budget`` (default :data:`BUDGET`) bounds memory."""
    budget = BUDGET if budget is None else budget
    data = stream.read(budget + 1)
    if not data.strip():
        raise FormatError("empty file", path=path)
    if len(data) > budget or parse_cost(data) > budget:
        raise FormatError(f"too large for ember to read: parsing needs more than the "
                          f"{budget >> 20} MiB allowed for one speedscope file", path=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte {exc.start})", path=path) from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} (column {exc.colno})",
                          path=path, line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, huge integers, deep nesting
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"not valid JSON: {reason}", path=path) from None
    from ember.formats._speedscope_read import from_document

    try:
        return from_document(doc)
    except _Malformed as exc:
        raise FormatError(str(exc), path=path) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
