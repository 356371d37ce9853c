"""speedscope JSON: schema validity, lossless round trips, reading other tools' files, bad input."""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
from ember import FormatError, Frame, Metadata, Profile, make_labels
from ember.formats import collapsed, detect, speedscope

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = Path(os.environ.get(
    "EMBER_SPEEDSCOPE_SCHEMA",
    REPO / ".ci/node/node_modules/speedscope/dist/release/file-format-schema.json"))

AWKWARD = [
    Frame("<module>", "/srv/app main.py", 1),
    Frame("Ωmega.<locals>.<lambda>", "/srv/ünïcode/mod.py", 42),
    Frame("Klass.method", "C:\\odd (dir)\\x.py", 7),
    Frame("<script>alert('x & \"y\"')</script>", "<string>", 3),
    Frame("bare-native-frame"),
    Frame("tab\tnew\nline; semi", "emoji 🔥.py", 2**40),
    Frame("lone \udcff surrogate", "\udc80.py", 5),
    Frame(""),
]

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def awkward_profile() -> Profile:
    meta = Metadata(start=1_700_000_000.25, duration=12.5, period=0.01, mode="cpu",
                    pids=(7, 42), host="hôst", service="shop <api>", version="1.2",
                    gc={0: (10, 0.001), 2: (1, 0.25)}, truncated=3)
    p = Profile(meta)
    ep_a = make_labels({"endpoint": "GET /items/{id}", "thread": "MainThread"})
    ep_b = make_labels({"endpoint": "POST /a&b \"q\"", "thread": "worker-1"})
    thread_only = make_labels({"thread": "worker-1"})
    p.add(AWKWARD[:3], samples=5, cpu_ns=99, wall_ns=1_000, labels=ep_a)
    p.add(AWKWARD[:3], samples=2, cpu_ns=0, wall_ns=7, labels=ep_b)
    p.add(AWKWARD[:3], samples=1, labels=thread_only)
    p.add([AWKWARD[0], AWKWARD[3], AWKWARD[4]], samples=1, cpu_ns=3, labels=ep_b)
    p.add([AWKWARD[0]] + [AWKWARD[1], AWKWARD[5]] * 250, samples=3, wall_ns=10**15,
          labels=ep_a)  # 501 frames deep
    p.add([AWKWARD[6], AWKWARD[7]], samples=0, cpu_ns=4, wall_ns=0)  # no labels, no samples
    p.add([], samples=2, wall_ns=5, labels=thread_only)  # an empty stack
    return p


def to_doc(profile: Profile, **options: Any) -> dict[str, Any]:
    out = io.BytesIO()
    speedscope.write(profile, out, **options)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def from_doc(doc: object, path: str = "mem.json") -> Profile:
    return speedscope.read(io.BytesIO(json.dumps(doc).encode()), path)


def round_trip(profile: Profile, **options: Any) -> Profile:
    out = io.BytesIO()
    speedscope.write(profile, out, **options)
    return speedscope.read(io.BytesIO(out.getvalue()), "rt.json")


# -- schema -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema_validator() -> Any:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"speedscope schema not found at {SCHEMA_PATH}; install it with "
                    "`npm install --prefix .ci/node speedscope@1.25.0` or set "
                    "EMBER_SPEEDSCOPE_SCHEMA")
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("options", [
    {}, {"value": "cpu_ns"}, {"value": "wall_ns", "group_by": "thread"},
    {"group_by": "none"}, {"group_by": "endpoint", "unknown_option": True},
])
def test_output_validates_against_the_speedscope_schema(
        schema_validator: Any, options: dict[str, Any]) -> None:
    doc = to_doc(awkward_profile(), **options)
    errors = [e.message for e in schema_validator.iter_errors(doc)]
    assert errors == []
    assert speedscope.EMBER_KEY in doc  # the schema accepts ember's extra top-level key
    assert schema_validator.is_valid(to_doc(Profile()))


