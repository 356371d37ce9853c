/* ember's version-gated uses of CPython internals, all in this one place: the
 * GIL switch interval, and the thread a thread state belongs to.
 *
 * While the sampler takes the GIL it lowers the switch interval, so the thread
 * holding the GIL is asked to hand it over after `fast` microseconds instead of
 * 5 ms. _PyEval_SetSwitchInterval / _PyEval_GetSwitchInterval are exported on
 * CPython 3.11 and are a plain store / load of a process-wide field that needs
 * no thread state (the sampler calls them without the GIL). On 3.12 they read
 * the calling thread's interpreter state, which a thread without the GIL does
 * not have, and 3.13 no longer exports them: there EMBER_FAST_GIL is 0, every
 * function below does nothing, and the sampler takes the GIL as any thread.
 *
 * Several samplers may take the GIL at once: the first lowers the interval,
 * the last to get the GIL restores it, unless the application set another one
 * meanwhile (then the application's value stays).
 */
#ifndef EMBER_CPYTHON_H
#define EMBER_CPYTHON_H

#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/futex.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_GIL_DISABLED)
#  define EMBER_FAST_GIL 1
#else
#  define EMBER_FAST_GIL 0
#endif

static inline int ember_fast_gil_available(void) { return EMBER_FAST_GIL; }

static inline unsigned long ember_switch_get(void) {
#if EMBER_FAST_GIL
    return _PyEval_GetSwitchInterval();
#else
    return 0;
#endif
}

static inline void ember_switch_set(unsigned long us) {
#if EMBER_FAST_GIL
    _PyEval_SetSwitchInterval(us);
#else
    (void)us;
#endif
}

static pthread_mutex_t ember_switch_lock __attribute__((unused)) = PTHREAD_MUTEX_INITIALIZER;
static int ember_switch_holders __attribute__((unused)) = 0;
static int ember_switch_lowered __attribute__((unused)) = 0;
static unsigned long ember_switch_saved __attribute__((unused)) = 0;
static unsigned long ember_switch_fast __attribute__((unused)) = 0;

static inline void ember_switch_lower(unsigned long fast) {
    pthread_mutex_lock(&ember_switch_lock);
    if (ember_switch_holders++ == 0) {
        unsigned long current = ember_switch_get();
        ember_switch_lowered = current > fast;
        if (ember_switch_lowered) {
            ember_switch_saved = current;
            ember_switch_fast = fast;
            ember_switch_set(fast);
        }
    }
    pthread_mutex_unlock(&ember_switch_lock);
}

static inline void ember_switch_restore(void) {
    pthread_mutex_lock(&ember_switch_lock);
    if (ember_switch_holders > 0 && --ember_switch_holders == 0 && ember_switch_lowered) {
        if (ember_switch_get() == ember_switch_fast)  /* else the application set one */
            ember_switch_set(ember_switch_saved);
        ember_switch_lowered = 0;
    }
    pthread_mutex_unlock(&ember_switch_lock);
}

/* The thread a thread state belongs to (threading.get_ident() of it): the
   thread_id field of CPython's thread state (Include/cpython/pystate.h, read
   with the GIL held, compiled against the running version's headers); 0 where
   ember does not know the field (the caller then takes sys._current_frames()). */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030F0000
#  define EMBER_THREAD_IDS 1
static inline unsigned long ember_tstate_ident(PyThreadState *tstate) { return tstate->thread_id; }
#else
#  define EMBER_THREAD_IDS 0
static inline unsigned long ember_tstate_ident(PyThreadState *tstate) { (void)tstate; return 0; }
#endif
static inline int ember_thread_ids_available(void) { return EMBER_THREAD_IDS; }

/* In a fork child: no sampler thread; the forking thread may have copied a
   lowered interval, or the lock held by a thread the child lacks. */
static inline void ember_gil_after_fork(void) {
    pthread_mutex_init(&ember_switch_lock, NULL);
    if (ember_switch_lowered && ember_switch_get() == ember_switch_fast)
        ember_switch_set(ember_switch_saved);
    ember_switch_holders = 0;
    ember_switch_lowered = 0;
}

#endif
