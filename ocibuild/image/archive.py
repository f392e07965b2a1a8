"""Archive and rootfs exports: ``--output type=oci-archive|docker-archive|tar|local``.

* ``oci-archive``: the OCI layout (as ``type=oci`` writes it) in one tar file;
* ``docker-archive``: what ``docker load`` reads: an OCI layout with uncompressed layers
  plus Docker's ``manifest.json`` (Config, RepoTags, Layers) and ``repositories``, the
  format ``docker save`` writes since Docker 25;
* ``tar``: the image's root filesystem flattened into one tar (whiteouts applied);
* ``local``: that root filesystem unpacked into a directory.

Archives are deterministic (sorted entries, mtime 0, uid/gid 0, no user names) and
written to a temp file renamed into place. The rootfs exports mount the layers as an
overlay (root only) and archive the merged tree with :func:`write_tree`.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Sequence

from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import atomic_file
from ocibuild.image.digest import hexpart
from ocibuild.image.layout import export_oci_layout
from ocibuild.image.store import Store
from ocibuild.layers.apply import extract_archive
from ocibuild.layers.tarwriter import write_tree
from ocibuild.storage.overlay import prepare_rootfs


def _tar_dir(src: str, dest: str) -> None:
    """Tar ``src``'s contents into ``dest`` deterministically (atomic)."""
    directory = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(directory, exist_ok=True)
    with (
        atomic_file(dest, prefix=".tmp-archive-") as out,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for base, dirs, files in os.walk(src):
            dirs.sort()
            rel_base = os.path.relpath(base, src)
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(base, name)
                arc = name if rel_base == "." else f"{rel_base}/{name}"
                info = tf.gettarinfo(path, arcname=arc)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isreg():
                    with open(path, "rb") as f:
                        tf.addfile(info, f)
                else:
                    tf.addfile(info)


def export_oci_archive(
    store: Store,
    image_id: str,
    dest: str,
    *,
    ref_names: list[str],
    compression: str = "gzip",
) -> str:
    """Write an OCI archive; returns the manifest digest."""
    work = store.tmpdir("oci-archive-")
    try:
        layout = os.path.join(work, "layout")
        digest = export_oci_layout(
            store, image_id, layout, ref_names=ref_names, compression=compression
        )
        _tar_dir(layout, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def export_docker_archive(
    store: Store, image_id: str, dest: str, *, repo_tags: Sequence[str]
) -> str:
    """Write a ``docker load`` archive (uncompressed layers); returns the manifest digest."""
    work = store.tmpdir("docker-archive-")
    try:
        layout = os.path.join(work, "layout")
        tags = list(repo_tags)
        refs = sorted({t.rsplit("/", 1)[-1].partition(":")[2] or "latest" for t in tags})
        digest = export_oci_layout(store, image_id, layout, ref_names=refs, compression="none")
        diff_ids = store.get_image(image_id).diff_ids
        manifest = [
            {
                "Config": f"blobs/sha256/{hexpart(image_id)}",
                "RepoTags": tags,
                "Layers": [f"blobs/sha256/{hexpart(d)}" for d in diff_ids],
            }
        ]
        with open(os.path.join(layout, "manifest.json"), "w") as f:
            json.dump(manifest, f, separators=(",", ":"))
        repositories: dict[str, dict[str, str]] = {}
        top = hexpart(diff_ids[-1]) if diff_ids else hexpart(image_id)
        for tag in tags:
            name, _, version = tag.rpartition(":")
            repositories.setdefault(name, {})[version] = top
        with open(os.path.join(layout, "repositories"), "w") as f:
            json.dump(repositories, f, separators=(",", ":"), sort_keys=True)
        _tar_dir(layout, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return digest


def export_rootfs_tar(store: Store, image_id: str, dest: str) -> None:
    """The image's flattened root filesystem as one tar file (needs root: overlay)."""
    lowers = store.lower_dirs(store.get_image(image_id).diff_ids)
    directory = os.path.dirname(os.path.abspath(dest)) or "."
    os.makedirs(directory, exist_ok=True)
    work = store.tmpdir("rootfs-")
    try:
        with atomic_file(dest, prefix=".tmp-rootfs-") as out:
            mount = prepare_rootfs(lowers, work)
            try:
                with mount:
                    write_tree(mount.target, out, mode="plain", source_date_epoch=None)
            except OSError as e:
                raise OcibuildError(
                    f"cannot mount the image's layers to flatten them: {e}",
                    hint="type=tar and type=local need root (an overlay mount)",
                ) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_rootfs_dir(store: Store, image_id: str, dest: str) -> None:
    """The image's root filesystem unpacked into ``dest`` (created; must be empty)."""
    os.makedirs(dest, exist_ok=True)
    if os.listdir(dest):
        raise OcibuildError(f"--output type=local: {dest} is not empty", hint="give a new dir")
    work = store.tmpdir("local-")
    try:
        tar = os.path.join(work, "rootfs.tar")
        export_rootfs_tar(store, image_id, tar)
        with open(tar, "rb") as f:
            extract_archive(f, dest, "/")
    finally:
        shutil.rmtree(work, ignore_errors=True)