def test_schema_rejects_what_speedscope_rejects(schema_validator: Any) -> None:
    """The validator is really checking: breaking ember's output makes it fail."""
    doc = to_doc(awkward_profile())
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d.pop("shared"),
        lambda d: d["profiles"][0].update(unit="furlongs"),
        lambda d: d["profiles"][0]["samples"].append(["x"]),
        lambda d: d.update({"$schema": "https://example.com"})]
    for mutate in mutations:
        broken = copy.deepcopy(doc)
        mutate(broken)
        assert not schema_validator.is_valid(broken)


# -- writing ----------------------------------------------------------------------------
def test_document_fields() -> None:
    p = awkward_profile()
    doc = to_doc(p)
    assert doc["$schema"] == speedscope.SCHEMA
    assert doc["exporter"] == f"ember {ember.__version__}"
    assert doc["name"] == "shop <api>"
    assert to_doc(Profile())["name"] == "ember profile"
    frames = doc["shared"]["frames"]
    assert {"name": "Klass.method", "file": "C:\\odd (dir)\\x.py", "line": 7} in frames
    assert {"name": "bare-native-frame"} in frames  # no empty file / zero line written
    for prof in doc["profiles"]:
        assert prof["type"] == "sampled" and prof["unit"] == "none"
        assert prof["startValue"] == 0 and prof["endValue"] == sum(prof["weights"])
        assert len(prof["samples"]) == len(prof["weights"])
        assert all(0 <= f < len(frames) for stack in prof["samples"] for f in stack)
    assert doc["profiles"][doc["activeProfileIndex"]]["endValue"] == max(
        prof["endValue"] for prof in doc["profiles"])
    deep = max((s for prof in doc["profiles"] for s in prof["samples"]), key=len)
    assert [frames[f]["name"] for f in deep[:3]] == [f.name for f in
                                                     (AWKWARD[0], AWKWARD[1], AWKWARD[5])]


def test_groups_one_profile_per_endpoint_then_thread_then_all() -> None:
    p = awkward_profile()
    by_endpoint = to_doc(p)
    assert [prof["name"] for prof in by_endpoint["profiles"]] == [
        "endpoint=GET /items/{id} (samples)", "endpoint=POST /a&b \"q\" (samples)",
        "endpoint=(none) (samples)"]
    assert [prof["endValue"] for prof in by_endpoint["profiles"]] == [8, 3, 3]

    no_endpoints = Profile()
    for labels, n in ((make_labels({"thread": "b"}), 2), (make_labels({"thread": "a"}), 1)):
        no_endpoints.add([Frame("main")], samples=n, labels=labels)
    by_thread = to_doc(no_endpoints)
    assert [(prof["name"], prof["endValue"]) for prof in by_thread["profiles"]] == [
        ("thread=a (samples)", 1), ("thread=b (samples)", 2)]

    unlabelled = Profile()
    unlabelled.add([Frame("main")], samples=4)
    assert [prof["name"] for prof in to_doc(unlabelled)["profiles"]] == ["all (samples)"]

    forced = to_doc(p, group_by="thread", value="wall_ns")
    assert [(prof["name"], prof["unit"]) for prof in forced["profiles"]] == [
        ("thread=MainThread (wall_ns)", "nanoseconds"),
        ("thread=worker-1 (wall_ns)", "nanoseconds"),
        ("thread=(none) (wall_ns)", "nanoseconds")]
    assert forced["profiles"][0]["endValue"] == 1_000 + 10**15
    single = to_doc(p, group_by="none", value="cpu_ns")
    assert [(prof["name"], prof["endValue"]) for prof in single["profiles"]] == [
        ("all (cpu_ns)", 99 + 3 + 4)]


def test_bad_writer_options_are_refused() -> None:
    with pytest.raises(ValueError, match="value must be"):
        to_doc(awkward_profile(), value="bytes")
    with pytest.raises(ValueError, match="group_by"):
        to_doc(awkward_profile(), group_by="")


