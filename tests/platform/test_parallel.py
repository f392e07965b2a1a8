"""Several platforms build at the same time (``--platform-jobs``, default one per platform
up to one per CPU), and make the same images as one after the other."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)

BOTH = "linux/amd64,linux/arm64"
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}  # same config and layer bytes in every build


def _builds(root: Path) -> dict[str, dict[str, Any]]:
    """The store's build records (ROOT/builds/ID/build.json) by platform."""
    out = {}
    for path in (root / "builds").glob("*/build.json"):
        doc = json.loads(path.read_text())
        out[doc["platform"]] = doc
    return out


def _index(layout: Path) -> tuple[str, list[tuple[str, str]]]:
    """The layout's index digest and (architecture, manifest digest) of its entries."""
    (top,) = json.loads((layout / "index.json").read_text())["manifests"]
    index = json.loads((layout / "blobs" / "sha256" / top["digest"][7:]).read_text())
    return top["digest"], [(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]]


def _build(root: Path, ctx: Path, out: Path, jobs: str) -> str:
    ocb = Ocibuild(root)
    r = ocb.build(ctx, "--platform", BOTH, "--platform-jobs", jobs, "-t", "par:test",
                  "--output", f"type=oci,dest={out}", env=EPOCH)  # fmt: skip
    return r.stderr


def test_platforms_build_at_once_and_match_a_serial_build(
    multi_registry: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {multi_registry}\nARG TARGETARCH\n"
        'RUN sleep 3 && echo "$(uname -m) $TARGETARCH" > /arch\n'
    )
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    log = _build(parallel, context, tmp_path / "out-parallel", "2")
    _build(serial, context, tmp_path / "out-serial", "1")
    # at once: each platform's build began before the other ended
    runs = _builds(parallel)
    amd, arm = runs["linux/amd64"], runs["linux/arm64"]
    assert amd["started"] < arm["finished"] and arm["started"] < amd["finished"], runs
    assert "(2 at a time)" in log
    assert "[linux/arm64] " in log and "[linux/amd64] " in log  # each step says its platform
    # one after the other with --platform-jobs 1
    runs = _builds(serial)
    first, second = sorted(runs.values(), key=lambda d: d["started"])
    assert first["finished"] <= second["started"], runs
    # and the same images: same index, same manifests per platform
    assert _index(tmp_path / "out-parallel") == _index(tmp_path / "out-serial")
    assert [a for a, _ in _index(tmp_path / "out-parallel")[1]] == ["amd64", "arm64"]
    ids = {p: d["image_id"] for p, d in _builds(parallel).items()}
    assert ids == {p: d["image_id"] for p, d in _builds(serial).items()}
    assert ids["linux/amd64"] != ids["linux/arm64"]


