"""``--report FILE`` on small versions of the benchmark's workloads, checked against the
store; ``ocibuild diff``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild
from tests.observe.conftest import layer_size

# OCIBUILD_FULL_BENCH=1: bench/bench.py's sizes (300 MB + 20,000 files, a 200 MB context,
# 20 steps; a few minutes); by default a small version of each workload.
FULL = os.environ.get("OCIBUILD_FULL_BENCH") == "1"
BIG_MB, SMALL_FILES, DELETED = (300, 20_000, 11_111) if FULL else (4, 300, 111)
COPY_DIRS, COPY_FILES, COPY_SIZE = (20, 100, 100_000) if FULL else (10, 10, 20_000)
STEPS = 20 if FULL else 5

BIG_RUN = (
    "RUN mkdir -p /big /small"
    f" && dd if=/dev/urandom of=/big/random bs=1M count={BIG_MB} 2>/dev/null"
    f" && i=0; while [ $i -lt {SMALL_FILES} ]; do echo $i > /small/f$i; i=$((i+1)); done\n"
    "RUN rm -rf /small/f1*\n"  # f1, f10-f19, f100-f199, ...
)


def copy_context(ctx: Path) -> None:
    for d in range(COPY_DIRS):
        sub = ctx / "data" / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(COPY_FILES):
            (sub / f"f{f}").write_bytes(os.urandom(COPY_SIZE))


WORKLOADS = {
    "trivial": ("".join(f"RUN echo step {i} > /s{i}\n" for i in range(STEPS)), None),
    "copy": ("COPY data /data\n", copy_context),
    "big-run": (BIG_RUN, None),
    "multi-stage": (
        "RUN mkdir /out && echo a > /out/a\n"
        "FROM {base} AS b\nRUN mkdir /out && echo b > /out/b\n"
        "FROM {base}\nCOPY --from=0 /out/a /a\nCOPY --from=b /out/b /b\nRUN cat /a /b\n",
        None,
    ),
}


def check_against_store(ocb: Ocibuild, report: dict[str, Any]) -> None:
    total = 0
    for step in report["steps"]:
        layer = step["layer"]
        if layer is None:
            continue
        assert layer["size"] == layer_size(ocb, layer["diff_id"]), step
        total += layer["size"]
        parts = step["time"]
        assert set(parts) >= {"prepare_rootfs", "runtime", "diff", "layer_write", "hash"}
        assert parts["compress"] == 0.0
        assert sum(parts.values()) <= step["seconds"] + 0.01, step
    assert report["totals"]["layer_bytes"] == total


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_report_matches_the_store(ocb: Ocibuild, base_image: str, context: Path, name: str) -> None:
    body, prepare = WORKLOADS[name]
    if prepare is not None:
        prepare(context)
    (context / "Dockerfile").write_text(f"FROM {base_image}\n" + body.format(base=base_image))
    path = context.parent / "report.json"
    result = ocb.build(context, "--report", str(path))
    report = json.loads(path.read_text())
    assert report["status"] == "succeeded" and report["image_id"] == result.image_id
    check_against_store(ocb, report)
    steps = [s for s in report["steps"] if not s["instruction"].startswith("FROM")]
    assert all(s["cache"] == "miss" and s["reason"] == "no earlier build" for s in steps)
    for step in steps:
        assert step["line"] >= 2 and step["instruction"].split()[0] in ("RUN", "COPY")
        if step["instruction"].startswith("RUN"):
            assert step["time"]["runtime"] > 0
    layers = [s["layer"] for s in steps if s["layer"]]
    if name == "big-run":
        made, removed = layers
        assert made["files_added"] == SMALL_FILES + 1 and made["files_deleted"] == 0
        assert made["largest_added"][0] == {"path": "/big/random", "size": BIG_MB << 20}
        assert made["bytes_added"] > BIG_MB << 20
        assert removed["files_deleted"] == DELETED and removed["files_added"] == 0
        assert report["totals"]["files_deleted"] == DELETED
    if name == "copy":
        files = COPY_DIRS * COPY_FILES
        assert layers[0]["files_added"] == files
        assert layers[0]["bytes_added"] == files * COPY_SIZE
        assert [f["size"] for f in layers[0]["largest_added"]] == [COPY_SIZE] * 10
    if name == "trivial":
        assert [la["files_added"] for la in layers] == [1] * STEPS
    if name == "multi-stage":
        assert {s["stage"] for s in report["steps"]} == {"0", "b", "2"}

    # Fully cached: every step a hit, the same layers and sizes.
    ocb.build(context, "--report", str(path))
    again = json.loads(path.read_text())
    check_against_store(ocb, again)
    for step in again["steps"]:
        if not step["instruction"].startswith("FROM"):
            assert step["cache"] == "hit" and step["reason"] == "cache key found"
    assert again["totals"]["layer_bytes"] == report["totals"]["layer_bytes"]
    assert again["totals"]["new_layer_bytes"] == 0
    assert again["totals"]["hits"] == len(steps)


def test_diff_two_images_and_two_layers(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN mkdir /d && echo one > /d/same && echo abc > /d/content"
        " && echo x > /d/gone && echo 12 > /d/mode && echo o > /d/owner\n"
    )
    ocb.build(context, "-t", "diff-a")
    (context / "Dockerfile").write_text(
        "FROM diff-a\nRUN echo xyz > /d/content && rm /d/gone && chmod 600 /d/mode"
        " && chown 1000:1000 /d/owner && echo hello > /d/new && ln -s same /d/link\n"
    )
    ocb.build(context, "-t", "diff-b")
    out = ocb("diff", "diff-a", "diff-b").stdout.splitlines()
    assert out == [
        "C /d/content  content differs (same size, 4 B)",
        "D /d/gone  file 0644 0:0 2 B",
        "A /d/link  symlink 0777 0:0 -> same",
        "C /d/mode  mode 0644 -> 0600",
        "A /d/new  file 0644 0:0 6 B",
        "C /d/owner  owner 0:0 -> 1000:1000",
        "2 added, 1 removed, 3 changed (6 bytes in added files)",
    ]
    changes = json.loads(ocb("diff", "--format", "json", "diff-a", "diff-b").stdout)
    assert {"change": "changed", "path": "/d/mode"}.items() <= changes[3].items()
    assert changes[3]["old"]["mode"] == "0644" and changes[3]["new"]["mode"] == "0600"
    # Layers 4 and 5 of diff-b: what each step wrote (whiteouts are files removed).
    layers = ocb("diff", "--layers", "4", "5", "diff-b").stdout
    assert "A /d/link  symlink" in layers and "D /d/same  file 0644 0:0 4 B" in layers
    bad = ocb("diff", "--layers", "4", "9", "diff-b", check=False)
    assert bad.returncode == 1 and "has 5 layers, not a layer 9" in bad.stderr