def test_output_is_deterministic_whatever_the_insertion_order() -> None:
    p = awkward_profile()
    shuffled = Profile(p.meta)
    for stack, labels, values in reversed(list(p.samples())):
        shuffled.add(stack, *values.astuple(), labels=labels)
    first, second = io.BytesIO(), io.BytesIO()
    speedscope.write(p, first)
    speedscope.write(shuffled, second)
    assert first.getvalue() == second.getvalue()
    assert first.getvalue().isascii()


# -- round trips ------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    {}, {"group_by": "thread"}, {"group_by": "none"}, {"value": "cpu_ns"},
    {"value": "wall_ns", "group_by": "endpoint"},
])
def test_round_trip_is_lossless(options: dict[str, Any]) -> None:
    p = awkward_profile()
    back = round_trip(p, **options)
    assert back.canonical() == p.canonical()
    assert back.meta == p.meta
    assert back == p


def test_round_trip_of_an_empty_profile() -> None:
    back = round_trip(Profile(Metadata(service="idle")))
    assert back == Profile(Metadata(service="idle"))


frames_st = st.one_of(
    st.sampled_from(AWKWARD),
    st.builds(Frame, st.text(max_size=12), st.text(max_size=12), st.integers(0, 10**6)))
labels_st = st.dictionaries(st.sampled_from(["endpoint", "thread", "task", "é k"]),
                            st.text(max_size=8), max_size=3).map(make_labels)
values_st = st.tuples(st.integers(0, 10**6), st.integers(0, 10**12), st.integers(0, 10**12))


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    p = Profile(Metadata(service=draw(st.text(max_size=8)),
                         pids=tuple(draw(st.lists(st.integers(0, 2**22), max_size=3)))))
    for _ in range(draw(st.integers(0, 12))):
        stack = draw(st.lists(frames_st, max_size=20))
        p.add(stack, *draw(values_st), labels=draw(labels_st))
    return p


@settings(max_examples=100, deadline=None)
@given(profile=profiles(), group_by=st.sampled_from([None, "none", "thread", "task"]),
       value=st.sampled_from(["samples", "cpu_ns", "wall_ns"]))
def test_generated_profiles_round_trip(profile: Profile, group_by: str | None,
                                       value: str) -> None:
    back = round_trip(profile, group_by=group_by, value=value)
    assert back.canonical() == profile.canonical()
    assert back == profile


def test_collapsed_to_speedscope_to_collapsed(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text(
        "<module> (app.py:3);handler (app.py:10) 4\n"
        "main;sleep 2\n"
        "main;Ωmega (ü/x y.py:9);<lambda> (<string>:1) 7\n"
        + ";".join(["main"] + ["recurse (r.py:2)"] * 499) + " 1\n", encoding="utf-8")
    original = ember.load(source)
    middle = tmp_path / "mid.speedscope.json"
    ember.dump(original, middle)
    assert detect(middle.read_bytes()[:4096], str(middle)).NAME == "speedscope"
    again = ember.load(middle)
    assert again.canonical() == original.canonical()
    target = tmp_path / "out.txt"
    ember.dump(again, target)
    direct = tmp_path / "direct.txt"
    ember.dump(original, direct)
    assert target.read_text(encoding="utf-8") == direct.read_text(encoding="utf-8")
    stacks = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
              for line in target.read_text(encoding="utf-8").splitlines()}
    assert stacks["<module> (app.py:3);handler (app.py:10)"] == 4
    assert stacks["main;sleep"] == 2
    assert sum(stacks.values()) == 14
    assert collapsed.sniff(target.read_bytes())


# -- reading other tools' files ---------------------------------------------------------
FOREIGN_FRAMES = [{"name": "main", "file": "main.go", "line": 10, "col": 3},
                  {"name": "parse"}, {"name": "emit", "file": "emit.go"}]


