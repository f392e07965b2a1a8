"""A two-platform Debian base (linux/amd64 + linux/arm64) made from debootstrap roots.

``debootstrap --variant=minbase --arch=ARCH bookworm`` makes one root per architecture
(the arm64 one through QEMU's aarch64 emulator registered in binfmt_misc: debootstrap's
second stage runs there; about 2 minutes). Each root becomes one uncompressed layer, as
``conformance.bases`` does for the amd64 Debian base; the layout's index.json names (tag
``bookworm``) one OCI image index over the two images, each entry carrying its platform,
the shape a registry serves for ``debian:bookworm``.

Roots and layout are cached in ``conformance.bases.CACHE`` (shared by every worktree, made
under its lock); the amd64 root is the one ``conformance.bases`` already made. Used by the
platform conformance cases (``conformance/cases/platforms.py``) and by the tests in
tests/platform/ (pushed to a registry there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conformance.bases import CACHE, EPOCH, HISTORY, PATH, _locked
from conformance.layout import _put

VERSION = "1"
ARCHES = ("amd64", "arm64")
TAG = "bookworm"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def root_dir(arch: str) -> Path:
    """Where the debootstrap root of ``arch`` is cached (amd64: conformance.bases's)."""
    return CACHE / ("debian-root" if arch == "amd64" else f"debian-root-{arch}")


def debootstrap(arch: str) -> Path:
    """The cached ``debootstrap --arch=ARCH --variant=minbase bookworm`` root (made once;
    the caller holds the cache lock)."""
    root = root_dir(arch)
    if not (root / "etc" / "debian_version").exists():
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run(
            ["debootstrap", f"--arch={arch}", "--variant=minbase", "bookworm", str(tmp)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            log = (tmp / "debootstrap" / "debootstrap.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"debootstrap --arch={arch} failed: {proc.stderr[-2000:]}{log}")
        os.replace(tmp, root)
    for name in ("hosts", "resolv.conf", "hostname"):  # mount points every runtime uses
        (root / "etc" / name).touch()
    return root


def debian_index_layout() -> Path:
    """The two-platform Debian layout (made once, cached)."""
    dest = CACHE / f"debian-multi-v{VERSION}"
    if (dest / "index.json").exists():
        return dest
    with _locked():
        if not (dest / "index.json").exists():
            _make(dest)
    return dest


def _layer(root: Path, tar: Path) -> None:
    excludes = ["./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./proc/*", "./sys/*"]
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "--sort=name", f"--mtime=@{EPOCH}",
         *[f"--exclude={e}" for e in excludes], "-C", str(root), "-cf", str(tar), "."],
        check=True,
    )  # fmt: skip


def _image(blobs: Path, arch: str) -> dict[str, Any]:
    """One platform's image (layer, config, manifest) in ``blobs``; its index entry."""
    root = debootstrap(arch)
    tar = blobs / "layer.tmp"
    _layer(root, tar)
    h = subprocess.run(["sha256sum", str(tar)], capture_output=True, text=True, check=True)
    hexdigest = h.stdout.split()[0]
    os.replace(tar, blobs / hexdigest)
    config = {"architecture": arch, "os": "linux",
              "config": {"Env": [f"PATH={PATH}"], "Cmd": ["bash"]},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hexdigest}"]},
              "history": HISTORY}  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": _put(
            blobs,
            json.dumps(config, sort_keys=True).encode(),
            "application/vnd.oci.image.config.v1+json",
        ),
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{hexdigest}",
                "size": (blobs / hexdigest).stat().st_size,
            }
        ],
    }
    desc = _put(blobs, json.dumps(manifest).encode(), MT_MANIFEST)
    desc["platform"] = {"architecture": arch, "os": "linux"}
    return desc


def _make(dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = tmp / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    entries = [_image(blobs, arch) for arch in ARCHES]
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}
    idesc = _put(blobs, json.dumps(index).encode(), MT_INDEX)
    idesc["annotations"] = {"org.opencontainers.image.ref.name": TAG}
    (tmp / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (tmp / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [idesc]}))
    os.replace(tmp, dest)


def index_digest(layout: Path) -> str:
    """The digest of the image index the layout's index.json names."""
    top = json.loads((layout / "index.json").read_text())
    digest: str = top["manifests"][0]["digest"]
    return digest


def platform_manifest(layout: Path, arch: str) -> dict[str, Any]:
    """The index entry (descriptor) of ``arch``'s image."""
    digest = index_digest(layout).split(":", 1)[1]
    index = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    for entry in index["manifests"]:
        if entry["platform"]["architecture"] == arch:
            return dict(entry)
    raise KeyError(arch)


def main() -> int:
    """Make (or show) the cached layout: ``python -m conformance.multiarch``."""
    layout = debian_index_layout()
    print(f"{layout} index {index_digest(layout)}")
    for arch in ARCHES:
        print(f"  {arch}: {platform_manifest(layout, arch)['digest']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
