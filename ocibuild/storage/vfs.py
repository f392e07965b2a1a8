"""vfs: the rootfs is a full copy of the layers; the layer is the diff against a snapshot.

For kernels and filesystems with no overlay at all. The layers are copied bottom-up into
``WORK/merged`` (reflinked where the filesystem can, whiteouts and opaque dirs applied),
then every entry's identity is recorded. After the step, an entry is changed when its
inode, ctime, size, mode, owner, mtime, link target, device number or kept xattrs differ
(for directories: not ctime or size, which only say that entries came or went): a file
rewritten with the same size and mtime still has a new ctime. The changes are written to
``WORK/diff`` in overlay upper-dir form: changed entries (files hardlinked from the tree,
not copied), their parent dirs, whiteouts for deletions, opaque dirs where a directory was
replaced.

The copy is bind-mounted on itself ``nodev`` in the build's private mount namespace while
the step runs (as the overlay drivers' mounts are): no device node in it can be opened.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from types import TracebackType

from ocibuild import _native
from ocibuild._record import dataclass, field
from ocibuild.errors import LayerError
from ocibuild.fs import whiteout as wh
from ocibuild.storage import base
from ocibuild.storage.base import kept_xattrs
from ocibuild.storage.samedirent import prune_unchanged

FICLONE = 0x40049409
_Sig = tuple[object, ...]


def _is_opaque(path: str) -> bool:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        if name in wh.OPAQUE_XATTRS:
            with contextlib.suppress(OSError):
                if wh.is_opaque_value(os.getxattr(path, name, follow_symlinks=False)):
                    return True
    return os.path.lexists(os.path.join(path, wh.OPAQUE_MARKER))


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_data(src: str, dst: str, mode: int) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
                return
            except OSError:
                pass
            while True:
                try:
                    n = os.copy_file_range(sfd, dfd, 1 << 30)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    with os.fdopen(os.dup(sfd), "rb") as fin, os.fdopen(os.dup(dfd), "wb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
                    return
                if n == 0:
                    return
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def copy_meta(st: os.stat_result, src: str, dst: str) -> None:
    """Owner, mode, kept xattrs and times of ``src`` onto ``dst`` (chown first: it clears
    setuid bits and file capabilities)."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name, value in kept_xattrs(src):
        os.setxattr(dst, name, value, follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_entry(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    """Copy one non-directory entry (hardlinks within one copy pass preserved)."""
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dst, follow_symlinks=False)
            return
        _copy_data(src, dst, st.st_mode)
        if st.st_nlink > 1:
            links[key] = dst
    elif fmt == stat.S_IFLNK:
        os.symlink(os.readlink(src), dst)
    elif fmt == stat.S_IFIFO:
        os.mkfifo(dst, 0o600)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        os.mknod(dst, fmt | 0o600, st.st_rdev)
    else:
        return  # sockets: not carried in layers
    copy_meta(st, src, dst)


def apply_lower(src: str, dst: str) -> None:
    """Lay one layer dir (lower-dir form) over the tree ``dst``."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[os.stat_result, str, str]] = []
    stack = [(src, dst)]
    while stack:
        sdir, ddir = stack.pop()
        for entry in os.scandir(sdir):
            name = entry.name
            s = entry.path
            d = os.path.join(ddir, name)
            st = os.lstat(s)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                _remove(d)
                continue
            if wh.is_whiteout_name(name) and stat.S_ISREG(st.st_mode):
                if name != wh.OPAQUE_MARKER:
                    _remove(os.path.join(ddir, wh.whiteout_target(name)))
                continue
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(s) or not os.path.isdir(d) or os.path.islink(d):
                    _remove(d)
                    os.mkdir(d, 0o700)
                dirs.append((st, s, d))
                stack.append((s, d))
                continue
            _remove(d)
            copy_entry(s, d, st, links)
    for st, s, d in reversed(dirs):  # children first: their creation moved the mtime
        copy_meta(st, s, d)


def _signature(path: str, st: os.stat_result) -> _Sig:
    fmt = stat.S_IFMT(st.st_mode)
    link = os.readlink(path) if fmt == stat.S_IFLNK else ""
    xattrs = tuple(kept_xattrs(path)) if fmt != stat.S_IFLNK else ()
    if fmt == stat.S_IFDIR:
        # (inode, birth time) is the identity: inode numbers are reused at once
        ident = (st.st_ino, _native.btime_ns(path))
        return (ident, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, xattrs)
    return (
        st.st_ino, st.st_ctime_ns, st.st_size, st.st_mode, st.st_uid, st.st_gid,
        st.st_mtime_ns, link, st.st_rdev, xattrs,
    )  # fmt: skip


def walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry under ``root``, parents before children."""
    stack = [""]
    while stack:
        rel = stack.pop()
        base = os.path.join(root, rel) if rel else root
        for entry in os.scandir(base):
            child = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def snapshot(root: str) -> dict[str, _Sig]:
    return {rel: _signature(os.path.join(root, rel), st) for rel, st in walk(root)}


def _is_dir(sig: _Sig) -> bool:
    return len(sig) == 6


def write_diff(tree: str, before: dict[str, _Sig], out: str) -> None:
    """Write the changes of ``tree`` since ``before`` into ``out`` (upper-dir form)."""
    after: dict[str, tuple[_Sig, os.stat_result]] = {
        rel: (_signature(os.path.join(tree, rel), st), st) for rel, st in walk(tree)
    }
    opaque: set[str] = set()
    changed: list[str] = []
    for rel, (sig, _st) in after.items():
        old = before.get(rel)
        if old == sig:
            continue
        changed.append(rel)
        if _is_dir(sig) and old is not None and (not _is_dir(old) or old[0] != sig[0]):
            opaque.add(rel)
    deleted = []
    for rel in before:
        if rel in after:
            continue
        parent = os.path.dirname(rel)
        if parent and (parent not in after or parent in opaque or parent not in before):
            continue  # covered by a deleted, replaced or new parent
        if parent and any(parent == o or parent.startswith(o + "/") for o in opaque):
            continue
        deleted.append(rel)
    wanted: set[str] = set()
    for rel in [*changed, *deleted]:
        parent = os.path.dirname(rel)
        while parent and parent not in wanted:
            wanted.add(parent)
            parent = os.path.dirname(parent)
    wanted.update(changed)
    os.mkdir(out, 0o755)
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[os.stat_result, str, str]] = []
    for rel in sorted(wanted, key=lambda p: (p.count("/"), p)):
        sig, st = after[rel]
        src, dst = os.path.join(tree, rel), os.path.join(out, rel)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(dst, 0o700)
            if rel in opaque:
                base.set_opaque(dst)
            dirs.append((st, src, dst))
        elif stat.S_ISREG(st.st_mode):
            try:
                os.link(src, dst, follow_symlinks=False)
            except OSError:
                copy_entry(src, dst, st, links)
        else:
            copy_entry(src, dst, st, links)
    for rel in deleted:
        base.make_whiteout(os.path.join(out, rel))
    for st, src, dst in reversed(dirs):
        copy_meta(st, src, dst)


