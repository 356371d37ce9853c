"""Comparing and combining profiles: one function across versions of the code
(moved lines, lambdas) and across recorders (relative and absolute files)."""

from __future__ import annotations

from ember import Frame, Profile
from ember.cli.command import combine
from ember.compare import GONE, GREW, NEW, SHRANK, align, match_functions, share_changes
from ember.frames import is_ember, is_python, unify_files

HOT = "/srv/app/hot.py"


def profile(*stacks: tuple[list[Frame], int]) -> Profile:
    p = Profile()
    for frames, samples in stacks:
        p.add(frames, samples)
    return p


def test_a_function_whose_first_line_moved_is_one_function() -> None:
    main = Frame("main", HOT, 30)
    base = profile(([main, Frame("sieve", HOT, 4)], 60), ([main, Frame("other", HOT, 20)], 40))
    # One line added above both: every first line moves down by one.
    head = profile(([main, Frame("sieve", HOT, 5)], 59), ([main, Frame("other", HOT, 21)], 41))
    changes = share_changes(base, head)
    by_name = {c.frame.name: c for c in changes}
    assert set(by_name) == {"sieve", "other"}
    sieve = by_name["sieve"]
    assert (sieve.base_share, sieve.head_share) == (0.60, 0.59)
    assert sieve.state == SHRANK and sieve.frame == Frame("sieve", HOT, 5)
    assert sieve.base_frame == Frame("sieve", HOT, 4)
    assert by_name["other"].state == GREW


def test_shrunk_new_and_gone_are_listed_by_size_of_change() -> None:
    main = Frame("main", HOT, 1)
    base = profile(([main, Frame("a", HOT, 10)], 50), ([main, Frame("b", HOT, 20)], 30),
                   ([main, Frame("old", HOT, 40)], 20))
    head = profile(([main, Frame("a", HOT, 10)], 55), ([main, Frame("b", HOT, 20)], 12),
                   ([main, Frame("fresh", HOT, 50)], 33))
    changes = share_changes(base, head)
    assert [(c.frame.name, c.state, round(c.delta, 2)) for c in changes] == [
        ("fresh", NEW, 0.33), ("old", GONE, -0.20), ("b", SHRANK, -0.18), ("a", GREW, 0.05)]
    assert changes[0].base_frame is None and changes[1].head_frame is None


def test_a_caller_that_lost_its_self_time_shrank_and_is_not_gone() -> None:
    main, f = Frame("main", HOT, 1), Frame("f", HOT, 5)
    changes = share_changes(profile(([main], 50), ([main, f], 50)), profile(([main, f], 10)))
    main_change = next(c for c in changes if c.frame.name == "main")
    assert main_change.state == SHRANK and main_change.head_share == 0.0


def test_lines_break_ties_between_functions_of_one_name() -> None:
    lam = "handler.<locals>.<lambda>"
    # Two lambdas; three lines added above both, then a third lambda further down.
    base = [Frame(lam, HOT, 10), Frame(lam, HOT, 20)]
    head = [Frame(lam, HOT, 13), Frame(lam, HOT, 23), Frame(lam, HOT, 60)]
    assert match_functions(base, head) == {base[0]: head[0], base[1]: head[1]}
    assert match_functions(head, base) == {head[0]: base[0], head[1]: base[1]}
    # A new lambda above them: still paired with the nearest lines, in order.
    head = [Frame(lam, HOT, 5), Frame(lam, HOT, 11), Frame(lam, HOT, 21)]
    assert match_functions(base, head) == {base[0]: head[1], base[1]: head[2]}
    # Other names and files never pair.
    assert match_functions([Frame("f", HOT, 1)], [Frame("f", "/srv/app/cold.py", 1),
                                                 Frame("g", HOT, 1)]) == {}


def test_two_lambdas_compared_one_to_one() -> None:
    lam, main = "main.<locals>.<lambda>", Frame("main", HOT, 1)
    base = profile(([main, Frame(lam, HOT, 10)], 70), ([main, Frame(lam, HOT, 11)], 30))
    head = profile(([main, Frame(lam, HOT, 12)], 30), ([main, Frame(lam, HOT, 13)], 70))
    changes = {c.frame.line: c for c in share_changes(base, head)}
    assert set(changes) == {12, 13}
    assert changes[12].base_share == 0.70 and changes[12].head_share == 0.30
    assert changes[13].base_share == 0.30 and changes[13].head_share == 0.70


def test_relative_file_is_the_absolute_file_that_ends_with_it() -> None:
    in_process = profile(([Frame("<module>", "hot.py", 1), Frame("sieve", "hot.py", 4)], 30))
    py_spy = profile(([Frame("<module>", HOT, 1), Frame("sieve", HOT, 4)], 70))
    merged = combine([in_process, py_spy])
    assert {f.file for f in merged.frames} == {HOT}
    top = merged.top_functions(1)[0]
    assert top.frame == Frame("sieve", HOT, 4) and top.self_value == 100
    # Diffing sees one function whose share grew, not one gone and one new.
    (change,) = share_changes(in_process, py_spy)
    assert change.state == "same" and change.frame == Frame("sieve", HOT, 4)


