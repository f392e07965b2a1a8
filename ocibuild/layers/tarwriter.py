"""Deterministic PAX tar of a directory tree (the hot path of every layer).

Order: depth first; the entries of one directory in byte-wise order of their tar names
(so a whiteout ``.wh.X`` sorts as ``.wh.X``), except that an opaque marker
``DIR/.wh..wh..opq`` always comes right after ``DIR/`` and before its children. A parent
therefore always precedes its children. Names are relative without ``./``; directories end
in ``/``. mtimes are whole seconds, clamped to ``source_date_epoch`` when given. uname and
gname are empty. Symlinks are never followed. Hardlinks: the first path of a regular file
with ``st_nlink > 1`` is written as a file, later paths with the same (st_dev, st_ino) as
``LNKTYPE`` entries pointing at it. Sockets are skipped (tar cannot hold them).

``mode="upper"`` reads an overlay upper dir (or a lower dir in the same form): character
devices 0/0 become ``.wh.NAME`` whiteouts, opaque xattrs become ``DIR/.wh..wh..opq``,
fuse-overlayfs ``.wh.*`` files pass through (with whiteout metadata), redirect/metacopy
xattrs raise :class:`LayerError`. ``mode="plain"`` writes the tree as it is.
"""

from __future__ import annotations

import errno
import os
import stat
from time import perf_counter
from typing import Literal, Protocol

from ocibuild._record import dataclass
from ocibuild.errors import LayerError
from ocibuild.fs import whiteout as wh
from ocibuild.layers import tarheader as th

CHUNK = 1 << 20
_SMALL_FILE = 256 << 10
SINK_FILE = 8 << 20  # from this size, a sink with ``write_file`` reads the file itself
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

TreeMode = Literal["upper", "plain"]


class Writable(Protocol):
    """Anything with ``write``. ``write`` gets either a buffer the writer never touches
    again, or a memoryview of a buffer it reuses (a sink that keeps data past the call
    copies those). A sink that also has ``write_file(fd, size, rel)`` gets the open
    descriptor of every file of ``SINK_FILE`` bytes or more instead of its content, and
    owns it from then on: it must read ``size`` bytes from offset 0, in stream order,
    and close it (``layers/diff.py`` hashes such files on its own thread)."""

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


