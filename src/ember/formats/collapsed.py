"""Collapsed ("folded") stacks: ``frame;frame;frame COUNT`` per line, root first.

The common currency of flamegraph.pl, py-spy and inferno. ember writes frames
as ``qualname (file:line)`` and COUNT as the number of samples; labels and
CPU/wall times are not representable and are summed away. Reading streams
line by line, so memory grows with distinct stacks, not with lines.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import IO, Any

from ember import _impl
from ember.errors import FormatError
from ember.profile import Frame, Profile

NAME = "collapsed"
EXTENSIONS = (".txt", ".folded", ".collapsed")

# Qualified names hold no " (" but file paths may: split at the first one.
_FRAME = re.compile(r"^(.*?) \((.*):(\d+)\)$", re.DOTALL)
_FIRST_LINE = re.compile(r"^[^\n]*[^\s;][ \t]+\d+[ \t]*\r?$", re.MULTILINE)


def parse_frame(text: str) -> Frame:
    """``name (file:line)`` -> Frame; any other text is a bare function name."""
    match = _FRAME.match(text)
    if match is None:
        return Frame(text)
    return Frame(match.group(1), match.group(2), int(match.group(3)))


def sniff(head: bytes) -> bool:
    """Collapsed if the first non-blank line is text ending in a space and a count."""
    if not head or b"\0" in head:
        return False
    text = head.decode("utf-8", errors="replace").lstrip()
    first = text.split("\n", 1)[0]
    return "\ufffd" not in first and _FIRST_LINE.match(first) is not None


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


def write(profile: Profile, stream: IO[bytes], **options: Any) -> None:
    rendered = [f.render().replace(";", ":").replace("\n", " ").replace("\r", " ")
                for f in profile.frames]
    lines = []
    for sid, count in profile.stack_values("samples").items():
        if count and profile.stacks[sid]:
            lines.append(";".join(rendered[f] for f in profile.stacks[sid]) + f" {count}\n")
    lines.sort()
    stream.write("".join(lines).encode("utf-8"))
