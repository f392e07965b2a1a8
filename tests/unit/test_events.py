"""The step event stream: one sequence of typed events, rendered by each consumer."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

from ocibuild.builder.events import (
    EventStream,
    RecordSink,
    StepFinished,
    StepOutput,
    StepStarted,
    TerminalSink,
    trace_record,
)
from ocibuild.dockerfile.parser import parse
from ocibuild.observe.log import JsonReporter, StreamReporter
from ocibuild.plan import make_plan

STAGE = make_plan(parse("FROM scratch\nRUN true\n"), {}).stages[0]


def _events() -> list[Any]:
    return [
        StepStarted(2, 3, STAGE, "RUN make", 2),
        StepOutput(b"compiling\nlinking"),
        StepFinished(2, STAGE, "RUN make", 2, 1.5, "miss", "sha256:k", "sha256:" + "a" * 64, 10),
        StepStarted(3, 3, STAGE, "RUN true", 3),
        StepFinished(3, STAGE, "RUN true", 3, 0.01, "hit", "sha256:k2", None, 0, "no changes"),
    ]


def test_the_terminal_renders_the_events() -> None:
    out = io.StringIO()
    ctx: Any = SimpleNamespace(reporter=StreamReporter(out))
    stream = EventStream([TerminalSink])
    for event in _events():
        stream.emit(ctx, event)
    assert out.getvalue().splitlines() == [
        "[2/3] RUN make",
        "  compiling",
        "  linking",
        "  -> done in 1.50s, layer aaaaaaaaaaaa 10 B",
        "[3/3] RUN true",
        "  -> HIT, no changes",
    ]


def test_json_progress_records_and_trace_read_the_same_events() -> None:
    out = io.StringIO()
    ctx: Any = SimpleNamespace(reporter=JsonReporter(out))
    records: list[StepFinished] = []
    stream = EventStream([TerminalSink, RecordSink(records, lambda e: e)])
    for event in _events():
        stream.emit(ctx, event)
    done = [json.loads(x) for x in out.getvalue().splitlines()]
    done = [x for x in done if x["event"] == "done"]
    assert [(x["cached"], x["note"]) for x in done] == [
        (False, "layer aaaaaaaaaaaa 10 B"),
        (True, "no changes"),
    ]
    assert [r.cache for r in records] == ["miss", "hit"]
    trace = trace_record(records[1])
    assert (trace["step"], trace["cache"], trace["cache_key"]) == (3, "hit", "sha256:k2")
