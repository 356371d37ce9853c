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
    raises one :class:`FormatError` naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import IO, Any

from ember.errors import FormatError
from ember.profile import Frame, Labels, Metadata, Profile, make_labels

NAME = "speedscope"
EXTENSIONS = (".json", ".speedscope.json")

SCHEMA = "https://www.speedscope.app/file-format-schema.json"
EMBER_KEY = "ember"
EMBER_DATA_VERSION = 1
VALUES = ("samples", "cpu_ns", "wall_ns")
UNITS = ("none", "bytes", "nanoseconds", "microseconds", "milliseconds", "seconds")
_NS_PER_UNIT = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000,
                "seconds": 1_000_000_000}
_LIMIT = 2**63
"""Largest magnitude accepted for a weight or an event time (keeps all arithmetic finite)."""
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
class _Malformed(Exception):
    """Raised inside the reader; ``read`` turns it into a FormatError naming the path."""


def read(stream: IO[bytes], path: str = "<stream>") -> Profile:
    data = stream.read()
    if not data.strip():
        raise FormatError("empty file", path=path)
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
    try:
        return _from_document(doc)
    except _Malformed as exc:
        raise FormatError(str(exc), path=path) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _from_document(doc: object) -> Profile:
    top = _object(doc, "top level")
    if top.get("$schema") != SCHEMA:
        raise _Malformed(f"not a speedscope file: '$schema' is not {SCHEMA!r}")
    shared = _object(_key(top, "shared", ""), "shared")
    frames = [_frame(f, f"shared.frames[{i}]")
              for i, f in enumerate(_list(_key(shared, "frames", "shared."), "shared.frames"))]
    profiles = _list(_key(top, "profiles", ""), "profiles")
    if not profiles:
        raise _Malformed("no profiles in the file")
    ember = _ember_data(top, len(profiles))

    out = Profile(ember.meta if ember is not None else Metadata())
    frame_ids = [out.frame_id(f) for f in frames]
    for i, raw in enumerate(profiles):
        where = f"profiles[{i}]"
        item = _object(raw, where)
        kind = _key(item, "type", where + ".")
        name = _string(_key(item, "name", where + "."), where + ".name")
        unit = _string(_key(item, "unit", where + "."), where + ".unit")
        if unit not in UNITS:
            raise _Malformed(f"{where}.unit: {_show(unit)} is not one of {', '.join(UNITS)}")
        for bound in ("startValue", "endValue"):
            _number(_key(item, bound, where + "."), f"{where}.{bound}", limit=None)
        if kind == "sampled":
            stacks, weights = _sampled(item, where, len(frames))
        elif kind == "evented":
            if ember is not None:
                raise _Malformed(f"{where}: ember data describes a sampled profile, not evented")
            stacks, weights = _evented(item, where, len(frames))
        else:
            raise _Malformed(f"{where}.type: {_show(kind)} is neither 'sampled' nor 'evented'")

        if ember is not None:
            labels_of, values_of = ember.samples[i]
            if len(labels_of) != len(stacks):
                raise _Malformed(f"{EMBER_KEY}.profiles[{i}]: {len(labels_of)} entries for "
                                 f"{len(stacks)} samples in {where}")
            for stack, labels, values in zip(stacks, labels_of, values_of, strict=True):
                sid = out.stack_id(tuple(frame_ids[f] for f in stack))
                out.add_values(sid, labels, *values)
            continue

        labels = make_labels({"profile": name})
        for j, weight in enumerate(weights):
            if weight < 0 or weight >= _LIMIT:
                raise _Malformed(f"{where}: weight or duration {_show(weight)} (number {j}) "
                                 "is negative or too large")
        sums: dict[tuple[int, ...], tuple[int, float]] = {}
        for stack, weight in zip(stacks, weights, strict=True):
            count, total = sums.get(stack, (0, 0))
            sums[stack] = (count + 1, total + weight)
        factor = _NS_PER_UNIT.get(unit)
        for stack, (count, total) in sums.items():
            sid = out.stack_id(tuple(frame_ids[f] for f in stack))
            if factor is None:
                out.add_values(sid, labels, round(total), 0, 0)
            else:
                out.add_values(sid, labels, count, 0, round(total * factor))
    return out


