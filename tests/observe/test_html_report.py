"""``--report-html FILE`` and ``ocibuild report BUILD --html FILE``: the page is loaded in
a real browser (Debian's chromium, headless); what it renders is checked against the
build's JSON report, and any console message (a script error, a blocked load) fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild
from tests.observe.conftest import build_id


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (make system installs it: Debian's chromium)")
    return path


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


class Dom(HTMLParser):
    """The rendered DOM: elements by id, the text under each, attributes of each."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag in VOID or self.get_starttag_text().rstrip().endswith("/>"):
            return
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self.text_by_id.setdefault(a["id"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in (t for t, _ in self._open):
            return
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.text_by_id[ident] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]


def load(page: Path, tmp_path: Path) -> Dom:
    """The DOM chromium rendered (scripts run); fails on any console message."""
    proc = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # as root
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--log-level=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged to the console:\n" + "\n".join(console)
    dom = Dom()
    dom.feed(proc.stdout)
    body = dom.find("body")
    assert body and body[0].get("data-ready") == "yes", "the page's script did not finish"
    return dom


def check_every_step(dom: Dom, report: dict[str, Any]) -> None:
    steps = report["steps"]
    assert steps
    for step in steps:
        n = str(step["step"])
        row = dom.text_by_id.get(f"step-{n}")
        assert row is not None, f"step {n} is not in the table"
        assert " ".join(step["instruction"].split()) in " ".join(row.split())
        (bar,) = dom.find("rect", data_step=n)
        status = "failed" if step.get("error") else step["cache"]
        assert status in bar["class"].split(), (n, bar["class"])
        assert f"#step-{n}" in [a["href"] for a in dom.find("a") if "href" in a]


def self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text, re.I)
    assert "default-src 'none'" in text  # the browser refuses every load


PARALLEL = """\
FROM {base} AS left
RUN sleep 1; dd if=/dev/urandom of=/big bs=1k count=200 2>/dev/null
FROM {base} AS right
RUN sleep 1; echo right > /right
FROM {base}
COPY --from=left /big /big
COPY --from=right /right /right
RUN cat /right {marker}
"""


def test_page_of_a_build_with_parallel_stages(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(PARALLEL.format(base=base_image, marker=""))
    first_id = build_id(ocb.build(context).stderr)
    # again with the last step changed: the others are cache hits
    (context / "Dockerfile").write_text(PARALLEL.format(base=base_image, marker="> /dev/null"))
    page, report = tmp_path / "build.html", tmp_path / "report.json"
    r = ocb.build(context, "--report-html", str(page), "--report", str(report))
    assert f"report: wrote {page}" in r.stderr
    doc = json.loads(report.read_text())
    assert [s["cache"] for s in doc["steps"]].count("hit") == 4
    self_contained(page)
    dom = load(page, tmp_path)
    check_every_step(dom, doc)
    assert doc["steps"][-1]["cache"] == "miss"
    assert "failure" not in dom.text_by_id
    # the largest file and the layer sizes are on the page
    assert "/big" in dom.text_by_id["largest"] and "204.8 kB" in dom.text_by_id["largest"]
    layers = dom.text_by_id["layers"]
    assert all(s["instruction"] in layers for s in doc["steps"] if s["layer"])
    # each step's time split is drawn (a titled segment per phase that took time)
    run = dom.text_by_id["step-8"]
    assert "runtime" in run and "key" in run

    # the first build: stages left and right ran side by side (overlapping in time)
    first = json.loads(ocb("builds", first_id).stdout)
    assert first["status"] == "succeeded"
    page2 = tmp_path / "first.html"
    r = ocb("report", first["id"], "--html", str(page2))
    assert str(page2) in r.stderr
    dom = load(page2, tmp_path)
    check_every_step(dom, first)
    by_step = {s["step"]: s for s in first["steps"]}
    left, right = by_step[2], by_step[4]
    assert left["start"] < right["start"] + right["seconds"]
    assert right["start"] < left["start"] + left["seconds"]
    bars = {b["data-step"]: b for b in dom.find("rect") if "data-step" in b}
    assert bars["2"]["y"] != bars["4"]["y"]  # one lane each
    x2, w2 = float(bars["2"]["x"]), float(bars["2"]["width"])
    x4, w4 = float(bars["4"]["x"]), float(bars["4"]["width"])
    assert x2 < x4 + w4 and x4 < x2 + w2  # drawn overlapping
    # the stored record has no file lists: `report` reads the largest from the store
    assert "/big" in dom.text_by_id["largest"]


def test_page_of_a_failed_build_shows_where(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image} AS prep\nRUN echo prepared > /p\n"
        f"FROM {base_image}\nCOPY --from=prep /p /p\nRUN echo about to fail; exit 7\n"
        "RUN echo never\n"
    )
    page = tmp_path / "failed.html"
    r = ocb.build(context, "--report-html", str(page), check=False)
    assert r.returncode == 1 and f"report: wrote {page}" in r.stderr
    written = re.search(r"report: wrote (\S+) \(build (\S+)\)", r.stderr)
    assert written is not None and written[1] == str(page)
    doc = json.loads(ocb("builds", written[2]).stdout)
    dom = load(page, tmp_path)
    check_every_step(dom, doc)
    failure = " ".join(dom.text_by_id["failure"].split())
    assert "The build failed at step 5 of stage 1, line 5: RUN echo about to fail; exit 7" in (
        failure
    )
    assert "exit code 7" in failure
    assert "failed" in dom.find("tr", id="step-5")[0]["class"].split()
    assert "step-6" not in dom.text_by_id  # never ran
    assert dom.find("body")[0]["data-status"] == "failed"
    # the same page from the record
    page2 = tmp_path / "again.html"
    ocb("report", doc["id"], "--html", str(page2))
    assert " ".join(load(page2, tmp_path).text_by_id["failure"].split()) == failure


def test_page_of_a_parse_error(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nRUNN x\n")
    page = tmp_path / "parse.html"
    r = ocb.build(context, "--report-html", str(page), check=False)
    assert r.returncode == 1
    dom = load(page, tmp_path)
    failure = " ".join(dom.text_by_id["failure"].split())
    assert "before any step ran" in failure and "unknown instruction: RUNN" in failure


def test_report_html_destinations(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\n")
    r = ocb.build(context, "--report-html", str(tmp_path / "no" / "x.html"), check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = ocb.build(context, "--report-html", "-", check=False)
    assert r.returncode == 1 and "--report-html writes a file" in r.stderr
    # -q: the image ID alone on stdout, nothing on stderr; the page is written
    page = tmp_path / "quiet.html"
    r = ocb.build(context, "-q", "--report-html", str(page))
    assert r.stderr == "" and r.stdout.startswith("sha256:") and page.stat().st_size > 0
    # a recorded build's page on standard output
    r = ocb("report", "last", "--html", "-")
    assert r.stdout.startswith("<!DOCTYPE html>") and 'data-status="succeeded"' in r.stdout
