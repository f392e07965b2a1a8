"""``--platform linux/amd64,linux/arm64``: one build per platform and one OCI image index
over them, exported as an OCI layout (the shape BuildKit v0.11.6's multi-platform OCI
export has: index.json names one index whose entries carry the platforms) and pushed to a
registry as one index."""

from __future__ import annotations

import json
import platform
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild, require_tool

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the expected values are for an amd64 machine"
)

INDEX = "application/vnd.oci.image.index.v1+json"


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def _json(layout: Path, digest: str) -> Any:
    return json.loads(_blob(layout, digest).read_text())


def _file_in_layers(layout: Path, manifest: dict[str, Any], name: str) -> bytes:
    for layer in reversed(manifest["layers"]):
        with tarfile.open(_blob(layout, layer["digest"])) as tf:
            try:
                f = tf.extractfile(name)
            except KeyError:
                continue
            assert f is not None
            return f.read()
    raise AssertionError(f"{name} in no layer")


def _inspect(skopeo: str, ref: str) -> Any:
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", ref], capture_output=True, check=True
    ).stdout
    return json.loads(raw)


def _why_pushed_differs(
    skopeo: str, name: str, pushed: Any, index: Any, out: Path, stderr: str
) -> str:
    """The manifests behind a pushed index that differs from the exported one, side by
    side with the exported ones, and the build's output: what a failure needs to be read."""
    repo = name.rsplit(":", 1)[0]
    lines = []
    for desc in pushed.get("manifests", []):
        manifest = _inspect(skopeo, f"docker://{repo}@{desc['digest']}")
        lines.append(f"pushed {desc.get('platform')}: {json.dumps(manifest)}")
    for desc in index["manifests"]:
        lines.append(f"exported {desc['platform']}: {json.dumps(_json(out, desc['digest']))}")
    return "\n".join([*lines, "build output:", stderr])


def test_two_platforms_make_one_index(
    ocb: Ocibuild, multi_registry: str, context: Path, tmp_path: Path
) -> None:
    host = multi_registry.split("/", 1)[0]
    (context / "Dockerfile").write_text(
        f'FROM {multi_registry}\nARG TARGETARCH\nRUN echo "$(uname -m) $TARGETARCH" > /arch\n'
    )
    out = tmp_path / "out"
    name = f"{host}/platform/built:multi"
    r = ocb.build(
        context,
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        name,
        "--output",
        f"type=oci,dest={out}",
        "--push",
    )
    top = json.loads((out / "index.json").read_text())
    (entry,) = top["manifests"]
    assert entry["mediaType"] == INDEX
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "multi"
    index = _json(out, entry["digest"])
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    arch_files = {}
    for desc in index["manifests"]:
        manifest = _json(out, desc["digest"])
        config = _json(out, manifest["config"]["digest"])
        assert config["architecture"] == desc["platform"]["architecture"]
        arch_files[config["architecture"]] = _file_in_layers(out, manifest, "arch")
    assert arch_files == {"amd64": b"x86_64 amd64\n", "arm64": b"aarch64 arm64\n"}
    # the tag names this machine's image in the store
    assert ocb.config(name)["architecture"] == "amd64"
    assert "index of 2 platforms" in r.stderr
    # pushed: the registry serves the same index
    skopeo = require_tool("skopeo")
    pushed = _inspect(skopeo, f"docker://{name}")
    assert pushed == index, _why_pushed_differs(skopeo, name, pushed, index, out, r.stderr)
    # and a pull for arm64 gets the arm64 image built here
    pulled = ocb("pull", "--platform", "linux/arm64", name).stdout.strip().splitlines()[-1]
    arm_manifest = _json(out, index["manifests"][1]["digest"])
    assert pulled == arm_manifest["config"]["digest"]


def test_multi_platform_output_must_hold_an_index(ocb: Ocibuild, context: Path) -> None:
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    r = ocb.build(
        context, "--platform", "linux/amd64,linux/arm64", "-o", "type=local,dest=x", check=False
    )
    assert r.returncode == 1
    assert r.stderr.startswith(
        "error: --output type=local: a multi-platform build (linux/amd64,linux/arm64) makes "
        "one image index"
    )
    assert "type=oci,dest=DIR" in r.stderr and "Traceback" not in r.stderr
