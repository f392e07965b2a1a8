"""Unpacking tar streams: layers into overlay lower dirs, and ADD archives into a rootfs.

tarfile only parses headers here; every filesystem operation is ours. Nothing is written
through a symlink: in a layer every parent component must be a real directory inside
``dest`` (created when missing), and for ``extract_archive`` parents are resolved with
:func:`resolve_in_root` with the *destination dir* as root (as BuildKit's ADD unpacks an
archive chrooted into its destination), so a symlink is followed only as far as that dir.
The final component of an entry is never followed: an existing entry is replaced, except
that a directory entry merges into an existing directory.

Only the extended attributes a layer keeps (``whiteout.is_kept_xattr``) are applied;
overlay bookkeeping attributes in an archive are ignored, so re-exporting a layer gives back
the same content.
"""

from __future__ import annotations

import errno
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from typing import IO, BinaryIO, cast

import zstandard

from ocibuild._record import dataclass
from ocibuild.errors import LayerError
from ocibuild.fs import whiteout as wh
from ocibuild.fs.idmap import in_user_namespace
from ocibuild.layers.compress import open_decompressed
from ocibuild.layers.safepath import resolve_in_root, split_member_name

_CHUNK = 1 << 20
_XATTR_PREFIX = "SCHILY.xattr."
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
MAX_ID = 2**32 - 2
DEFAULT_MAX_ENTRIES = 4_000_000  # about 40 times the largest distribution images


def opaque_xattrs_for_this_process() -> tuple[str, ...]:
    """The opaque-dir xattrs the overlay that will mount this layer reads.

    As root: ``trusted.overlay.opaque`` (kernel overlayfs and fuse-overlayfs). In a user
    namespace ``trusted.*`` cannot be set; the kernel mounts with ``userxattr`` and reads
    ``user.overlay.opaque``, fuse-overlayfs reads ``user.fuseoverlayfs.opaque``.
    """
    if in_user_namespace():
        return ("user.overlay.opaque", "user.fuseoverlayfs.opaque")
    return (wh.OPAQUE_XATTR,)