def test_reads_an_evented_profile_in_milliseconds(tmp_path: Path) -> None:
    doc = {
        "$schema": speedscope.SCHEMA,
        "shared": {"frames": FOREIGN_FRAMES},
        "profiles": [{
            "type": "evented", "name": "Main thread", "unit": "milliseconds",
            "startValue": 0, "endValue": 14,
            "events": [
                {"type": "O", "frame": 0, "at": 0},
                {"type": "O", "frame": 1, "at": 2},
                {"type": "C", "frame": 1, "at": 5.5},
                {"type": "O", "frame": 2, "at": 5.5},  # zero-length gap: nothing counted
                {"type": "O", "frame": 1, "at": 6},
                {"type": "C", "frame": 1, "at": 9},
                {"type": "C", "frame": 2, "at": 10},
                {"type": "C", "frame": 0, "at": 12},
                {"type": "O", "frame": 1, "at": 13},  # a second root after idle time
                {"type": "C", "frame": 1, "at": 14},
            ],
        }],
    }
    path = tmp_path / "evented.json"
    path.write_text(json.dumps(doc, indent=1))
    p = ember.load(path)
    main, parse, emit = Frame("main", "main.go", 10), Frame("parse"), Frame("emit", "emit.go")
    labels = (("profile", "Main thread"),)
    ms = 1_000_000
    assert p.canonical() == {
        ((main,), labels): (2, 0, 4 * ms),  # [0, 2) and [10, 12); [5.5, 5.5) is empty
        ((main, parse), labels): (1, 0, 3_500_000),
        ((main, emit), labels): (2, 0, 1_500_000),  # [5.5, 6) and [9, 10)
        ((main, emit, parse), labels): (1, 0, 3 * ms),
        ((parse,), labels): (1, 0, 1 * ms),
    }
    assert p.meta == Metadata()


def test_reads_sampled_profiles_in_microseconds_and_in_plain_counts(tmp_path: Path) -> None:
    doc = {
        "$schema": speedscope.SCHEMA, "exporter": "py-spy@0.3.14", "name": "x",
        "activeProfileIndex": 0,
        "shared": {"frames": FOREIGN_FRAMES},
        "profiles": [
            {"type": "sampled", "name": "thread 1", "unit": "microseconds",
             "startValue": 100, "endValue": 500,
             "samples": [[0, 1], [0, 1], [0, 2, 1], [0]], "weights": [10, 2.5, 7, 0.0005]},
            {"type": "sampled", "name": "thread 2", "unit": "none",
             "startValue": 0, "endValue": 9,
             "samples": [[0, 1], [0], [0, 1]], "weights": [4, 1, 4]},
            {"type": "sampled", "name": "empty", "unit": "seconds",
             "startValue": 0, "endValue": 0, "samples": [], "weights": []},
            {"type": "sampled", "name": "heap", "unit": "bytes",
             "startValue": 0, "endValue": 4096, "samples": [[2]], "weights": [4096]},
        ],
    }
    path = tmp_path / "sampled.json"
    path.write_text(json.dumps(doc))
    p = ember.load(path)
    main, parse, emit = Frame("main", "main.go", 10), Frame("parse"), Frame("emit", "emit.go")
    t1, t2 = (("profile", "thread 1"),), (("profile", "thread 2"),)
    assert p.canonical() == {
        ((main, parse), t1): (2, 0, 12_500),
        ((main, emit, parse), t1): (1, 0, 7_000),
        ((main,), t1): (1, 0, 0),  # 0.5 ns rounds to even: 0, but the sample counts
        ((main, parse), t2): (8, 0, 0),
        ((main,), t2): (1, 0, 0),
        ((emit,), (("profile", "heap"),)): (4096, 0, 0),  # bytes count like samples
    }
    assert p.label_values("profile") == {"thread 1", "thread 2", "heap"}


def test_sniff() -> None:
    doc = to_doc(awkward_profile())
    text = json.dumps(doc, indent=2).encode()
    assert speedscope.sniff(text[:4096])
    assert speedscope.sniff(b"\xef\xbb\xbf \n" + text[:200])
    escaped = b'{"$schema": "https:\\/\\/www.speedscope.app\\/file-format-schema.json"}'
    assert speedscope.sniff(escaped)
    assert not speedscope.sniff(b'{"traceEvents": []}')
    assert not speedscope.sniff(b"main;work 3\n")
    assert not speedscope.sniff(b"")
    assert not speedscope.sniff(b"\x1f\x8b\x08\x00")
    assert not collapsed.sniff(text[:4096])


