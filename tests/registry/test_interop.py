"""Interop with skopeo and buildah, both directions, plain and htpasswd registries."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Ocibuild, require_tool
from tests.registry.conftest import env_for
from tests.registry.server import PASSWORD, USER, Registry

BUSYBOX = "/bin/busybox"


def login_env(ocb: Ocibuild, reg: Registry, tmp_path: Path) -> dict[str, str]:
    """Environment whose REGISTRY_AUTH_FILE holds credentials from ``ocibuild login``."""
    env = env_for(tmp_path / "auth.json")
    if reg.auth:
        res = ocb("login", "-u", USER, "--password-stdin", reg.host, input=PASSWORD + "\n", env=env)
        assert "Login Succeeded" in res.stdout
    return env


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"{' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res


def buildah(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = require_tool("buildah")
    flags = ["--root", str(root / "storage"), "--runroot", str(root / "run")]
    return tool(exe, *flags, "--storage-driver", "vfs", *args)


def test_ocibuild_push_read_by_skopeo_and_buildah(
    ocb: Ocibuild, base_image: str, any_registry: Registry, tmp_path: Path
) -> None:
    reg = any_registry
    skopeo = require_tool("skopeo")
    env = login_env(ocb, reg, tmp_path)
    ref = f"{reg.host}/interop/from-ocibuild:1"
    digest = ocb("push", base_image, ref, env=env).stdout.strip().splitlines()[-1]
    info = json.loads(tool(skopeo, "inspect", *reg.tool_auth(), f"docker://{ref}").stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == "amd64" and len(info["Layers"]) >= 2
    raw = json.loads(tool(skopeo, "inspect", "--raw", *reg.tool_auth(), f"docker://{ref}").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    out = tmp_path / "copied"
    creds = [f"--src-creds={reg.creds}"] if reg.auth else []
    tool(skopeo, "copy", "--src-tls-verify=false", *creds, f"docker://{ref}", f"oci:{out}:1")
    assert json.loads(tool(skopeo, "inspect", f"oci:{out}:1").stdout)["Digest"] == digest
    buildah(tmp_path / "b", "pull", "-q", *reg.tool_auth(), f"docker://{ref}")
    image = json.loads(buildah(tmp_path / "b", "inspect", "--type", "image", ref).stdout)
    assert image["FromImageDigest"] == digest
    assert image["OCIv1"]["rootfs"]["diff_ids"] == ocb.config(base_image)["rootfs"]["diff_ids"]


def test_buildah_and_skopeo_push_ocibuild_pulls_and_builds(
    ocb: Ocibuild, any_registry: Registry, tmp_path: Path
) -> None:
    reg = any_registry
    skopeo = require_tool("skopeo")
    b = tmp_path / "b"
    cmd = '["/bin/busybox", "echo", "from buildah"]'
    (tmp_path / "marker").write_text("zstd image\n")
    for image, extra in (("bimg:1", []), ("simg:1", [str(tmp_path / "marker")])):
        ctr = buildah(b, "from", "scratch").stdout.strip()
        buildah(b, "copy", ctr, BUSYBOX, "/bin/busybox")
        for path in extra:  # a different layer: no tool may substitute the other's blob
            buildah(b, "copy", ctr, path, "/marker")
        buildah(b, "config", "--cmd", cmd, ctr)
        buildah(b, "commit", "-q", "--format", "docker", ctr, image)
    by_buildah = f"{reg.host}/interop/by-buildah:1"
    buildah(b, "push", "-q", *reg.tool_auth(), "bimg:1", f"docker://{by_buildah}")
    by_skopeo = f"{reg.host}/interop/by-skopeo-zstd:1"
    creds = [f"--dest-creds={reg.creds}"] if reg.auth else []
    storage = f"containers-storage:[vfs@{b / 'storage'}+{b / 'run'}]localhost/simg:1"
    zstd = ["--dest-compress-format", "zstd"]
    tool(
        skopeo,
        "copy",
        *zstd,
        "--format",
        "oci",
        *creds,
        "--dest-tls-verify=false",
        storage,
        f"docker://{by_skopeo}",
    )
    raw = json.loads(
        tool(skopeo, "inspect", "--raw", *reg.tool_auth(), f"docker://{by_buildah}").stdout
    )
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    raw = json.loads(
        tool(skopeo, "inspect", "--raw", *reg.tool_auth(), f"docker://{by_skopeo}").stdout
    )
    assert raw["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"

    env = login_env(ocb, reg, tmp_path)
    for ref, word in ((by_buildah, "buildah"), (by_skopeo, "skopeo")):
        ocb("pull", ref, env=env)
        assert ocb.config(ref)["config"]["Cmd"] == ["/bin/busybox", "echo", "from buildah"]
        ctx = tmp_path / f"ctx-{word}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            f'FROM {ref}\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo on-{word} > /out"]\n'
        )
        ocb.build(ctx, "-t", f"built-on-{word}", "--pull=never", env=env)
        res = ocb.run(f"built-on-{word}", "/bin/busybox", "cat", "/out")
        assert res.stdout.strip() == f"on-{word}"


def test_login_logout(ocb: Ocibuild, auth_registry: Registry, tmp_path: Path) -> None:
    reg = auth_registry
    env = env_for(tmp_path / "auth.json")
    bad = ocb("login", "-u", USER, "-p", "wrong", reg.host, env=env, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "wrong user name or password" in bad.stderr
    assert not (tmp_path / "auth.json").exists()
    ocb("login", "-u", USER, "-p", PASSWORD, reg.host, env=env)
    assert (tmp_path / "auth.json").stat().st_mode & 0o777 == 0o600
    assert reg.host in json.loads((tmp_path / "auth.json").read_text())["auths"]
    ocb("logout", reg.host, env=env)
    again = ocb("logout", reg.host, env=env, check=False)
    assert again.returncode == 1 and "not logged in" in again.stderr
    anon = ocb("pull", f"{reg.host}/interop/anything:1", env=env, check=False)
    assert anon.returncode == 1 and "authentication required" in anon.stderr


@pytest.mark.parametrize("xdg", [True, False])
def test_credentials_from_xdg_and_docker_config(
    ocb: Ocibuild, auth_registry: Registry, base_image: str, tmp_path: Path, xdg: bool
) -> None:
    """No REGISTRY_AUTH_FILE: login writes (and pull reads) the XDG file, else Docker's."""
    env = env_for(tmp_path / "unused.json")
    del env["REGISTRY_AUTH_FILE"]
    if not xdg:
        del env["XDG_RUNTIME_DIR"]
    ocb("login", "-u", USER, "-p", PASSWORD, auth_registry.host, env=env)
    written = (
        tmp_path / "xdg" / "containers" / "auth.json"
        if xdg
        else tmp_path / "home" / ".docker" / "config.json"
    )
    assert auth_registry.host in written.read_text()
    ocb("push", "-q", base_image, f"{auth_registry.host}/interop/files:{int(xdg)}", env=env)
