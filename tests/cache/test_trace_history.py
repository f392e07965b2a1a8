"""--trace records, ``ocibuild history`` and parallel stages, as a user sees them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cache.conftest import by_instruction, trace
from tests.conftest import Ocibuild


def test_trace_records_phases_sizes_and_counts(cocb: Ocibuild, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM base:test\n"
        "RUN mkdir /d && echo a > /d/a && echo bb > /d/b && ln -s a /d/l && rm /etc/group\n"
        "COPY f.txt /f.txt\nENV X=1\n"
    )
    (ctx / "f.txt").write_text("hello\n")
    out = ctx.parent / "trace.json"
    cocb.build(ctx, "--trace", str(out))
    records = trace(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    run = by_instruction(records)[
        "RUN mkdir /d && echo a > /d/a && echo bb > /d/b && ln -s a /d/l && rm /etc/group"
    ]
    assert run["cache"] == "miss" and run["cache_key"].startswith("sha256:")
    assert run["line"] == 2 and run["stage"] == "0"
    for phase in ("prepare", "runtime", "diff", "hash", "write", "cleanup"):
        assert run[f"{phase}_seconds"] > 0, phase
    assert run["seconds"] >= run["prepare_seconds"] + run["runtime_seconds"]
    assert (run["files"], run["symlinks"], run["whiteouts"]) == (2, 1, 1)
    assert run["dirs"] >= 1 and run["content_bytes"] == 5
    assert run["layer_bytes"] % 512 == 0 and run["layer_bytes"] >= 512 * 6
    assert run["diff_id"].startswith("sha256:")
    copy = by_instruction(records)["COPY f.txt /f.txt"]
    assert (copy["files"], copy["content_bytes"], copy["context_files"]) == (1, 6, 1)
    assert by_instruction(records)["ENV X=1"]["layer_bytes"] == 0

    cocb.build(ctx, "--trace", str(out))
    again = by_instruction(trace(out))
    assert again["COPY f.txt /f.txt"]["cache"] == "hit"
    assert again["COPY f.txt /f.txt"]["cache_key"] == copy["cache_key"]
    assert again["COPY f.txt /f.txt"]["runtime_seconds" if False else "copy_seconds"] == 0


def test_history_shows_layers_sizes_and_instructions(cocb: Ocibuild, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM base:test\nRUN head -c 300000 /dev/zero > /zeros\nLABEL a=b\n"
    )
    cocb.build(ctx, "-t", "hist")
    lines = cocb("history", "hist").stdout.splitlines()
    assert lines[0].split() == ["LAYER", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "LABEL" in lines[1] and "<none>" in lines[1] and "0 B" in lines[1]
    assert "RUN /bin/sh -c head -c 300000 /dev/zero > /zeros" in lines[2]
    assert "301." in lines[2] and "kB" in lines[2]  # 300000 B + tar headers
    rows = json.loads(cocb("history", "--format", "json", "hist").stdout)
    assert rows[1]["layer"].startswith("sha256:") and 300_000 < rows[1]["size"] < 303_000
    assert rows[-1]["created_by"].startswith("COPY busybox")  # the base's first step
    bad = cocb("history", "no-such-image", check=False)
    assert bad.returncode == 1 and "no image" in bad.stderr and "Traceback" not in bad.stderr


def test_independent_stages_run_in_parallel(cocb: Ocibuild, ctx: Path) -> None:
    # Each stage announces itself in a shared cache mount and waits (up to 20 s) for the
    # other: run one after the other, the first would give up and write "alone".
    wait = (
        "touch /c/{me}; i=0; while [ ! -e /c/{other} ] && [ $i -lt 200 ]; do sleep 0.1; "
        "i=$((i+1)); done; if [ -e /c/{other} ]; then echo both; else echo alone; fi > /{me}"
    )
    mount = "--mount=type=cache,id=par,target=/c,sharing=shared"
    (ctx / "Dockerfile").write_text(
        f"FROM base:test AS a\nRUN {mount} {wait.format(me='a', other='b')}\n"
        f"FROM base:test AS b\nRUN {mount} {wait.format(me='b', other='a')}\n"
        "FROM base:test\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n"
    )
    res = cocb.build(ctx, "-t", "par")
    lines = res.stderr.splitlines()
    for name in ("a", "b"):  # each step's lines stay together
        i = next(i for i, line in enumerate(lines) if f"[{name}] RUN --mount" in line)
        assert lines[i + 1] == "  MISS: no earlier build", lines[i : i + 3]
        assert lines[i + 2].startswith("  -> done"), lines[i : i + 3]
    assert cocb.run("par", "cat", "/a", "/b").stdout == "both\nboth\n"


def test_failing_parallel_stage_reports_its_error(cocb: Ocibuild, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM base:test AS a\nRUN echo about-to-fail && exit 3\n"
        "FROM base:test AS b\nRUN sleep 0.5\nRUN echo never-$((1+1))\n"
        "FROM base:test\nCOPY --from=a /etc /a\nCOPY --from=b /etc /b\n"
    )
    res = cocb.build(ctx, check=False)
    assert res.returncode == 1
    assert "about-to-fail" in res.stderr and "exit code: 3" in res.stderr
    assert "Traceback" not in res.stderr
