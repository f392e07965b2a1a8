"""``ocibuild save`` of a multi-platform tag: the OCI formats hold one image index over
every platform's image (as the build's ``--output type=oci`` does); a docker-archive has
no index, so it holds this machine's platform's image and says so."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild, require_tool

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)

INDEX = "application/vnd.oci.image.index.v1+json"
BOTH = [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]


def _json(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())


def _check_index(layout: Path, ref: str) -> None:
    """index.json names one index over both platforms, each entry's config matching."""
    (top,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert top["mediaType"] == INDEX
    assert top["annotations"]["org.opencontainers.image.ref.name"] == ref
    index = _json(layout, top["digest"])
    assert [m["platform"] for m in index["manifests"]] == BOTH
    for entry in index["manifests"]:
        config = _json(layout, _json(layout, entry["digest"])["config"]["digest"])
        assert config["architecture"] == entry["platform"]["architecture"]


@pytest.fixture
def built(ocb: Ocibuild, multi_registry: str, context: Path) -> str:
    (context / "Dockerfile").write_text(
        f"FROM {multi_registry}\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"
    )
    ocb.build(context, "--platform", "linux/amd64,linux/arm64", "-t", "saved:multi")
    return "saved:multi"


def test_save_writes_an_index_over_every_platform(
    ocb: Ocibuild, built: str, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    archive = tmp_path / "multi.tar"
    ocb("save", "--format", "oci-archive", "-o", str(archive), built)
    layout = tmp_path / "unpacked"
    with tarfile.open(archive) as tf:
        tf.extractall(layout, filter="data")
    _check_index(layout, "multi")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci-archive:{archive}:multi"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert [m["platform"] for m in json.loads(raw)["manifests"]] == BOTH
    # skopeo copies every platform out of it
    copy = tmp_path / "copy"
    subprocess.run(
        [skopeo, "copy", "--all", f"oci-archive:{archive}:multi", f"oci:{copy}:multi"],
        check=True, capture_output=True,
    )  # fmt: skip
    _check_index(copy, "multi")
    # --format oci (a directory) and standard output hold the same index
    ocb("save", "--format", "oci", "-o", str(tmp_path / "dir"), built)
    _check_index(tmp_path / "dir", "multi")
    with open(tmp_path / "streamed.tar", "wb") as out:
        subprocess.run(
            [sys.executable, "-m", "ocibuild", "save", "--format", "oci-archive", built],
            stdout=out, check=True, env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
        )  # fmt: skip
    assert (tmp_path / "streamed.tar").read_bytes() == archive.read_bytes()


def test_docker_archive_of_a_multi_platform_tag_says_it_holds_one(
    ocb: Ocibuild, built: str, tmp_path: Path
) -> None:
    archive = tmp_path / "docker.tar"
    r = ocb("save", "-o", str(archive), built)
    assert "a docker-archive holds one platform: linux/amd64 is saved" in r.stderr, r.stderr
    assert "(linux/amd64, linux/arm64)" in r.stderr, r.stderr
    with tarfile.open(archive) as tf:
        f = tf.extractfile("manifest.json")
        assert f is not None
        (entry,) = json.load(f)
        c = tf.extractfile(entry["Config"])
        assert c is not None
        assert json.load(c)["architecture"] == "amd64"
        assert entry["RepoTags"] == ["saved:multi"]


def test_push_of_a_multi_platform_tag_pushes_the_index(
    ocb: Ocibuild, built: str, multi_registry: str, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    dest = multi_registry.split("/", 1)[0] + "/platform/pushed:multi"
    digestfile = tmp_path / "digest"
    r = ocb("push", "--digestfile", str(digestfile), built, dest)
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{dest}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    index = json.loads(raw)
    assert index["mediaType"] == INDEX
    assert [m["platform"] for m in index["manifests"]] == BOTH
    digest = r.stdout.strip()
    assert digest == digestfile.read_text() == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
