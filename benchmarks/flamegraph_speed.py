"""``ember flamegraph`` against flamegraph.pl on one large folded file, side by side.

Generates (once, seeded) a folded file of 100,000 distinct stacks and
10,000,000 samples in all: Python-like frames ``function (path.py:line)``
from ~6,000 functions spread over application, standard-library,
site-packages and native code, stacks 2..~70 deep sharing prefixes the way a
service's call tree does, counts heavy-tailed. Then, alternating, a few runs
of each side as a child process on the same file, timed by wall clock and by
the children's CPU time (``getrusage(RUSAGE_CHILDREN)``, user + system):

    perl FLAMEGRAPH_PL in.folded > out-pl.svg
    python -m ember flamegraph in.folded -o out-ember.svg

The ratio of each pair (perl / ember) is taken; the script reports medians
and judges the median wall-clock ratio against the target (>= 5x). Both
sides include their start-up and the reading and writing of the files.

flamegraph.pl is not part of ember: pass its path (``--flamegraph-pl``);
without it the comparison is skipped. Also measured: the fold twins on the
same stacks in-process (CPU time of ``_flame.fold``, Cython and pure
Python), the SVG sizes, and the SVG in headless Chromium if one is installed
(time to load and run the script, then a search and a zoom measured by the
page itself).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 5.0
DEFAULT_DIR = Path(tempfile.gettempdir()) / "ember-flamegraph-bench"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def generate(path: Path, stacks: int, samples: int, seed: int = 1) -> None:
    """The benchmark's folded file (deterministic for a seed)."""
    rng = random.Random(seed)
    places = (
        [f"/srv/app/service/{m}.py" for m in ("views", "models", "auth", "cache", "search",
                                              "billing", "render", "tasks", "api", "db")]
        + [f"/usr/lib/python3.11/{m}.py" for m in ("json/decoder", "re/_parser", "threading",
                                                    "socket", "ssl", "logging/__init__",
                                                    "email/message", "asyncio/events")]
        + [f"/venv/lib/python3.11/site-packages/{m}.py"
           for m in ("django/core/handlers/base", "sqlalchemy/orm/query", "requests/sessions",
                     "urllib3/connectionpool", "jinja2/runtime", "pydantic/main",
                     "redis/client", "celery/app/task")]
    )
    functions: list[str] = []
    for i in range(6000):
        if i % 10 == 9:
            functions.append(f"native_call_{i} (libpython3.11.so.1.0)")
        else:
            place = places[i % len(places)]
            functions.append(f"fn_{i}_{'abcdefgh'[i % 8] * (1 + i % 5)} ({place}:{1 + i % 900})")
    roots = [f"worker_{i} (/srv/app/service/main.py:{10 + i})" for i in range(4)]

    def pick() -> str:  # heavy-tailed choice of a function
        return functions[min(len(functions) - 1, int(rng.paretovariate(0.6)) - 1)]

    seen: set[str] = set()
    made: list[list[str]] = []
    while len(made) < stacks:
        if made and rng.random() < 0.97:
            base = made[rng.randrange(len(made))]
            frames = base[: rng.randint(1, len(base))]
        else:
            frames = [rng.choice(roots)]
        for _ in range(rng.randint(1, 12)):
            if len(frames) >= 70:
                break
            frames.append(pick())
        text = ";".join(frames)
        if text not in seen:
            seen.add(text)
            made.append(frames)
    weights = [rng.paretovariate(1.2) for _ in made]
    scale = (samples - len(made)) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    counts[0] += samples - sum(counts)
    order = list(range(len(made)))
    rng.shuffle(order)
    with open(path, "w", encoding="utf-8") as out:
        for i in order:
            out.write(f"{';'.join(made[i])} {counts[i]}\n")


