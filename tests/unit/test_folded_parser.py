"""The folded-stack parser twins: known tables, every malformed kind, and a
property test feeding both twins the same random lines.

Grammar (``ember._folded_py``): a line is ``frame;frame;...;frame COUNT``.
The line is right-stripped (any Unicode whitespace, so ``\\r\\n`` too); the
count is what follows the last space or tab and must be ASCII digits, at most
``MAX_VALUE``, as must the sum of all counts; the stack before it is
right-stripped and split on ``;`` (nothing before the count: the empty stack,
py-spy's line for a sample without Python frames); every frame must be
non-empty. Frames keep everything else verbatim (inner and leading spaces,
tabs, any other character).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember import _impl
from ember.errors import FormatError
from ember.profile import MAX_VALUE

CYTHON_FOLDED = _impl.module("folded", "cython")
PYTHON_FOLDED = _impl.module("folded", "python")

Tables = tuple[list[str], list[tuple[int, ...]], list[int], int]


def tables(parser: Any) -> Tables:
    return list(parser.frames), list(parser.stacks), list(parser.counts), parser.lines


def parse(folded: ModuleType, *chunks: Iterable[str]) -> Tables:
    parser = folded.FoldedParser()
    for chunk in chunks:
        parser.feed(chunk)
    return tables(parser)


def named(result: Tables) -> dict[tuple[str, ...], int]:
    """stack of frame names -> count, in stack-id order."""
    frames, stacks, counts, _ = result
    return {
        tuple(frames[i] for i in stack): count for stack, count in zip(stacks, counts, strict=True)
    }


# -- known inputs ------------------------------------------------------------------


def test_known_input_gives_interned_tables(folded: ModuleType) -> None:
    lines = [
        "main;work;leaf 3\n",
        "main;work 2\r\n",
        "",
        "   \t \r\n",
        "main;work;leaf 4",
        "other\t7",
        "main;other 1  \t\r\n",
        "\n",
        "main;work;leaf 0",
    ]
    frames, stacks, counts, nlines = parse(folded, lines)
    assert frames == ["main", "work", "leaf", "other"]
    assert stacks == [(0, 1, 2), (0, 1), (3,), (0, 3)]
    assert counts == [7, 2, 7, 1]
    assert nlines == len(lines)
    for stack in stacks:
        assert type(stack) is tuple


def test_frames_kept_verbatim(folded: ModuleType) -> None:
    lines = [
        "  lead;a b (x.py:3);c\td 5",  # leading, inner spaces and tabs are part of frames
        "a 1 2",  # the count follows the LAST space: frame "a 1", count 2
        "ünï;日本語;\U0001f525 007",  # any text; leading zeros in the count
        "x  \t 4",  # several separators
        "y\u3000 9 \u3000\x85",  # unicode whitespace before the separator and at the end
    ]
    result = parse(folded, lines)
    assert named(result) == {
        ("  lead", "a b (x.py:3)", "c\td"): 5,
        ("a 1",): 2,
        ("ünï", "日本語", "\U0001f525"): 7,
        ("x",): 4,
        ("y",): 9,
    }
    assert result[0] == [
        "  lead",
        "a b (x.py:3)",
        "c\td",
        "a 1",
        "ünï",
        "日本語",
        "\U0001f525",
        "x",
        "y",
    ]


def test_counts_up_to_the_range_edge_are_summed_exactly(folded: ModuleType) -> None:
    half = MAX_VALUE // 2
    assert parse(folded, [f"a {half}", f"a {half}", "a 1"])[2] == [MAX_VALUE]
    assert parse(folded, [f"b 000{MAX_VALUE}"])[2] == [MAX_VALUE]
    assert parse(folded, ["c " + "0" * 5000 + "7"])[2] == [7]  # leading zeros are no digits


def test_bare_counts_are_the_empty_stack(folded: ModuleType) -> None:
    # py-spy's raw output for samples that caught no Python frame (--idle): " 79"
    frames, stacks, counts, _ = parse(folded, ["main;work 3", " 79", "\t5\n", "\u3000 \t 1"])
    assert frames == ["main", "work"]
    assert stacks == [(0, 1), ()]
    assert counts == [3, 85]


def test_line_numbers_and_tables_continue_across_feeds(folded: ModuleType) -> None:
    parser = folded.FoldedParser()
    parser.feed(["a;b 1", ""])
    parser.feed(iter(["b;a 2", "a;b 3"]))
    assert tables(parser) == (["a", "b"], [(0, 1), (1, 0)], [4, 2], 4)
    with pytest.raises(FormatError) as info:
        parser.feed(["c 1", "no-count"])
    assert info.value.line == 6
    assert parser.lines == 6
    parser.feed([])
    assert parser.lines == 6


# -- malformed lines -----------------------------------------------------------------

NO_COUNT = "expected 'frame;frame;... COUNT'"
EMPTY_FRAME = "empty frame name"
TOO_LARGE = f"count {MAX_VALUE + 1} is larger than {MAX_VALUE}"
TOTAL = f"the counts add up to more than {MAX_VALUE}"

MALFORMED = [
    ("main;work", NO_COUNT),
    ("5", NO_COUNT),
    ("main;work\r\n", NO_COUNT),
    ("a;b 1.5", "count '1.5' is not a non-negative integer"),
    ("a;b x", "count 'x' is not a non-negative integer"),
    ("a;b \u0663", "count '\u0663' is not a non-negative integer"),  # ARABIC-INDIC 3
    ("a;b \u00b2", "count '\u00b2' is not a non-negative integer"),  # superscript 2
    ("a;b -1", "count '-1' is not a non-negative integer"),
    ("a;b +1", "count '+1' is not a non-negative integer"),
    ("a;b 1_000", "count '1_000' is not a non-negative integer"),
    ("a 1\u00a02", "count '1\\xa02' is not a non-negative integer"),  # NBSP is no separator
    (f"a;b {MAX_VALUE + 1}", TOO_LARGE),
    (f"a;b 000{MAX_VALUE + 1}", f"count 000{MAX_VALUE + 1} is larger than {MAX_VALUE}"),
    ("a " + "9" * 5000, f"count of 5000 digits is larger than {MAX_VALUE}"),
    (f"a;b {MAX_VALUE}", TOTAL),  # the line before holds 1
    ("a;;b 1", EMPTY_FRAME),
    (";a 1", EMPTY_FRAME),
    ("a; 1", EMPTY_FRAME),
    ("a;\u3000 1", EMPTY_FRAME),
    ("; 1", EMPTY_FRAME),
]


@pytest.mark.parametrize(("bad", "reason"), MALFORMED)
def test_malformed_line_raises_format_error_with_line(
    folded: ModuleType, bad: str, reason: str
) -> None:
    parser = folded.FoldedParser()
    with pytest.raises(FormatError) as info:
        parser.feed(["ok;fine 1", "", bad, "never;read 1"])
    assert info.value.line == 3
    assert info.value.reason == reason
    assert str(info.value) == f"line 3: {reason}"
    assert parser.lines == 3
    assert "never" not in parser.frames
    assert parser.counts == [1]


@pytest.mark.parametrize(("bad", "reason"), MALFORMED)
def test_malformed_line_same_error_and_state_in_both_twins(bad: str, reason: str) -> None:
    outcomes = []
    for folded in (CYTHON_FOLDED, PYTHON_FOLDED):
        parser = folded.FoldedParser()
        parser.feed(["a;x 1"])
        with pytest.raises(FormatError) as info:
            parser.feed(["", bad])
        outcomes.append((str(info.value), info.value.line, info.value.reason, tables(parser)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:3] == (f"line 3: {reason}", 3, reason)


# -- property test: both twins, and a reference for well-formed input ---------------

# Frame text: any character but ';' and line breaks '\n' / '\r'.
_frame_char = st.characters(blacklist_characters=";\n\r", blacklist_categories=("Cs",))
_frame = st.text(_frame_char, min_size=1, max_size=8)
# The last frame must not end in whitespace: the stack before the count is right-stripped.
_last_frame = _frame.filter(lambda s: not s[-1].isspace())
_whitespace = st.text(st.sampled_from(" \t\u3000\x85\u2028\x0b\x0c\x1c\u00a0"), max_size=3)
_separator = st.builds(
    lambda pre, sep: pre + sep, _whitespace, st.text(st.sampled_from(" \t"), min_size=1, max_size=3)
)
_line_end = st.sampled_from(["", "\n", "\r\n", " ", "\t\r\n", " \u3000\n", "\x85"])
_count = st.integers(min_value=0, max_value=MAX_VALUE // 16)  # 12 lines sum in range


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, tuple[str, ...], int]:
    """A valid line, the names of its stack and its count."""
    names = (*draw(st.lists(_frame, max_size=4)), draw(_last_frame))
    count = draw(_count)
    zeros = "0" * draw(st.integers(0, 2))
    line = ";".join(names) + draw(_separator) + zeros + str(count) + draw(_line_end)
    return line, names, count


_blank = st.text(st.sampled_from(" \t\r\n\x0b\x0c\u3000\x85"), max_size=4)
_garbage = st.text(max_size=20)
_binaryish = st.binary(max_size=24).map(lambda b: b.decode("utf-8", "surrogateescape"))
_near_miss = st.builds(
    lambda stack, sep, count: stack + sep + count,
    st.text(st.sampled_from("ab;; \t"), max_size=6),
    st.sampled_from(["", " ", "\t", "  "]),
    st.text(st.sampled_from("0123456789.-+x \u0663\u00b2"), max_size=4),
)
_other_line = st.one_of(_blank, _garbage, _binaryish, _near_miss)


@st.composite
def mixed_lines(draw: st.DrawFn) -> list[str]:
    """Valid lines with a few other lines slipped in anywhere, so that errors can
    happen deep into the input, after tables have been built."""
    lines = [line for line, _, _ in draw(st.lists(well_formed(), max_size=10))]
    for other in draw(st.lists(_other_line, max_size=3)):
        lines.insert(draw(st.integers(0, len(lines))), other)
    return lines


def run_both(lines: list[str], split: int) -> list[tuple[Any, ...]]:
    outcomes: list[tuple[Any, ...]] = []
    for folded in (CYTHON_FOLDED, PYTHON_FOLDED):
        parser = folded.FoldedParser()
        try:
            parser.feed(lines[:split])
            parser.feed(iter(lines[split:]))
        except FormatError as exc:
            outcomes.append(("error", str(exc), exc.line, exc.reason, tables(parser)))
        else:
            outcomes.append(("ok", tables(parser)))
    return outcomes


@settings(deadline=None, max_examples=300)
@given(lines=mixed_lines(), data=st.data())
def test_twins_agree_on_random_lines(lines: list[str], data: st.DataObject) -> None:
    split = data.draw(st.integers(0, len(lines)), label="split")
    cython_outcome, python_outcome = run_both(lines, split)
    assert cython_outcome == python_outcome
    if cython_outcome[0] == "error":
        line = cython_outcome[2]
        assert 1 <= line <= len(lines)
        assert cython_outcome[4][3] == line  # the parser stopped at the bad line


def reference(
    lines: list[tuple[str, tuple[str, ...], int]],
) -> tuple[list[str], dict[tuple[str, ...], int]]:
    frames: dict[str, None] = {}
    counts: dict[tuple[str, ...], int] = {}
    for _, names, count in lines:
        frames.update(dict.fromkeys(names))
        counts[names] = counts.get(names, 0) + count
    return list(frames), counts


@settings(
    deadline=None, max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.one_of(well_formed(), _blank.map(lambda b: (b, (), 0))), max_size=12),
    data=st.data(),
)
def test_well_formed_lines_match_reference(
    folded: ModuleType, lines: list[tuple[str, tuple[str, ...], int]], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(lines)), label="split")
    texts = [text for text, _, _ in lines]
    result = parse(folded, texts[:split], texts[split:])
    frames, counts = reference([w for w in lines if w[1]])
    assert result[0] == frames
    assert list(named(result).items()) == list(counts.items())
    assert result[3] == len(lines)
    assert len(set(result[1])) == len(result[1])  # each stack interned once
