# cython: language_level=3
"""Compiled twin of ``ember._folded_py``: the collapsed-stack line parser.

Same rules, tables and error messages as the pure-Python twin (see its
docstring); typed loops over the characters of each line replace the
searching the twin does with str methods; splitting stays ``str.split``.
"""

from ember._folded_py import TOTAL_TOO_LARGE, count_too_large
from ember.errors import FormatError
from ember.profile import MAX_VALUE

cdef Py_ssize_t _MAX_DIGITS = len(str(MAX_VALUE))


cdef class FoldedParser:
    """Streaming parser: memory grows with distinct frames and stacks, not lines."""

    cdef public list frames
    cdef public list stacks
    cdef public list counts
    cdef public Py_ssize_t lines
    cdef public object total
    cdef dict _frame_ids
    cdef dict _stack_ids

    def __cinit__(self):
        self.frames = []
        self.stacks = []
        self.counts = []
        self.lines = 0
        self.total = 0
        self._frame_ids = {}
        self._stack_ids = {}

    def feed(self, lines):
        """Parse lines; line numbers continue from earlier calls."""
        cdef str text, count, stack, name
        cdef Py_ssize_t cut, i, n, first
        cdef Py_UCS4 ch
        cdef list ids
        cdef dict frame_ids = self._frame_ids
        cdef dict stack_ids = self._stack_ids
        for line in lines:
            self.lines += 1
            text = (<str?>line).rstrip()
            n = len(text)
            if n == 0:
                continue
            cut = n - 1
            while cut >= 0:
                ch = text[cut]
                if ch == u' ' or ch == u'\t':
                    break
                cut -= 1
            if cut < 0:
                raise FormatError("expected 'frame;frame;... COUNT'", line=self.lines)
            first = n
            for i in range(cut + 1, n):
                ch = text[i]
                if ch < u'0' or ch > u'9':
                    count = text[cut + 1:]
                    raise FormatError(f"count {count!r} is not a non-negative integer",
                                      line=self.lines)
                if ch != u'0' and first == n:
                    first = i
            count = text[cut + 1:]
            # int() refuses over 4300 digits, leading zeros too: convert the rest
            value = int(text[first:] or u"0") if n - first <= _MAX_DIGITS else MAX_VALUE + 1
            if value > MAX_VALUE:
                raise FormatError(count_too_large(count), line=self.lines)
            if self.total + value > MAX_VALUE:
                raise FormatError(TOTAL_TOO_LARGE, line=self.lines)
            stack = text[:cut].rstrip()
            ids = []
            if len(stack) != 0:
                for name in stack.split(u";"):
                    if len(name) == 0:
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
            self.counts[<Py_ssize_t>sid] += value
            self.total += value
