"""Content hashes of COPY/ADD sources, with a persisted stat cache per build context.

Hashing a context must not re-read files that did not change. The stat cache maps a
file's path (relative to the context) to ``(inode, size, mtime_ns, ctime_ns, sha256)``;
when a file's lstat still matches, its recorded digest is used without opening it. The
cache lives in ``ROOT/cache/context/<sha256 of the context path>.stat`` and is rewritten
(atomically, without fsync: losing it only costs a re-read) at the end of a build when it
changed. ``ctime`` catches changes that keep size and mtime (``touch -d``, ``chmod``;
ctime cannot be set from user space).

The file (format 3): a header line, then per file ``path\0ino size mtime_ns ctime_ns
sha256\0`` (the path as its bytes). It is read and written a megabyte at a time: format
2, one JSON document, was parsed from one string of the whole file (200,000 files: 26 MB
of text held next to the 51 MB of entries it parses to). A format-2 file
(``<name>.json``) is not read; it is removed when the new file is written.

Racy entries: a file modified within the same timestamp tick right after it was hashed
would keep a matching stat. Entries whose mtime or ctime is not older than
``RACY_NS`` before the walk started are therefore not trusted next time (as git does for
its index).

What a source's hash covers (BuildKit's choice, kept here): path, file type, permission
bits, size, symlink target and content, after .dockerignore. Not covered: mtimes, owners
(COPY from the context makes files root-owned anyway) and xattrs.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
import threading
import time
from typing import BinaryIO

from ocibuild._record import dataclass
from ocibuild.builder.context import Source, SourceTree
from ocibuild.fs.atomic import atomic_file, unlink_quiet

RACY_NS = 20_000_000  # 20 ms
_READ = 1 << 20
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_SAVE_BATCH = 4096
_HEADER = b"ocibuild stat cache 3\n"


@dataclass
class HashCounters:
    files: int = 0  # regular files seen
    files_read: int = 0  # ... of which actually opened and read
    bytes_read: int = 0


def file_sha256(path: str, *, follow: bool = False) -> tuple[str, int]:
    """(hex sha256, bytes read) of a regular file; a final symlink only with ``follow``."""
    h = hashlib.sha256()
    n = 0
    fd = os.open(path, _OPEN & ~os.O_NOFOLLOW if follow else _OPEN)
    try:
        while chunk := os.read(fd, _READ):
            h.update(chunk)
            n += len(chunk)
    finally:
        os.close(fd)
    return h.hexdigest(), n


class StatCache:
    """The per-context stat cache (thread safe; loaded once, saved once)."""

    def __init__(self, cache_dir: str, context_root: str) -> None:
        name = hashlib.sha256(os.fsencode(os.path.abspath(context_root))).hexdigest()[:32]
        self.path = os.path.join(cache_dir, "context", name + ".stat")
        self._old_path = os.path.join(cache_dir, "context", name + ".json")  # format 2
        self.started_ns = time.time_ns()
        self._lock = threading.Lock()
        # rel -> "ino size mtime_ns ctime_ns digest": one string per file (a 100k-file
        # context holds about half the memory a 5-item list per file took)
        self._entries: dict[str, str] = {}
        self._dirty = False
        try:
            with open(self.path, "rb") as f:
                if f.read(len(_HEADER)) == _HEADER:
                    self._entries = _read_entries(f)
        except (OSError, ValueError):
            self._entries = {}

    def digest(
        self, rel: str, host: str, st: os.stat_result, counters: HashCounters, follow: bool
    ) -> str:
        """The content digest of the regular file ``host`` (``rel`` in the context)."""
        counters.files += 1
        key = f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} "
        with self._lock:
            known = self._entries.get(rel)
        if isinstance(known, str) and known.startswith(key) and len(known) == len(key) + 64:
            return known[len(key) :]
        digest, n = file_sha256(host, follow=follow)
        counters.files_read += 1
        counters.bytes_read += n
        racy = self.started_ns - RACY_NS
        with self._lock:
            if st.st_mtime_ns < racy and st.st_ctime_ns < racy:
                self._entries[rel] = key + digest
            else:
                self._entries.pop(rel, None)
            self._dirty = True
        return digest

    def save(self) -> None:
        """Rewrite the file when an entry changed, a few thousand entries at a time
        (200,000 entries as one JSON string, its parts and its UTF-8 copy held about
        80 MB at once)."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            directory = os.path.dirname(self.path)
            os.makedirs(directory, exist_ok=True)
            with atomic_file(self.path, mode=0o600, durable=False) as f:
                f.write(_HEADER)
                items = iter(self._entries.items())
                while batch := list(itertools.islice(items, _SAVE_BATCH)):
                    text = "".join(f"{rel}\0{value}\0" for rel, value in batch)
                    f.write(text.encode("utf-8", "surrogateescape"))
        unlink_quiet(self._old_path)


def _read_entries(f: BinaryIO) -> dict[str, str]:
    """The entries after the header: ``path\0value\0`` pairs, read a megabyte at a time;
    ValueError when the file does not end with a whole pair."""
    entries: dict[str, str] = {}
    rest = b""
    while chunk := f.read(_READ):
        # a UTF-8 sequence cut at the chunk's end is in the last, unfinished field: it
        # goes back to bytes unchanged (surrogateescape) before the next chunk is added
        parts = (rest + chunk).decode("utf-8", "surrogateescape").split("\0")
        tail = parts.pop()
        if len(parts) % 2:
            tail = parts.pop() + "\0" + tail
        entries.update(zip(parts[::2], parts[1::2], strict=True))
        rest = tail.encode("utf-8", "surrogateescape")
    if rest:
        raise ValueError("stat cache file cut short")
    return entries


def _entry_line(rel: str, st: os.stat_result, content: str) -> bytes:
    kind = stat.S_IFMT(st.st_mode)
    perm = stat.S_IMODE(st.st_mode)
    return f"{rel}\0{kind:o}\0{perm:o}\0{content}\n".encode("utf-8", "surrogateescape")


def hash_sources(
    tree: SourceTree,
    sources: list[Source],
    cache: StatCache | None,
    counters: HashCounters,
) -> str:
    """One digest over the matched sources and, for directories, their contents."""
    h = hashlib.sha256()
    for src in sources:
        h.update(b"source\0" + src.rel.encode("utf-8", "surrogateescape") + b"\n")
        st = os.stat(src.host_path)  # COPY follows a source symlink named directly
        if stat.S_ISDIR(st.st_mode):
            h.update(_entry_line(".", st, ""))
            for host, rel, entry_st in tree.iter_walk(src):
                content = _content(src, host, rel, entry_st, cache, counters, follow=False)
                h.update(_entry_line(rel, entry_st, content))
        else:
            content = _content(src, src.host_path, "", st, cache, counters, follow=True)
            h.update(_entry_line(".", st, content))
    return "sha256:" + h.hexdigest()


def _content(
    src: Source,
    host: str,
    rel: str,
    st: os.stat_result,
    cache: StatCache | None,
    counters: HashCounters,
    *,
    follow: bool,
) -> str:
    if stat.S_ISREG(st.st_mode):
        ctx_rel = "/".join(p for p in (src.ctx_rel, rel) if p)
        if cache is None:
            counters.files += 1
            digest, n = file_sha256(host, follow=follow)
            counters.files_read += 1
            counters.bytes_read += n
            return digest
        return cache.digest(ctx_rel, host, st, counters, follow)
    if stat.S_ISLNK(st.st_mode):
        return "link:" + os.readlink(host)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return f"dev:{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return ""
