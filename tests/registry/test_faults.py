"""Faults: each a clear error (exit 1, no traceback), no half-stored image, and a retry
afterwards succeeds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ocibuild.image.store import Store
from ocibuild.registry import RegistryOptions, Unreachable, parse_reference
from ocibuild.registry.progress import NoProgress
from ocibuild.registry.push import push
from tests.conftest import Ocibuild, require_tool
from tests.registry.conftest import FaultRegistry, blob_files, env_for
from tests.registry.server import PASSWORD, USER, Registry


def _clean(res_stderr: str) -> None:
    assert "Traceback" not in res_stderr
    assert res_stderr.startswith("error: ") or "\nerror: " in res_stderr


def test_wrong_credentials(
    ocb: Ocibuild, base_image: str, auth_registry: Registry, tmp_path: Path
) -> None:
    ref = f"{auth_registry.host}/faults/creds:1"
    env = env_for(tmp_path / "auth.json")
    ocb("push", "-q", "--creds", auth_registry.creds, base_image, ref, env=env)
    fresh = Ocibuild(tmp_path / "store")
    bad = fresh("pull", "--creds", f"{USER}:nope", ref, env=env, check=False)
    assert bad.returncode == 1
    _clean(bad.stderr)
    assert "wrong user name or password" in bad.stderr and "hint:" in bad.stderr
    assert ref not in fresh("images").stdout
    assert blob_files(tmp_path / "store") == set()
    fresh("login", "-u", USER, "-p", PASSWORD, auth_registry.host, env=env)
    fresh("pull", ref, env=env)
    assert ref in fresh("images").stdout


def test_missing_tag(ocb: Ocibuild, base_image: str, registry: Registry, tmp_path: Path) -> None:
    ocb("push", "-q", base_image, f"{registry.host}/faults/tags:1")
    fresh = Ocibuild(tmp_path / "store")
    res = fresh("pull", f"{registry.host}/faults/tags:nope", check=False)
    assert res.returncode == 1
    _clean(res.stderr)
    assert "not found" in res.stderr and "faults/tags:nope" in res.stderr
    res = fresh("pull", f"{registry.host}/faults/no-such-repo:1", check=False)
    assert res.returncode == 1 and "not found" in res.stderr
    assert fresh("images").stdout.strip().splitlines()[1:] == []
    fresh("pull", f"{registry.host}/faults/tags:1")


def test_digest_mismatch(fault_registry: FaultRegistry, tmp_path: Path) -> None:
    """A blob whose bytes do not match its digest, from a server we control (which also
    uses the anonymous bearer-token flow)."""
    reg = fault_registry
    image = reg.add_image("team/app", "1", [{"a.txt": b"first layer\n"}, {"b.txt": b"second\n"}])
    reg.corrupt.add(image["layers"][1])
    ocb = Ocibuild(tmp_path / "store")
    ref = f"{reg.host}/team/app:1"
    res = ocb("pull", "--jobs", "1", ref, check=False)
    assert res.returncode == 1
    _clean(res.stderr)
    assert f"layer {image['layers'][1]}: content has digest" in res.stderr
    assert "nothing was stored" in res.stderr
    assert reg.token_requests >= 1  # anonymous bearer token obtained
    blobs = blob_files(tmp_path / "store")
    assert image["layers"][1][7:] not in blobs and image["config"][7:] not in blobs
    assert ref not in ocb("images").stdout
    downloads = tmp_path / "store" / "registry" / "downloads"
    assert [n for n in os.listdir(downloads) if n.startswith(".part")] == []
    reg.corrupt.clear()
    res = ocb("pull", "--jobs", "1", ref)
    assert res.stdout.strip() == image["config"]
    assert "already in the store" in res.stderr  # the complete first layer was kept
    assert ocb.config(ref)["config"]["Cmd"] == ["/bin/sh"]


def test_manifest_digest_mismatch(fault_registry: FaultRegistry, tmp_path: Path) -> None:
    reg = fault_registry
    image = reg.add_image("team/app", "1", [{"a.txt": b"x\n"}])
    wrong = "sha256:" + "0" * 64
    reg.manifests[f"team/app:{wrong}"] = reg.manifests["team/app:1"]
    ocb = Ocibuild(tmp_path / "store")
    res = ocb("pull", f"{reg.host}/team/app@{wrong}", check=False)
    assert res.returncode == 1 and "content has digest" in res.stderr
    ocb("pull", f"{reg.host}/team/app@{image['manifest']}")


def test_connection_cut_mid_blob_resumes(fault_registry: FaultRegistry, tmp_path: Path) -> None:
    reg = fault_registry
    big = os.urandom(300_000)
    image = reg.add_image("team/big", "1", [{"big.bin": big}])
    reg.cut_once.add(image["layers"][0])
    ocb = Ocibuild(tmp_path / "store")
    ocb("pull", f"{reg.host}/team/big:1")
    assert reg.ranges and reg.ranges[0].startswith("bytes=") and reg.ranges[0] != "bytes=0-"


def test_registry_stopped_mid_push(
    ocb: Ocibuild, base_image: str, store_root: Path, fresh_registry: Registry
) -> None:
    skopeo = require_tool("skopeo")
    reg = fresh_registry
    store = Store(str(store_root))
    image_id = store.resolve(base_image)
    ref = parse_reference(f"{reg.host}/faults/midpush:1")

    class StopAfterFirstBlob(NoProgress):
        def end(self, key: str, note: str) -> None:
            reg.stop()

    ropts = RegistryOptions(jobs=1, retries=2, backoff=0.05)
    with pytest.raises(Unreachable) as err:
        push(store, image_id, ref, ropts=ropts, progress=StopAfterFirstBlob())
    assert f"cannot reach registry {reg.host}" in err.value.format()
    assert "Connection refused" in err.value.format()
    reg.start()
    res = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True
    )
    assert res.returncode != 0 and "manifest unknown" in res.stderr  # nothing half-pushed
    result = push(store, image_id, ref, ropts=ropts)
    assert "already in the registry" in result.actions.values()  # the first blob survived
    info = json.loads(
        subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["Digest"] == result.manifest_digest
