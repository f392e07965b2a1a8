"""A multi-platform tag in the store: ``images`` and ``inspect`` show its platforms, the
index is kept in the store (its platforms' images survive ``prune --all``), and re-tagging
or removing the name drops it."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.conftest import Ocibuild

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)


def _row(ocb: Ocibuild, name: str) -> list[str]:
    for line in ocb("images").stdout.splitlines():
        if line.split()[:1] == [name]:
            return line.split()
    raise AssertionError(f"{name} not in `ocibuild images`")


def test_images_and_inspect_show_the_platforms(
    multi_registry: str, context: Path, tmp_path: Path
) -> None:
    ocb = Ocibuild(tmp_path / "store")
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN uname -m > /arch\n")
    host_id = ocb.build(context, "--platform", "linux/amd64,linux/arm64", "-t", "m:1").image_id
    # images: the name's row shows both platforms (this machine's first)
    row = _row(ocb, "m:1")
    assert row[1] == host_id[7:19] and row[-1] == "linux/amd64,linux/arm64", row
    (doc,) = [
        d for d in json.loads(ocb("images", "--format", "json").stdout) if "m:1" in d["names"]
    ]
    assert doc["id"] == host_id and doc["platform"] == "linux/amd64"
    platforms = {p["platform"]: p["id"] for p in doc["platforms"]}
    assert list(platforms) == ["linux/amd64", "linux/arm64"]
    assert platforms["linux/amd64"] == host_id and platforms["linux/arm64"] != host_id
    # inspect: this machine's config plus the platforms; --platform picks one
    inspected = json.loads(ocb("inspect", "m:1").stdout)
    assert inspected["Id"] == host_id and inspected["architecture"] == "amd64"
    assert inspected["Platforms"] == [
        {"Platform": "linux/amd64", "Id": host_id},
        {"Platform": "linux/arm64", "Id": platforms["linux/arm64"]},
    ]
    arm = json.loads(ocb("inspect", "--platform", "linux/arm64", "m:1").stdout)
    assert (arm["Id"], arm["architecture"]) == (platforms["linux/arm64"], "arm64")
    r = ocb("inspect", "--platform", "linux/s390x", "m:1", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(
        "error: inspect --platform linux/s390x: m:1 has no linux/s390x image "
        "(it has: linux/amd64, linux/arm64)"
    ), r.stderr
    # the index is in the store: the arm64 image (untagged) keeps its layers through gc
    ocb("prune", "--all")
    assert ocb.run(platforms["linux/arm64"], "cat", "/arch").stdout == "aarch64\n"
    assert _row(ocb, "m:1")[-1] == "linux/amd64,linux/arm64"
    # one image under the name again: a single platform, no index
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN echo one > /one\n")
    single = ocb.build(context, "-t", "m:1").image_id
    assert _row(ocb, "m:1")[-1] == "linux/amd64"
    assert "Platforms" not in json.loads(ocb("inspect", "m:1").stdout)
    assert json.loads(ocb("inspect", "--platform", "linux/amd64", "m:1").stdout)["Id"] == single
    r = ocb("inspect", "--platform", "linux/arm64", "m:1", check=False)
    assert r.returncode == 1 and "has no linux/arm64 image (it has: linux/amd64)" in r.stderr


def test_rmi_drops_the_index(multi_registry: str, context: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    ocb = Ocibuild(root)
    (context / "Dockerfile").write_text(f"FROM {multi_registry}\nRUN uname -m > /arch\n")
    ocb.build(context, "--platform", "linux/amd64,linux/arm64", "-t", "m:2", "-t", "m:3")
    assert set(json.loads((root / "images.json").read_text())["indexes"]) == {"m:2", "m:3"}
    ocb("rmi", "m:2")
    assert set(json.loads((root / "images.json").read_text())["indexes"]) == {"m:3"}
    assert _row(ocb, "m:3")[-1] == "linux/amd64,linux/arm64"
    ocb("rmi", "m:3")
    assert "indexes" not in json.loads((root / "images.json").read_text())
