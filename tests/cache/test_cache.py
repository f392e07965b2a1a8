"""The build cache as a user sees it: HIT lines, same image IDs, misses on change."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.cache.conftest import by_instruction, trace
from tests.conftest import Ocibuild

# The first RUN also writes a random stamp: a re-run makes a new layer. (Without it, a
# re-run in the same second as the first run makes a byte-identical layer, tar mtimes
# being whole seconds, and the steps after it, keyed by their parent's content, hit.)
DOCKERFILE = """\
FROM base:test
ARG FLAVOUR=plain
RUN echo first-$((1+1)) > /first && echo first-$((1+1)) && cat /proc/sys/kernel/random/uuid > /stamp
COPY app/ /app/
RUN echo "second-$((2+1)) $FLAVOUR" && cat /app/a.txt > /copied
ENV DONE=1
"""


def make_context(ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app").mkdir()
    (ctx / "app" / "a.txt").write_text("A\n")
    (ctx / "app" / "b.sh").write_text("#!/bin/sh\n")
    time.sleep(0.05)  # older than the stat cache's racy window


def test_rebuild_is_fully_cached_with_the_same_image_id(cocb: Ocibuild, ctx: Path) -> None:
    make_context(ctx)
    first = cocb.build(ctx, "-t", "c1")
    assert "first-2" in first.stderr and "-> HIT" not in first.stderr
    second = cocb.build(ctx, "-t", "c1")
    assert second.image_id == first.image_id
    assert "first-2" not in second.stderr and "second-3" not in second.stderr
    lines = second.stderr.splitlines()
    for step in ("[2/6] ARG", "[3/6] RUN", "[4/6] COPY", "[5/6] RUN", "[6/6] ENV"):
        index = next(i for i, line in enumerate(lines) if line.startswith(step))
        assert lines[index + 1].startswith("  -> HIT"), lines[index : index + 2]
    assert "5 steps cached" in second.stderr
    assert cocb.run("c1", "cat", "/copied").stdout == "A\n"


def test_changed_content_mode_arg_and_parent_miss(cocb: Ocibuild, ctx: Path) -> None:
    make_context(ctx)
    out = ctx.parent / "t.json"
    cocb.build(ctx)

    def statuses(*args: str) -> list[str]:
        """Cache status of steps 2 (ARG), 3 (RUN), 4 (COPY), 5 (RUN), 6 (ENV)."""
        cocb.build(ctx, "--trace", str(out), *args)
        return [r["cache"] for r in sorted(trace(out), key=lambda r: r["step"])][1:]

    assert statuses() == ["hit"] * 5
    (ctx / "app" / "a.txt").write_text("B\n")  # content: COPY and what follows miss
    assert statuses() == ["hit", "hit", "miss", "miss", "miss"]
    os.chmod(ctx / "app" / "b.sh", 0o755)  # the mode alone: a miss too
    assert statuses() == ["hit", "hit", "miss", "miss", "miss"]
    assert statuses() == ["hit"] * 5
    # An ARG value in scope: every step after the ARG sees it.
    assert statuses("--build-arg", "FLAVOUR=spicy") == ["miss"] * 5
    assert cocb.build(ctx, "--build-arg", "FLAVOUR=spicy", "-t", "sp").stderr.count("-> HIT") == 5
    # A changed parent: everything after the edited step misses.
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("first-$((1+1)) >", "first-$((1+2)) >"))
    assert statuses() == ["hit", "miss", "miss", "miss", "miss"]
    # Moving lines around without changing them keeps the keys.
    (ctx / "Dockerfile").write_text("# a comment\n\n" + DOCKERFILE)
    assert statuses() == ["hit"] * 5


def test_no_cache_and_no_cache_filter(cocb: Ocibuild, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM base:test AS builder\n"
        "RUN echo building > /out && cat /proc/sys/kernel/random/uuid >> /out\n"
        "FROM base:test\nRUN echo final-stage\nCOPY --from=builder /out /out\n"
    )
    first = cocb.build(ctx, "-t", "nc")
    again = cocb.build(ctx, "--no-cache", "-t", "nc")
    assert "-> HIT" not in again.stderr and "final-stage" in again.stderr
    out = ctx.parent / "t.json"
    cocb.build(ctx, "--no-cache-filter", "builder", "--trace", str(out))
    got = by_instruction(trace(out))
    assert (
        got["RUN echo building > /out && cat /proc/sys/kernel/random/uuid >> /out"]["cache"]
        == "off"
    )
    assert got["RUN echo final-stage"]["cache"] == "hit"
    # The re-run wrote a new /out: a new layer, so the COPY from it misses.
    assert got["COPY --from=builder /out /out"]["cache"] == "miss"
    assert cocb.run("nc", "cat", "/out").stdout.startswith("building\n")
    assert first.image_id.startswith("sha256:")


def test_stat_cache_does_not_reread_unchanged_files(cocb: Ocibuild, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM base:test\nCOPY data /data\n")
    (ctx / "data").mkdir()
    for i in range(50):
        (ctx / "data" / f"f{i}").write_bytes(os.urandom(1000))
    time.sleep(0.05)
    out = ctx.parent / "t.json"

    def copy_record() -> dict[str, object]:
        cocb.build(ctx, "--trace", str(out))
        return by_instruction(trace(out))["COPY data /data"]

    rec = copy_record()
    assert (rec["cache"], rec["context_files"], rec["context_files_read"]) == ("miss", 50, 50)
    assert rec["context_bytes_read"] == 50_000
    rec = copy_record()
    assert (rec["cache"], rec["context_files"], rec["context_files_read"]) == ("hit", 50, 0)
    (ctx / "data" / "f7").write_bytes(b"changed")
    time.sleep(0.05)
    rec = copy_record()
    assert (rec["cache"], rec["context_files_read"]) == ("miss", 1)
    os.utime(ctx / "data" / "f8")  # new mtime, same content: read again, still a hit
    time.sleep(0.05)
    rec = copy_record()
    assert (rec["cache"], rec["context_files_read"]) == ("hit", 1)
    (ctx / ".dockerignore").write_text("data/f9\n")  # excluded: the sources changed
    assert copy_record()["cache"] == "miss"
