"""HIT/MISS on every step, and a miss names the first input that changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import Ocibuild
from tests.observe.conftest import decision

DOCKERFILE = """\
FROM {base}
ARG VERSION=1
RUN echo first > /first
COPY app/ /app/
RUN echo "v=$VERSION" && cat /app/x.py > /copied
ENV DONE=1
"""


def make(ctx: Path, base: str) -> None:
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (ctx / "app").mkdir()
    (ctx / "app" / "x.py").write_text("print(1)\n")
    os.chmod(ctx / "app" / "x.py", 0o664)


def test_each_miss_names_what_changed(ocb: Ocibuild, base_image: str, context: Path) -> None:
    make(context, base_image)
    first = ocb.build(context).stderr
    for step in ("ARG", "RUN echo first", "COPY", 'RUN echo "v', "ENV"):
        assert decision(first, step) == "MISS: no earlier build"
    again = ocb.build(context).stderr
    for step in ("ARG", "RUN echo first", "COPY", 'RUN echo "v', "ENV"):
        assert decision(again, step) == "HIT"

    os.chmod(context / "app" / "x.py", 0o644)  # the mode alone
    out = ocb.build(context).stderr
    assert decision(out, "RUN echo first") == "HIT"
    assert decision(out, "COPY") == "MISS: COPY source app/x.py changed (mode 0664 -> 0644)"
    assert decision(out, 'RUN echo "v') == "MISS: parent layer changed (step 4)"

    (context / "app" / "x.py").write_text("print(22)\n")  # the content
    out = ocb.build(context).stderr
    assert decision(out, "COPY") == "MISS: COPY source app/x.py changed (content"
    assert "changed (content, 9 -> 10 bytes)" in out

    (context / "app" / "new.txt").write_text("new\n")
    assert decision(ocb.build(context).stderr, "COPY") == "MISS: COPY source app/new.txt added"

    out = ocb.build(context, "--build-arg", "VERSION=2").stderr  # an ARG value
    assert decision(out, "ARG") == "MISS: ARG VERSION changed"
    assert decision(out, "RUN echo first") == "MISS: ARG VERSION changed"

    # A changed step: its own miss says so, the steps after it name it as the cause.
    (context / "Dockerfile").write_text(
        DOCKERFILE.format(base=base_image).replace("echo first", "echo FIRST")
    )
    out = ocb.build(context, "--build-arg", "VERSION=2").stderr
    assert decision(out, "RUN echo FIRST") == (
        "MISS: instruction changed (was: RUN echo first > /first)"
    )
    assert decision(out, "COPY") == "MISS: parent layer changed (step 3)"
    assert decision(out, 'RUN echo "v') == "MISS: parent layer changed (step 3)"
    assert decision(out, "ENV") == "MISS: parent layer changed (step 3)"
    # --no-cache says why it ran.
    out = ocb.build(context, "--no-cache", "--build-arg", "VERSION=2").stderr
    assert decision(out, "ENV") == "MISS: cache disabled (--no-cache or --no-cache-filter)"


def test_parent_config_change_and_report_reason(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nENV A=1\nRUN echo $A > /a\n")
    ocb.build(context)
    (context / "Dockerfile").write_text(f"FROM {base_image}\nENV A=2\nRUN echo $A > /a\n")
    report = context.parent / "report.json"
    out = ocb.build(context, "--report", str(report)).stderr
    assert decision(out, "ENV") == "MISS: instruction changed (was: ENV A=1)"
    assert decision(out, "RUN") == "MISS: parent config changed (ENV A) (step 2)"
    steps = {s["step"]: s for s in json.loads(report.read_text())["steps"]}
    assert steps[3]["cache"] == "miss"
    assert steps[3]["reason"] == "parent config changed (ENV A) (step 2)"


def test_explain_prints_the_key_inputs(ocb: Ocibuild, base_image: str, context: Path) -> None:
    make(context, base_image)
    out = ocb.build(context, "--explain").stderr
    lines = out.splitlines()
    copy = lines.index("[4/6] COPY app/ /app/")
    block = lines[copy : lines.index('[5/6] RUN echo "v=$VERSION" && cat /app/x.py > /copied')]
    assert any(line.startswith("  key sha256:") for line in block)
    # a COPY depends only on the ARGs its words name (BuildKit v0.11.6: a --build-arg
    # only a RUN uses leaves COPY cached); the RUN after it sees them all
    assert any(line == "    args: {}" for line in block)
    run = lines.index('[5/6] RUN echo "v=$VERSION" && cat /app/x.py > /copied')
    assert any(line.startswith('    args: {"VERSION": "1"}') for line in lines[run : run + 12])
    assert any(line.startswith('    sources: "sha256:') for line in block)
    assert "      app/x.py file 0664 9 " in "\n".join(block)
    assert any(line.startswith("    parent layers (4):") for line in block)


ARG_SCOPES = """\
ARG G
FROM {base}
WORKDIR /app
COPY f /app/f
RUN echo run-no-arg > /r
ARG V
RUN echo after-v > /r2
WORKDIR /w-$V
COPY f /w-$V/f
"""


def test_build_args_and_the_cache_as_buildkit(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit v0.11.6 (buildctl --progress plain, the same Dockerfile FROM the same base
    # in a local registry), built with G=1 V=1, then G=2 V=1, then G=2 V=2:
    # - G=2 V=1: every step CACHED (a global ARG the stage does not declare is unseen);
    # - G=2 V=2: WORKDIR /app, COPY f /app/f and the RUN before `ARG V` CACHED; the RUN
    #   after it reruns though it does not use $V (ARGs are in every RUN's environment),
    #   and what follows reruns. File steps depend on an ARG only through what they expand.
    (context / "f").write_text("f\n")
    (context / "Dockerfile").write_text(ARG_SCOPES.format(base=base_image))
    steps = ("WORKDIR /app", "COPY f /app/f", "RUN echo run-no-arg", "RUN echo after-v")
    steps += ("WORKDIR /w-$V", "COPY f /w-$V/f")

    def verdicts(*args: str) -> list[str]:
        out = ocb.build(context, *args).stderr
        return [decision(out, step).split(":")[0] for step in steps]

    verdicts("--build-arg", "G=1", "--build-arg", "V=1")
    assert verdicts("--build-arg", "G=2", "--build-arg", "V=1") == ["HIT"] * 6
    assert verdicts("--build-arg", "G=2", "--build-arg", "V=2") == [
        "HIT", "HIT", "HIT", "MISS", "MISS", "MISS",
    ]  # fmt: skip
    out = ocb.build(context, "--build-arg", "V=2").stderr  # G unset: still unseen
    assert decision(out, "RUN echo after-v") == "HIT"
    assert decision(out, "COPY f /w-$V/f") == "HIT"


def copy_records(ocb: Ocibuild, context: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The explain records of this context's COPY steps, with their paths."""
    found = []
    for path in (Path(ocb.root) / "cache" / "explain").rglob("*.json"):
        record = json.loads(path.read_text())
        if record["text"].startswith("COPY") and record["dockerfile"].startswith(str(context)):
            found.append((path, record))
    return found


