# cython: language_level=3
"""Compiled twin of ``ember._wake_py``: the instants at which the sampler samples.

Same interface and same decisions as the pure-Python twin (its docstring has
the shared rules). What only this twin can do, because it runs in C without
the GIL:

- it waits without the GIL, on a futex with an absolute ``CLOCK_MONOTONIC``
  deadline (``stop()`` wakes it at once);
- at the wake instant it reads the threads' CPU clocks twice, back to back:
  a thread whose clock moved between the two reads is on a CPU at that
  instant, whatever it runs (Python, or C that released the GIL); one whose
  clock moved since the last instant but stood still between the reads may
  have been preempted by this very wake-up: when more tasks are runnable than
  there are CPUs (``/proc/loadavg``), the one that is runnable on the CPU the
  waker now runs on (``/proc/self/task/TID/stat``) and that the scheduler took
  off it just before the waker got it (their ``se.exec_start`` in ``.../sched``
  less than ``PREEMPTED_NS`` apart) counts as on CPU;
- an instant at which no thread of the application is on a CPU ends there,
  without the GIL: an idle service pays only the wake-up;
- on CPython 3.11 it lowers the GIL switch interval to ``switch_us`` while it
  takes the GIL, so the thread that holds it is asked to hand it over after
  ``switch_us`` instead of 5 ms, and the sampler sees the stack the thread
  was running at the instant, not the I/O call where it would next have let
  go. The interval is restored the moment the GIL is taken (a value the
  application set meanwhile is kept). ``_PyEval_SetSwitchInterval`` is a
  plain store on 3.11 that needs no thread state; on 3.12+ it reads the
  calling thread's state, which a thread without the GIL does not have, so
  there the GIL is taken as any thread takes it (``fast_gil`` is False).
  The version-gated part is ``ember_cpython.h``.

  Where several threads wait for the GIL, they are ahead of the sampler in
  the GIL's queue, and with the lowered interval each gets the GIL for only
  ``switch_us`` before the sampler's next request moves it on: a hand-over
  per waiting thread, each waking the sampler and that thread (and the
  sampler's own timed waits put it back at the end of the queue, again and
  again). The waker counts the threads that had the GIL while it waited
  (``queued``) and, for each one beyond two on a moving average, lowers the
  interval four times less (20, 80, 320 us, at most 1.28 ms): a short queue
  keeps the 20 us instant; a long one, of threads that hold the GIL until
  asked, is sampled a little later into the same running code, with far
  fewer hand-overs.
"""

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, realloc
from posix.time cimport timespec

cdef extern from "ember_cpython.h":
    int ember_fast_gil_available() noexcept nogil
    unsigned long ember_switch_get() noexcept nogil
    void ember_switch_lower(unsigned long fast) noexcept nogil
    void ember_switch_restore() noexcept nogil
    void ember_gil_after_fork() noexcept nogil

cdef extern from "ember_threads.h":
    ctypedef int clockid_t
    long long ember_clock_ns(clockid_t clock) noexcept nogil
    clockid_t ember_thread_clock(long long native_id) noexcept nogil
    int ember_sleep_until(int* word, long long deadline) noexcept nogil
    void ember_wake_sleeper(int* word) noexcept nogil
    void ember_precise_timers() noexcept nogil
    long long ember_gettid() noexcept nogil
    long long ember_monotonic_ns() noexcept nogil
    long long ember_thread_exec_start(int* fd, long long tid) noexcept nogil
    int ember_thread_waits_here(int* fd, long long tid) noexcept nogil
    void ember_close_fd(int* fd) noexcept nogil
    int ember_cpus_oversubscribed(int* fd, long cpus) noexcept nogil
    long ember_cpu_count() noexcept nogil
    long long ember_own_cpu_ns() noexcept nogil
    long long ember_process_cpu_ns() noexcept nogil

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t* mutex, void* attr)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)

