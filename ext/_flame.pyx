# cython: language_level=3
"""Compiled twin of ``ember._flame_py``: folds stacks into a flamegraph layout tree.

Same inputs, outputs, rules and errors as the pure-Python twin (see its
docstring). Instead of sorting lists of Python ints, the stacks' sibling
positions are copied into one C array and an index is sorted with
``qsort`` (a stack that is a prefix of another sorts after it, ties by
input order); one pass over the sorted stacks then opens and merges nodes
in C arrays, and only the kept nodes become Python ints.
"""

from collections import namedtuple

from libc.stdlib cimport free, malloc, qsort

FlameTree = namedtuple("FlameTree", "frames depths starts totals selfs elided")
DiffTree = namedtuple(
    "DiffTree",
    "frames depths base_starts base_totals base_selfs head_starts head_totals head_selfs elided",
)

cdef long long _INT64_MAX = 9223372036854775807

# The array being sorted; qsort has no context argument (callers hold the GIL).
cdef int* _keys = NULL
cdef Py_ssize_t* _offsets = NULL
cdef int* _lengths = NULL


cdef int _compare(const void* a, const void* b) noexcept nogil:
    cdef Py_ssize_t ia = (<const Py_ssize_t*>a)[0]
    cdef Py_ssize_t ib = (<const Py_ssize_t*>b)[0]
    cdef int* pa = _keys + _offsets[ia]
    cdef int* pb = _keys + _offsets[ib]
    cdef int la = _lengths[ia]
    cdef int lb = _lengths[ib]
    cdef int n = la if la < lb else lb
    cdef int k
    for k in range(n):
        if pa[k] != pb[k]:
            return -1 if pa[k] < pb[k] else 1
    if la != lb:
        return 1 if la < lb else -1  # the prefix (the parent's self) sorts after
    return -1 if ia < ib else (1 if ia > ib else 0)


def _positions(rank):
    order = sorted(range(len(rank)), key=lambda f: (rank[f], f))
    pos = [0] * len(order)
    for p, f in enumerate(order):
        pos[f] = p
    return order, pos