def test_a_failing_platform_fails_the_build_and_tags_nothing(
    multi_registry: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(f'FROM {multi_registry}\nRUN test "$(uname -m)" = x86_64\n')
    ocb = Ocibuild(tmp_path / "store")
    r = ocb.build(context, "--platform", BOTH, "-t", "fails:test", check=False)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert "exit code: 1 (building for linux/arm64)" in r.stderr, r.stderr
    assert "error: " in r.stderr and 'RUN test "$(uname -m)" = x86_64' in r.stderr, r.stderr
    assert "fails:test" not in ocb("images").stdout


def test_platform_jobs_must_be_positive(ocb: Ocibuild, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    r = ocb.build(context, "--platform", BOTH, "--platform-jobs", "0", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("error: --platform-jobs 0: must be at least 1"), r.stderr


def test_a_failing_platform_stops_the_others_early(
    multi_registry: str, context: Path, tmp_path: Path
) -> None:
    """arm64 fails at once; amd64's 120-second RUN is killed, its next step never runs."""
    (context / "Dockerfile").write_text(
        f"FROM {multi_registry}\nARG TARGETARCH\n"
        'RUN if [ "$TARGETARCH" = arm64 ]; then sleep 2; exit 3; fi; sleep 120\n'
        "RUN echo next step > /next\n"
    )
    root = tmp_path / "store"
    ocb = Ocibuild(root)
    started = time.monotonic()
    r = ocb.build(context, "--platform", BOTH, "-t", "stops:test", check=False, timeout=110)
    took = time.monotonic() - started
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert "exit code: 3 (building for linux/arm64)" in r.stderr, r.stderr
    assert "linux/arm64 failed: stopped the build for linux/amd64 before it ended" in r.stderr
    assert took < 60, f"the amd64 build ran on: {took:.1f}s\n{r.stderr}"
    assert "next step" not in r.stderr and "RUN echo next step" not in r.stderr, r.stderr
    amd = _builds(root)["linux/amd64"]  # recorded as failed: interrupted, early
    assert (amd["status"], amd["error"]) == ("failed", "interrupted by signal 2"), amd
    assert amd["finished"] - amd["started"] < 60, amd
    assert "stops:test" not in ocb("images").stdout


def test_trace_and_report_are_written_per_platform(
    multi_registry: str, context: Path, tmp_path: Path
) -> None:
    """--trace/--report/--report-html FILE: FILE with the platform inserted, one each."""
    (context / "Dockerfile").write_text(
        f'FROM {multi_registry}\nARG TARGETARCH\nRUN echo "$TARGETARCH" > /arch\n'
    )
    out = tmp_path / "out"
    out.mkdir()
    ocb = Ocibuild(tmp_path / "store")
    r = ocb.build(context, "--platform", BOTH, "--trace", str(out / "trace.json"),
                  "--report", str(out / "report.json"),
                  "--report-html", str(out / "report.html"))  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{kind}-linux-{arch}.{ext}"
        for kind, ext in (("report", "html"), ("report", "json"), ("trace", "json"))
        for arch in ("amd64", "arm64")
    )
    ids = {}
    for arch in ("amd64", "arm64"):
        report = json.loads((out / f"report-linux-{arch}.json").read_text())
        assert report["platform"] == f"linux/{arch}", report
        ids[arch] = report["image_id"]
        assert f"report: wrote {out}/report-linux-{arch}.html" in r.stderr, r.stderr
        assert report["id"] in (out / f"report-linux-{arch}.html").read_text()
        lines = (out / f"trace-linux-{arch}.json").read_text().splitlines()
        runs = [json.loads(x) for x in lines if '"RUN ' in x]
        assert [x["instruction"] for x in runs] == ['RUN echo "$TARGETARCH" > /arch'], runs
        ids[arch + "-run"] = runs[0]["diff_id"]
    assert ids["amd64"] != ids["arm64"] and ids["amd64-run"] != ids["arm64-run"], ids


def test_platform_file_names() -> None:
    from ocibuild.api import platform_file

    assert platform_file("/o/trace.json", "linux/arm/v7") == "/o/trace-linux-arm-v7.json"
    assert platform_file("/o/a.b/report", "linux/amd64") == "/o/a.b/report-linux-amd64"
    assert platform_file("/o/.trace", "linux/arm64") == "/o/.trace-linux-arm64"
    assert platform_file(None, "linux/arm64") is None


def test_sigterm_stops_every_platform(multi_registry: str, context: Path, tmp_path: Path) -> None:
    """SIGTERM during a two-platform build: both running RUNs are killed, exit 143."""
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN echo started; sleep 120\n")
    env = {**os.environ, "OCIBUILD_ROOT": str(tmp_path / "store")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibuild", "build", "--platform", BOTH, str(context)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both RUNs under way
            records = [json.loads(p.read_text()) for p in (tmp_path / "store" / "builds").glob(
                "*/build.json")] if (tmp_path / "store" / "builds").exists() else []  # fmt: skip
            if len(records) == 2:
                break
            time.sleep(0.2)
        time.sleep(4)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err, err
    assert took < 30, f"{took:.1f}s\n{err}"
