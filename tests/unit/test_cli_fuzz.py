"""Every verb over generated inputs of every format: one line and exit 2, or a good output.

For each generated input (valid profiles, their mutations, and noise) every
verb that reads profiles runs in this process through ``ember.cli.main.main``.
It must return 0 or 2, never raise; an error is one line on stderr, with no
traceback and nothing left in the output directory; a success writes a file
that ember reads back. A SIGALRM timer turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember import Frame, Profile, formats, make_labels
from ember.cli.main import main
from profiles import awkward_profile, mutate, sample_profile
from support import deadline

EXAMPLES = 300
SECONDS_PER_INPUT = 20

# every verb that reads profiles; IN and OUT are filled in per input
VERBS: list[list[str]] = [
    ["top", "IN"],
    ["top", "IN", "--by", "total", "--json"],
    ["top", "IN", "--paths", "--value", "cpu"],
    ["advise", "IN"],
    ["flamegraph", "IN", "-o", "OUT.svg"],
    ["flamegraph", "IN", "-o", "OUT.svg", "--value", "wall", "--inverted"],
    ["diff", "IN", "IN", "-o", "OUT.svg"],
    ["convert", "IN", "-o", "OUT.txt"],
    ["convert", "IN", "-o", "OUT.pb.gz"],
    ["convert", "IN", "-o", "OUT.json"],
    ["merge", "IN", "IN", "-o", "OUT.json"],
]


def run_verb(argv: list[str]) -> tuple[int, str]:
    # strict UTF-8 streams, as a terminal's: names that cannot be encoded must not fail
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: the arguments here are always valid
            raise AssertionError(f"argparse refused {argv}") from exc
        finally:
            err.flush()
            out.flush()
    return code, err.buffer.getvalue().decode()  # type: ignore[attr-defined]


def check_every_verb(data: bytes, suffix: str, workdir: Path) -> None:
    for entry in workdir.iterdir():
        entry.unlink()
    source = workdir / f"in{suffix}"
    source.write_bytes(data)
    for verb in VERBS:
        out = workdir / "out"
        argv = [str(source) if a == "IN" else a for a in verb]
        argv = [str(out) + a[3:] if a.startswith("OUT") else a for a in argv]
        with deadline(SECONDS_PER_INPUT):
            code, err = run_verb(argv)
        written = sorted(p.name for p in workdir.iterdir() if p != source)
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code == 2:
            assert err.count("\n") == 1 and err.startswith(f"ember {verb[0]}: "), (argv, err)
            assert written == [], (argv, written)  # nothing left behind on error
            continue
        output = [a for a in argv if a.startswith(str(out))]
        assert written == [Path(o).name for o in output], (argv, written)
        for path in output:
            if not path.endswith(".svg"):
                formats.load(path)  # ember reads back what it wrote
            os.unlink(path)


# -- inputs ------------------------------------------------------------------------------

# lone surrogates too: Python's spelling of undecodable file names, which speedscope keeps
names = (st.text(st.characters(exclude_categories=()), min_size=1, max_size=12)
         | st.sampled_from(["undecodable \udcff.py", "a;b c", "f (g.py:3)", "x\ny", "\u202e"]))
values = st.one_of(st.integers(0, 10), st.integers(0, 2**70), st.integers(-5, -1))


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    p = Profile()
    for _ in range(draw(st.integers(1, 4))):
        frames = [Frame(draw(names), draw(names), draw(st.integers(0, 2**31)))
                  for _ in range(draw(st.integers(1, 5)))]
        labels = make_labels({"endpoint": draw(names)}) if draw(st.booleans()) else ()
        p.add(frames, samples=draw(st.integers(1, 10**6)), cpu_ns=draw(st.integers(0, 10**12)),
              wall_ns=draw(st.integers(0, 10**12)), labels=labels)
    return p


def written(profile: Profile, name: str) -> bytes:
    stream = io.BytesIO()
    formats.by_name(name).write(profile, stream)
    return stream.getvalue()


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """A valid file of format ``name``, or one with a few bytes flipped, cut or inserted."""
    data = written(draw(st.sampled_from([sample_profile(), awkward_profile()]) | profiles()),
                   name)
    return mutate(draw, data, gzipped=name == "pprof", edits=(0, 4))  # 0: the valid file


def collapsed_lines() -> st.SearchStrategy[bytes]:
    frame = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",),
                                  exclude_characters="\n\r"), max_size=20)
    count = st.one_of(values.map(str), st.sampled_from(["", "1e400", "x", "-0", "+3", "1.5"]))
    line = st.builds(lambda fs, c: ";".join(fs) + " " + c, st.lists(frame, max_size=6), count)
    return st.lists(line, max_size=8).map(lambda ls: "\n".join(ls).encode())


def speedscope_json() -> st.SearchStrategy[bytes]:
    leaf = st.one_of(st.none(), st.booleans(), values, st.floats(allow_nan=True), names)
    tree = st.recursive(leaf, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(st.sampled_from(
                            ["$schema", "shared", "frames", "profiles", "type", "unit",
                             "samples", "weights", "events", "name", "startValue", "endValue",
                             "ember", "at", "frame"]), kids, max_size=6), max_leaves=30)
    schema = "https://www.speedscope.app/file-format-schema.json"
    doc = tree.map(lambda t: {"$schema": schema, **t} if isinstance(t, dict) else t)
    return doc.map(lambda d: json.dumps(d).encode())


INPUTS: dict[str, tuple[str, Callable[[], st.SearchStrategy[bytes]]]] = {
    "collapsed": (".txt", lambda: collapsed_lines() | mutated("collapsed")),
    "pprof": (".pb.gz", lambda: mutated("pprof") | st.binary(max_size=200)
              | st.binary(max_size=200).map(gzip.compress)),
    "speedscope": (".json", lambda: speedscope_json() | mutated("speedscope")),
    "noise": (".bin", lambda: st.binary(max_size=300)),
}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_verb_answers_every_input(name: str, tmp_path_factory: pytest.TempPathFactory
                                        ) -> None:
    suffix, strategy = INPUTS[name]
    workdir = tmp_path_factory.mktemp(f"fuzz-{name}")

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy())
    def check(data: bytes) -> None:
        check_every_verb(data, suffix, workdir)

    check()