# -- bad input --------------------------------------------------------------------------
def valid_doc() -> dict[str, Any]:
    return to_doc(awkward_profile())


def foreign_doc() -> dict[str, Any]:
    return {"$schema": speedscope.SCHEMA, "shared": {"frames": [{"name": "a"}, {"name": "b"}]},
            "profiles": [{"type": "evented", "name": "e", "unit": "seconds", "startValue": 0,
                          "endValue": 2, "events": [{"type": "O", "frame": 0, "at": 0},
                                                    {"type": "O", "frame": 1, "at": 1},
                                                    {"type": "C", "frame": 1, "at": 2},
                                                    {"type": "C", "frame": 0, "at": 2}]}]}


def edited(base: dict[str, Any], change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    change(doc)
    return doc


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["profiles"][0]["events"]
    return result


BAD: list[tuple[bytes | dict[str, Any] | list[Any], str]] = [
    (b"", "empty file"),
    (b"  \n", "empty file"),
    (b'{"$schema": "https://www.speedscope.app/file-format-schema.json", ', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a": NaN}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"x": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ([], "top level: expected an object"),
    ({}, "not a speedscope file"),
    (edited(foreign_doc(), lambda d: d.pop("shared")), "shared: missing"),
    (edited(foreign_doc(), lambda d: d["shared"].update(frames={})), "shared.frames: expected"),
    (edited(foreign_doc(), lambda d: d["shared"]["frames"].append({"file": "x"})),
     "shared.frames[2].name: missing"),
    (edited(foreign_doc(), lambda d: d["shared"]["frames"].append({"name": "x", "line": 1.5})),
     "shared.frames[2].line"),
    (edited(foreign_doc(), lambda d: d.update(profiles=[])), "no profiles"),
    (edited(foreign_doc(), lambda d: d["profiles"][0].update(type="heap")), "neither"),
    (edited(foreign_doc(), lambda d: d["profiles"][0].update(unit="parsecs")), ".unit"),
    (edited(foreign_doc(), lambda d: d["profiles"][0].pop("endValue")), "endValue: missing"),
    (edited(foreign_doc(), lambda d: d["profiles"][0].update(name=3)), "name: expected a string"),
    (edited(foreign_doc(), lambda d: events(d).pop()), "never closed"),
    (edited(foreign_doc(), lambda d: events(d).pop(2)), "unbalanced"),
    (edited(foreign_doc(), lambda d: events(d).insert(0, {"type": "C", "frame": 0, "at": 0})),
     "no frame is open"),
    (edited(foreign_doc(), lambda d: events(d)[1].update(at=5)), "earlier than"),
    (edited(foreign_doc(), lambda d: events(d)[1].update(frame=2)), "out of range"),
    (edited(foreign_doc(), lambda d: events(d)[1].update(frame=True)), "frame index"),
    (edited(foreign_doc(), lambda d: events(d)[1].update(type="X")), "neither 'O' nor 'C'"),
    (edited(foreign_doc(), lambda d: events(d)[1].update(at="1")), "at: expected a number"),
    (edited(valid_doc(), lambda d: d["profiles"][0]["samples"][0].append(10**6)),
     "out of range"),
    (edited(valid_doc(), lambda d: d["profiles"][0]["samples"][0].append(-1)), "out of range"),
    (edited(valid_doc(), lambda d: d["profiles"][0]["samples"][0].append(0.5)),
     "not a whole number"),
    (edited(valid_doc(), lambda d: d["profiles"][0]["weights"].pop()), "weights"),
    (edited(valid_doc(), lambda d: d["profiles"][0].update(samples="x")), "expected an array"),
    (edited(valid_doc(), lambda d: d["ember"]["profiles"].pop()), "ember.profiles"),
    (edited(valid_doc(), lambda d: d["ember"]["profiles"][0]["labels"].append(0)),
     "entries"),
    (edited(valid_doc(), lambda d: d["ember"]["profiles"][0]["labels"].__setitem__(0, 99)),
     "out of range"),
    (edited(valid_doc(), lambda d: d["ember"]["profiles"][0]["values"][0].pop()),
     "expected [samples"),
    (edited(valid_doc(), lambda d: d["ember"].update(version=99)), "unsupported version"),
    (edited(valid_doc(), lambda d: d["ember"]["meta"].update(pids="1")), "meta.pids"),
    (edited(valid_doc(), lambda d: d["ember"]["meta"].update(gc=[[0, 1]])), "meta.gc[0]"),
    (edited(valid_doc(), lambda d: d["ember"]["labelSets"][0].append(["k"])), "pair"),
    (edited(valid_doc(), lambda d: d["profiles"].__setitem__(0, foreign_doc()["profiles"][0])),
     "not evented"),
    (edited(foreign_doc(), lambda d: d["profiles"].__setitem__(0, {
        "type": "sampled", "name": "s", "unit": "none", "startValue": 0, "endValue": 1,
        "samples": [[0]], "weights": [-1]})), "negative"),
    (edited(foreign_doc(), lambda d: d["profiles"].__setitem__(0, {
        "type": "sampled", "name": "s", "unit": "none", "startValue": 0, "endValue": 1,
        "samples": [[0]], "weights": [10**400]})), "too large"),
]


@pytest.mark.parametrize(("content", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_format_error_naming_the_file(
        tmp_path: Path, content: bytes | dict[str, Any] | list[Any], message: str) -> None:
    path = tmp_path / "bad.speedscope.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with path.open("rb") as stream, pytest.raises(FormatError) as info:
        speedscope.read(stream, str(path))
    text = str(info.value)
    assert text.startswith(str(path) + ":")
    assert "\n" not in text
    assert message in text


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"$schema": "https://www.speedscope.app/file-format-schema.json",\n'
                    '"shared": {"frames": []},\n"profiles": [,]}\n')
    with pytest.raises(FormatError, match=r"bad\.json:3: not valid JSON"):
        ember.load(path)


def read_outcome(data: bytes) -> Profile | None:
    """Reading gives a Profile or a one-line FormatError naming the path, nothing else."""
    try:
        return speedscope.read(io.BytesIO(data), "fuzz.json")
    except FormatError as exc:
        assert str(exc).startswith("fuzz.json")
        assert "\n" not in str(exc)
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(["O", "C", "sampled", "evented", "none",
                                            "seconds", speedscope.SCHEMA]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["$schema", "shared", "frames", "profiles", "type", "name", "unit",
                         "samples", "weights", "events", "at", "frame", "ember", "x"]),
        inner, max_size=5),
    max_leaves=30)


@FUZZ
@given(value=json_values)
def test_fuzz_arbitrary_json(value: object) -> None:
    read_outcome(json.dumps(value).encode())
    read_outcome(json.dumps({"$schema": speedscope.SCHEMA, "shared": value,
                             "profiles": value}).encode())


def locations(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a decoded JSON document."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += locations(child, (*path, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += locations(child, (*path, i))
    return found


SMALL_VALID = to_doc(awkward_profile().filter(thread="worker-1"))
SMALL_FOREIGN = foreign_doc()


@FUZZ
@given(data=st.data(), base=st.sampled_from([SMALL_VALID, SMALL_FOREIGN]))
def test_fuzz_mutations_of_valid_files(data: st.DataObject, base: dict[str, Any]) -> None:
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        spots = locations(doc)
        if not spots:
            break
        path = data.draw(st.sampled_from(spots))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["replace", "delete", "number"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "number":
            parent[path[-1]] = data.draw(st.sampled_from(
                [-1, 0, 1, 2, 10**6, 2**63, 10**400, 0.5, -0.0, 1e308, True]))
        else:
            parent[path[-1]] = data.draw(json_values)
    raw = json.dumps(doc).encode()
    read_outcome(raw)
    cut = data.draw(st.integers(0, len(raw)))
    flip = data.draw(st.integers(0, 255))
    read_outcome(raw[:cut])
    read_outcome(raw[:cut] + bytes([flip]) + raw[cut + 1:])
