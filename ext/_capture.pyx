# cython: language_level=3
"""Compiled twin of ``ember._capture_py``: the per-sample work of the sampler.

Same interface and same results as the pure-Python twin (see its docstring for
the shared rules). Speed comes from walking frames with the public frame C-API
into a buffer of code-object addresses, hashing that buffer, and touching
Python objects only when a stack is seen for the first time.

Safety: every frame reference is released before the walk returns and no
frame outlives the call; code objects of interned stacks are held so their
addresses stay unique while the stack table refers to them. Nothing here can
release the GIL in the middle of a walk.
"""

cdef extern from *:
    """
    /* (a * b) / c without overflow, for non-negative a, b and positive c. */
    static long long ember_muldiv(long long a, long long b, long long c) {
        return (long long)(((__int128)a * b) / c);
    }
    """
    long long ember_muldiv(long long a, long long b, long long c) noexcept nogil

from cpython.ref cimport PyObject
from libc.stdint cimport uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp
from posix.time cimport clock_gettime, timespec
from posix.types cimport clockid_t

cdef extern from "Python.h":
    ctypedef struct PyFrameObject:
        pass
    ctypedef struct PyCodeObject:
        pass
    PyFrameObject* PyFrame_GetBack(PyFrameObject* frame)
    PyCodeObject* PyFrame_GetCode(PyFrameObject* frame)
    int PyFrame_GetLineNumber(PyFrameObject* frame)
    void Py_DECREF(PyObject* o)
    void Py_INCREF(PyObject* o)
    object PyBytes_FromStringAndSize(const char* s, Py_ssize_t n)
    char* PyBytes_AS_STRING(object o)
    int PyGC_Enable()
    int PyGC_Disable()
    ctypedef struct PyInterpreterState:
        pass
    ctypedef struct PyThreadState:
        pass
    PyInterpreterState* PyInterpreterState_Get()
    PyThreadState* PyInterpreterState_ThreadHead(PyInterpreterState* interp)
    PyThreadState* PyThreadState_Next(PyThreadState* tstate)
    PyFrameObject* PyThreadState_GetFrame(PyThreadState* tstate)

cdef extern from "ember_cpython.h":
    unsigned long ember_tstate_ident(PyThreadState* tstate) noexcept
    int ember_thread_ids_available() noexcept

import sys

cdef object _current_frames = sys._current_frames

DEEP = ("[deep]", "", 0)
TRUNCATED = ("[truncated]", "", 0)


cpdef long long clock_id(long long native_id):
    """Linux CPU clock of one thread, built from its kernel thread id."""
    return ((~native_id) << 3) | 6


cdef inline long long _cpu_ns(clockid_t clock) noexcept:
    cdef timespec ts
    if clock_gettime(clock, &ts) != 0:
        return -1
    return <long long>ts.tv_sec * 1000000000 + ts.tv_nsec


def thread_cpu_ns(long long native_id):
    """CPU time of a thread in nanoseconds, or -1 if the thread is gone."""
    return _cpu_ns(<clockid_t>clock_id(native_id))


cdef class _Row:
    """Sums of one (stack, labels) pair, in C integers."""
    cdef long long samples
    cdef long long cpu_ns
    cdef long long wall_ns

    def aslist(self):
        return [self.samples, self.cpu_ns, self.wall_ns]


def distribute(long long total, list weights):
    """Split ``total`` in proportion to ``weights`` (integers >= 0, not all 0),
    rounding cumulatively so that the parts add up to ``total`` exactly."""
    cdef long long whole = 0, acc = 0, given = 0, target, w
    for w in weights:
        whole += w
    out = []
    for w in weights:
        acc += w
        target = ember_muldiv(total, acc, whole)
        out.append(target - given)
        given = target
    return out


cdef class _Share:
    """The period weight one thread put into one row in this window."""
    cdef _Row row
    cdef long long period

    def __cinit__(self, _Row row):
        self.row = row
        self.period = 0


cdef class _Thread:
    cdef public long long native_id
    cdef public object labels
    cdef Py_ssize_t slot       # the waker's slot for its CPU clock, -1: none
    cdef long long last_seen
    cdef dict shares           # _Row -> _Share of this window
    cdef _Share last_share
    cdef long long owed        # CPU of a window in which it was never sampled
    # The last stack this thread was sampled in, to skip lookups when it repeats.
    cdef bytes last_key
    cdef _Row last_row
    cdef object last_labels
    cdef long long generation

    def __cinit__(self, long long native_id, object labels, Py_ssize_t slot):
        self.native_id = native_id
        self.labels = labels
        self.slot = slot
        self.last_seen = 0
        self.shares = {}
        self.last_share = None
        self.owed = 0


