"""``ember record``: run a Python program under the in-process sampler (or py-spy).

The output is checked before the program starts; the program gets the
signals sent to ``ember record`` (:class:`Forwarder`), and the summary line
comes from what this run wrote (the status file the bootstrap fills in),
never from a file an earlier run left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from typing import Any

import ember
from ember import formats, pyspy
from ember._child import Forwarder
from ember.cli.command import Command
from ember.config import MODES, Config
from ember.errors import EmberError

_PYTHON = re.compile(r"^python[0-9.]*(\.exe)?$")
# Interpreter options that take a value as the next argument.
_OPTIONS_WITH_VALUE = {"-X", "-W", "--check-hash-based-pycs"}


class Record(Command):
    name = "record"
    help = ("Record a profile: run a Python program under ember's in-process sampler, "
            "or attach to a running process (--pid) through py-spy.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-o", "--output", required=True,
                            help="output file; the format comes from the extension: "
                                 ".txt/.folded (collapsed), .pb.gz/.pprof, .json (speedscope), "
                                 ".svg (flamegraph)")
        parser.add_argument("--rate", type=float, help="samples per second (default 100)")
        parser.add_argument("--budget", type=float,
                            help="sampler CPU as a fraction of one core (default: none, the "
                                 "rate asked is kept; services use 0.01)")
        parser.add_argument("--mode", choices=MODES, help="cpu (default) or wall")
        parser.add_argument("--duration", type=float,
                            help="stop recording after this many seconds (the program goes on)")
        parser.add_argument("--pid", type=int,
                            help="attach to this running process through py-spy")
        parser.add_argument("--backend", choices=("ember", "py-spy"), default="ember",
                            help="ember: the in-process sampler (default); py-spy: sample "
                                 "the command from outside")
        parser.add_argument("--native", action="store_true",
                            help="py-spy: include native (C/C++/Cython) frames")
        parser.add_argument("--idle", action="store_true",
                            help="py-spy: include idle threads (like --mode wall)")
        parser.add_argument("--subprocesses", action="store_true",
                            help="py-spy: also sample the program's child processes")
        parser.add_argument("command", nargs=argparse.REMAINDER,
                            help="-- python SCRIPT [ARGS] | -- python -m MODULE [ARGS]")

    def run(self, args: argparse.Namespace) -> int:
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        check_output(args.output)  # a bad output is refused before anything runs
        Config.from_env(rate=args.rate, mode=args.mode, budget=args.budget)  # and bad settings
        if args.duration is not None and args.duration <= 0:
            raise EmberError(f"--duration={args.duration}: expected seconds > 0")
        if args.pid is not None or args.backend == "py-spy":
            return self._with_pyspy(args, command)
        for flag in ("native", "idle", "subprocesses"):
            if getattr(args, flag):
                raise EmberError(f"--{flag} needs py-spy: add --backend py-spy (or --pid)")
        interpreter, options, target = split_python_command(command)

        env = dict(os.environ)
        env["EMBER_RECORD_OUTPUT"] = os.path.abspath(args.output)
        fd, status_path = tempfile.mkstemp(prefix="ember-record-", suffix=".json")
        os.close(fd)
        env["EMBER_RECORD_STATUS"] = status_path
        for key, value in (("RATE", args.rate), ("MODE", args.mode),
                           ("DURATION", args.duration), ("BUDGET", args.budget)):
            if value is not None:
                env["EMBER_RECORD_" + key] = str(value)
        if sys.stderr.isatty():
            env["EMBER_RECORD_PROGRESS"] = "1"
        # Let an interpreter other than ours import ember, after its own packages.
        package_root = os.path.dirname(os.path.dirname(ember.__file__))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), package_root) if p)

        child_argv = [interpreter, *options, "-m", "ember.cli.bootstrap", *target]
        with Forwarder() as forwarder:
            try:
                code = forwarder.run(child_argv, env=env)
            except OSError as exc:
                raise EmberError(f"cannot run {interpreter}: {exc.strerror or exc}") from None
            finally:
                status = read_status(status_path)
            report_status(args.output, status)  # still forwarding: ember outlives a 2nd Ctrl-C
        return code

    def _with_pyspy(self, args: argparse.Namespace, command: list[str]) -> int:
        if args.pid is not None and command:
            raise EmberError("give either --pid or a command, not both")
        if args.pid is None and not command:
            raise EmberError("no program given: use '--pid PID' or '-- python SCRIPT [ARGS]'")
        if args.mode == "wall":
            args.idle = True
        profile, code = pyspy.record(
            pid=args.pid, command=command or None, rate=args.rate or 100.0,
            duration=args.duration, native=args.native, idle=args.idle,
            subprocesses=args.subprocesses)
        formats.dump(profile, args.output)
        report(args.output, profile.totals().samples, len(profile.stacks))
        return code




def check_output(path: str) -> None:
    """Refuse, before the program runs, an output ember could not write.

    The format must be known from the extension, the path must not be a
    directory, and its directory must exist and take a new file (the profile
    is written to a file beside the output, then renamed over it).
    """
    formats.for_path(path)
    if os.path.isdir(path):
        raise EmberError(f"{path}: is a directory; give a file name, such as "
                         f"{os.path.join(path, 'profile.txt')}")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.stat(directory)
    except (FileNotFoundError, NotADirectoryError):
        raise EmberError(f"{path}: no such directory {directory}; create it first") from None
    except OSError:
        pass  # not reachable (permissions): said just below
    try:
        fd, probe = tempfile.mkstemp(prefix=".ember-check-", dir=directory)
    except OSError as exc:
        raise EmberError(f"{path}: cannot write in {directory} "
                         f"({exc.strerror or exc}); choose another directory") from None
    os.close(fd)
    os.unlink(probe)


def split_python_command(command: list[str]) -> tuple[str, list[str], list[str]]:
    """Split ``python [OPTIONS] (SCRIPT|-m MOD|-c CODE) [ARGS]`` into its parts."""
    if not command:
        raise EmberError("no program given: use 'ember record -o OUT -- python SCRIPT [ARGS]'")
    interpreter, rest = command[0], command[1:]
    if interpreter.endswith(".py"):
        interpreter, rest = sys.executable, command
    elif not _PYTHON.match(os.path.basename(interpreter)):
        raise EmberError(f"{interpreter!r} is not a Python interpreter: 'ember record' runs "
                         "'-- python SCRIPT [ARGS]'")
    options: list[str] = []
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c", "-"):
        options.append(rest.pop(0))
        if options[-1] in _OPTIONS_WITH_VALUE and rest:
            options.append(rest.pop(0))
    if not rest or (rest[0] in ("-m", "-c") and len(rest) < 2):
        raise EmberError("no script given: use '-- python SCRIPT [ARGS]' or '-- python -m MODULE'")
    if rest[0] == "-":
        raise EmberError("reading the program from standard input is not supported")
    if rest[0] not in ("-m", "-c") and not os.path.isfile(rest[0]):
        raise EmberError(f"cannot open {rest[0]!r}: no such file")
    return interpreter, options, rest


def read_status(path: str) -> dict[str, Any] | None:
    """What the recorded program's sampler said about itself (and remove the file)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    try:
        status = json.loads(text) if text else None
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


