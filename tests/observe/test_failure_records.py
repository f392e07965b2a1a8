"""Failures are recorded as well as successes: --trace, --report and build.json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Ocibuild
from tests.observe.conftest import build_id


def test_trace_and_report_of_a_failed_run(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nARG A\nRUN echo ok-{context.name}\nRUN sleep 0.5; exit 3\n"
    )
    trace, report = tmp_path / "trace.jsonl", tmp_path / "report.json"
    r = ocb.build(
        context, "--build-arg", "A=1", "--trace", str(trace), "--report", str(report),
        check=False,
    )  # fmt: skip
    assert r.returncode == 1
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    failing = records[-1]
    assert failing["instruction"] == "RUN sleep 0.5; exit 3"
    assert failing["exit_code"] == 3 and "exit code: 3" in failing["error"]
    assert failing["seconds"] >= 0.5
    doc = json.loads(report.read_text())
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    step = doc["steps"][-1]
    assert step["exit_code"] == 3 and step["seconds"] >= 0.5
    assert doc["build_args"] == {"A": "1"}
    assert doc["platform"] == "linux/amd64" and doc["target"] is None
    assert doc["ocibuild_version"][0].isdigit()
    # the same in the store's record
    stored = json.loads(ocb("builds", "last").stdout)
    assert stored["steps"][-1]["exit_code"] == 3 and stored["build_args"] == {"A": "1"}


def test_report_for_a_parse_error(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nRUNN x\n")
    report = tmp_path / "report.json"
    r = ocb.build(context, "--report", str(report), "--target", "0", check=False)
    assert r.returncode == 1 and "unknown instruction: RUNN" in r.stderr
    doc = json.loads(report.read_text())
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    assert "unknown instruction: RUNN" in doc["error"]
    assert doc["steps"] == [] and doc["target"] == "0"


def test_successful_build_records_what_was_asked(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image} AS one\nFROM {base_image} AS two\n")
    r = ocb.build(context, "--target", "one", "--platform", "linux/amd64", "--build-arg", "B=2")
    doc = json.loads(ocb("builds", build_id(r.stderr)).stdout)
    assert doc["status"] == "succeeded" and doc["exit_code"] == 0
    assert (doc["target"], doc["platform"], doc["build_args"]) == ("one", "linux/amd64", {"B": "2"})