cdef class Collector:
    """Interns stacks of sampled threads and sums their values per window."""

    cdef readonly int max_stacks
    cdef readonly int max_depth
    cdef readonly bint lines
    cdef readonly object waker
    cdef public long long unattributed
    cdef public int missing
    cdef public int gone
    cdef public bint stopping
    cdef dict _active          # threading's registry of live threads, watched
    cdef dict _active_seen     # ... and its snapshot at the last registration
    cdef bint _cpu_mode
    cdef int _max_threads
    cdef dict _pending
    cdef public list frames
    cdef public list stacks
    cdef dict _rows            # (stack id, labels) -> _Row
    cdef public long long truncated
    cdef long long _generation # bumped per window: invalidates the threads' caches
    cdef dict _threads
    cdef dict _frame_ids
    cdef dict _code_frames
    cdef dict _stack_index     # hash -> stack id (open addressing on collisions)
    cdef list _stack_keys      # per stack id: bytes of its entry buffer, or None
    cdef list _codes
    cdef Py_ssize_t _truncated_sid
    cdef uintptr_t* _buf       # leaf-first entries: code address [, line], then deep flag
    cdef Py_ssize_t _width     # entries per frame: 1, or 2 with lines

    def __cinit__(self, int max_stacks, int max_depth, bint lines=False, waker=None):
        if max_stacks < 1 or max_depth < 2:
            raise ValueError("max_stacks must be >= 1 and max_depth >= 2")
        self.max_stacks = max_stacks
        self.max_depth = max_depth
        self.lines = lines
        self.waker = waker
        self.unattributed = 0
        self._width = 2 if lines else 1
        self._buf = <uintptr_t*>malloc((max_depth * self._width + 1) * sizeof(uintptr_t))
        if self._buf == NULL:
            raise MemoryError()
        self.missing = 0
        self.gone = 0
        self.stopping = False
        self._threads = {}
        self._active = None
        self._active_seen = {}
        self._cpu_mode = False
        self._max_threads = 0
        self._pending = None
        self._reset()

    def __dealloc__(self):
        free(self._buf)

    cdef _reset(self):
        cdef _Thread thread
        for thread in self._threads.values():
            thread.shares = {}
            thread.last_share = None
        self.frames = []
        self.stacks = []
        self._rows = {}
        self._generation += 1
        self.truncated = 0
        self._frame_ids = {}
        self._code_frames = {}
        self._stack_index = {}
        self._stack_keys = []
        self._codes = []
        self._truncated_sid = -1

    # -- threads ------------------------------------------------------------------
    def set_thread(self, ident, long long native_id, labels):
        """Register a thread (or update its labels, keeping its clock baselines).

        ``labels=None`` registers a thread that is never sampled.
        """
        cdef _Thread thread = self._threads.get(ident)
        cdef Py_ssize_t slot = -1
        if thread is None or thread.native_id != native_id:
            if thread is not None:
                self.drop_thread(ident)
            if self.waker is not None and native_id > 0:
                slot = self.waker.add(native_id, labels is not None)
            self._threads[ident] = _Thread(native_id, labels, slot)
        else:
            thread.labels = labels

    def drop_thread(self, ident):
        """Forget a thread; its CPU of this window goes to the rows it was sampled in."""
        cdef _Thread thread = self._threads.pop(ident, None)
        if thread is None or thread.slot < 0:
            return
        self._settle(thread, self.waker.remove(thread.slot))
        self.unattributed += thread.owed
        thread.owed = 0

    def thread_idents(self):
        return list(self._threads)

    def on_cpu_idents(self):
        """The sampled threads the waker saw on CPU at the last instant."""
        cdef _Thread thread
        if self.waker is None:
            return []
        mask = self.waker.on_cpu_mask()
        cdef const char* on = mask
        cdef Py_ssize_t n = len(mask)
        return [ident for ident, thread in self._threads.items()
                if thread.labels is not None and 0 <= thread.slot < n and on[thread.slot]]

    def watch(self, dict active, bint cpu_mode, int max_threads):
        """Settings of cycle(), and a snapshot of ``active`` (threading's registry)."""
        self._active = active
        self._active_seen = dict(active)
        self._cpu_mode = cpu_mode
        self._max_threads = max_threads

    def take_pending(self):
        """The frames cycle() could not sample entirely, once."""
        frames = self._pending
        self._pending = None
        return frames

    # -- sampling -----------------------------------------------------------------
    def cycle(self, long long now_ns, long long cycle_ns, skip=0):
        """A whole sampling cycle over the interpreter's threads, the GC off meanwhile
        (see the twin for the contract).

        Where the twin takes ``sys._current_frames()``, this one walks the thread
        states with the GIL held (``PyInterpreterState_ThreadHead`` and
        ``PyThreadState_Next``, public C-API) and takes the frame of just the
        threads it samples: idle threads cost a pointer and a lookup, not a frame
        object. ``sys._current_frames()`` is taken only for the caller's rarer
        paths (threads to register, too many threads).
        """
        cdef int enabled = PyGC_Disable()
        cdef int taken
        cdef Py_ssize_t count = 0
        cdef PyThreadState* tstate
        try:
            if self.stopping:
                return 0
            tstate = PyInterpreterState_ThreadHead(PyInterpreterState_Get())
            while tstate != NULL:
                count += 1
                tstate = PyThreadState_Next(tstate)
            if (self._active is None or count - (1 if skip else 0) > self._max_threads
                    or self._active != self._active_seen or not ember_thread_ids_available()):
                self._pending = self._frames_except(skip)
                return -1
            taken = self._collect_states(now_ns, cycle_ns, self._cpu_mode, skip)
            if self.missing or self.gone:
                self._pending = self._frames_except(skip)
            return taken
        finally:
            if enabled:
                PyGC_Enable()

    cdef dict _frames_except(self, skip):
        cdef dict frames = _current_frames()
        if skip:
            frames.pop(skip, None)
        return frames

    cdef int _collect_states(self, long long now_ns, long long cycle_ns, bint cpu_mode,
                             unsigned long long skip) except -1:
        """:meth:`_collect` over the thread states, frames taken only where sampled."""
        cdef int taken = 0
        cdef int missing = 0
        cdef _Thread thread
        cdef bytes mask = b""
        cdef const char* on_cpu = NULL
        cdef Py_ssize_t slots = 0
        cdef long long period = 0
        cdef unsigned long long ident
        cdef PyThreadState* tstate
        cdef PyFrameObject* frame
        if cpu_mode:
            if self.waker is None:
                raise ValueError("cpu mode needs a waker")
            mask = self.waker.on_cpu_mask()
            on_cpu = mask
            slots = len(mask)
            period = self.waker.period_ns
        tstate = PyInterpreterState_ThreadHead(PyInterpreterState_Get())
        while tstate != NULL:
            ident = ember_tstate_ident(tstate)
            if ident != skip:
                thread = self._threads.get(ident)
                if thread is None:
                    frame = PyThreadState_GetFrame(tstate)
                    if frame != NULL:  # as sys._current_frames(): threads running Python
                        missing += 1
                        Py_DECREF(<PyObject*>frame)
                elif thread.labels is not None and (
                        not cpu_mode or (0 <= thread.slot < slots and on_cpu[thread.slot])):
                    frame = PyThreadState_GetFrame(tstate)
                    if frame != NULL:
                        self._sample(frame, thread, now_ns, cycle_ns, cpu_mode, period)
                        Py_DECREF(<PyObject*>frame)
                        taken += 1
            tstate = PyThreadState_Next(tstate)
        self.missing = missing
        self.gone = self.waker.gone if cpu_mode else 0
        return taken

    def collect(self, dict frames, long long now_ns, long long cycle_ns, bint cpu_mode):
        """Sample each thread in ``frames``; return the number of samples taken."""
        return self._collect(frames, now_ns, cycle_ns, cpu_mode)

    cdef int _collect(self, dict frames, long long now_ns, long long cycle_ns,
                      bint cpu_mode) except -1:
        cdef int taken = 0
        cdef int missing = 0
        cdef int gone = 0
        cdef _Thread thread
        cdef long long period = 0
        cdef bytes mask = b""
        cdef const char* on_cpu = NULL
        cdef Py_ssize_t slots = 0
        if cpu_mode:
            if self.waker is None:
                raise ValueError("cpu mode needs a waker")
            mask = self.waker.on_cpu_mask()
            on_cpu = mask
            slots = len(mask)
            period = self.waker.period_ns
            gone = self.waker.gone
        for ident, frame in frames.items():
            thread = self._threads.get(ident)
            if thread is None:
                missing += 1
                continue
            if thread.labels is None:  # registered as never sampled (a sampler thread)
                continue
            if cpu_mode and not (0 <= thread.slot < slots and on_cpu[thread.slot]):
                continue
            self._sample(<PyFrameObject*>frame, thread, now_ns, cycle_ns, cpu_mode, period)
            taken += 1
        self.missing = missing
        self.gone = gone
        return taken

    cdef int _sample(self, PyFrameObject* frame, _Thread thread, long long now_ns,
                     long long cycle_ns, bint cpu_mode, long long period) except -1:
        """One sample of ``thread``, whose current frame is ``frame``."""
        cdef _Share share
        cdef long long wall = now_ns - thread.last_seen if thread.last_seen else cycle_ns
        thread.last_seen = now_ns
        cdef _Row row = self._row(frame, thread)
        row.samples += 1
        row.wall_ns += wall
        if cpu_mode:
            share = thread.last_share
            if share is None or share.row is not row:
                share = thread.shares.get(row)
                if share is None:
                    share = thread.shares[row] = _Share(row)
                thread.last_share = share
            share.period += period
        return 0

    cdef Py_ssize_t _walk(self, PyFrameObject* top, bint* deep) noexcept:
        """Fill the buffer leaf first; return the number of frames kept."""
        cdef PyFrameObject* f = top
        cdef PyFrameObject* back
        cdef PyCodeObject* code
        cdef Py_ssize_t depth = 0
        cdef Py_ssize_t limit = self.max_depth
        cdef int line
        Py_INCREF(<PyObject*>f)
        while f != NULL and depth < limit:
            code = PyFrame_GetCode(f)
            # The thread's interpreter frame keeps the code alive while we hold the GIL.
            Py_DECREF(<PyObject*>code)
            if self.lines:
                line = PyFrame_GetLineNumber(f)
                self._buf[2 * depth] = <uintptr_t>code
                self._buf[2 * depth + 1] = <uintptr_t>(line if line > 0 else 0)
            else:
                self._buf[depth] = <uintptr_t>code
            depth += 1
            back = PyFrame_GetBack(f)
            Py_DECREF(<PyObject*>f)
            f = back
        deep[0] = f != NULL
        if f != NULL:
            Py_DECREF(<PyObject*>f)
            depth -= 1
        return depth

    cdef _Row _row(self, PyFrameObject* top, _Thread thread):
        """The row to add this thread's sample to."""
        cdef bint deep = False
        cdef Py_ssize_t depth = self._walk(top, &deep)
        cdef Py_ssize_t n = depth * self._width
        cdef Py_ssize_t i
        cdef uint64_t h = 1469598103934665603ULL
        self._buf[n] = deep
        n += 1
        cdef Py_ssize_t nbytes = n * sizeof(uintptr_t)
        # The same stack as this thread's last sample: no hashing, no lookups.
        if (thread.generation == self._generation and thread.last_labels is thread.labels
                and thread.last_key is not None and len(thread.last_key) == nbytes
                and memcmp(<char*>thread.last_key, self._buf, nbytes) == 0):
            return thread.last_row
        for i in range(n):
            h = (h ^ <uint64_t>self._buf[i]) * 1099511628211ULL
        h ^= h >> 29
        cdef object stored
        cdef Py_ssize_t sid = -1
        cdef uint64_t probe = h
        while True:
            found = self._stack_index.get(<unsigned long long>probe)
            if found is None:
                break
            stored = self._stack_keys[<Py_ssize_t>found]
            if stored is not None and len(<bytes>stored) == nbytes and \
                    memcmp(PyBytes_AS_STRING(stored), self._buf, nbytes) == 0:
                sid = <Py_ssize_t>found
                break
            probe += 1
        if sid < 0:
            sid = self._new_stack_from_buffer(depth, deep, nbytes, probe)
        key = (sid, thread.labels)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row()
        if sid != self._truncated_sid:
            thread.generation = self._generation
            thread.last_key = <bytes>self._stack_keys[sid]
            thread.last_row = row
            thread.last_labels = thread.labels
        return row

    cdef Py_ssize_t _new_stack_from_buffer(self, Py_ssize_t depth, bint deep,
                                           Py_ssize_t nbytes, uint64_t probe) except -1:
        cdef Py_ssize_t i
        if len(self.stacks) >= self.max_stacks:
            self.truncated += 1
            if self._truncated_sid < 0:
                self._truncated_sid = self._new_stack((self._intern(TRUNCATED),), None)
            return self._truncated_sid
        cdef list ids = []
        for i in range(depth):
            if self.lines:
                ids.append(self._frame_of(self._buf[2 * i], <long>self._buf[2 * i + 1], True))
            else:
                ids.append(self._frame_of(self._buf[i], 0, False))
        if deep:
            ids.append(self._intern(DEEP))
        ids.reverse()
        sid = self._new_stack(tuple(ids), PyBytes_FromStringAndSize(<char*>self._buf, nbytes))
        self._stack_index[<unsigned long long>probe] = sid
        return sid

    cdef Py_ssize_t _new_stack(self, tuple stack, object key):
        self.stacks.append(stack)
        self._stack_keys.append(key)
        return len(self.stacks) - 1

    cdef Py_ssize_t _frame_of(self, uintptr_t address, long line, bint with_line) except -1:
        ckey = (address, line if with_line else None)
        fid = self._code_frames.get(ckey)
        if fid is not None:
            return <Py_ssize_t>fid
        code = <object><PyObject*>address
        self._codes.append(code)  # keeps the address unique while the key exists
        cdef Py_ssize_t new_id = self._intern(
            (code.co_qualname, code.co_filename, line if with_line else code.co_firstlineno))
        self._code_frames[ckey] = new_id
        return new_id

    cdef Py_ssize_t _intern(self, tuple frame) except -1:
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = self._frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return <Py_ssize_t>fid

    # -- windows ------------------------------------------------------------------
    cdef _settle(self, _Thread thread, long long window):
        """Give the thread's exact CPU of the window (and what it owed) to the rows
        it was sampled in, in proportion to their period weights."""
        cdef list shares = list(thread.shares.values())
        cdef list weights = [(<_Share>x).period for x in shares]
        cdef long long part
        cdef _Share share
        if sum(weights) > 0:
            for share, part in zip(shares, distribute(window + thread.owed, weights)):
                share.row.cpu_ns += part
            thread.owed = 0
        else:  # never sampled this window: the CPU waits one window for a sample
            self.unattributed += thread.owed
            thread.owed = window
        thread.shares = {}
        thread.last_share = None

    cdef dict _pending_cpu(self, list windows):
        """Per row, the CPU that settling the threads now would add (no change made)."""
        cdef dict extra = {}
        cdef _Thread thread
        cdef list shares, weights
        cdef long long window, part
        cdef _Share share
        for thread in self._threads.values():
            if thread.slot < 0 or not thread.shares:
                continue
            shares = list(thread.shares.values())
            weights = [(<_Share>x).period for x in shares]
            if sum(weights) <= 0:
                continue
            window = windows[thread.slot] if thread.slot < len(windows) else 0
            for share, part in zip(shares, distribute(window + thread.owed, weights)):
                extra[share.row] = extra.get(share.row, 0) + part
        return extra

    def _values(self, dict extra):
        cdef _Row row
        out = {}
        for key, row in self._rows.items():
            out[key] = [row.samples, row.cpu_ns + extra.get(row, 0), row.wall_ns]
        return out

    @property
    def values(self):
        """(stack id, labels) -> [samples, cpu_ns, wall_ns] collected so far (a copy),
        CPU calibrated as if the window were sealed now."""
        windows = self.waker.windows() if self.waker is not None else []
        return self._values(self._pending_cpu(windows))

    def snapshot(self):
        """Copies of the tables collected so far (CPU calibrated as of now)."""
        return (list(self.frames), list(self.stacks), self.values, self.truncated)

    def take(self):
        """The tables collected so far, each thread's CPU calibrated to what its
        clock measured in the window; the collector starts a new window."""
        cdef _Thread thread
        if self.waker is not None:
            windows = self.waker.take_windows()
            for thread in self._threads.values():
                if thread.slot >= 0:
                    self._settle(thread, windows[thread.slot] if thread.slot < len(windows)
                                 else 0)
        out = (self.frames, self.stacks, self._values({}), self.truncated)
        self._reset()
        return out