@dataclass
class TreeStats:
    """What :func:`write_tree` wrote."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    others: int = 0
    content_bytes: int = 0
    tar_bytes: int = 0
    sink_seconds: float = 0.0  # time spent inside ``out.write`` (hashing, compressing)


@dataclass
class _Entry:
    tarname: bytes  # base name as written (``.wh.X`` for a whiteout device ``X``)
    path: bytes  # absolute path on disk
    st: os.stat_result
    whiteout: bool


class _TreeWriter:
    def __init__(self, out: Writable, mode: TreeMode, epoch: int | None) -> None:
        self.out = out
        self.upper = mode == "upper"
        self.epoch = epoch
        self.buf = bytearray()
        self.stats = TreeStats()
        self.links: dict[tuple[int, int], bytes] = {}
        self.chunk = bytearray(CHUNK)

    # -- output ---------------------------------------------------------------------------
    def emit(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.stats.tar_bytes += len(self.buf)
            started = perf_counter()
            self.out.write(self.buf)
            self.stats.sink_seconds += perf_counter() - started
            self.buf = bytearray()

    def mtime(self, st: os.stat_result) -> int:
        secs = st.st_mtime_ns // 1_000_000_000
        if self.epoch is not None and secs > self.epoch:
            return self.epoch
        return secs

    # -- xattrs ---------------------------------------------------------------------------
    def xattrs(self, path: bytes, rel: bytes) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
        """(kept xattrs sorted, opaque?, xattr-whiteout?) for one path."""
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return [], False, False
            raise LayerError(f"cannot list xattrs of {rel.decode(errors='replace')}: {e}") from e
        if not names:
            return [], False, False
        kept: list[tuple[bytes, bytes]] = []
        opaque = whiteout = False
        for name in names:
            if self.upper:
                if name in wh.UNSUPPORTED_XATTRS:
                    raise LayerError(
                        f"{rel.decode(errors='replace')}: {wh.UNSUPPORTED_MESSAGE}",
                        hint="remount the overlay with redirect_dir=off,metacopy=off",
                    )
                if name in wh.OPAQUE_XATTRS:
                    value = os.getxattr(path, name, follow_symlinks=False)
                    opaque = opaque or wh.is_opaque_value(value)
                    continue
                if name in wh.WHITEOUT_XATTRS:
                    whiteout = True
                    continue
            if wh.is_kept_xattr(name):
                value = os.getxattr(path, name, follow_symlinks=False)
                kept.append((os.fsencode(name), value))
        kept.sort()
        return kept, opaque, whiteout

    # -- entries --------------------------------------------------------------------------
    def whiteout_entry(self, name: bytes) -> None:
        self.stats.whiteouts += 1
        self.emit(
            th.encode_header(
                name, mode=0, uid=0, gid=0, size=0, mtime=self.epoch or 0, typeflag=th.REGTYPE
            )
        )

    def children(self, path: bytes) -> list[_Entry]:
        entries = []
        for name in os.listdir(path):
            full = path + b"/" + name
            st = os.lstat(full)
            is_wh = False
            tarname = name
            if self.upper:
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    is_wh = True
                    tarname = wh.WHITEOUT_PREFIX_B + name
                elif name.startswith(wh.WHITEOUT_PREFIX_B) and stat.S_ISREG(st.st_mode):
                    is_wh = True
            entries.append(_Entry(tarname, full, st, is_wh))
        entries.sort(key=lambda e: e.tarname)
        return entries

    def write_dir_contents(self, path: bytes, prefix: bytes) -> None:
        stack: list[tuple[bytes, list[_Entry], int]] = [(prefix, self.children(path), 0)]
        while stack:
            prefix, entries, index = stack.pop()
            while index < len(entries):
                entry = entries[index]
                index += 1
                rel = prefix + entry.tarname
                if entry.whiteout:
                    if entry.tarname != wh.OPAQUE_MARKER_B:  # emitted right after its dir
                        self.whiteout_entry(rel)
                    continue
                if self.write_entry(entry, rel):
                    stack.append((prefix, entries, index))
                    stack.append((rel + b"/", self.children(entry.path), 0))
                    break

    def write_entry(self, entry: _Entry, rel: bytes) -> bool:
        """Write one non-whiteout entry; True when it is a directory to descend into."""
        st = entry.st
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFSOCK:
            return False
        xattrs, opaque, xwhiteout = self.xattrs(entry.path, rel)
        if xwhiteout and fmt == stat.S_IFREG:
            self.whiteout_entry(rel[: -len(entry.tarname)] + wh.WHITEOUT_PREFIX_B + entry.tarname)
            return False
        if fmt == stat.S_IFDIR:
            self.stats.dirs += 1
            self.header(rel + b"/", st, th.DIRTYPE, xattrs)
            if opaque or (self.upper and os.path.lexists(entry.path + b"/" + wh.OPAQUE_MARKER_B)):
                self.whiteout_entry(rel + b"/" + wh.OPAQUE_MARKER_B)
            return True
        if fmt == stat.S_IFREG:
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    self.stats.hardlinks += 1
                    self.header(rel, st, th.LNKTYPE, xattrs, linkname=first)
                    return False
                self.links[key] = rel
            self.stats.files += 1
            self.header(rel, st, th.REGTYPE, xattrs, size=st.st_size)
            self.copy_file(entry.path, rel, st.st_size)
            return False
        if fmt == stat.S_IFLNK:
            self.stats.symlinks += 1
            self.header(rel, st, th.SYMTYPE, xattrs, linkname=os.readlink(entry.path))
            return False
        self.stats.others += 1
        if fmt == stat.S_IFIFO:
            self.header(rel, st, th.FIFOTYPE, xattrs)
        else:
            typeflag = th.CHRTYPE if fmt == stat.S_IFCHR else th.BLKTYPE
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.header(rel, st, typeflag, xattrs, devmajor=major, devminor=minor)
        return False

    def header(
        self,
        rel: bytes,
        st: os.stat_result,
        typeflag: bytes,
        xattrs: list[tuple[bytes, bytes]],
        *,
        size: int = 0,
        linkname: bytes = b"",
        devmajor: int = 0,
        devminor: int = 0,
    ) -> None:
        self.emit(
            th.encode_header(
                rel,
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                size=size,
                mtime=self.mtime(st),
                typeflag=typeflag,
                linkname=linkname,
                devmajor=devmajor,
                devminor=devminor,
                xattrs=xattrs,
            )
        )

    def copy_file(self, path: bytes, rel: bytes, size: int) -> None:
        self.stats.content_bytes += size
        if size == 0:
            return
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as e:
            raise LayerError(f"cannot read {rel.decode(errors='replace')}: {e}") from e
        try:
            if size <= _SMALL_FILE:
                data = os.read(fd, size)
                while len(data) < size:
                    more = os.read(fd, size - len(data))
                    if not more:
                        break
                    data += more
                if len(data) != size:
                    raise shrunk(rel)
                self.emit(data + th.padding(size))
                return
            self.flush()
            write_file = getattr(self.out, "write_file", None)
            if write_file is not None and size >= SINK_FILE:  # read by the sink (diff.py)
                write_file(fd, size, rel)
                fd = -1  # the sink's now
                self.stats.tar_bytes += size
                self.emit(th.padding(size))
                return
            view = memoryview(self.chunk)
            left = size
            while left:
                n = os.readv(fd, [view[: min(left, CHUNK)]])
                if n == 0:
                    raise shrunk(rel)
                started = perf_counter()
                self.out.write(view[:n])
                self.stats.sink_seconds += perf_counter() - started
                left -= n
            self.stats.tar_bytes += size
            self.emit(th.padding(size))
        finally:
            if fd >= 0:
                os.close(fd)


def shrunk(rel: bytes) -> LayerError:
    return LayerError(
        f"{rel.decode(errors='replace')}: file shrank while being archived",
        hint="make sure nothing writes into the tree while its layer is being computed",
    )


def write_tree(
    src_dir: str,
    out: Writable,
    *,
    mode: TreeMode,
    source_date_epoch: int | None,
) -> TreeStats:
    """Write ``src_dir``'s contents (not the directory itself) as a tar stream to ``out``.

    Returns counts; ``tar_bytes`` is the exact length of the stream written (the layer's
    uncompressed size).
    """
    writer = _TreeWriter(out, mode, source_date_epoch)
    try:
        writer.write_dir_contents(os.fsencode(src_dir), b"")
    except FileNotFoundError as e:
        raise LayerError(f"tree changed while being archived: {e}") from e
    writer.emit(th.END_OF_ARCHIVE)
    writer.flush()
    return writer.stats
