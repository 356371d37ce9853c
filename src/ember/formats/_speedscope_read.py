"""Reading a decoded speedscope document into a Profile (the rules are in
:mod:`ember.formats.speedscope`), every value checked on the way."""

from __future__ import annotations

from ember.errors import ValueRangeError
from ember.formats._json_checks import LIMIT as _LIMIT
from ember.formats._json_checks import Malformed as _Malformed
from ember.formats._json_checks import count as _count
from ember.formats._json_checks import integer as _integer
from ember.formats._json_checks import key as _key
from ember.formats._json_checks import list_ as _list
from ember.formats._json_checks import number as _number
from ember.formats._json_checks import object_ as _object
from ember.formats._json_checks import show as _show
from ember.formats._json_checks import string as _string
from ember.formats._json_checks import type_name as _type_name
from ember.formats._limits import line_problem, metadata_problem
from ember.formats.speedscope import (
    EMBER_DATA_VERSION,
    EMBER_KEY,
    NS_PER_UNIT,
    SCHEMA,
    UNITS,
)
from ember.profile import Frame, Labels, Metadata, Profile, make_labels


def from_document(doc: object) -> Profile:
    """The profile a decoded speedscope document describes; Malformed if it is not one."""
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
                _add(out, where, sid, labels, *values)
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
        factor = NS_PER_UNIT.get(unit)
        for stack, (count, total) in sums.items():
            sid = out.stack_id(tuple(frame_ids[f] for f in stack))
            if factor is None:
                _add(out, where, sid, labels, round(total), 0, 0)
            else:
                _add(out, where, sid, labels, count, 0, round(total * factor))
    return out


def _add(out: Profile, where: str, sid: int, labels: Labels, *values: int) -> None:
    try:
        out.add_values(sid, labels, *values)
    except ValueRangeError as exc:
        raise _Malformed(f"{where}: {exc}") from None


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
            s, c, w = (_count(v, f"{where}.values[{j}][{k}]") for k, v in enumerate(triple))
            values.append((s, c, w))
        if len(labels) != len(values):
            raise _Malformed(f"{where}: {len(labels)} label entries but {len(values)} values")
        samples.append((labels, values))
    meta = _meta(_key(data, "meta", EMBER_KEY + "."), EMBER_KEY + ".meta")
    problem = metadata_problem(meta)
    if problem is not None:
        raise _Malformed(f"{EMBER_KEY}.meta: {problem}")
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
    number = _integer(line, where + ".line")
    problem = line_problem(number)
    if problem is not None:
        raise _Malformed(f"{where}.line: {problem}")
    return Frame(name, file, number)
