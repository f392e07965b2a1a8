"""Filesystem operations inside a rootfs that never leave it.

Every path is resolved with the rootfs as ``/`` (``fs.rootpath``): symlinks in the
image are followed the way the container would follow them, never out to the host.
The final component is never followed when something is created there.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat

from ocibuild.fs.rootpath import resolve_in_root

KEPT_XATTRS = ("security.capability",)


def parent_in_root(root: str, path: str) -> tuple[str, str]:
    """(host dir the entry lives in, entry name): parent resolved, final name literal."""
    clean = posixpath.normpath("/" + path)
    parent, name = posixpath.split(clean)
    rel = resolve_in_root(root, parent)
    host_parent = os.path.join(root, rel) if rel else root
    return host_parent, name


def host_path(root: str, path: str, *, follow: bool = True) -> str:
    """The host path of ``path`` inside ``root`` (the last symlink followed if ``follow``)."""
    if follow:
        rel = resolve_in_root(root, path)
        return os.path.join(root, rel) if rel else root
    parent, name = parent_in_root(root, path)
    return os.path.join(parent, name) if name else parent


def makedirs(root: str, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> str:
    """``mkdir -p`` inside ``root``; created dirs get ``mode`` and ``uid:gid``.

    The path is resolved in the root first, so a symlink on the way is followed and a
    dangling one has its target created (BuildKit: ``WORKDIR /link/sub`` with ``/link``
    pointing nowhere makes the link's target and ``sub`` below it)."""
    rel = resolve_in_root(root, path)
    current = root
    shown = ""
    for part in [p for p in rel.split("/") if p]:
        current = os.path.join(current, part)
        shown += "/" + part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, mode)
            os.chown(current, uid, gid, follow_symlinks=False)
            os.chmod(current, mode)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", shown)
    return current


def remove_any(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith("user.") or name in KEPT_XATTRS:
            try:
                value = os.getxattr(src, name, follow_symlinks=False)
                os.setxattr(dst, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise


def copy_data(src: str, dst: str) -> None:
    """Copy file contents, in the kernel where it can (copy_file_range)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        offset = 0
        try:
            while offset < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - offset)
                if n == 0:
                    break
                offset += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            fin.seek(offset)
            fout.seek(offset)
            shutil.copyfileobj(fin, fout, 1 << 20)
