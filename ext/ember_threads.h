/* What ember's waker asks the kernel about threads, without the GIL: CPU clocks,
 * the futex it sleeps on, and whether a thread was preempted by the waker's own
 * wake-up (/proc/self/task/TID/stat and .../sched, /proc/loadavg). Linux only;
 * plain C, no Python object is touched. */
#ifndef EMBER_THREADS_H
#define EMBER_THREADS_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/futex.h>

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long ember_clock_ns(clockid_t clock) {
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static clockid_t ember_thread_clock(long long native_id) {
    return (clockid_t)(((~native_id) << 3) | 6);
}

/* Sleep until `deadline` (CLOCK_MONOTONIC, ns) or until *word != 0. */
static int ember_sleep_until(int *word, long long deadline) {
    struct timespec ts;
    ts.tv_sec = deadline / 1000000000LL;
    ts.tv_nsec = deadline % 1000000000LL;
    while (!__atomic_load_n(word, __ATOMIC_ACQUIRE)) {
        long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0,
                          &ts, NULL, FUTEX_BITSET_MATCH_ANY);
        if (rc != 0 && errno == ETIMEDOUT) return 0;
    }
    return 1;
}
static void ember_wake_sleeper(int *word) {
    __atomic_store_n(word, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0);
}
static void ember_precise_timers(void) { prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); }
static long long ember_gettid(void) { return (long long)syscall(SYS_gettid); }

/* Whether a thread is runnable (state R) and last ran on the CPU the caller
   runs on now, from /proc/self/task/TID/stat kept open in *fd. */
static int ember_thread_waits_here(int *fd, long long tid) {
    char buf[1024];
    if (*fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%lld/stat", tid);
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0) return 0;
    }
    ssize_t n = pread(*fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');  /* the name may hold anything but ends here */
    if (p == NULL || p[1] != ' ' || p[2] != 'R') return 0;
    int field = 2;                /* p is at the end of field 2 (comm) */
    while (*p && field < 39) {    /* field 39: the CPU it last ran on */
        if (*p++ == ' ') field++;
    }
    return field == 39 && atoi(p) == sched_getcpu();
}

/* When a thread last stopped running (or was last accounted while running):
   se.exec_start of /proc/self/task/TID/sched, in the scheduler's clock (ns),
   the file kept open in *fd; -1 when it cannot be read. */
static long long ember_thread_exec_start(int *fd, long long tid) {
    char buf[4096];
    if (*fd < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%lld/sched", tid);
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0) return -1;
    }
    ssize_t n = pread(*fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, "se.exec_start");
    if (p == NULL || (p = strchr(p, ':')) == NULL) return -1;
    char *end;
    long long ms = strtoll(p + 1, &end, 10);  /* "  6198490.191479": ms, then ns */
    if (end == p + 1 || *end != '.') return -1;
    long long ns = 0;
    int digits = 0;
    for (p = end + 1; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
        ns = ns * 10 + (*p - '0');
    for (; digits < 6; digits++) ns *= 10;
    return ms * 1000000LL + ns;
}
/* Whether more tasks are runnable than there are CPUs (/proc/loadavg, field 4,
   kept open in *fd): only then did this thread's wake-up take a CPU from
   another task. 1 also when it cannot tell. */
static int ember_cpus_oversubscribed(int *fd, long cpus) {
    char buf[128];
    if (*fd < 0) *fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return 1;
    ssize_t n = pread(*fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 1;
    buf[n] = 0;
    char *p = buf;
    for (int field = 1; field < 4 && *p; p++) {
        if (*p == ' ') field++;
    }
    return *p == 0 || atol(p) > cpus;
}
static long ember_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}
static void ember_close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}
static long long ember_monotonic_ns(void) { return ember_clock_ns(CLOCK_MONOTONIC); }
static long long ember_own_cpu_ns(void) { return ember_clock_ns(CLOCK_THREAD_CPUTIME_ID); }
static long long ember_process_cpu_ns(void) {
    return ember_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

#endif