@dataclass
class VfsRootfs:
    """A copied rootfs in ``WORK/merged``; ``upper`` is the tree until the diff is made."""

    lowers: Sequence[str]
    work: str
    target: str
    upper: str = ""
    before: dict[str, _Sig] = field(default_factory=dict)
    diff: str = ""
    active: bool = False
    bound: bool = False

    def describe(self) -> str:
        return f"vfs: copy {len(self.lowers)} layer(s) into {self.target}, snapshot it"

    def __post_init__(self) -> None:
        self.upper = self.target

    def mount(self) -> None:
        if self.active:
            return
        try:
            for lower in reversed(self.lowers):
                apply_lower(lower, self.target)
            self.before = snapshot(self.target)
        except OSError as e:
            raise LayerError(f"vfs: cannot copy the layers into {self.target}: {e}") from e
        self._bind_nodev()
        self.active = True

    def _bind_nodev(self) -> None:
        """Bind the tree on itself and make that mount nodev."""
        _native.enter_mount_namespace()
        _native.bind_mount(self.target, self.target, recursive=False)
        self.bound = True
        try:
            base.remount_nodev(self.target)
        except BaseException:
            self._unbind()
            raise

    def _unbind(self) -> None:
        if not self.bound:
            return
        try:
            _native.umount(self.target)
        except OSError:
            with contextlib.suppress(OSError):
                _native.umount(self.target, detach=True)
        self.bound = False

    def changes(self) -> str:
        if not self.diff:
            self.diff = os.path.join(self.work, "diff")
            try:
                write_diff(self.target, self.before, self.diff)
                prune_unchanged(self.diff, self.lowers)  # e.g. only the link count moved
            except OSError as e:
                raise LayerError(f"vfs: cannot compute the step's changes: {e}") from e
        return self.diff

    def __enter__(self) -> VfsRootfs:
        self.mount()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.active:
            return
        self.active = False
        self._unbind()
        if exc_type is None:
            self.upper = self.changes()


def prepare_vfs(lowers: Sequence[str], work: str) -> VfsRootfs:
    """An unmounted vfs rootfs under ``work`` (``merged`` gets the top layer's root
    owner and mode, as overlay's merged dir does)."""
    os.makedirs(work, exist_ok=True)
    target = os.path.join(work, "merged")
    os.mkdir(target, 0o755)
    if lowers:
        top = os.stat(lowers[0])
        os.chown(target, top.st_uid, top.st_gid)
        os.chmod(target, stat.S_IMODE(top.st_mode))
    return VfsRootfs(lowers=list(lowers), work=work, target=target)