cdef enum:
    _WAKE = 1
    _DUE = 2
    _STOPPED = 3
    _QUIET_NS = 2000
    _SWITCH_US = 20

cdef long long _PREEMPTED_NS = 100_000
cdef unsigned long _QUEUED_MAX_US = 1280

WAKE = _WAKE
"""``wait()``: an instant with a thread on CPU (cpu mode) or any instant (wall
mode); the caller holds the GIL and samples."""
DUE = _DUE
"""``wait()``: ``until_ns`` came, or threads ember does not know used CPU:
time for the caller's housekeeping (seal a window, look for new threads)."""
STOPPED = _STOPPED
"""``wait()``: ``stop()`` was called."""
QUIET_NS = _QUIET_NS
"""CPU (ns) the process may use beside the sampler between two instants and
still count as quiet: nobody's clock is read then."""
SWITCH_US = _SWITCH_US
"""The switch interval (µs) while the sampler takes the GIL."""
PREEMPTED_NS = _PREEMPTED_NS
"""A thread whose clock stood still at the instant, but that the scheduler took
off the CPU at most this long (ns) before the waker ran, was preempted by it."""


ctypedef struct Slot:
    clockid_t clock
    long long tid
    int stat_fd         # /proc/self/task/TID/stat and .../sched, opened when first
    int sched_fd        # needed; -1: not open
    long long look      # the thread's CPU at the last look, -1 when never read
    long long window    # CPU since the windows were last taken
    long long first     # this instant's first reading
    char used
    char sampled        # 0: ember's own threads: counted, never sampled
    char on_cpu
    char active         # its clock moved between the last two instants


def fast_gil_available():
    """Whether this build can lower the switch interval without the GIL (3.11)."""
    return bool(ember_fast_gil_available())


def switch_interval_us():
    """The interpreter's switch interval in µs as ember reads it (0 where it cannot)."""
    return ember_switch_get()


def lower_switch_interval(unsigned long us):
    """Lower the switch interval as a waker does while it takes the GIL; each call
    needs one ``restore_switch_interval()`` (tests use them; waits pair them)."""
    ember_switch_lower(us)


def restore_switch_interval():
    """Undo one ``lower_switch_interval()``; the last one restores the interval
    (unless the application set another meanwhile)."""
    ember_switch_restore()


def after_fork_in_child():
    """Reset the process-wide switch-interval state in a fork child."""
    ember_gil_after_fork()



