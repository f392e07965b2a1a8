"""Push/pull behaviour: stable digests, mounts, indexes, --pull policies, exports."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from ocibuild.image.layout import export_oci_layout
from ocibuild.image.store import Store
from tests.conftest import Ocibuild, require_tool
from tests.registry.server import Registry


def last(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_pushed_manifest_digest_is_stable(
    ocb: Ocibuild,
    base_image: str,
    store_root: Path,
    registry: Registry,
    tmp_path: Path,
    compression: str,
) -> None:
    first = last(
        ocb(
            "push",
            "--compression",
            compression,
            base_image,
            f"{registry.host}/stable/{compression}:1",
        ).stdout
    )
    again = last(
        ocb(
            "push",
            "--compression",
            compression,
            base_image,
            f"{registry.host}/stable/{compression}-again:1",
        ).stdout
    )
    assert first == again
    store = Store(str(store_root))  # an independent export regenerates every blob
    layout = export_oci_layout(
        store,
        store.resolve(base_image),
        str(tmp_path / "layout"),
        ref_names=["x"],
        compression=compression,
    )
    assert layout == first
    other = "zstd" if compression == "gzip" else "gzip"
    assert (
        last(
            ocb(
                "push",
                "--compression",
                other,
                base_image,
                f"{registry.host}/stable/other-{compression}:1",
            ).stdout
        )
        != first
    )


def test_cross_repo_mount_and_head_skip(ocb: Ocibuild, base_image: str, registry: Registry) -> None:
    ocb("push", base_image, f"{registry.host}/mount/a:1")
    res = ocb("push", base_image, f"{registry.host}/mount/b:1")
    assert "mounted from mount/a" in res.stderr
    res = ocb("push", base_image, f"{registry.host}/mount/b:2")
    assert "already in the registry" in res.stderr and "uploaded (" not in res.stderr


def test_index_picks_platform(
    ocb: Ocibuild, base_image: str, registry: Registry, context: Path
) -> None:
    (context / "f").write_text("other platform\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    other = ocb.build(context, "-t", "plat-other").image_id
    amd = last(ocb("push", base_image, f"{registry.host}/multi/img:amd").stdout)
    arm = last(ocb("push", "plat-other", f"{registry.host}/multi/img:arm").stdout)

    def desc(digest: str, arch: str) -> dict[str, object]:
        size = len(
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://{registry.host}/v2/multi/img/manifests/{digest}",
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                )
            ).read()
        )
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"os": "linux", "architecture": arch},
        }

    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc(arm, "arm64"), desc(amd, "amd64")],
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{registry.host}/v2/multi/img/manifests/all",
        data=index,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    urllib.request.urlopen(req)
    ref = f"{registry.host}/multi/img:all"
    amd_id = last(ocb("pull", "-q", ref).stdout)
    arm_id = last(ocb("pull", "-q", "--platform", "linux/arm64", ref).stdout)
    assert arm_id == other and amd_id != other
    res = ocb("pull", "--platform", "linux/s390x", ref, check=False)
    assert res.returncode == 1 and "no image for linux/s390x" in res.stderr
    assert "linux/amd64, linux/arm64" in res.stderr
    idx_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    assert last(ocb("pull", "-q", f"{registry.host}/multi/img@{idx_digest}").stdout) == amd_id


def test_from_pull_policies(
    ocb: Ocibuild, base_image: str, registry: Registry, tmp_path: Path, context: Path
) -> None:
    ref = f"{registry.host}/policy/base:1"
    digest = last(ocb("push", base_image, ref).stdout)
    fresh = Ocibuild(tmp_path / "store")
    (context / "Dockerfile").write_text(f"FROM {ref}\nRUN echo built > /built\n")
    res = fresh.build(context, "--pull=never", check=False)
    assert res.returncode == 1 and "--pull=never" in res.stderr
    res = fresh.build(context, "-t", "on-pulled")  # missing (default): pulls
    assert "pulling " + ref in res.stderr
    res = fresh.build(context)
    assert "pulling" not in res.stderr  # present now
    res = fresh.build(context, "--pull=always")
    assert "pulling " + ref in res.stderr and "already in the store" in res.stderr
    assert fresh.run("on-pulled", "cat", "/built").stdout.strip() == "built"
    by_digest = f"{registry.host}/policy/base@{digest}"
    (context / "Dockerfile").write_text(f"FROM {by_digest}\nRUN true\n")
    fresh.build(context, "--pull=never")  # a digest pulled before resolves locally


def test_build_push_and_registry_output(
    ocb: Ocibuild, base_image: str, registry: Registry, context: Path
) -> None:
    skopeo = require_tool("skopeo")
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo pushed > /p\n")
    name = f"{registry.host}/built/pushed:1"
    ocb.build(context, "-t", name, "--push")
    other = f"{registry.host}/built/output:2"
    ocb.build(context, "--output", f"type=registry,name={other}")
    for ref in (name, other):
        subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
            check=True,
            capture_output=True,
        )


def test_exports(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN rm /bin/vi && echo exported > /hello\n"
    )
    out = tmp_path / "out"
    ocb.build(context, "-t", "exp:1", "--output", f"type=oci-archive,dest={out}.oci.tar")
    info = json.loads(
        subprocess.run(
            [skopeo, "inspect", f"oci-archive:{out}.oci.tar:1"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["Architecture"] == "amd64"
    ocb.build(context, "-t", "exp:1", "--output", f"type=docker-archive,dest={out}.docker.tar")
    with tarfile.open(f"{out}.docker.tar") as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["exp:1"]
    info = json.loads(
        subprocess.run(
            [skopeo, "inspect", f"docker-archive:{out}.docker.tar"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["Architecture"] == "amd64"
    subprocess.run(  # the archive's RepoTags name the image, as docker load sees them
        [skopeo, "copy", f"docker-archive:{out}.docker.tar:exp:1", f"oci:{out}.from-docker:1"],
        check=True,
        capture_output=True,
    )
    ocb.build(context, "--output", f"type=tar,dest={out}.rootfs.tar")
    with tarfile.open(f"{out}.rootfs.tar") as tf:
        names = set(tf.getnames())
    assert "hello" in names and "bin/busybox" in names and "bin/vi" not in names
    assert not any(".wh." in n for n in names)
    ocb.build(context, "--output", f"type=local,dest={out}.dir")
    assert (out.parent / "out.dir" / "hello").read_text() == "exported\n"
    assert (out.parent / "out.dir" / "bin" / "busybox").is_file()
    assert not (out.parent / "out.dir" / "bin" / "vi").exists()