def test_the_listing_is_a_side_file_read_to_explain(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nCOPY app /app\n")
    (context / "app" / "sub").mkdir(parents=True)
    (context / "app" / "sub" / "deep").write_text("deep\n")
    (context / "app" / "sub.txt").write_text("txt\n")
    ocb.build(context)
    ((path, record),) = copy_records(ocb, context)
    # the record names its listing; the listing is not in it
    assert "source_files" not in path.read_text()
    side = path.parent / record["source_listing"]["file"]
    assert side.read_bytes().startswith(b"app\0dir\0")
    assert record["source_listing"]["entries"] == 4
    # two changes: the first in string order is named ("app/sub.txt" < "app/sub/deep")
    # although the walk lists app/sub/deep first
    (context / "app" / "sub" / "deep").write_text("deeper\n")
    os.chmod(context / "app" / "sub.txt", 0o600)
    out = ocb.build(context).stderr
    assert decision(out, "COPY") == "MISS: COPY source app/sub.txt changed (mode 0644 -> 0600)"
    # --explain on a hit shows the recorded listing
    out = ocb.build(context, "--explain").stderr
    assert decision(out, "COPY") == "HIT"
    assert "    source files (4):" in out
    assert "      app/sub/deep file 0644 7 " in out
    # a listing that is not the one recorded explains no more than "source changed"
    ((path, record),) = copy_records(ocb, context)
    side = path.parent / record["source_listing"]["file"]
    side.write_bytes(side.read_bytes().replace(b"0600", b"0644"))
    os.chmod(context / "app" / "sub.txt", 0o640)
    assert decision(ocb.build(context).stderr, "COPY") == "MISS: COPY source changed"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
