"""Profiles and renderers shared by the format tests, unit and integration."""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
import sysconfig
from typing import Any

from hypothesis import strategies as st

from ember import Frame, Metadata, Profile, make_labels
from ember.formats import svg

# -- SVG ---------------------------------------------------------------------------------

EVIL = "<script>alert(1)</script>"
STDLIB_FILE = sysconfig.get_paths()["stdlib"] + "/json/decoder.py"

MAIN = Frame("main", "/srv/app/main.py", 1)
HANDLER = Frame(EVIL, "/srv/app/views.py", 3)
LOADS = Frame("loads", STDLIB_FILE, 299)
GET = Frame("get", "/venv/lib/python3.11/site-packages/requests/api.py", 64)
SLEEP = Frame("time.sleep")


def sample_profile() -> Profile:
    p = Profile()
    p.add([MAIN, HANDLER, LOADS], 30)
    p.add([MAIN, GET, SLEEP], 50)
    p.add([MAIN], 20)
    return p


def render(profile: Profile, **options: Any) -> bytes:
    out = io.BytesIO()
    svg.write(profile, out, **options)
    return out.getvalue()


def render_diff(base: Profile, head: Profile, **options: Any) -> bytes:
    out = io.BytesIO()
    svg.write_diff(base, head, out, **options)
    return out.getvalue()


def rgb(fill: str) -> tuple[int, int, int]:
    r, g, b = map(int, re.findall(r"\d+", fill))
    return r, g, b


# -- pprof -------------------------------------------------------------------------------

AWKWARD = [
    Frame("<module>", "/srv/app main.py", 1),
    Frame("Ωmega.<locals>.<lambda>", "/srv/ünïcode/mod.py", 42),
    Frame("Klass.method", "C:\\odd (dir)\\x.py", 7),
    Frame("<script>alert('x & \"y\"')</script>", "<string>", 3),
    Frame("bare-native-frame"),
    Frame("with space", "a b.py", 0),
    Frame("日本語.関数", "/srv/日本.py", 99999),
]

META = Metadata(start=1_700_000_000.123456, duration=12.5, period=0.01, mode="cpu",
                pids=(101, 202), host="web-1 ü", service="shop=api", version="2.0<rc>",
                gc={0: (12, 0.0125), 2: (1, 0.5)}, truncated=3)


def awkward_profile() -> Profile:
    p = Profile(dataclasses.replace(META))
    get = make_labels({"endpoint": "GET /items/{id}", "thread": "MainThread"})
    post = make_labels({"endpoint": "POST /ü <&>\"'", "thread": "worker 1"})
    p.add(AWKWARD[:3], samples=5, cpu_ns=50_000_000, wall_ns=52_000_000, labels=get)
    p.add(AWKWARD[:3], samples=2, cpu_ns=20_000_000, wall_ns=90_000_000, labels=post)
    p.add(AWKWARD[:3], samples=1, cpu_ns=10_000_000, wall_ns=10_000_000)
    p.add([AWKWARD[0], AWKWARD[3], AWKWARD[4]], samples=4, cpu_ns=0, wall_ns=40_000_000,
          labels=get)
    p.add([AWKWARD[0], AWKWARD[5], AWKWARD[6]], samples=1, cpu_ns=9_999_999, wall_ns=1)
    deep = [AWKWARD[0]] + [AWKWARD[1], AWKWARD[2]] * 250  # 501 frames, recursive
    p.add(deep, samples=3, cpu_ns=30_000_000, wall_ns=30_000_000, labels=post)
    return p


# -- fuzzing -----------------------------------------------------------------------------


def mutate(draw: st.DrawFn, data: bytes, *, gzipped: bool, edits: tuple[int, int]) -> bytes:
    """``data`` with between ``edits`` bytes flipped, runs cut or bytes inserted;
    a gzipped file is (sometimes) inflated first, so that the edits reach the
    protobuf inside rather than only break the gzip."""
    rewrap = gzipped and draw(st.booleans())
    buf = bytearray(gzip.decompress(data) if rewrap else data)
    for _ in range(draw(st.integers(*edits))):
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and buf:
            buf[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del buf[at:at + draw(st.integers(1, 64))]
        else:
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
    return gzip.compress(bytes(buf)) if rewrap else bytes(buf)