cdef inline uint64_t _splitmix(uint64_t* state) noexcept nogil:
    state[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef class Waker:
    """Waits for each sampling instant and observes which threads are on CPU then."""

    cdef Slot* _slots
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _count       # slots in use or freed below the highest used one
    cdef pthread_mutex_t _mutex
    cdef int _stop_word
    cdef uint64_t _rng
    cdef readonly bint fast_gil
    cdef readonly unsigned long switch_us
    cdef public long long deadline
    cdef readonly long long wake_ns
    cdef readonly long long period_ns
    cdef readonly long long wakes
    cdef readonly long long idle_wakes
    cdef readonly int on_cpu
    cdef readonly int gone
    cdef readonly long long unknown_ns
    cdef readonly long long gil_wait_ns
    cdef readonly long long gil_cpu_ns
    cdef readonly int queued     # threads that had the GIL while the last take waited
    cdef double _queue           # ... moving average
    cdef long long _last_wake
    cdef long long _proc_last
    cdef long long _own_last
    cdef long long _timers_tid
    cdef int _own_fd             # this thread's /proc/.../sched, for _preempted()
    cdef int _loadavg_fd
    cdef long _cpus
    cdef long long _own_tid
    cdef long long _own_start    # its se.exec_start at this instant, -1: not read yet

    def __cinit__(self, uint64_t seed=0, bint fast_gil=True, unsigned long switch_us=_SWITCH_US):
        self._slots = NULL
        self._capacity = 0
        self._count = 0
        pthread_mutex_init(&self._mutex, NULL)
        self._stop_word = 0
        self._rng = seed
        self.fast_gil = fast_gil and ember_fast_gil_available() and switch_us > 0
        self.switch_us = switch_us
        self.deadline = 0
        self.wake_ns = 0
        self.period_ns = 0
        self.wakes = 0
        self.idle_wakes = 0
        self.on_cpu = 0
        self.gone = 0
        self.unknown_ns = 0
        self.gil_wait_ns = 0
        self.gil_cpu_ns = 0
        self.queued = 0
        self._queue = 0
        self._last_wake = 0
        self._proc_last = -1
        self._own_last = -1
        self._timers_tid = 0
        self._own_fd = -1
        self._loadavg_fd = -1
        self._cpus = ember_cpu_count()
        self._own_tid = 0
        self._own_start = -1

    def __dealloc__(self):
        cdef Py_ssize_t i
        ember_close_fd(&self._own_fd)
        ember_close_fd(&self._loadavg_fd)
        for i in range(self._count):
            ember_close_fd(&self._slots[i].stat_fd)
            ember_close_fd(&self._slots[i].sched_fd)
        free(self._slots)

    # -- threads ------------------------------------------------------------------
    def add(self, long long native_id, bint sampled=True):
        """Watch a thread's CPU clock from now on; returns its slot."""
        cdef Py_ssize_t slot = 0
        cdef Slot* grown
        pthread_mutex_lock(&self._mutex)
        try:
            while slot < self._count and self._slots[slot].used:
                slot += 1
            if slot == self._capacity:
                grown = <Slot*>realloc(self._slots, (2 * self._capacity + 8) * sizeof(Slot))
                if grown == NULL:
                    raise MemoryError()
                self._slots = grown
                self._capacity = 2 * self._capacity + 8
            if slot == self._count:
                self._count += 1
            self._slots[slot].clock = ember_thread_clock(native_id)
            self._slots[slot].tid = native_id
            self._slots[slot].stat_fd = -1
            self._slots[slot].sched_fd = -1
            self._slots[slot].look = ember_clock_ns(self._slots[slot].clock)
            self._slots[slot].window = 0
            self._slots[slot].first = -1
            self._slots[slot].used = 1
            self._slots[slot].sampled = sampled
            self._slots[slot].on_cpu = 0
            self._slots[slot].active = 0
        finally:
            pthread_mutex_unlock(&self._mutex)
        return slot

    def remove(self, Py_ssize_t slot):
        """Stop watching a slot; returns the CPU it used since the windows were taken."""
        cdef long long window = 0
        pthread_mutex_lock(&self._mutex)
        if 0 <= slot < self._count and self._slots[slot].used:
            window = self._slots[slot].window
            ember_close_fd(&self._slots[slot].stat_fd)
            ember_close_fd(&self._slots[slot].sched_fd)
            self._slots[slot].used = 0
            self._slots[slot].on_cpu = 0
            while self._count > 0 and not self._slots[self._count - 1].used:
                self._count -= 1
        pthread_mutex_unlock(&self._mutex)
        return window

    def windows(self):
        """Per slot, the CPU (ns) used since the windows were last taken (0: unused)."""
        cdef Py_ssize_t i
        pthread_mutex_lock(&self._mutex)
        out = [self._slots[i].window if self._slots[i].used else 0 for i in range(self._count)]
        pthread_mutex_unlock(&self._mutex)
        return out

    def take_windows(self):
        """Like windows(), and start counting afresh."""
        cdef Py_ssize_t i
        pthread_mutex_lock(&self._mutex)
        out = [self._slots[i].window if self._slots[i].used else 0 for i in range(self._count)]
        for i in range(self._count):
            self._slots[i].window = 0
        pthread_mutex_unlock(&self._mutex)
        return out

    def on_cpu_mask(self):
        """One byte per slot: 1 if the thread was on CPU at the last instant."""
        cdef Py_ssize_t i
        cdef bytearray mask = bytearray(self._count)
        for i in range(self._count):
            if self._slots[i].on_cpu:
                mask[i] = 1
        return bytes(mask)

    # -- instants -----------------------------------------------------------------
    def begin(self, long long now_ns, long long interval_ns):
        """Start at ``now_ns``: periods count from there, the first instant is
        one randomised interval later."""
        self._last_wake = now_ns
        self.deadline = now_ns + self._step(interval_ns)
        self._proc_last = -1
        self._own_last = -1

    def uniform(self):
        """The next factor in [0.5, 1.5) of the randomised interval."""
        return 0.5 + (_splitmix(&self._rng) >> 11) * (1.0 / 9007199254740992.0)

    cdef inline long long _step(self, long long interval_ns) noexcept nogil:
        return <long long>(interval_ns * (0.5 + (_splitmix(&self._rng) >> 11)
                                          * (1.0 / 9007199254740992.0)))

    def advance(self, long long interval_ns, long long now_ns):
        """Move the deadline one randomised interval on (a fresh start when far
        behind ``now_ns``); returns it."""
        self._advance(interval_ns, now_ns)
        return self.deadline

    cdef inline void _advance(self, long long interval_ns, long long now_ns) noexcept nogil:
        self.deadline += self._step(interval_ns)
        if self.deadline < now_ns - interval_ns:  # far behind (a long pause): no burst
            self.deadline = now_ns

    def observe(self, long long now_ns, first=None, second=None, long long other_ns=-1,
                bint cpu_mode=True, runnable=None):
        """Apply one instant's readings (the clocks are read by the caller).

        ``first``/``second``: per-slot readings of the two passes (None: not
        read, i.e. nothing moved; ``second`` None: one pass, a thread is on
        CPU if its clock moved since the last look). ``runnable``: per slot,
        whether a thread whose clock stood still between the passes was
        runnable (preempted), which counts as on CPU. ``other_ns``: CPU the
        process used beside the sampler since the last instant (-1: unknown).
        Returns the number of threads on CPU.
        """
        cdef Py_ssize_t i
        pthread_mutex_lock(&self._mutex)
        try:
            if first is not None:
                for i in range(self._count):
                    if self._slots[i].used:
                        self._slots[i].first = first[i]
            second_given = second is not None
            if second_given:
                for i in range(self._count):
                    if self._slots[i].used and self._slots[i].first > self._slots[i].look >= 0:
                        self._slots[i].on_cpu = second[i] > self._slots[i].first
                        if self._slots[i].on_cpu:
                            self._slots[i].first = second[i]
                        elif runnable is not None and self._slots[i].sampled:
                            self._slots[i].on_cpu = bool(runnable[i])
            self._apply(now_ns, first is not None, second_given, other_ns, cpu_mode)
        finally:
            pthread_mutex_unlock(&self._mutex)
        return self.on_cpu

    def observe_now(self, long long now_ns, bint cpu_mode=True):
        """Read every clock now (one pass; the caller holds the GIL) and observe."""
        pthread_mutex_lock(&self._mutex)
        self._look(now_ns, cpu_mode, False)
        pthread_mutex_unlock(&self._mutex)
        return self.on_cpu

    cdef void _look(self, long long now_ns, bint cpu_mode, bint instant) noexcept nogil:
        """Read the clocks of one instant and apply them (mutex held)."""
        cdef long long own, proc, other = -1
        cdef Py_ssize_t i
        cdef bint read = True
        self._own_start = -1
        if cpu_mode:
            own = ember_own_cpu_ns()
            proc = ember_process_cpu_ns()
            if self._proc_last >= 0 and own >= 0 and proc >= 0:
                other = (proc - self._proc_last) - (own - self._own_last)
            self._proc_last = proc
            self._own_last = own
            read = not (0 <= other < _QUIET_NS)
            if read:
                for i in range(self._count):
                    if self._slots[i].used:
                        self._slots[i].first = ember_clock_ns(self._slots[i].clock)
                if instant:
                    self._pass_two()
        self._apply(now_ns, read and cpu_mode, instant, other, cpu_mode)

    cdef void _pass_two(self) noexcept nogil:
        """The second reading of the threads that used CPU since the last look:
        moved again, they are on CPU; still, one of them may have been preempted
        by this very wake-up (only when more tasks are runnable than there are
        CPUs; looked for among the two that used the most CPU, the likeliest)."""
        cdef Py_ssize_t i, best = -1, second = -1
        cdef long long reading, used, best_used = -1, second_used = -1
        for i in range(self._count):
            if not (self._slots[i].used and self._slots[i].first > self._slots[i].look >= 0):
                continue
            reading = ember_clock_ns(self._slots[i].clock)
            self._slots[i].on_cpu = reading > self._slots[i].first
            if self._slots[i].on_cpu:
                self._slots[i].first = reading
            elif self._slots[i].sampled:
                used = self._slots[i].first - self._slots[i].look
                if used > best_used:
                    second, second_used, best, best_used = best, best_used, i, used
                elif used > second_used:
                    second, second_used = i, used
        if best < 0 or not ember_cpus_oversubscribed(&self._loadavg_fd, self._cpus):
            return
        if self._preempted(best):
            self._slots[best].on_cpu = 1
        elif second >= 0 and self._preempted(second):
            self._slots[second].on_cpu = 1

    cdef bint _preempted(self, Py_ssize_t i) noexcept nogil:
        """Whether slot ``i``'s thread is runnable on the CPU this thread runs on
        and stopped running just before this thread started (within
        PREEMPTED_NS, by the scheduler's accounting): this wake-up preempted it."""
        cdef long long stopped, tid
        if not ember_thread_waits_here(&self._slots[i].stat_fd, self._slots[i].tid):
            return False
        stopped = ember_thread_exec_start(&self._slots[i].sched_fd, self._slots[i].tid)
        if stopped < 0:
            return False
        if self._own_start < 0:  # once per instant: this thread's own accounting time
            tid = ember_gettid()
            if tid != self._own_tid:
                ember_close_fd(&self._own_fd)
                self._own_tid = tid
            self._own_start = ember_thread_exec_start(&self._own_fd, tid)
            if self._own_start < 0:
                return False
        return 0 <= self._own_start - stopped < _PREEMPTED_NS

    cdef void _apply(self, long long now_ns, bint have_first, bint instant, long long other_ns,
                     bint cpu_mode) noexcept nogil:
        """The decisions of one instant, shared by every way of reading it."""
        cdef Py_ssize_t i
        cdef long long reading, known = 0
        cdef int on = 0
        cdef int gone = 0
        self.wakes += 1
        self.period_ns = now_ns - self._last_wake if self._last_wake else 0
        self._last_wake = now_ns
        self.wake_ns = now_ns
        for i in range(self._count):
            if not self._slots[i].used:
                continue
            if not cpu_mode or not have_first:
                self._slots[i].on_cpu = 0
                continue
            reading = self._slots[i].first
            if reading < 0:                      # the thread is gone
                self._slots[i].on_cpu = 0
                gone += 1
                continue
            if self._slots[i].look < 0:          # first reading: a baseline only
                self._slots[i].look = reading
                self._slots[i].on_cpu = 0
                continue
            self._slots[i].active = reading > self._slots[i].look
            if reading > self._slots[i].look:
                known += reading - self._slots[i].look
                self._slots[i].window += reading - self._slots[i].look
                self._slots[i].look = reading
                if not instant:
                    self._slots[i].on_cpu = 1
            else:
                self._slots[i].on_cpu = 0
            if not self._slots[i].sampled:
                self._slots[i].on_cpu = 0
            elif self._slots[i].on_cpu:
                on += 1
        self.on_cpu = on
        self.gone = gone
        self.unknown_ns = other_ns - known if other_ns >= 0 and have_first else 0

    def wait(self, long long interval_ns, long long until_ns, bint cpu_mode=True,
             long long unknown_limit_ns=0):
        """Sleep to the next instant and observe it; see WAKE, DUE and STOPPED.

        Instants without a thread on CPU (cpu mode) end without the GIL and are
        counted in ``idle_wakes``. ``unknown_limit_ns`` > 0: return _DUE when
        threads ember does not watch used more CPU than that since an instant.
        """
        cdef int code
        cdef long long tid = ember_gettid()
        cdef long long asked = 0, asked_cpu = 0
        cdef bint lower = False
        if self._timers_tid != tid:   # the take_gil wait is short: no 50 us timer slack
            ember_precise_timers()
            self._timers_tid = tid
        with nogil:
            code = self._wait(interval_ns, until_ns, cpu_mode, unknown_limit_ns)
            asked = ember_monotonic_ns()
            asked_cpu = ember_own_cpu_ns()
            lower = code == _WAKE and self.fast_gil
            if lower:
                ember_switch_lower(self._lowered_us())
        if lower:
            ember_switch_restore()
        self.gil_wait_ns = ember_monotonic_ns() - asked
        self.gil_cpu_ns = ember_own_cpu_ns() - asked_cpu
        if lower:
            self.queued = self._count_queued()
            self._queue += 0.25 * (self.queued - self._queue)
        return code

    cdef unsigned long _lowered_us(self) noexcept nogil:
        """The switch interval while taking the GIL: ``switch_us``, four times
        longer per thread queueing for the GIL beyond two (a moving average), at
        most QUEUED_MAX_US. A thread that queues hands the GIL on after each
        lowered interval; with a long queue the sampler would otherwise move the
        GIL through it every 20 us, again and again, before its own turn."""
        cdef unsigned long us = self.switch_us
        cdef double queue = self._queue
        while queue >= 3.0 and us < _QUEUED_MAX_US:
            us *= 4
            queue -= 1.0
        return us if us < _QUEUED_MAX_US else _QUEUED_MAX_US

    cdef int _count_queued(self) noexcept:
        """Threads that ran while the sampler waited for the GIL (active before the
        instant, not on CPU at it, more than ``switch_us`` of CPU since): the
        queue for the GIL it waited behind."""
        cdef Py_ssize_t i
        cdef int count = 0
        pthread_mutex_lock(&self._mutex)
        for i in range(self._count):
            if (self._slots[i].used and self._slots[i].active and not self._slots[i].on_cpu
                    and ember_clock_ns(self._slots[i].clock)
                    > self._slots[i].look + <long long>self.switch_us * 1000):
                count += 1
        pthread_mutex_unlock(&self._mutex)
        return count

    cdef int _wait(self, long long interval_ns, long long until_ns, bint cpu_mode,
                   long long unknown_limit_ns) noexcept nogil:
        cdef long long now, target
        while True:
            now = ember_monotonic_ns()
            if self.deadline < now - interval_ns:
                self.deadline = now
            target = self.deadline if self.deadline < until_ns else until_ns
            if ember_sleep_until(&self._stop_word, target):
                return _STOPPED
            if target < self.deadline:
                return _DUE
            now = ember_monotonic_ns()
            pthread_mutex_lock(&self._mutex)
            self._look(now, cpu_mode, True)
            pthread_mutex_unlock(&self._mutex)
            self._advance(interval_ns, now)
            if not cpu_mode or self.on_cpu > 0:
                return _WAKE
            if unknown_limit_ns > 0 and self.unknown_ns > unknown_limit_ns:
                return _DUE
            self.idle_wakes += 1

    def stop(self):
        """Wake a waiting ``wait()`` now; every later one returns STOPPED."""
        ember_wake_sleeper(&self._stop_word)

    @property
    def stopped(self):
        return self._stop_word != 0

