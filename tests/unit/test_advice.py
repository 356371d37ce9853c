"""``ember advise``'s rule: candidates are Python functions whose own bytecode holds
the time; time in C is said to be there; ember's own frames are not the application."""

from __future__ import annotations

import json
import time

import ember
import ember.gcstats
import ember.wsgi
from ember import Frame, Profile, Sampler
from ember.advice import advise
from ember.frames import is_ember

APP = "/srv/shop/app.py"
MAIN, HANDLER = Frame("main", APP, 1), Frame("handler", APP, 10)
SIEVE, DIGEST = Frame("sieve", APP, 20), Frame("digest", APP, 30)
EVP = Frame("EVP_update", "/build/Python-3.11.7/Modules/_hashopenssl.c", 0)
SHA = Frame("SHA256_Update", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", 0)
GC = Frame("_callback", ember.gcstats.__file__, 21)
MIDDLEWARE = Frame("EmberMiddleware.__call__", ember.wsgi.__file__, 70)


def profile(*stacks: tuple[list[Frame], int]) -> Profile:
    p = Profile()
    for frames, samples in stacks:
        p.add(frames, samples)
    return p


def names(found: list[ember.advice.Candidate]) -> list[str]:
    return [c.frame.name for c in found]


def test_callers_are_not_candidates() -> None:
    p = profile(([MAIN], 5), ([MAIN, HANDLER], 10), ([MAIN, HANDLER, SIEVE], 85))
    advice = advise(p, value="samples")
    # main (5% self of 100% total) and handler (10% of 95%) are callers.
    assert names(advice.candidates) == ["sieve"]
    assert advice.candidates[0].self_share == 0.85
    assert advice.candidates[0].paths == [((HANDLER, MAIN), 0.85)]


def test_time_in_c_is_said_to_be_there_and_is_no_candidate() -> None:
    p = profile(([MAIN, SIEVE], 30), ([MAIN, DIGEST], 2), ([MAIN, DIGEST, EVP], 8),
                ([MAIN, DIGEST, EVP, SHA], 60))
    advice = advise(p, value="samples")
    assert advice.native_frames is True
    assert names(advice.candidates) == ["sieve"]
    assert "own bytecode" in advice.candidates[0].reason
    (native,) = advice.native
    assert native.frame == DIGEST and native.share == 0.68
    assert native.callees == [(EVP, 0.68)]
    data = advice.as_json()
    assert data["native"][0]["function"] == "digest"
    assert data["native"][0]["callees"] == [{"function": EVP.render(), "share": 0.68}]
    assert json.dumps(data)  # JSON-able


def test_a_function_half_in_c_is_a_candidate_with_its_c_time_apart() -> None:
    helper = Frame("helper", APP, 40)
    p = profile(([MAIN, SIEVE], 50), ([MAIN, SIEVE, SHA], 30), ([MAIN, SIEVE, helper], 20))
    (sieve,) = [c for c in advise(p, value="samples").candidates if c.frame == SIEVE]
    assert (sieve.self_share, sieve.native_share, sieve.total_share) == (0.5, 0.3, 1.0)
    assert "30% in C it calls" in sieve.reason and "20% in Python it calls" in sieve.reason


def test_ember_frames_are_not_the_application() -> None:
    p = profile(([MAIN, HANDLER, SIEVE], 60), ([MAIN, HANDLER, SIEVE, GC], 20),
                ([MAIN, MIDDLEWARE, HANDLER], 5), ([MAIN, MIDDLEWARE, DIGEST], 15))
    advice = advise(p, value="samples", min_share=0)
    assert advice.total == 80  # the GC callback's 20 are ember's
    assert not any(is_ember(c.frame) for c in advice.candidates)
    assert not any(is_ember(f) for c in advice.candidates for path, _ in c.paths for f in path)
    by_name = {c.frame.name: c for c in advice.candidates}
    assert by_name["sieve"].self_share == 60 / 80
    assert by_name["digest"].paths == [((MAIN,), 15 / 80)]
    assert advise(profile(([MAIN, GC], 5)), value="samples").candidates == []


def test_without_native_frames_the_reason_says_c_is_not_seen() -> None:
    advice = advise(profile(([MAIN, SIEVE], 90), ([MAIN], 10)), value="samples")
    assert advice.native_frames is False
    assert "no native frames" in advice.candidates[0].reason


def test_other_kinds_only_when_asked() -> None:
    stdlib = Frame("dumps", json.__file__, 183)
    p = profile(([MAIN, SIEVE], 40), ([MAIN, stdlib], 30), ([MAIN, stdlib, SHA], 30))
    advice = advise(p, value="samples")
    assert names(advice.candidates) == ["sieve"] and advice.native == []
    wider = advise(p, value="samples", kinds=("app", "stdlib"))
    assert [n.frame for n in wider.native] == [stdlib]
    assert names(wider.candidates) == ["sieve", "dumps"]


# -- a real profile ----------------------------------------------------------------------

def hot_loop(seconds: float) -> int:
    x, end = 0, time.thread_time() + seconds
    while time.thread_time() < end:
        for i in range(2000):
            x += i * i
    return x


def ember_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        ember.make_labels({f"k{i}": i for i in range(50)})


def workload() -> None:
    for _ in range(6):
        hot_loop(0.05)
        ember_work(0.04)


def test_advice_on_a_real_profile(implementation: str) -> None:
    sampler = Sampler(implementation=implementation, rate=400, budget=0, window=0).start()
    try:
        workload()
    finally:
        p = sampler.stop()
    advice = advise(p, min_share=0.01)
    value = advice.value
    assert value == "cpu_ns"
    ours = sum(v.get(value) for stack, _, v in p.samples() if stack and is_ember(stack[-1]))
    assert ours > 0, "ember's own code was not sampled"
    assert advice.total == p.totals().get(value) - ours
    found = names(advice.candidates)
    assert found[0] == "hot_loop", found
    assert "workload" not in found and "test_advice_on_a_real_profile" not in found
    assert not any(is_ember(c.frame) for c in advice.candidates)
    loop = advice.candidates[0]
    own = sum(v.get(value) for stack, _, v in p.samples() if stack[-1].name == "hot_loop")
    assert loop.self_share == own / advice.total
