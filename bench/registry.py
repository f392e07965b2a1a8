"""Pull and push of a ~200 MB Debian image: ocibuild against ``skopeo copy``, one run.

Usage (as root): ``.venv/bin/python bench/registry.py [--work DIR]``.

Set-up (untimed): ``debootstrap --variant=minbase bookworm`` once (cached in WORK), an
image built from it by ocibuild (``FROM scratch`` + ``COPY rootfs/ /``), an OCI layout
export of that image (gzip) as skopeo's source, and a fresh ``docker-registry`` on
127.0.0.1 for every timed transfer (so nothing is ever already there).

Timed:
* push, cold: ``ocibuild push`` of the built image (gzip compression of the unpacked layer
  + upload, one streaming pass) vs ``skopeo copy oci:LAYOUT docker://`` (upload of blobs
  already compressed);
* push, pulled image: ``ocibuild push`` of the image it pulled (original blobs kept: upload
  only, like skopeo);
* pull: ``ocibuild pull`` into an empty store (download, verify, unpack into layer dirs)
  vs ``skopeo copy docker:// oci:DIR`` (download, verify; no unpacking), and vs that
  plus ``tar -xzf`` of its layers (the unpacking ocibuild also does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.registry.server import Registry  # noqa: E402

OCIBUILD = [str(REPO / ".venv" / "bin" / "python"), "-m", "ocibuild"]


def run(cmd: list[str], **kw: object) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.monotonic() - started


def _skopeo_manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    data: dict[str, Any] = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return data


def fresh_registry(work: Path, name: str) -> Registry:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    reg = Registry(path, htpasswd=False)
    reg.start()
    return reg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/var/tmp/ocibuild-registry-bench")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rootfs = work / "ctx" / "rootfs"
    if not (rootfs / "etc" / "debian_version").exists():
        print("debootstrap --variant=minbase bookworm (once) ...", file=sys.stderr)
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    (work / "ctx" / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["bash"]\n')
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    env = {**os.environ, "OCIBUILD_ROOT": str(store)}
    env.pop("SOURCE_DATE_EPOCH", None)
    layout = work / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    print("building the image (untimed) ...", file=sys.stderr)
    subprocess.run(
        [
            *OCIBUILD,
            "build",
            "-q",
            "-t",
            "bench-debian:1",
            "--output",
            f"type=oci,dest={layout}",
            str(work / "ctx"),
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    size = sum(f.stat().st_size for f in (layout / "blobs" / "sha256").iterdir())
    results: dict[str, float] = {}
    skopeo = shutil.which("skopeo") or "skopeo"

    reg = fresh_registry(work, "reg-ocb")
    try:
        results["push ocibuild (compress+upload)"] = run(
            [*OCIBUILD, "push", "-q", "bench-debian:1", f"{reg.host}/bench/debian:1"], env=env
        )
        pull_store = work / "pull-store"
        shutil.rmtree(pull_store, ignore_errors=True)
        results["pull ocibuild (download+verify+unpack)"] = run(
            [*OCIBUILD, "pull", "-q", "--root", str(pull_store), f"{reg.host}/bench/debian:1"],
            env=env,
        )
    finally:
        reg.stop()
    pulled = f"{reg.host}/bench/debian:1"
    reg = fresh_registry(work, "reg-ocb-again")
    try:
        results["push ocibuild (pulled image: upload only)"] = run(
            [*OCIBUILD, "push", "-q", "--root", str(pull_store), pulled, f"{reg.host}/b/d:1"],
            env=env,
        )
    finally:
        reg.stop()
    reg = fresh_registry(work, "reg-skopeo")
    try:
        results["push skopeo copy oci: -> docker://"] = run(
            [
                skopeo,
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{layout}:1",
                f"docker://{reg.host}/bench/debian:1",
            ]
        )
        out = work / "skopeo-pulled"
        shutil.rmtree(out, ignore_errors=True)
        results["pull skopeo copy docker:// -> oci:"] = run(
            [
                skopeo,
                "copy",
                "-q",
                "--src-tls-verify=false",
                f"docker://{reg.host}/bench/debian:1",
                f"oci:{out}:1",
            ]
        )
        # what ocibuild's pull also does: unpack the layers (GNU tar + gzip, as a floor)
        unpacked = work / "skopeo-unpacked"
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.mkdir()
        manifest = _skopeo_manifest(out)
        started = time.monotonic()
        for layer in manifest["layers"]:
            blob = out / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
            subprocess.run(["tar", "-xzf", str(blob), "-C", str(unpacked)], check=True)
        results["unpack of skopeo's layers (tar -xzf)"] = time.monotonic() - started
        shutil.rmtree(unpacked, ignore_errors=True)
    finally:
        reg.stop()

    print(
        f"\nDebian bookworm minbase image, {size / 1e6:.0f} MB compressed (gzip), "
        f"one run, {os.cpu_count()} cores\n"
    )
    print("| transfer | seconds |")
    print("|---|---|")
    for name, secs in results.items():
        print(f"| {name} | {secs:.2f} |")
    push_ratio = (
        results["push ocibuild (compress+upload)"] / results["push skopeo copy oci: -> docker://"]
    )
    push_up = (
        results["push ocibuild (pulled image: upload only)"]
        / results["push skopeo copy oci: -> docker://"]
    )
    pull_ratio = (
        results["pull ocibuild (download+verify+unpack)"]
        / results["pull skopeo copy docker:// -> oci:"]
    )
    pull_floor = (
        results["pull skopeo copy docker:// -> oci:"]
        + results["unpack of skopeo's layers (tar -xzf)"]
    )
    print(
        f"\nratio ocibuild/skopeo: push {push_ratio:.2f} (cold, includes gzip), "
        f"push {push_up:.2f} (upload only), pull {pull_ratio:.2f} (ocibuild also unpacks); "
        f"pull against skopeo copy + tar -xzf: "
        f"{results['pull ocibuild (download+verify+unpack)'] / pull_floor:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
