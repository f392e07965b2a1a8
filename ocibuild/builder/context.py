"""The build context: a directory, minus what .dockerignore excludes.

Source paths are resolved as if the context were ``/``: ``..`` cannot climb out and a
symlink is followed only inside the context, so ``COPY link-to-host-etc /x`` copies
nothing from the host.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator

from ocibuild._record import dataclass
from ocibuild.dockerfile.ignore import IgnoreMatcher
from ocibuild.fs.rootpath import resolve_in_root

GLOB_CHARS = frozenset("*?[")


def has_glob(path: str) -> bool:
    return any(c in GLOB_CHARS for c in path)


@dataclass(frozen=True)
class Source:
    """One matched source: its path on the host and its path relative to its root.

    ``rel`` is the path as the COPY argument named it (a symlink keeps its own name: the
    destination is named after it); ``real`` is where it resolves inside the root (the
    content copied, and the path ``.dockerignore`` is applied to), None when the same.
    """

    host_path: str
    rel: str  # "" for the root itself
    real: str | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.rel)

    @property
    def ctx_rel(self) -> str:
        """The resolved path relative to the root."""
        return self.rel if self.real is None else self.real


class SourceTree:
    """A tree sources are copied from: the build context, or another stage's rootfs."""

    def __init__(self, root: str, ignore: IgnoreMatcher | None = None) -> None:
        self.root = os.path.abspath(root)
        self.ignore = ignore

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore is not None and self.ignore.matches(rel)

    def skip_dir(self, rel: str) -> bool:
        """True when an excluded dir has no re-included descendant (skip the subtree)."""
        if not self.excluded(rel):
            return False
        assert self.ignore is not None
        return not self.ignore.could_include_children(rel)

    def match(self, pattern: str) -> list[Source]:
        """Sources a COPY argument names, with wildcards per path component.

        A wildcard matching nothing gives an empty list (BuildKit copies nothing for it);
        the caller decides whether a literal path that gives none is an error. (A
        backslash before a wildcard was consumed by word expansion, as in BuildKit:
        ``n\\?pe`` is the pattern ``n?pe``.)
        """
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if clean in ("", "."):
            return [Source(self.root, "")]
        if not has_glob(clean):
            found = self._source(clean)
            return [] if found is None else [found]
        matched: list[str] = [""]
        for part in clean.split("/"):
            nxt: list[str] = []
            for base in matched:
                base_host = self._host(resolve_in_root(self.root, base)) if base else self.root
                if has_glob(part):
                    try:
                        names = sorted(os.listdir(base_host))
                    except (NotADirectoryError, FileNotFoundError):
                        continue
                    nxt += [posixpath.join(base, n) for n in names if fnmatch.fnmatchcase(n, part)]
                else:
                    nxt.append(posixpath.join(base, part))
            matched = nxt
        out = []
        for rel in matched:
            found = self._source(rel)
            if found is not None:
                out.append(found)
        return out

    def _host(self, real: str) -> str:
        return os.path.join(self.root, real) if real else self.root

    def _source(self, rel: str) -> Source | None:
        """``rel`` as a source: symlinks followed inside the root for the content, the
        name kept; None when it does not exist or .dockerignore leaves nothing of it."""
        real = resolve_in_root(self.root, rel)
        host = self._host(real)
        if not os.path.lexists(host):
            return None
        source = Source(host, rel, None if real == rel else real)
        if real != rel and self.excluded(rel):
            return None  # the name itself is ignored: it is not in the context
        # An excluded dir still counts when a ``!`` pattern re-includes something below
        # it (``*`` + ``!src/main.py``: ``COPY src`` copies src/main.py).
        if self.excluded(real) and (
            not os.path.isdir(host) or self.skip_dir(real) or self.is_empty(source)
        ):
            return None
        return source

    def walk(self, top: Source) -> list[tuple[str, str, os.stat_result]]:
        """(host path, path relative to ``top``, lstat) for ``top``'s contents, sorted,
        parents first, .dockerignore applied (``top`` itself not included)."""
        return list(self.iter_walk(top))

    def iter_walk(self, top: Source) -> Iterator[tuple[str, str, os.stat_result]]:
        """:meth:`walk` as a generator: only one directory's entries are held at a time
        (200,000 files as one list of paths and ``stat_result`` objects took about
        130 MB), except below an excluded directory, held until something in it is
        re-included. A directory is listed when the walk reaches it: a caller writing
        into the tree while it walks must take :meth:`walk`'s snapshot instead."""
        return self._visit(top.host_path, "", top.ctx_rel)

    def _visit(
        self, host_dir: str, rel_dir: str, ctx_rel: str
    ) -> Iterator[tuple[str, str, os.stat_result]]:
        with os.scandir(host_dir) as it:
            entries = sorted(it, key=_name)
        for entry in entries:
            name = entry.name
            ctx_child = ctx_rel + "/" + name if ctx_rel else name
            rel = rel_dir + "/" + name if rel_dir else name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if self.skip_dir(ctx_child):
                    continue
                below = self._visit(entry.path, rel, ctx_child)
                if not self.excluded(ctx_child):
                    yield entry.path, rel, st
                    yield from below
                    continue
                # an excluded dir still comes along when something below is
                # re-included (``!dir/file``), as BuildKit's walker does
                held = list(below)
                if held:
                    yield entry.path, rel, st
                    yield from held
            elif not self.excluded(ctx_child):
                yield entry.path, rel, st

    def is_empty(self, top: Source) -> bool:
        """Nothing of ``top``'s contents is left after .dockerignore."""
        return next(self.iter_walk(top), None) is None


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name
