"""Copy a walked tree into a directory with as few system calls per file as possible.

COPY of a context with 100,000 small files spent most of its time in per-file overhead:
every entry's parent resolved again inside the root (an ``lstat`` per path component),
an ``lexists`` and ``lstat`` of the destination, ``copy_file_range`` failing with EXDEV
into the overlay mount before a buffered fallback, and path-based ``chown``/``chmod``/
``listxattr``/``utime``. :func:`copy_entries` does the same work with each source and
destination opened once and everything else done on the two descriptors:

* a regular file is ``open`` + ``open(O_CREAT|O_EXCL)`` + one data call (``read``/
  ``write`` for small files, else ``copy_file_range`` where both ends share a file
  system, ``sendfile`` otherwise) + ``fchown`` + ``fchmod`` + ``flistxattr`` +
  ``futimens`` + two ``close``;
* entries are written below the destination's host path by plain string joins: the
  walk lists parents before children, a directory entry always ends up a real
  directory (a directory merges into an existing one; over anything else, or a file
  over a directory, the copy stops with :class:`EntryClash`, as BuildKit's does), so
  no path below the destination needs resolving inside the root again;
* inside a directory this copy created (or found empty), nothing can exist yet, so the
  destination is not looked up before it is created.

The semantics are those of ``builder.copy.copy_entry`` (owner and mode from the plan,
setuid bits kept by ``chmod`` after ``chown``, ``user.*`` and ``security.capability``
xattrs, source mtimes, hard links kept within one COPY, sockets skipped, directory
mtimes restored by the caller from ``plan.dirs``).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterable
from typing import Protocol

KEPT_XATTRS = ("security.capability",)
SMALL = 256 * 1024  # files up to this size: one read and one write
_SRC_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DST_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)

Entry = tuple[str, str, os.stat_result]  # (source host path, path below the top, lstat)


class EntryClash(Exception):
    """An entry meets an existing one of the other kind (BuildKit fails the COPY):
    ``dir_over_file`` True for a directory onto a non-directory, False for a
    non-directory onto a directory; ``rel`` is the entry's path below the top."""

    def __init__(self, rel: str, dir_over_file: bool) -> None:
        super().__init__(rel)
        self.rel = rel
        self.dir_over_file = dir_over_file


class CopyPlan(Protocol):
    """What the copy needs of ``builder.copy.CopyPlan``."""

    hardlinks: dict[tuple[int, int], str]
    dirs: list[tuple[str, os.stat_result]]

    def owner(self, st: os.stat_result) -> tuple[int, int]: ...

    def mode(self, st: os.stat_result) -> int: ...


class _Data:
    """Copies file contents, remembering which kernel path works between the two file
    systems (``copy_file_range`` fails with EXDEV into an overlay mount, for example)."""

    def __init__(self) -> None:
        self.kernel_copy = True  # copy_file_range
        self.sendfile = True

    def copy(self, fin: int, fout: int, size: int) -> None:
        if size <= SMALL:
            self._small(fin, fout, size)
            return
        done = 0
        if self.kernel_copy:
            done = self._loop(fin, fout, size, _copy_file_range)
            if done < 0:
                self.kernel_copy = False
                done = 0
            else:
                return
        if self.sendfile:
            done = self._loop(fin, fout, size, _sendfile)
            if done >= 0:
                return
            self.sendfile = False
        _buffered(fin, fout)

    @staticmethod
    def _small(fin: int, fout: int, size: int) -> None:
        data = os.read(fin, size + 1)  # one byte more: a short read is the end of file
        if len(data) > size:  # the file grew since it was walked: copy all of it
            chunks = [data]
            while chunk := os.read(fin, SMALL):
                chunks.append(chunk)
            data = b"".join(chunks)
        view = memoryview(data)
        while view:
            view = view[os.write(fout, view) :]

    @staticmethod
    def _loop(fin: int, fout: int, size: int, call: _Call) -> int:
        """Bytes copied with ``call`` (to the end of file), or -1 when ``call`` is not
        possible between these two files and nothing was copied yet."""
        done = 0
        while True:
            try:
                n = call(fin, fout, max(size - done, 1 << 20))
            except OSError as exc:
                if done == 0 and exc.errno in _NO_KERNEL_COPY:
                    return -1
                raise
            if n == 0:
                return done
            done += n