def rate_line(status: dict[str, Any]) -> str:
    """The achieved sampling rate against the asked one, and why it fell short."""
    rate, asked = float(status.get("rate", 0)), float(status.get("asked", 0))
    line = f"sampled {rate:.0f} times a second (asked {asked:g})"
    if asked and rate < 0.8 * asked:
        if status.get("budget"):
            why = (f"the {float(status['budget']):.1%} CPU budget stretched the interval; "
                   "--budget 0 keeps the rate")
        elif not status.get("truthful", True):
            why = ("this sampler waits for the GIL as any thread does, which a busy thread "
                   "hands over once per switch interval")
        else:
            why = "the machine or the program kept the sampler from waking on time"
        line += f": far below the asked rate ({why})"
    return line


def report_status(output: str, status: dict[str, Any] | None) -> None:
    """The summary line of an in-process run, from the status file its bootstrap wrote."""
    written = status.get("written") if status else None
    if isinstance(written, dict):
        report(output, int(written.get("samples", 0)), int(written.get("stacks", 0)), status)
    else:
        report(output)


def report(output: str, samples: int | None = None, stacks: int = 0,
           status: dict[str, Any] | None = None) -> None:
    """One line on stderr about what this run wrote (and how fast it was sampled).

    ``samples is None``: this run wrote nothing; a file left by an earlier run
    is said to be left as it was, never reported as this run's.
    """
    if samples is None:
        earlier = " (an earlier file there is left as it was)" if os.path.exists(output) else ""
        print(f"ember record: no profile written to {output}{earlier}: the program was "
              "killed (SIGKILL) or left before ember could write it", file=sys.stderr)
        return
    rate = f"; {rate_line(status)}" if status and samples else ""
    print(f"ember record: wrote {samples} samples ({stacks} stacks) to {output}{rate}",
          file=sys.stderr)