def test_relative_paths_with_directories_and_dots() -> None:
    rel = profile(([Frame("view", "./app/views.py", 9)], 1))
    other = profile(([Frame("view", "/srv/app/views.py", 9)], 1),
                    ([Frame("x", "/srv/notapp/views.py", 1)], 1))
    unified = unify_files([rel, other])
    assert unified[0].frames == [Frame("view", "/srv/app/views.py", 9)]
    assert unified[1] is other  # nothing to change there


def test_ambiguous_relative_files_are_told_apart_by_function_or_left() -> None:
    rel = profile(([Frame("sieve", "hot.py", 4)], 1), ([Frame("lone", "hot.py", 9)], 1))
    two = profile(([Frame("sieve", "/a/hot.py", 4)], 1), ([Frame("other", "/b/hot.py", 4)], 1))
    (unified, _) = unify_files([rel, two])
    assert set(unified.frames) == {Frame("sieve", "/a/hot.py", 4), Frame("lone", "hot.py", 9)}
    # Pseudo-files and absolute files of other machines are never rewritten.
    odd = profile(([Frame("f", "<string>", 1), Frame("g", "/home/me/hot.py", 4)], 1))
    assert unify_files([odd, two])[0] is odd


def test_align_spells_base_as_head_for_the_differential_flamegraph() -> None:
    base = profile(([Frame("main", "hot.py", 1), Frame("sieve", "hot.py", 4)], 10))
    head = profile(([Frame("main", HOT, 1), Frame("sieve", HOT, 6)], 10))
    aligned_base, aligned_head = align(base, head)
    assert aligned_head is head
    assert aligned_base.canonical() == head.canonical()


def test_what_a_frame_is() -> None:
    import ember.gcstats

    assert is_python(Frame("f", HOT, 1)) and is_python(Frame("f", "<string>", 1))
    assert is_python(Frame("_find_and_load", "<frozen importlib._bootstrap>", 1))
    for native in (Frame("SHA256_Update", "/usr/lib/libcrypto.so.3", 0),
                   Frame("EVP_update", "/build/Modules/_hashopenssl.c", 0),
                   Frame("time.sleep"), Frame("[truncated]"), Frame("f", "ext/_x.pyx", 3),
                   Frame("len", "<built-in>", 0)):
        assert not is_python(native), native
    assert is_ember(Frame("_callback", ember.gcstats.__file__, 21))
    assert is_ember(Frame("_callback", "/venv/lib/python3.11/site-packages/ember/gcstats.py", 1))
    assert is_ember(Frame("main", "/opt/ember/src/ember/cli/main.py", 1))
    assert not is_ember(Frame("main", "/srv/ember/app.py", 1))
    assert not is_ember(Frame("sieve", HOT, 4))


# py-spy --native --function --full-filenames, as it wrote them (shortened paths)
PY_SPY_NATIVE = """\
0x7f5c1da4524a (/usr/lib/libc.so.6);<module> (/t/hot.py:1);main (/t/hot.py:32);\
digest (/t/hot.py:25);EVP_update (/b/Modules/_hashopenssl.c:595);\
SHA256_Update (/usr/lib/libcrypto.so.3);0x7f5c1d2a1b2c (/usr/lib/libcrypto.so.3) 60
0x7f5c1da4524a (/usr/lib/libc.so.6);<module> (/t/hot.py:1);main (/t/hot.py:32);\
digest (/t/hot.py:25);EVP_update (/b/Modules/_hashopenssl.c:602) 5
0x7f00000000aa (/usr/lib/libc.so.6);<module> (/t/hot.py:1);main (/t/hot.py:32);\
digest (/t/hot.py:25);0xffffffffffffffff (?);clock_gettime (/usr/lib/libc.so.6);\
0x7f5c1e1dfb66 ([vdso]) 2
0x7f5c1da4524a (/usr/lib/libc.so.6);gc_collect_main (/usr/lib/libpython3.11.so.1.0) 1
process 7:"python parent.py";process 8:"python hot.py";<module> (/t/hot.py:1) 3
"""


def test_py_spy_native_frames_are_spelled_as_one_function_each() -> None:
    import io

    from ember.formats import collapsed
    from ember.pyspy import as_in_process

    p = as_in_process(collapsed.read(io.BytesIO(PY_SPY_NATIVE.encode()), "raw.txt"))
    module, main, digest = (Frame("<module>", "/t/hot.py", 1), Frame("main", "/t/hot.py", 32),
                            Frame("digest", "/t/hot.py", 25))
    evp = Frame("EVP_update", "/b/Modules/_hashopenssl.c", 0)
    libc = "/usr/lib/libc.so.6"
    assert p.canonical() == {
        ((module, main, digest, evp, Frame("SHA256_Update", "/usr/lib/libcrypto.so.3", 0),
          Frame("[libcrypto.so.3]", "/usr/lib/libcrypto.so.3", 0)), ()): (60, 0, 0),
        ((module, main, digest, evp), ()): (5, 0, 0),
        ((module, main, digest, Frame("[unknown]"), Frame("clock_gettime", libc, 0),
          Frame("[vdso]", "[vdso]", 0)), ()): (2, 0, 0),
        ((Frame("[libc.so.6]", libc, 0),
          Frame("gc_collect_main", "/usr/lib/libpython3.11.so.1.0", 0)), ()): (1, 0, 0),
        ((Frame('process 7:"python parent.py"'), Frame('process 8:"python hot.py"'), module),
         ()): (3, 0, 0),
    }