class _Call(Protocol):
    def __call__(self, fin: int, fout: int, count: int, /) -> int: ...


def _copy_file_range(fin: int, fout: int, count: int) -> int:
    return os.copy_file_range(fin, fout, count)


def _sendfile(fin: int, fout: int, count: int) -> int:
    return os.sendfile(fout, fin, None, count)


def _buffered(fin: int, fout: int) -> None:
    with open(fin, "rb", closefd=False) as src, open(fout, "wb", closefd=False) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _copy_xattrs(fin: int | str, fout: int | str) -> None:
    try:
        names = os.listxattr(fin) if isinstance(fin, int) else _llistxattr(fin)
    except OSError:
        return
    for name in names:
        if name.startswith("user.") or name in KEPT_XATTRS:
            try:
                if isinstance(fin, int) and isinstance(fout, int):
                    os.setxattr(fout, name, os.getxattr(fin, name))
                else:
                    value = os.getxattr(fin, name, follow_symlinks=False)
                    os.setxattr(fout, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise


def _llistxattr(path: str) -> list[str]:
    return os.listxattr(path, follow_symlinks=False)


def _is_empty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return False


def _remove_any(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def copy_entries(entries: Iterable[Entry], dest: str, plan: CopyPlan) -> None:
    """Copy ``entries`` (a walk of one source directory: parents before children, paths
    relative to it) into the existing host directory ``dest``.

    ``dest`` must already be resolved inside the image root; below it, paths are joined
    literally (see the module docstring for why that stays inside the root)."""
    data = _Data()
    fresh: set[str] = {""} if _is_empty_dir(dest) else set()
    prefix = dest.rstrip("/") + "/"
    hardlinks = plan.hardlinks
    for src, rel, st in entries:
        dst = prefix + rel
        parent = rel.rpartition("/")[0]
        mode = st.st_mode
        is_dir = stat.S_ISDIR(mode)
        if parent not in fresh:
            try:
                existing = os.lstat(dst)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(existing.st_mode) != is_dir:
                    raise EntryClash(rel, is_dir)
                if is_dir:
                    _dir_meta(src, dst, st, plan)
                    continue
                _remove_any(dst)
        if is_dir:
            os.mkdir(dst, 0o700)
            fresh.add(rel)
            _dir_meta(src, dst, st, plan)
            continue
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1:
                first = hardlinks.get(key)
                if first is not None:
                    os.link(first, dst)
                    continue
                hardlinks[key] = dst
            _copy_file(src, dst, st, plan, data)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
            uid, gid = plan.owner(st)
            os.chown(dst, uid, gid, follow_symlinks=False)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if stat.S_ISFIFO(mode):
                os.mkfifo(dst)
            else:
                os.mknod(dst, mode, st.st_rdev)
            _path_meta(src, dst, st, plan)
        # sockets are not copied


def _copy_file(src: str, dst: str, st: os.stat_result, plan: CopyPlan, data: _Data) -> None:
    fin = os.open(src, _SRC_FLAGS)
    try:
        fout = os.open(dst, _DST_FLAGS, 0o600)
        try:
            if st.st_size:
                data.copy(fin, fout, st.st_size)
            uid, gid = plan.owner(st)
            os.fchown(fout, uid, gid)
            os.fchmod(fout, plan.mode(st))  # after chown: chown clears setuid bits
            _copy_xattrs(fin, fout)
            os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _dir_meta(src: str, dst: str, st: os.stat_result, plan: CopyPlan) -> None:
    """Owner, mode and xattrs of a directory; its times are set by the caller once its
    contents are in (``plan.dirs``, restored last to first)."""
    uid, gid = plan.owner(st)
    os.chown(dst, uid, gid, follow_symlinks=False)
    os.chmod(dst, plan.mode(st))
    _copy_xattrs(src, dst)
    plan.dirs.append((dst, st))


def _path_meta(src: str, dst: str, st: os.stat_result, plan: CopyPlan) -> None:
    uid, gid = plan.owner(st)
    os.chown(dst, uid, gid, follow_symlinks=False)
    os.chmod(dst, plan.mode(st))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
