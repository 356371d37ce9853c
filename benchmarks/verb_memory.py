"""Peak memory and time of every verb on the worst inputs: each verb a process of its own.

The inputs are the worst found while fuzzing the readers: gzip bombs of each
kind of tiny pprof field, one sample of endless labels, a realistic pprof near
the decoder's budget, collapsed text with a first line of 300 frames and one
of a million short lines, a speedscope file of a million samples. Each verb
runs as ``python -m ember VERB ...``; its peak RSS comes from ``wait4``.
Target: every verb on every input under 1 GiB, answering (exit 0) or refusing
in one line (exit 2), never anything else.

    .venv/bin/python benchmarks/verb_memory.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ember import Frame, Metadata, Profile
from ember.formats import pprof
from ember.formats._protobuf import MessageWriter

LIMIT = 1 << 30
TINY_FIELDS = {  # protobuf fields of Profile, each a couple of bytes
    "empty samples": b"\x12\x00",
    "empty strings": b"\x32\x00",
    "scalar fields": b"\x48\x00",
    "unknown fields": b"\xa0\x01\x00",
    "empty locations": b"\x22\x00",
    "empty functions": b"\x2a\x00",
}


def bomb(unit: bytes, inflated: int) -> bytes:
    return gzip.compress(unit * (inflated // len(unit)), compresslevel=9)


def endless_labels(inflated: int) -> bytes:
    body = b"\x1a\x00" * (inflated // 2)  # one sample, a label field again and again
    sample = MessageWriter()
    sample.blob(2, body)
    return gzip.compress(sample.getvalue(), compresslevel=9)


def realistic(n_samples: int) -> bytes:
    rnd = random.Random(7)
    p = Profile(Metadata(start=1.7e9, duration=30.0, period=0.01))
    functions = [Frame(f"pkg{i % 40}.Type{i % 13}.method_{i}", f"/srv/pkg{i % 40}/f.py", i % 900)
                 for i in range(2_000)]
    for _ in range(n_samples):
        stack = [rnd.choice(functions) for _ in range(rnd.randint(8, 40))]
        labels = (("endpoint", f"GET /api/thing{rnd.randint(0, 19)}"),)
        p.add(stack, rnd.randint(1, 5), rnd.randint(1, 5) * 10_000_000, 0, labels=labels)
    stream = io.BytesIO()
    pprof.write(p, stream)
    return stream.getvalue()


def deep_collapsed() -> bytes:
    frames = ";".join(f"recurse (/srv/app/deep.py:{i % 3 + 1})" for i in range(300))
    return (frames + " 7\n" + "main (/srv/app/m.py:1) 3\n").encode()


def many_lines(n: int) -> bytes:
    return "".join(f"main (m.py:1);f{i % 5000} (m.py:{i % 5000}) 1\n"
                   for i in range(n)).encode()


def big_speedscope(n: int) -> bytes:
    frames = [{"name": f"f{i}", "file": "m.py", "line": i} for i in range(1000)]
    rnd = random.Random(3)
    samples = [[rnd.randrange(1000) for _ in range(rnd.randint(1, 20))] for _ in range(n)]
    doc = {"$schema": "https://www.speedscope.app/file-format-schema.json",
           "shared": {"frames": frames},
           "profiles": [{"type": "sampled", "name": "p", "unit": "none", "startValue": 0,
                         "endValue": n, "samples": samples, "weights": [1] * n}]}
    return json.dumps(doc).encode()


def make_inputs(directory: Path) -> list[Path]:
    made = {f"bomb {name}.pb.gz": bomb(unit, pprof.MAX_INFLATED - 4096)
            for name, unit in TINY_FIELDS.items()}
    made["endless labels.pb.gz"] = endless_labels(256 << 20)
    made["realistic 250k samples.pb.gz"] = realistic(250_000)
    made["deep first line.txt"] = deep_collapsed()
    made["a million lines.txt"] = many_lines(1_000_000)
    made["a million samples.json"] = big_speedscope(1_000_000)
    paths = []
    for name, data in made.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def verbs(source: Path, out: Path) -> list[list[str]]:
    s = str(source)
    return [["top", s], ["advise", s], ["flamegraph", s, "-o", str(out / "f.svg")],
            ["diff", s, s, "-o", str(out / "d.svg")], ["convert", s, "-o", str(out / "c.pb.gz")],
            ["convert", s, "-o", str(out / "c.txt")], ["merge", s, s, "-o", str(out / "m.json")]]


def measure(argv: list[str]) -> tuple[int, float, float, str]:
    """Exit code, peak RSS (bytes), wall seconds and the last line of stderr."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "ember", *argv],
                                 stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
    return child.returncode, usage.ru_maxrss * 1024.0, time.monotonic() - started, \
        (lines[-1] if lines else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the inputs here and keep them")
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="ember-verb-memory-"))
    directory.mkdir(parents=True, exist_ok=True)
    if args.make:
        make_inputs(directory)
        return
    # Made in a process of their own: a child's peak RSS counts what it inherited
    # at fork, so this process stays small (its own RSS is the floor printed).
    subprocess.run([sys.executable, __file__, "--make", "--keep", str(directory)], check=True)
    sources = sorted(p for p in directory.iterdir() if p.is_file())
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"floor: this measuring process's own peak RSS, inherited by each child: "
          f"{floor:.0f} MiB")
    out = directory / "out"
    out.mkdir(exist_ok=True)
    worst = 0.0
    bad = []
    print(f"{'input':32} {'size':>9}  {'verb':10} {'exit':>4} {'peak MiB':>9} {'s':>6}")
    for source in sources:
        size = source.stat().st_size
        for argv in verbs(source, out):
            code, peak, seconds, last = measure(argv)
            worst = max(worst, peak)
            if code not in (0, 2) or "Traceback" in last or peak >= LIMIT:
                bad.append((source.name, argv[0], code, last))
            print(f"{source.name:32} {size / 1024:8.0f}K  {argv[0]:10} {code:>4} "
                  f"{peak / (1 << 20):9.0f} {seconds:6.1f}  {last[:70] if code else ''}")
            for f in out.iterdir():
                f.unlink()
    print(f"worst peak: {worst / (1 << 20):.0f} MiB (target < {LIMIT >> 20} MiB): "
          f"{'PASS' if worst < LIMIT and not bad else 'FAIL'}")
    for row in bad:
        print("  not a clean answer:", row)
    if not args.keep:
        for f in directory.rglob("*"):
            if f.is_file():
                f.unlink()
        out.rmdir()
        directory.rmdir()


if __name__ == "__main__":
    main()
