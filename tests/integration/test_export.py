"""The exported OCI layout: validated by oci-image-tool, read by skopeo and umoci, run by runc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Ocibuild, read_layout, require_tool


@pytest.fixture(scope="module")
def exported(ocb: Ocibuild, base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ctx = tmp_path_factory.mktemp("exportctx")
    (ctx / "Dockerfile").write_text(
        f'FROM {base_image}\nRUN echo exported > /hello && rm /bin/vi\nCMD ["cat", "/hello"]\n'
    )
    out = tmp_path_factory.mktemp("export") / "layout"
    ocb.build(ctx, "-t", "exported:v1", "--output", f"type=oci,dest={out}")
    return out


def test_layout_structure(exported: Path) -> None:
    layout = read_layout(exported)
    assert json.loads((exported / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    desc = layout.index["manifests"][0]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    assert layout.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    for layer in layout.manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert layout.blob(layer["digest"]).stat().st_size == layer["size"]
    assert len(layout.config["rootfs"]["diff_ids"]) == len(layout.manifest["layers"])


def test_oci_image_tool_validates(exported: Path) -> None:
    tool = require_tool("oci-image-tool")
    # oci-image-tool 1.0.0-rc1 (Debian) leaves "--type imageLayout" unimplemented; its
    # "image" type validates the layout (oci-layout, index.json, blobs, manifest, config).
    res = subprocess.run(
        [tool, "validate", "--type", "image", str(exported)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Validation succeeded" in res.stdout + res.stderr


def test_skopeo_inspect(exported: Path) -> None:
    skopeo = require_tool("skopeo")
    res = subprocess.run([skopeo, "inspect", f"oci:{exported}:v1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert len(info["Layers"]) == len(read_layout(exported).manifest["layers"])


def test_umoci_unpack_and_runc_run(exported: Path, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    runc = require_tool("runc")
    bundle = tmp_path / "bundle"
    res = subprocess.run(
        [umoci, "unpack", "--image", f"{exported}:v1", str(bundle)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    rootfs = bundle / "rootfs"
    assert (rootfs / "hello").read_text() == "exported\n"
    assert not os.path.lexists(rootfs / "bin" / "vi"), "the whiteout was applied"
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "runc-state"
    res = subprocess.run(
        [runc, "--root", str(state), "run", "--bundle", str(bundle), "ocibuild-export-test"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "exported\n"
    shutil.rmtree(state, ignore_errors=True)


def test_zstd_export(ocb: Ocibuild, base_image: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo z > /z\n")
    out = tmp_path / "zstd"
    ocb("build", "--compression", "zstd", "--output", f"type=oci,dest={out}", str(ctx))
    layout = read_layout(out)
    types = {layer["mediaType"] for layer in layout.manifest["layers"]}
    assert types == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    skopeo = require_tool("skopeo")
    assert (
        subprocess.run([skopeo, "inspect", f"oci:{out}:latest"], capture_output=True).returncode
        == 0
    )


def test_reproducible_with_source_date_epoch(
    ocb: Ocibuild, base_image: str, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data").write_text("content\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {base_image}\nCOPY data /data\nRUN mkdir -p /gen && echo generated > /gen/file\n"
        "ENV X=1\n"
    )
    digests = []
    for n in range(2):
        out = tmp_path / f"out{n}"
        os.utime(ctx / "data")  # a fresh mtime each time: clamped by SOURCE_DATE_EPOCH
        res = ocb(
            "build",
            "--output",
            f"type=oci,dest={out}",
            str(ctx),
            env={"SOURCE_DATE_EPOCH": "1700000000"},
        )
        digests.append((res.image_id, read_layout(out).manifest_digest))
    assert digests[0] == digests[1]
    config = read_layout(tmp_path / "out0").config
    assert config["created"] == "2023-11-14T22:13:20Z"
