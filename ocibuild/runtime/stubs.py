"""Mount-point stubs: what the runtime creates in the rootfs only to mount over it.

runc creates a missing mount destination (and its missing parents) in the merged rootfs
before mounting: /proc, /sys, /dev, /etc/hosts, /etc/resolv.conf, even /etc itself on a
``FROM scratch`` image. Those land in the overlay upper dir and must not reach the layer.
As BuildKit does (executor/stubs.go): note what is missing before the run, and afterwards
delete what is still an empty file or empty dir, deepest first, keeping the parent's
timestamps. A stub the step filled (a file written into a created /etc) stays.

/proc, /sys and /dev are not stubs in BuildKit (they stay in the layer): ocibuild makes
the missing ones itself before the sandbox starts (``make_kernel_dirs``) and keeps them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Mapping, Sequence

from ocibuild.errors import OcibuildError
from ocibuild.fs.rootpath import resolve_in_root
from ocibuild.fs.whiteout import WHITEOUT_PREFIX


def find_missing(rootfs: str, destinations: Iterable[str]) -> list[str]:
    """Root-relative paths (no leading '/') the runtime would have to create.

    Each destination is resolved inside ``rootfs`` (symlinks clamped to it); the first
    missing component and everything below it are reported. Sorted, deduplicated.
    """
    missing: set[str] = set()
    for dest in destinations:
        rel = resolve_in_root(rootfs, dest)
        if not rel:
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            if not os.path.lexists(os.path.join(rootfs, *parts[:i])):
                missing.update("/".join(parts[:j]) for j in range(i, len(parts) + 1))
                break
    return sorted(missing)


# Where every sandbox mounts a filesystem of its own: these must be real directories.
KERNEL_DIRS = ("proc", "sys", "dev")


def check_kernel_dirs(rootfs: str) -> None:
    """Refuse an image whose /proc, /sys or /dev is a symlink or not a directory.

    runc 1.1 mounts /dev through a path resolved inside the root but then makes /dev/fd,
    /dev/ptmx... by joining host paths, so a /dev symlink to a host path makes it write
    there; crun and the native sandbox refuse such an image themselves. Refusing it here
    holds for every sandbox. A missing one is fine (the runtime creates a stub)."""
    for name in KERNEL_DIRS:
        try:
            st = os.lstat(os.path.join(rootfs, name))
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise OcibuildError(
                f"/{name} in the image is a symlink or not a directory ({what}); a RUN "
                f"step mounts {name} there, which needs a real directory of the image",
                hint=f"make /{name} a directory in an earlier step (RUN rm /{name} && "
                f"mkdir /{name}), or copy the tree without /{name}",
            )


KERNEL_DIR_MODE = 0o755  # what runc gives the /proc, /sys, /dev it creates


def make_kernel_dirs(rootfs: str) -> list[str]:
    """Create the missing /proc, /sys, /dev of ``rootfs`` as 0755 dirs owned by 0:0;
    returns the names created.

    BuildKit keeps them: runc creates them in the rootfs to mount over them, and they are
    not among the stubs it removes (executor/stubs.go lists /etc/hosts, /etc/resolv.conf
    and the step's own mounts), so a RUN over an image without them (``FROM scratch``)
    leaves them in its layer as empty 0755 root dirs. Made here, before any sandbox
    starts, they are the same whatever creates the mounts: runc, crun, native-chroot,
    root or rootless, any storage driver (each would give them its own mode or owner).
    Called after ``check_kernel_dirs``; created relative to a descriptor of the root, no
    link followed."""
    created: list[str] = []
    fd = os.open(rootfs, _DIR_FLAGS)
    try:
        for name in KERNEL_DIRS:
            try:
                os.mkdir(name, KERNEL_DIR_MODE, dir_fd=fd)
            except FileExistsError:
                continue
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                os.fchown(child, 0, 0)
                os.fchmod(child, KERNEL_DIR_MODE)  # whatever the umask
            finally:
                os.close(child)
            created.append(name)
    finally:
        os.close(fd)
    return created


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_nofollow(top: str, rel: str) -> int | None:
    """An fd on ``top/rel`` opened one component at a time, none of them followed.

    ``top`` is ocibuild's own dir (an upper dir, a rootfs); what lies below it was written
    by a RUN step and is not trusted: a component that is a symlink, or anything but a
    directory, gives None, and nothing below it is touched. The caller closes the fd.
    """
    fd = os.open(top, _DIR_FLAGS)
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        try:
            if part == "..":
                raise OSError(errno.EINVAL, "'..' in a stub path", rel)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = child
    return fd


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rstrip("/").rpartition("/")
    return parent, name


def _only_markers(dir_fd: int, name: str) -> list[str] | None:
    """The names in the dir ``name`` (of ``dir_fd``) if it holds only opaque markers."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    # fuse-overlayfs marks every dir it creates opaque (files, 0/0 devices)
    return None if [n for n in names if not n.startswith(WHITEOUT_PREFIX)] else names


def _remove_stub(dir_fd: int, name: str) -> bool:
    """Remove ``name`` in ``dir_fd`` if it is an empty file or a dir of markers only."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        markers = _only_markers(dir_fd, name)
        if markers is None:
            return False
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            for marker in markers:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(marker, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError:
            return False
        return True
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        os.unlink(name, dir_fd=dir_fd)
        return True
    return False


def remove_stubs(upper_dir: str, missing: Sequence[str]) -> list[str]:
    """Delete the still-empty stubs among ``missing`` from ``upper_dir``; returns them.

    The step may have replaced a stub's parent by a symlink (to a host path, say): every
    component is opened without following links, a parent that is no longer a real
    directory means that stub is left alone, and the removal is relative to the parent's
    fd, so nothing outside ``upper_dir`` is deleted or touched.
    """
    removed: list[str] = []
    for rel in sorted(missing, key=lambda p: (-p.count("/"), p)):
        parent, name = _split(rel)
        if not name or name in (".", ".."):
            continue
        pfd = open_dir_nofollow(upper_dir, parent)
        if pfd is None:
            continue
        try:
            pst = os.fstat(pfd)
            if _remove_stub(pfd, name):
                os.utime(pfd, ns=(pst.st_atime_ns, pst.st_mtime_ns))
                removed.append(rel)
        finally:
            os.close(pfd)
    return removed


def restore_dir_times(root: str, times: Mapping[str, os.stat_result]) -> None:
    """Give the dirs ``rel`` in ``root`` back the times in ``times``, following no link
    the step may have put in their place (a link or a non-dir is skipped)."""
    for rel, st in times.items():
        fd = open_dir_nofollow(root, rel)
        if fd is None:
            continue
        try:
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:
            pass
        finally:
            os.close(fd)


def existing_parents(rootfs: str, missing: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Dirs that exist in the rootfs and will get a stub created in them: rel -> (mode,
    uid, gid) before the run. Creating the stub copies them up into the upper dir."""
    out: dict[str, tuple[int, int, int]] = {}
    missing_set = set(missing)
    for rel in missing:
        parent = os.path.dirname(rel)
        while parent and parent not in missing_set and parent not in out:
            st = os.lstat(os.path.join(rootfs, parent))
            out[parent] = (st.st_mode, st.st_uid, st.st_gid)
            parent = os.path.dirname(parent)
    return out


def remove_copied_up_parents(upper_dir: str, parents: dict[str, tuple[int, int, int]]) -> None:
    """Drop dirs from ``upper_dir`` that were copied up only to hold a stub: still empty,
    not opaque, same mode and owner as before the run (deepest first). Walked with
    directory fds and no link followed, like ``remove_stubs``."""
    for rel in sorted(parents, key=lambda p: (-p.count("/"), p)):
        parent, name = _split(rel)
        if not name or name in (".", ".."):
            continue
        pfd = open_dir_nofollow(upper_dir, parent)
        if pfd is None:
            continue
        try:
            _remove_if_untouched(pfd, name, parents[rel])
        finally:
            os.close(pfd)


def _remove_if_untouched(pfd: int, name: str, before: tuple[int, int, int]) -> None:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
    except OSError:
        return  # gone, a link or not a dir
    try:
        st = os.fstat(fd)
        if os.listdir(fd) or any("opaque" in n for n in os.listxattr(fd)):
            return
    except OSError:
        return
    finally:
        os.close(fd)
    if (st.st_mode, st.st_uid, st.st_gid) == before:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=pfd)
