"""A window sink for the server tests: each sealed window's summary, as one JSON
line, into ``$EMBER_TEST_WINDOWS/<pid>.jsonl`` (written on the sink's own thread,
as a store would). Importing this module adds it to the process-wide sampler."""

from __future__ import annotations

import json
import os

from ember import api
from ember.sinks import ThreadedSink
from ember.window import Window


def write(window: Window) -> None:
    line = json.dumps({"pid": window.pid, "start": window.start, "end": window.end,
                       "summary": window.summary.as_dict()})
    with open(os.path.join(os.environ["EMBER_TEST_WINDOWS"], f"{os.getpid()}.jsonl"),
              "a") as out:
        out.write(line + "\n")


api.add_sink(ThreadedSink(write, name="ember-test-windows-file"))