cdef tuple _fold(stacks, list channels, rank, bint inverted, list mins):
    cdef Py_ssize_t nch = len(channels)
    cdef Py_ssize_t n = len(stacks)
    cdef Py_ssize_t i, j, c, d, dd, m, length, total_len, kept, node, n_nodes, leaf
    cdef Py_ssize_t n_frames, max_len
    cdef long long w
    cdef tuple stack
    cdef list order, pos
    cdef int* keys = NULL
    cdef Py_ssize_t* offsets = NULL
    cdef int* lengths = NULL
    cdef Py_ssize_t* index = NULL
    cdef long long* weights = NULL
    cdef int* node_frame = NULL
    cdef int* node_depth = NULL
    cdef long long* node_start = NULL
    cdef long long* node_total = NULL
    cdef long long* node_self = NULL
    cdef int* path_key = NULL
    cdef Py_ssize_t* path_node = NULL
    cdef long long x[2]
    cdef double mn[2]
    cdef int* pk
    cdef int open_depth
    cdef Py_ssize_t fid
    cdef int* pos_c = NULL
    cdef bint any_nonzero, keep
    for ch in channels:
        if len(ch) != n:
            raise ValueError("one weight per stack is needed")
    order, pos = _positions(rank)
    n_frames = len(order)
    for c in range(nch):
        mn[c] = mins[c]
        x[c] = 0

    tuples = [s if type(s) is tuple else tuple(s) for s in stacks]
    total_len = 0
    for s in tuples:
        total_len += len(<tuple>s)
    try:
        pos_c = <int*>malloc((n_frames + 1) * sizeof(int))
        if not pos_c:
            raise MemoryError()
        for i in range(n_frames):
            pos_c[i] = <int>pos[i]
        keys = <int*>malloc((total_len + 1) * sizeof(int))
        offsets = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
        lengths = <int*>malloc((n + 1) * sizeof(int))
        index = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
        weights = <long long*>malloc((n * nch + 1) * sizeof(long long))
        if not (keys and offsets and lengths and index and weights):
            raise MemoryError()
        kept = 0
        total_len = 0
        max_len = 0
        for i in range(n):
            any_nonzero = False
            for c in range(nch):
                value = int(channels[c][i])
                if value < 0:
                    raise ValueError(f"negative weight {value} for stack {i}")
                if value > _INT64_MAX:
                    raise OverflowError(f"weight {value} of stack {i} does not fit in 64 bits")
                w = value
                weights[kept * nch + c] = w
                if w != 0:
                    any_nonzero = True
            stack = <tuple>tuples[i]
            length = len(stack)
            pk = keys + total_len
            for j in range(length):
                fid = stack[length - 1 - j] if inverted else stack[j]
                if fid < 0 or fid >= n_frames:
                    raise ValueError(f"frame id {fid} has no rank")
                pk[j] = pos_c[fid]
            if not any_nonzero:
                continue
            offsets[kept] = total_len
            lengths[kept] = <int>length
            index[kept] = kept
            total_len += length
            if length > max_len:
                max_len = length
            kept += 1

        global _keys, _offsets, _lengths
        _keys = keys
        _offsets = offsets
        _lengths = lengths
        qsort(index, kept, sizeof(Py_ssize_t), _compare)
        _keys = NULL
        _offsets = NULL
        _lengths = NULL

        node_frame = <int*>malloc((total_len + 1) * sizeof(int))
        node_depth = <int*>malloc((total_len + 1) * sizeof(int))
        node_start = <long long*>malloc((total_len + 1) * nch * sizeof(long long))
        node_total = <long long*>malloc((total_len + 1) * nch * sizeof(long long))
        node_self = <long long*>malloc((total_len + 1) * nch * sizeof(long long))
        path_key = <int*>malloc((max_len + 1) * sizeof(int))
        path_node = <Py_ssize_t*>malloc((max_len + 1) * sizeof(Py_ssize_t))
        if not (node_frame and node_depth and node_start and node_total and node_self
                and path_key and path_node):
            raise MemoryError()
        node_frame[0] = -1
        node_depth[0] = 0
        for c in range(nch):
            node_start[c] = 0
            node_total[c] = 0
            node_self[c] = 0
        n_nodes = 1
        open_depth = 0
        for j in range(kept):
            i = index[j]
            pk = keys + offsets[i]
            length = lengths[i]
            m = length if length < open_depth else open_depth
            d = 0
            while d < m and path_key[d] == pk[d]:
                d += 1
            for dd in range(d, length):
                node = n_nodes
                n_nodes += 1
                node_frame[node] = pk[dd]
                node_depth[node] = <int>(dd + 1)
                for c in range(nch):
                    node_start[node * nch + c] = x[c]
                    node_total[node * nch + c] = 0
                    node_self[node * nch + c] = 0
                path_key[dd] = pk[dd]
                path_node[dd] = node
            open_depth = <int>length
            leaf = path_node[length - 1] if length else 0
            for c in range(nch):
                w = weights[i * nch + c]
                for dd in range(length):
                    node_total[path_node[dd] * nch + c] += w
                node_self[leaf * nch + c] += w
                x[c] += w
        for c in range(nch):
            node_total[c] = x[c]

        frames = [-1]
        depths = [0]
        starts = [[0] for c in range(nch)]
        totals = [[x[c]] for c in range(nch)]
        selfs = [[node_self[c]] for c in range(nch)]
        for node in range(1, n_nodes):
            keep = False
            for c in range(nch):
                if node_total[node * nch + c] >= mn[c]:
                    keep = True
            if not keep:
                continue
            frames.append(order[node_frame[node]])
            depths.append(node_depth[node])
            for c in range(nch):
                (<list>starts[c]).append(node_start[node * nch + c])
                (<list>totals[c]).append(node_total[node * nch + c])
                (<list>selfs[c]).append(node_self[node * nch + c])
        return frames, depths, starts, totals, selfs, n_nodes - len(frames)
    finally:
        free(pos_c)
        free(keys)
        free(offsets)
        free(lengths)
        free(index)
        free(weights)
        free(node_frame)
        free(node_depth)
        free(node_start)
        free(node_total)
        free(node_self)
        free(path_key)
        free(path_node)


def fold(stacks, weights, rank, inverted=False, min_total=0):
    """The layout tree of one profile (see ``ember._flame_py``)."""
    frames, depths, starts, totals, selfs, elided = _fold(
        stacks, [weights], rank, inverted, [min_total])
    return FlameTree(frames, depths, starts[0], totals[0], selfs[0], elided)


def fold_diff(stacks, base, head, rank, inverted=False, min_base=0, min_head=0):
    """The merged layout tree of two profiles' weights on the same stacks."""
    frames, depths, starts, totals, selfs, elided = _fold(
        stacks, [base, head], rank, inverted, [min_base, min_head])
    return DiffTree(frames, depths, starts[0], totals[0], selfs[0],
                    starts[1], totals[1], selfs[1], elided)
