"""Collapsed stacks: writing, reading back, format detection and bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

import ember
from ember import FormatError, Frame, Profile, make_labels
from ember.formats import collapsed

AWKWARD = [
    Frame("<module>", "/srv/app main.py", 1),
    Frame("Ωmega.<locals>.<lambda>", "/srv/ünïcode/mod.py", 42),
    Frame("Klass.method", "C:\\odd (dir)\\x.py", 7),
    Frame("<script>alert('x & \"y\"')</script>", "<string>", 3),
    Frame("bare-native-frame"),
]


def test_round_trip_keeps_stacks_and_sample_counts(tmp_path: Path) -> None:
    p = Profile()
    p.add(AWKWARD[:3], samples=5, cpu_ns=99, labels=make_labels({"thread": "t1"}))
    p.add(AWKWARD[:3], samples=2, labels=make_labels({"thread": "t2"}))  # labels summed away
    p.add([AWKWARD[0], AWKWARD[3], AWKWARD[4]], samples=1)
    p.add([AWKWARD[0]] + [AWKWARD[1]] * 500, samples=3)  # very deep
    path = tmp_path / "p.txt"
    ember.dump(p, path)
    back = ember.load(path)
    expected = {stack: v for stack, v in (
        (tuple(AWKWARD[:3]), 7), ((AWKWARD[0], AWKWARD[3], AWKWARD[4]), 1),
        (tuple([AWKWARD[0]] + [AWKWARD[1]] * 500), 3))}
    assert {s: v[0] for (s, _), v in back.canonical().items()} == expected


def test_written_lines_are_sorted_and_root_first(tmp_path: Path) -> None:
    p = Profile()
    p.add([Frame("main", "m.py", 1), Frame("work", "m.py", 5)], samples=3)
    p.add([Frame("main", "m.py", 1)], samples=1)
    path = tmp_path / "p.folded"
    ember.dump(p, path)
    assert path.read_text() == "main (m.py:1) 1\nmain (m.py:1);work (m.py:5) 3\n"


def test_reads_py_spy_and_flamegraph_pl_style_frames(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text("<module> (app.py:3);handler (app.py:10) 4\nmain;sleep 2\n")
    p = ember.load(path)
    assert p.canonical() == {
        ((Frame("<module>", "app.py", 3), Frame("handler", "app.py", 10)), ()): (4, 0, 0),
        ((Frame("main"), Frame("sleep")), ()): (2, 0, 0),
    }


def test_frame_text_parsing() -> None:
    assert collapsed.parse_frame("f (a.py:12)") == Frame("f", "a.py", 12)
    assert collapsed.parse_frame("f (a (b).py:12)") == Frame("f", "a (b).py", 12)
    assert collapsed.parse_frame("f (no line)") == Frame("f (no line)")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"\x00\x01\x02garbage\xff", "not a profile"),
    (gzip.compress(b"a;b 1\n"), "not a profile"),
    (b"a;b 1\nno-count-here\n", ":2: expected"),
    (b"a;b 1\na;b x\n", ":2: count 'x'"),
    (b"a;b 1\n\xff\xfe 3\n", ":2: not UTF-8"),
    (b"a;;b 1\n", ":1: empty frame name"),
])
def test_bad_input_is_one_format_error_naming_file_and_line(
        tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        ember.load(path)
    text = str(info.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="No such file"):
        ember.load(tmp_path / "nope.txt")
    with pytest.raises(FormatError, match="extension"):
        ember.dump(Profile(), tmp_path / "p.docx")
    assert not os.path.exists(tmp_path / "p.docx")


def test_reading_streams_with_memory_bounded_by_distinct_stacks(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    with open(path, "w") as f:
        for i in range(50_000):
            f.write(f"main;handler_{i % 7};leaf 1\n")
    p = ember.load(path)
    assert len(p.stacks) == 7
    assert p.totals().samples == 50_000


# py-spy's format, verbatim: the output of a real run of py-spy 0.4.3,
#   py-spy record -f raw --idle --function --full-filenames -r 50 -- python empty.py
# where empty.py starts `_thread.start_new_thread(time.sleep, (1.5,))` (a thread
# with no Python frame) and spins in spin(). The bare " 79" is py-spy's line for
# the samples of that thread: a count with no frames.
PY_SPY_IDLE = (
    "<module> (/tmp/formats_work/empty.py:1);spin (/tmp/formats_work/empty.py:3) 54\n"
    " 79\n"
    "<module> (/tmp/formats_work/empty.py:1) 34\n"
)


@pytest.mark.parametrize("order", [0, 1])
def test_py_spy_samples_without_frames_are_the_empty_stack(tmp_path: Path, order: int) -> None:
    lines = PY_SPY_IDLE.splitlines(keepends=True)
    path = tmp_path / "raw.txt"
    path.write_text("".join(lines[order:] + lines[:order]))  # the bare count first, too
    p = ember.load(path)
    module = Frame("<module>", "/tmp/formats_work/empty.py", 1)
    spin = Frame("spin", "/tmp/formats_work/empty.py", 3)
    assert p.canonical() == {
        ((module, spin), ()): (54, 0, 0),
        ((), ()): (79, 0, 0),  # counted in the totals, belonging to no function
        ((module,), ()): (34, 0, 0),
    }
    assert p.totals().samples == 167
    assert {s.frame for s in p.top_functions(by="total")} == {module, spin}
    out = tmp_path / "again.txt"
    ember.dump(p, out)
    assert " 79\n" in out.read_text()  # written back as py-spy writes it
    assert ember.load(out) == p


def test_a_profile_without_samples_is_written_readably(tmp_path: Path) -> None:
    p = Profile()
    p.add([Frame("main")], samples=0, cpu_ns=5)
    path = tmp_path / "none.txt"
    ember.dump(p, path)
    assert path.read_text() == " 0\n"
    assert ember.load(path).totals().samples == 0


def test_frame_text_the_reader_would_change_is_written_as_it_will_read(tmp_path: Path) -> None:
    p = Profile()
    p.add([Frame(""), Frame("a;b\nc\r\0d", "x.py", 3), Frame("leaf \u3000\x85")], samples=2)
    p.add([Frame(" ")], samples=1)
    path = tmp_path / "odd.txt"
    ember.dump(p, path)
    assert ember.load(path).canonical() == {
        ((Frame("[unknown]"), Frame("a:b c \ufffdd", "x.py", 3), Frame("leaf")), ()): (2, 0, 0),
        ((Frame("[unknown]"),), ()): (1, 0, 0),
    }


def test_line_numbers_beyond_the_range_stay_part_of_the_name() -> None:
    assert collapsed.parse_frame(f"f (a.py:{2**63})") == Frame(f"f (a.py:{2**63})")
    assert collapsed.parse_frame("f (a.py:" + "9" * 5000 + ")").line == 0
    assert collapsed.parse_frame("f (a.py:\u0663)") == Frame("f (a.py:\u0663)")  # ASCII digits