def _sampled(item: dict[str, object], where: str, n_frames: int
             ) -> tuple[list[tuple[int, ...]], list[float]]:
    samples = _list(_key(item, "samples", where + "."), where + ".samples")
    weights = _list(_key(item, "weights", where + "."), where + ".weights")
    if len(samples) != len(weights):
        raise _Malformed(f"{where}: {len(samples)} samples but {len(weights)} weights")
    stacks = []
    for j, raw in enumerate(samples):
        at = f"{where}.samples[{j}]"
        stacks.append(tuple(_frame_index(f, f"{at}[{k}]", n_frames)
                            for k, f in enumerate(_list(raw, at))))
    values = [_number(raw, f"{where}.weights[{j}]", limit=None) for j, raw in enumerate(weights)]
    return stacks, values


def _evented(item: dict[str, object], where: str, n_frames: int
             ) -> tuple[list[tuple[int, ...]], list[float]]:
    events = _list(_key(item, "events", where + "."), where + ".events")
    stacks: list[tuple[int, ...]] = []
    durations: list[float] = []
    open_frames: list[int] = []
    last: float | None = None
    for j, raw in enumerate(events):
        at_where = f"{where}.events[{j}]"
        event = _object(raw, at_where)
        kind = _key(event, "type", at_where + ".")
        at = _number(_key(event, "at", at_where + "."), at_where + ".at")
        frame = _frame_index(_key(event, "frame", at_where + "."), at_where + ".frame", n_frames)
        if last is not None and at < last:
            raise _Malformed(f"{at_where}: at={at!r} is earlier than the event before ({last!r})")
        if open_frames and last is not None and at > last:
            stacks.append(tuple(open_frames))
            durations.append(at - last)
        last = at
        if kind == "O":
            open_frames.append(frame)
        elif kind == "C":
            if not open_frames:
                raise _Malformed(f"{at_where}: unbalanced events: closes frame {frame} "
                                 "but no frame is open")
            if open_frames[-1] != frame:
                raise _Malformed(f"{at_where}: unbalanced events: closes frame {frame} "
                                 f"but frame {open_frames[-1]} is the innermost open one")
            open_frames.pop()
        else:
            raise _Malformed(f"{at_where}.type: {_show(kind)} is neither 'O' nor 'C'")
    if open_frames:
        raise _Malformed(f"{where}: unbalanced events: {len(open_frames)} frame(s) never closed")
    return stacks, durations


class _EmberData:
    def __init__(self, meta: Metadata,
                 samples: list[tuple[list[Labels], list[tuple[int, int, int]]]]) -> None:
        self.meta = meta
        self.samples = samples


def _ember_data(top: dict[str, object], n_profiles: int) -> _EmberData | None:
    """ember's own extra data (labels, values, metadata), checked; None if absent."""
    if EMBER_KEY not in top:
        return None
    data = _object(top[EMBER_KEY], EMBER_KEY)
    version = data.get("version")
    if version != EMBER_DATA_VERSION or isinstance(version, bool):
        raise _Malformed(f"{EMBER_KEY}.version: unsupported version {_show(version)}")
    label_sets: list[Labels] = []
    sets = _list(_key(data, "labelSets", EMBER_KEY + "."), EMBER_KEY + ".labelSets")
    for i, raw in enumerate(sets):
        pairs = []
        for j, pair in enumerate(_list(raw, f"{EMBER_KEY}.labelSets[{i}]")):
            at = f"{EMBER_KEY}.labelSets[{i}][{j}]"
            items = _list(pair, at)
            if len(items) != 2:
                raise _Malformed(f"{at}: a label is a [key, value] pair")
            pairs.append((_string(items[0], at + "[0]"), _string(items[1], at + "[1]")))
        label_sets.append(tuple(sorted(pairs)))
    profiles = _list(_key(data, "profiles", EMBER_KEY + "."), EMBER_KEY + ".profiles")
    if len(profiles) != n_profiles:
        raise _Malformed(f"{EMBER_KEY}.profiles: {len(profiles)} entries for "
                         f"{n_profiles} profiles")
    samples = []
    for i, raw in enumerate(profiles):
        where = f"{EMBER_KEY}.profiles[{i}]"
        entry = _object(raw, where)
        labels = [label_sets[_index(x, f"{where}.labels[{j}]", len(label_sets))]
                  for j, x in enumerate(_list(_key(entry, "labels", where + "."),
                                              where + ".labels"))]
        values = []
        for j, x in enumerate(_list(_key(entry, "values", where + "."), where + ".values")):
            triple = _list(x, f"{where}.values[{j}]")
            if len(triple) != 3:
                raise _Malformed(f"{where}.values[{j}]: expected [samples, cpu_ns, wall_ns]")
            s, c, w = (_integer(v, f"{where}.values[{j}][{k}]") for k, v in enumerate(triple))
            values.append((s, c, w))
        if len(labels) != len(values):
            raise _Malformed(f"{where}: {len(labels)} label entries but {len(values)} values")
        samples.append((labels, values))
    meta = _meta(_key(data, "meta", EMBER_KEY + "."), EMBER_KEY + ".meta")
    return _EmberData(meta, samples)


