"""Hardlinks across steps: every storage driver gives the layers BuildKit's differ gives.

A file whose only change is its link count (its partner was removed, or got another
name) is not part of the step's layer. Observed on BuildKit v0.11.6 for the Dockerfile
below: step 2's layer holds the two whiteouts only, step 3's holds /h/a and /h/keep2 as
a regular file (not /h/keep), step 4's the whiteout of /h/keep only.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.isolation.conftest import Builder
from tests.isolation.test_matrix import DRIVERS

HARDLINKS = """\
FROM mxbase
RUN mkdir /h && echo one > /h/a && ln /h/a /h/b && echo two > /h/c && ln /h/c /h/d \\
 && ln /h/c /h/e && echo x > /h/keep
RUN rm /h/b && rm /h/d
RUN echo new > /h/a && ln /h/keep /h/keep2
RUN rm /h/keep
"""

# (name, type, linkname) per layer above the base, as BuildKit v0.11.6 exported them.
EXPECTED = [
    [
        ("h", "5", ""),
        ("h/a", "0", ""),
        ("h/b", "1", "h/a"),
        ("h/c", "0", ""),
        ("h/d", "1", "h/c"),
        ("h/e", "1", "h/c"),
        ("h/keep", "0", ""),
    ],
    [("h", "5", ""), ("h/.wh.b", "0", ""), ("h/.wh.d", "0", "")],
    [("h", "5", ""), ("h/a", "0", ""), ("h/keep2", "0", "")],
    [("h", "5", ""), ("h/.wh.keep", "0", "")],
]


def _layers(layout: Path) -> list[list[tuple[str, str, str]]]:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    out = []
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"][7:]) as tf:
            out.append([(m.name, m.type.decode(), m.linkname) for m in tf.getmembers()])
    return out


def test_hardlink_partners_same_digest_every_driver(
    matrix_context: Path, root_builder: Builder, shared_dir: Path
) -> None:
    ctx = shared_dir / "hardlinks"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(HARDLINKS)
    root_builder("build", "-q", "-t", "mxbase", "-f", f"{matrix_context}/Dockerfile.base",
                 str(matrix_context))  # fmt: skip
    ids: dict[str, str] = {}
    for driver in DRIVERS:
        if driver == "fuse-overlayfs" and shutil.which("fuse-overlayfs") is None:
            continue
        out = shared_dir / f"hardlinks-{driver}"
        run = root_builder(
            "build", "-q", "--no-cache", "--storage-driver", driver,
            "--output", f"type=oci,dest={out}", str(ctx),
        )  # fmt: skip
        ids[driver] = run.image_id
        assert _layers(out)[-4:] == EXPECTED, driver
    assert len(set(ids.values())) == 1, ids
    if len(ids) < len(DRIVERS):
        pytest.skip(f"same digest for {sorted(ids)}; fuse-overlayfs is not installed")
