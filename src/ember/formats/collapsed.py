"""Collapsed ("folded") stacks: ``frame;frame;frame COUNT`` per line, root first.

The common currency of flamegraph.pl, py-spy and inferno. ember writes frames
as ``qualname (file:line)`` and COUNT as the number of samples. Reading
streams line by line, so memory grows with distinct stacks, not with lines.

A line holding only a count (py-spy's `` 79`` for samples that caught no
Python frame, e.g. idle threads with ``--idle``) is the empty stack: its
samples count in the totals, as in flamegraph.pl's and py-spy's own graphs,
and belong to no function. ember writes the empty stack the same way.

What the format cannot hold is lost on writing, always the same way:
labels, CPU and wall time and metadata are dropped (samples are summed per
stack; stacks with no samples vanish); in frame text ``;`` becomes ``:``,
line breaks become spaces, NUL becomes U+FFFD, lone surrogates become ``?``,
the leaf frame loses trailing whitespace (the reader strips it) and an
empty text becomes ``[unknown]``; a profile without samples is the one
line `` 0``. On reading, text of the form
``name (file:line)`` is a frame with that file and line, any other text a
bare name.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import IO, Any

from ember import _impl
from ember.errors import FormatError
from ember.profile import MAX_VALUE, Frame, Profile

NAME = "collapsed"
EXTENSIONS = (".txt", ".folded", ".collapsed")
UNKNOWN = "[unknown]"
"""The text written for a frame whose text would be empty."""

# Qualified names hold no " (" but file paths may: split at the first one.
_FRAME = re.compile(r"^(.*?) \((.*):([0-9]{1,19})\)$", re.DOTALL)
_NOT_IN_TEXT = str.maketrans({";": ":", "\n": " ", "\r": " ", "\0": "\ufffd"})


def parse_frame(text: str) -> Frame:
    """``name (file:line)`` -> Frame; any other text is a bare function name."""
    match = _FRAME.match(text)
    if match is None or int(match.group(3)) > MAX_VALUE:
        return Frame(text)
    return Frame(match.group(1), match.group(2), int(match.group(3)))


# The shape of a line: a stack not ending in ";" or space (or no stack), then a count.
_LINE_SHAPE = re.compile(r"(?:.*[^\s;])?[ \t]+[0-9]+", re.DOTALL)


def _first_line(head: bytes) -> tuple[str, bool] | None:
    """The first non-blank line of ``head`` and whether it ends within ``head``, or
    None if that much is not UTF-8 text (a character cut at the end is fine)."""
    pieces = head.split(b"\n")
    for number, piece in enumerate(pieces, 1):
        complete = number < len(pieces)
        if b"\0" in piece:
            return None
        try:
            line = codecs.getincrementaldecoder("utf-8")().decode(piece, final=complete)
        except UnicodeDecodeError:
            return None
        if line.strip():
            return line, complete
    return "", False


def sniff(head: bytes) -> bool:
    """Collapsed if the first non-blank line is text shaped like ``stack COUNT``
    (the reader then judges every line, that one included)."""
    first = _first_line(head)
    return first is not None and first[1] and _LINE_SHAPE.fullmatch(first[0].rstrip()) is not None


def may_be(head: bytes) -> bool:
    """Text whose first line does not end within ``head`` (a very deep stack): the
    reader, which has no line-length limit, decides whether it is collapsed."""
    first = _first_line(head)
    return first is not None and not first[1] and bool(first[0])


def _decoded_lines(stream: IO[bytes], path: str) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    for number, raw in enumerate(stream, 1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError:
            raise FormatError("not UTF-8 text", path=path, line=number) from None


def read(stream: IO[bytes], path: str = "<stream>") -> Profile:
    parser = _impl.module("folded").FoldedParser()
    try:
        parser.feed(_decoded_lines(stream, path))
    except FormatError as exc:
        if exc.path is None:
            raise FormatError(exc.reason, path=path, line=exc.line) from None
        raise
    frames = [parse_frame(text) for text in parser.frames]
    if len(set(frames)) == len(frames):
        # The usual case: each frame text is a distinct frame, so the parser's
        # tables are the profile's tables as they are.
        profile = Profile.from_interned(frames, parser.stacks, parser.counts)
    else:
        profile = Profile()
        frame_ids = [profile.frame_id(frame) for frame in frames]
        for stack, count in zip(parser.stacks, parser.counts, strict=True):
            sid = profile.stack_id(tuple(frame_ids[f] for f in stack))
            profile.add_values(sid, (), count, 0, 0)
    if not profile.values:
        raise FormatError("no stacks in the file", path=path)
    return profile


def frame_text(frame: Frame, leaf: bool = False) -> str:
    """The text ember writes for ``frame`` (see the module doc for what changes)."""
    text = frame.render().translate(_NOT_IN_TEXT)
    if leaf:
        text = text.rstrip()
    return text or UNKNOWN


_WRITE_LINES = 4096


def write(profile: Profile, stream: IO[bytes], **options: Any) -> None:
    inner = [frame_text(f) for f in profile.frames]
    leaf = [frame_text(f, leaf=True) for f in profile.frames]
    lines = []
    for sid, count in profile.stack_values("samples").items():
        stack = profile.stacks[sid]
        if count:
            text = ";".join([inner[f] for f in stack[:-1]] + [leaf[f] for f in stack[-1:]])
            lines.append(f"{text} {count}\n")
    lines.sort()
    # An empty file could be anything: a profile without samples is the empty stack's " 0".
    lines = lines or [" 0\n"]
    for start in range(0, len(lines), _WRITE_LINES):  # encoded a batch at a time, not all
        stream.write("".join(lines[start:start + _WRITE_LINES]).encode("utf-8", "replace"))