def _meta(raw: object, where: str) -> Metadata:
    obj = _object(raw, where)
    meta = Metadata()
    for name in ("start", "duration", "period"):
        if name in obj:
            setattr(meta, name, float(_number(obj[name], f"{where}.{name}", limit=None)))
    for name in ("mode", "host", "service", "version"):
        if name in obj:
            setattr(meta, name, _string(obj[name], f"{where}.{name}"))
    if "pids" in obj:
        meta.pids = tuple(_integer(p, f"{where}.pids[{i}]")
                          for i, p in enumerate(_list(obj["pids"], where + ".pids")))
    if "truncated" in obj:
        meta.truncated = _integer(obj["truncated"], where + ".truncated")
    if "gc" in obj:
        for i, raw_gen in enumerate(_list(obj["gc"], where + ".gc")):
            at = f"{where}.gc[{i}]"
            items = _list(raw_gen, at)
            if len(items) != 3:
                raise _Malformed(f"{at}: expected [generation, collections, seconds]")
            meta.gc[_integer(items[0], at + "[0]")] = (
                _integer(items[1], at + "[1]"), float(_number(items[2], at + "[2]", limit=None)))
    return meta


# -- checked access to decoded JSON --------------------------------------------------------
def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where}: expected an object, found {_type_name(value)}")
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected an array, found {_type_name(value)}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string, found {_type_name(value)}")
    return value


def _key(obj: dict[str, object], key: str, prefix: str) -> object:
    try:
        return obj[key]
    except KeyError:
        raise _Malformed(f"{prefix}{key}: missing") from None


def _number(value: object, where: str, limit: int | None = _LIMIT) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{where}: expected a number, found {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Malformed(f"{where}: {value!r} is not a finite number")
    if limit is not None and abs(value) >= limit:
        raise _Malformed(f"{where}: {_show(value)} is too large")
    if limit is None and isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise _Malformed(f"{where}: {_show(value)} is too large") from None
    return value


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Malformed(f"{where}: expected a whole number, found {_show(value)}")
    return value


def _index(value: object, where: str, size: int) -> int:
    index = _integer(value, where)
    if not 0 <= index < size:
        raise _Malformed(f"{where}: index {_show(index)} out of range (0..{size - 1})"
                         if size else f"{where}: index {_show(index)} into an empty table")
    return index


def _frame_index(value: object, where: str, n_frames: int) -> int:
    if not (isinstance(value, int | float) and not isinstance(value, bool)):
        raise _Malformed(f"{where}: expected a frame index, found {_type_name(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise _Malformed(f"{where}: frame index {value!r} is not a whole number")
    index = int(value)
    if not 0 <= index < n_frames:
        raise _Malformed(f"{where}: frame index {_show(index)} out of range "
                         f"({n_frames} frames in shared.frames)")
    return index


def _frame(value: object, where: str) -> Frame:
    obj = _object(value, where)
    name = _string(_key(obj, "name", where + "."), where + ".name")
    file = _string(obj.get("file", ""), where + ".file")
    line = obj.get("line", 0)
    if line is None:
        line = 0
    return Frame(name, file, _integer(line, where + ".line"))
