"""Pure-Python twin of ``ext/_folded.pyx``: the collapsed-stack line parser.

A line is ``frame;frame;...;frame COUNT``: frames root first, separated by
``;``, then whitespace and a non-negative decimal integer. Blank lines are
skipped; trailing whitespace and line endings are ignored. Anything else
raises :class:`ember.errors.FormatError` naming the line. Frames are kept as
text and interned in order of first appearance; counts are summed per stack.
Both twins give identical tables and identical errors for identical input.
"""

from __future__ import annotations

from collections.abc import Iterable

from ember.errors import FormatError


class FoldedParser:
    """Streaming parser: memory grows with distinct frames and stacks, not lines."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.stacks: list[tuple[int, ...]] = []
        self.counts: list[int] = []
        self.lines = 0
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
            try:
                value = int(count)
            except ValueError:  # beyond Python's int() digit limit
                raise FormatError(f"count of {len(count)} digits is too large",
                                  line=self.lines) from None
            stack = text[:cut].rstrip()
            if not stack:
                raise FormatError("empty stack", line=self.lines)
            ids = []
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
