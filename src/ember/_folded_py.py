"""Pure-Python twin of ``ext/_folded.pyx``: the collapsed-stack line parser.

A line is ``frame;frame;...;frame COUNT``: frames root first, separated by
``;``, then whitespace and a non-negative decimal integer. Blank lines are
skipped; trailing whitespace and line endings are ignored. A line that is
only whitespace and a count (py-spy's `` 12`` for samples that caught no
Python frame) is the empty stack. Counts, and the sum of all counts, are at
most :data:`ember.profile.MAX_VALUE`. Anything else raises
:class:`ember.errors.FormatError` naming the line. Frames are kept as text
and interned in order of first appearance; counts are summed per stack.
Both twins give identical tables and identical errors for identical input.
"""

from __future__ import annotations

from collections.abc import Iterable

from ember.errors import FormatError
from ember.profile import MAX_VALUE

_MAX_DIGITS = len(str(MAX_VALUE))


def count_too_large(count: str) -> str:
    """The error message for a count beyond MAX_VALUE (long counts are not quoted)."""
    shown = f"of {len(count)} digits" if len(count) > 40 else count
    return f"count {shown} is larger than {MAX_VALUE}"


TOTAL_TOO_LARGE = f"the counts add up to more than {MAX_VALUE}"


class FoldedParser:
    """Streaming parser: memory grows with distinct frames and stacks, not lines."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.stacks: list[tuple[int, ...]] = []
        self.counts: list[int] = []
        self.lines = 0
        self.total = 0
        self._frame_ids: dict[str, int] = {}
        self._stack_ids: dict[tuple[int, ...], int] = {}

    def feed(self, lines: Iterable[str]) -> None:
        """Parse lines; line numbers continue from earlier calls."""
        frame_ids = self._frame_ids
        stack_ids = self._stack_ids
        for line in lines:
            self.lines += 1
            text = line.rstrip()
            if not text:
                continue
            cut = max(text.rfind(" "), text.rfind("\t"))
            if cut < 0:
                raise FormatError("expected 'frame;frame;... COUNT'", line=self.lines)
            count = text[cut + 1:]
            if not (count.isascii() and count.isdigit()):
                raise FormatError(f"count {count!r} is not a non-negative integer",
                                  line=self.lines)
            digits = count.lstrip("0")  # int() refuses over 4300 digits, zeros too
            if len(digits) > _MAX_DIGITS or int(digits or "0") > MAX_VALUE:
                raise FormatError(count_too_large(count), line=self.lines)
            value = int(digits or "0")
            if self.total + value > MAX_VALUE:
                raise FormatError(TOTAL_TOO_LARGE, line=self.lines)
            stack = text[:cut].rstrip()
            ids = []
            if stack:
                for name in stack.split(";"):
                    if not name:
                        raise FormatError("empty frame name", line=self.lines)
                    fid = frame_ids.get(name)
                    if fid is None:
                        fid = frame_ids[name] = len(self.frames)
                        self.frames.append(name)
                    ids.append(fid)
            key = tuple(ids)
            sid = stack_ids.get(key)
            if sid is None:
                sid = stack_ids[key] = len(self.stacks)
                self.stacks.append(key)
                self.counts.append(0)
            self.counts[sid] += value
            self.total += value