def max_entries() -> int:
    """Entries one archive may hold (a tar bomb guard); ``OCIBUILD_MAX_LAYER_ENTRIES``."""
    value = os.environ.get("OCIBUILD_MAX_LAYER_ENTRIES", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_ENTRIES


@dataclass(frozen=True)
class Unpacked:
    """diffID (sha256 of the uncompressed stream) and uncompressed size of a layer."""

    diff_id: str
    size: int


class _HashingReader:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            name = key[len(_XATTR_PREFIX) :]
            if wh.is_kept_xattr(name):
                out.append((name, value.encode("utf-8", "surrogateescape")))
    return out


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_whiteout_dev(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _Extractor:
    def __init__(self, root: str, *, layer: bool, base: str = "") -> None:
        self.root = os.path.abspath(root)
        self.layer = layer
        self.base = base  # extract_archive: destination dir inside root
        # extract_archive: every entry is confined to it (resolve_in_root(root, base))
        self.dest = resolve_in_root(self.root, base) if not layer else self.root
        self.known_dirs: dict[str, str] = {}  # parent key -> verified host path
        self.created: set[str] = set()  # layer mode: names of non-dir entries (hardlinks)
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.opaque_xattrs = opaque_xattrs_for_this_process()
        self.entries = 0
        self.max_entries = max_entries()
        self.dropped_devices: list[str] = []

    def check(self, member: tarfile.TarInfo) -> None:
        """Refuse what no honest archive holds: tar bombs, impossible ids, sizes that
        cannot fit on the destination filesystem."""
        self.entries += 1
        if self.entries > self.max_entries:
            raise LayerError(
                f"archive has more than {self.max_entries} entries",
                hint="a tar bomb? raise OCIBUILD_MAX_LAYER_ENTRIES if the archive is genuine",
            )
        for what, value in (("uid", member.uid), ("gid", member.gid)):
            if not 0 <= value <= MAX_ID:
                raise LayerError(f"archive entry {member.name!r} has an invalid {what} {value}")
        if member.isreg() and member.size > 0:
            fs = os.statvfs(self.root)
            free = fs.f_bavail * fs.f_frsize
            if member.size > free:
                raise LayerError(
                    f"archive entry {member.name!r} claims {member.size} bytes, "
                    f"more than the {free} bytes free on the store's filesystem"
                )

    # -- parents --------------------------------------------------------------------------
    def parent(self, parts: list[str], name: str) -> str:
        key = "/".join(parts)
        cached = self.known_dirs.get(key)
        if cached is not None:
            return cached
        if self.layer:
            path = self.root
            for i, part in enumerate(parts):
                path = path + "/" + part
                if "/".join(parts[: i + 1]) in self.known_dirs:
                    continue
                st = _lstat(path)
                if st is not None and _is_whiteout_dev(st):
                    os.unlink(path)  # "deleted, then recreated as a directory": opaque
                    os.mkdir(path, 0o755)
                    self.mark_opaque(path)
                elif st is None:
                    os.mkdir(path, 0o755)
                elif not stat.S_ISDIR(st.st_mode):
                    raise LayerError(
                        f"layer entry {name!r}: {path[len(self.root) + 1 :]!r} is not a directory"
                    )
        else:
            # As BuildKit's ADD (the archive unpacked with the destination as its root):
            # a symlink in the archive or in the tree is followed only as far as the
            # destination, so ``up -> ..`` then ``up/etc/x`` writes DEST/etc/x.
            path = resolve_in_root(self.dest, key)
            rel = os.path.relpath(path, self.dest)
            walk = self.dest
            for part in [] if rel == "." else rel.split("/"):
                walk = walk + "/" + part
                st = _lstat(walk)
                if st is None:
                    os.mkdir(walk, 0o755)
                elif not stat.S_ISDIR(st.st_mode):
                    raise LayerError(f"archive entry {name!r}: {walk!r} is not a directory")
        self.known_dirs[key] = path
        return path

    def mark_opaque(self, path: str) -> None:
        for name in self.opaque_xattrs:
            os.setxattr(path, name, b"y", follow_symlinks=False)

    def forget(self) -> None:
        """Something was removed or a symlink created: cached resolutions may be stale."""
        self.known_dirs.clear()

    # -- entries --------------------------------------------------------------------------
    def entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.check(member)
        parts = split_member_name(member.name)
        if not parts:
            if member.isdir() and self.layer:
                self.dirs.append((self.root, member))
            return
        base = parts[-1]
        parent = self.parent(parts[:-1], member.name)
        rel = "/".join(parts)
        if self.layer and base.startswith(wh.WHITEOUT_PREFIX):
            if base == wh.OPAQUE_MARKER:
                self.mark_opaque(parent)
                return
            target = wh.whiteout_target(base)
            if target in ("", ".", ".."):
                raise LayerError(f"invalid whiteout entry {member.name!r}")
            path = parent + "/" + target
            self.clear(path, directory=False)
            os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
            return
        path = parent + "/" + base
        if member.isdir():
            was_whiteout = self.clear(path, directory=True)
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            if was_whiteout and self.layer:
                self.mark_opaque(path)
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            self.set_xattrs(path, member, lenient=False)
            self.dirs.append((path, member))
            return
        if member.islnk():
            source = self.link_source(member)
            self.clear(path, directory=False)
            os.link(source, path, follow_symlinks=False)
        elif member.isreg():
            self.clear(path, directory=False)
            self.write_file(tf, member, path)
        elif member.issym():
            self.clear(path, directory=False)
            os.symlink(member.linkname, path)
            if not self.layer:
                self.forget()
            self.finish(path, member, chmod=False)
        elif member.ischr() or member.isblk() or member.isfifo():
            self.clear(path, directory=False)
            if member.isfifo():
                os.mkfifo(path, 0o600)
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                try:
                    os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                except PermissionError:
                    if not in_user_namespace():
                        raise
                    # Rootless: no device nodes in a user namespace (as containerd and
                    # BuildKit rootless do). The layer's diffID still covers them.
                    self.dropped_devices.append(rel)
                    return
            self.finish(path, member, chmod=True)
        else:
            return  # tarfile maps unknown types to regular files; nothing else is left
        if self.layer:
            self.created.add(rel)

    def clear(self, path: str, *, directory: bool) -> bool:
        """Make room for a new entry; True when a whiteout device was replaced."""
        st = _lstat(path)
        if st is None:
            return False
        if directory and stat.S_ISDIR(st.st_mode):
            return False
        whiteout = _is_whiteout_dev(st)
        _remove(path, st)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.forget()
            if self.layer and stat.S_ISDIR(st.st_mode):
                prefix = path[len(self.root) + 1 :] + "/"
                self.created = {c for c in self.created if not c.startswith(prefix)}
        return whiteout

    def link_source(self, member: tarfile.TarInfo) -> str:
        parts = split_member_name(member.linkname)
        if not parts:
            raise LayerError(f"hardlink {member.name!r} has an empty target")
        target = "/".join(parts)
        if self.layer:
            if target not in self.created:
                raise LayerError(
                    f"hardlink {member.name!r} points to {member.linkname!r}, "
                    "which is not an earlier entry of this layer"
                )
            return self.root + "/" + target
        source = self.parent(parts[:-1], member.name) + "/" + parts[-1]
        st = _lstat(source)
        if st is None or stat.S_ISDIR(st.st_mode):
            raise LayerError(
                f"hardlink {member.name!r} points to {member.linkname!r}, "
                "which does not exist in the destination or is a directory"
            )
        return source

    def write_file(self, tf: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        data = tf.extractfile(member)
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        try:
            if data is not None:
                while chunk := data.read(_CHUNK):
                    _write_all(fd, chunk)
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
            for name, value in _xattrs(member):
                os.setxattr(fd, name, value)
            mtime = int(member.mtime * 1_000_000_000)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)

    def set_xattrs(self, path: str, member: tarfile.TarInfo, *, lenient: bool) -> None:
        for name, value in _xattrs(member):
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as e:
                if lenient and e.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue  # user.* is not allowed on symlinks and device nodes
                raise

    def finish(self, path: str, member: tarfile.TarInfo, *, chmod: bool) -> None:
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if chmod:
            os.chmod(path, member.mode & 0o7777)
        self.set_xattrs(path, member, lenient=True)
        mtime = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def finish_dirs(self) -> None:
        for path, member in reversed(self.dirs):
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            os.chmod(path, member.mode & 0o7777)
            mtime = int(member.mtime * 1_000_000_000)
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def run(self, stream: _HashingReader | BinaryIO) -> None:
        name = "?"
        fileobj = cast(IO[bytes], stream)
        try:
            with tarfile.open(
                fileobj=fileobj, mode="r|", encoding="utf-8", errors="surrogateescape"
            ) as tf:
                for member in tf:
                    name = member.name
                    self.entry(tf, member)
            self.finish_dirs()
        except LayerError:
            raise
        except _STREAM_ERRORS as e:
            raise LayerError(f"cannot read archive (near entry {name!r}): {e}") from e
        except OSError as e:
            raise LayerError(f"cannot unpack archive entry {name!r}: {e}") from e


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _guard(action: Callable[[], None]) -> None:
    try:
        action()
    except _STREAM_ERRORS as e:
        raise LayerError(f"cannot read archive: {e}") from e
    except OSError as e:
        raise LayerError(f"cannot read archive: {e}") from e


def unpack_layer(stream: BinaryIO, dest: str) -> Unpacked:
    """Unpack a layer tar (any compression) into the empty dir ``dest``, overlay-lower form."""
    try:
        if os.listdir(dest):
            raise LayerError(f"layer destination {dest} is not empty")
    except OSError as e:
        raise LayerError(f"cannot use {dest} as a layer destination: {e}") from e
    holder: list[BinaryIO] = []
    _guard(lambda: holder.append(open_decompressed(stream)))
    reader = _HashingReader(holder[0])
    _Extractor(dest, layer=True).run(reader)
    _guard(reader.drain)
    return Unpacked(diff_id=reader.digest, size=reader.size)


def apply_layer(stream: BinaryIO, dest: str) -> str:
    """Unpack a layer into the empty dir ``dest``; returns its diffID."""
    return unpack_layer(stream, dest).diff_id


def extract_archive(stream: BinaryIO, dest_root: str, dest_dir_in_root: str) -> None:
    """Extract a (possibly compressed) archive into ``dest_dir_in_root`` of the rootfs
    ``dest_root``, like ``ADD local.tar /dir``: files replaced, directories merged, paths
    and symlinks resolved inside ``/dir`` as BuildKit does (``up -> ..`` then
    ``up/etc/x`` gives ``/dir/etc/x``); ``.wh.`` names get no special meaning."""
    holder: list[BinaryIO] = []
    _guard(lambda: holder.append(open_decompressed(stream)))
    _Extractor(dest_root, layer=False, base=dest_dir_in_root).run(holder[0])