def timed(cmd: list[str], stdout: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if stdout is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with open(stdout, "wb") as out:
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def in_process(folded: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``formats.load`` + ``formats.dump`` in this process."""
    from ember import formats

    wall, cpu = time.perf_counter(), time.process_time()
    formats.dump(formats.load(folded), out)
    return time.perf_counter() - wall, time.process_time() - cpu


def fold_twins(folded: Path, repeats: int) -> None:
    from ember import _impl
    from ember.formats import load
    from ember.formats.svg import _ranks

    profile = load(folded)
    per_stack = profile.stack_values()
    stacks = [profile.stacks[s] for s in per_stack]
    weights = list(per_stack.values())
    rank = _ranks(profile.frames)
    print(f"\nfold twins on the same {len(stacks):,} stacks "
          f"({sum(map(len, stacks)):,} frames), CPU time per call, all nodes kept:")
    results = {}
    for impl in ("cython", "python"):
        fold = _impl.module("flame", impl).fold
        times = []
        for _ in range(repeats):
            start = time.process_time()
            tree = fold(stacks, weights, rank)
            times.append(time.process_time() - start)
        results[impl] = tree
        print(f"  {impl:6}: median {statistics.median(times) * 1e3:8.1f} ms "
              f"(runs: {', '.join(f'{t * 1e3:.0f}' for t in times)}), "
              f"{len(tree.frames):,} nodes")
    same = tuple(results["cython"]) == tuple(results["python"])
    print(f"  identical trees: {same}")


def chromium_check(svg: Path) -> None:
    browser = next((b for b in map(shutil.which, CHROMIUM) if b), None)
    if browser is None:
        print("\nchromium: not installed, browser check skipped")
        return
    probe = svg.with_name(svg.stem + "-probe.svg")
    script = """<script type="text/ecmascript"><![CDATA[
var f = window.emberFlame, out = {loadedMs: performance.now()};
var t0 = performance.now(); out.search = f.search("fn_1_"); out.searchMs = performance.now() - t0;
t0 = performance.now(); f.zoom(1); out.zoomMs = performance.now() - t0;
out.visibleAfterZoom = f.visible().length;
t0 = performance.now(); f.reset(); out.resetMs = performance.now() - t0;
out.frames = f.data.depth.length;
var t = document.createElementNS("http://www.w3.org/2000/svg", "text");
t.setAttribute("id", "probe"); t.textContent = JSON.stringify(out);
document.documentElement.appendChild(t);
]]></script>
"""
    probe.write_text(svg.read_text("utf-8").replace("</svg>\n", script + "</svg>\n"), "utf-8")
    with tempfile.TemporaryDirectory() as profile_dir:
        start = time.perf_counter()
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={profile_dir}", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=300, check=False)
        wall = time.perf_counter() - start
    marker = '<text id="probe">'
    at = done.stdout.rfind(marker)
    if at < 0:
        print(f"\nchromium: no result ({done.returncode}); stderr tail: {done.stderr[-500:]}")
        return
    result = json.loads(done.stdout[at + len(marker):].split("</text>", 1)[0]
                        .replace("&quot;", '"').replace("&amp;", "&"))
    print(f"\nchromium ({browser}): whole run {wall:.2f} s wall (start, load, dump);"
          f" in page: loaded + script ran at {result['loadedMs']:.0f} ms, "
          f"search {result['searchMs']:.0f} ms ({result['search']['percent']:.2f}% matched), "
          f"zoom {result['zoomMs']:.0f} ms, reset {result['resetMs']:.0f} ms, "
          f"{result['frames']:,} frames")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flamegraph-pl", type=Path, help="path of flamegraph.pl")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"work dir ({DEFAULT_DIR})")
    parser.add_argument("--stacks", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (3)")
    parser.add_argument("--twin-repeats", type=int, default=3)
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    folded = args.dir / f"in-{args.stacks}-{args.samples}.folded"
    if not folded.exists():
        start = time.perf_counter()
        generate(folded, args.stacks, args.samples)
        print(f"generated {folded} in {time.perf_counter() - start:.1f} s")
    lines = folded.read_text("utf-8").splitlines()
    frames = sum(line.count(";") + 1 for line in lines)
    total = sum(int(line.rsplit(" ", 1)[1]) for line in lines)
    print(f"input: {folded} ({folded.stat().st_size / 1e6:.1f} MB, {len(lines):,} stacks, "
          f"{frames:,} frames, {total:,} samples)")

    out_ember = args.dir / "out-ember.svg"
    out_pl = args.dir / "out-flamegraph-pl.svg"
    ember_cmd = [sys.executable, "-m", "ember", "flamegraph", str(folded), "-o", str(out_ember)]
    have_pl = args.flamegraph_pl is not None and args.flamegraph_pl.exists()
    perl = shutil.which("perl")
    if not have_pl or perl is None:
        print("flamegraph.pl not given (or perl missing): comparison skipped")
    print(f"ember: {' '.join(ember_cmd)}")
    if have_pl:
        print(f"perl:  {perl} {args.flamegraph_pl} {folded} > {out_pl}")
    print(f"in-process: formats.dump(formats.load(in.folded), {out_ember.name}) "
          "(time.process_time, no interpreter start-up, no CLI)")
    pairs = []
    inproc = []
    from ember import formats

    formats.load(folded)  # warm the imports for the in-process side
    for run in range(args.runs):
        order = ["ember", "pl", "inproc"] if run % 2 == 0 else ["inproc", "pl", "ember"]
        got: dict[str, tuple[float, float]] = {}
        for side in order:
            if side == "ember":
                got[side] = timed(ember_cmd)
            elif side == "inproc":
                got[side] = in_process(folded, out_ember)
            elif have_pl and perl:
                got[side] = timed([perl, str(args.flamegraph_pl), str(folded)], stdout=out_pl)
        line = (f"run {run + 1}: ember CLI {got['ember'][0]:.2f} s wall / "
                f"{got['ember'][1]:.2f} s CPU; in-process {got['inproc'][1]:.2f} s CPU")
        if "pl" in got:
            pl_wall, pl_cpu = got["pl"]
            line += (f"; flamegraph.pl {pl_wall:.2f} s wall / {pl_cpu:.2f} s CPU; "
                     f"ratio CLI {pl_wall / got['ember'][0]:.1f}x wall, "
                     f"{pl_cpu / got['ember'][1]:.1f}x CPU; in-process "
                     f"{pl_cpu / got['inproc'][1]:.1f}x CPU")
            pairs.append((pl_wall / got["ember"][0], pl_cpu / got["ember"][1]))
            inproc.append(pl_cpu / got["inproc"][1])
        print(line)
    print(f"SVG sizes: ember {out_ember.stat().st_size / 1e6:.2f} MB"
          + (f", flamegraph.pl {out_pl.stat().st_size / 1e6:.2f} MB" if have_pl else ""))
    if pairs:
        wall_ratio = statistics.median(p[0] for p in pairs)
        cpu_ratio = statistics.median(p[1] for p in pairs)
        verdict = "PASS" if wall_ratio >= TARGET else "FAIL"
        in_ratio = statistics.median(inproc)
        print(f"median ratio flamegraph.pl / ember CLI: {wall_ratio:.1f}x wall, "
              f"{cpu_ratio:.1f}x CPU -> {verdict} (target >= {TARGET:g}x, judged on the CLI's "
              f"wall clock); flamegraph.pl CPU / in-process CPU: {in_ratio:.1f}x")
    fold_twins(folded, args.twin_repeats)
    chromium_check(out_ember)
    return 0


if __name__ == "__main__":
    sys.exit(main())
