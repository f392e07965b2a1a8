"""``ocibuild diff A B``: files added, removed and changed between two images (their
flattened filesystems) or between two layers (each layer's own entries, whiteouts
included), with types, sizes, modes and owners.

Trees are read from the store's unpacked layer dirs (overlay lower-dir form: a whiteout
is a 0/0 character device, an opaque dir carries the ``overlay.opaque`` xattr). A
regular file with the same size on both sides is compared byte for byte. Modification
times are compared only when asked (``mtimes=True``, clamped to ``epoch`` as the layer
tar clamps them): the reproducibility check needs them, a plain diff would drown in them.
"""

from __future__ import annotations

import filecmp
import os
import stat
from collections.abc import Iterator
from typing import Any

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.fs import whiteout as wh
from ocibuild.image.store import Store

_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, symlink, ..., whiteout (in a layer)
    mode: int  # permission bits (and setuid/setgid/sticky)
    uid: int
    gid: int
    size: int
    mtime: int
    target: str = ""  # symlink target
    host: str = ""  # where it is on disk (for content comparison)
    opaque: bool = False

    def describe(self) -> str:
        text = f"{self.kind} {self.mode:04o} {self.uid}:{self.gid}"
        if self.kind == "file":
            text += f" {self.size} B"
        if self.kind == "symlink":
            text += f" -> {self.target}"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.kind,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
        }
        if self.target:
            out["target"] = self.target
        return out


@dataclass(frozen=True)
class Change:
    what: str  # added, removed, changed
    path: str
    old: Entry | None
    new: Entry | None
    how: tuple[str, ...] = ()

    def line(self) -> str:
        mark = {"added": "A", "removed": "D", "changed": "C"}[self.what]
        if self.what == "changed":
            return f"{mark} {self.path}  {'; '.join(self.how)}"
        entry = self.new if self.new is not None else self.old
        assert entry is not None
        return f"{mark} {self.path}  {entry.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.what,
            "path": self.path,
            "old": self.old.to_json() if self.old else None,
            "new": self.new.to_json() if self.new else None,
            "how": list(self.how),
        }


def walk_tree(root: str) -> Iterator[tuple[str, os.stat_result, str]]:
    """(path relative to ``root``, lstat, host path) of everything below ``root``."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as it:
            entries = list(it)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            yield rel, st, entry.path


def _opaque(path: str) -> bool:
    for name in wh.OPAQUE_XATTRS:
        try:
            if wh.is_opaque_value(os.getxattr(path, name, follow_symlinks=False)):
                return True
        except OSError:
            continue
    return False


def layer_entries(layer_dir: str) -> dict[str, Entry]:
    """A layer's own entries ("/path" -> Entry); deletions are kind ``whiteout``."""
    out: dict[str, Entry] = {}
    for rel, st, host in walk_tree(layer_dir):
        name = os.path.basename(rel)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            out["/" + rel] = Entry("whiteout", 0, 0, 0, 0, 0)
            continue
        if name == wh.OPAQUE_MARKER:
            parent = "/" + os.path.dirname(rel) if os.path.dirname(rel) else "/"
            if parent in out:
                out[parent] = _replace_opaque(out[parent])
            continue
        if wh.is_whiteout_name(name):
            out["/" + os.path.join(os.path.dirname(rel), wh.whiteout_target(name))] = Entry(
                "whiteout", 0, 0, 0, 0, 0
            )
            continue
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
        out["/" + rel] = Entry(
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if kind == "file" else 0,
            int(st.st_mtime),
            os.readlink(host) if kind == "symlink" else "",
            host,
            kind == "dir" and _opaque(host),
        )
    return out


def _replace_opaque(entry: Entry) -> Entry:
    return Entry(
        entry.kind,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.size,
        entry.mtime,
        entry.target,
        entry.host,
        True,
    )


def _drop_below(tree: dict[str, Entry], path: str) -> None:
    prefix = path.rstrip("/") + "/"
    for key in [k for k in tree if k.startswith(prefix)]:
        del tree[key]


def flatten(layer_dirs: list[str]) -> dict[str, Entry]:
    """The filesystem of layers applied bottom-most first."""
    tree: dict[str, Entry] = {}
    for layer in layer_dirs:
        for path, entry in sorted(layer_entries(layer).items()):
            if entry.kind == "whiteout":
                tree.pop(path, None)
                _drop_below(tree, path)
                continue
            replaced_dir = entry.kind != "dir" and tree.get(path, entry).kind == "dir"
            if entry.opaque or replaced_dir:
                _drop_below(tree, path)
            tree[path] = entry
    return tree


def image_layers(store: Store, name: str) -> list[str]:
    """diffIDs of an image, bottom-most first."""
    return store.get_image(store.resolve(name)).diff_ids


def image_tree(store: Store, name: str) -> dict[str, Entry]:
    return flatten([store.layer_dir(d) for d in image_layers(store, name)])


def layer_of(store: Store, name: str, number: int) -> str:
    """The layer dir of ``name``'s layer ``number`` (1 = bottom-most)."""
    layers = image_layers(store, name)
    if not 1 <= number <= len(layers):
        raise OcibuildError(
            f"{name} has {len(layers)} layers, not a layer {number}",
            hint="layers are numbered from 1 (the bottom-most); `ocibuild history` lists them",
        )
    return store.layer_dir(layers[number - 1])


def compare(
    a: dict[str, Entry],
    b: dict[str, Entry],
    *,
    mtimes: bool = False,
    epoch: int | None = None,
) -> list[Change]:
    """What changed from tree ``a`` to tree ``b``, by path."""
    changes = []
    for path in sorted(set(a) | set(b)):
        old, new = a.get(path), b.get(path)
        if old is None:
            changes.append(Change("added", path, None, new))
        elif new is None:
            changes.append(Change("removed", path, old, None))
        else:
            how = entry_changes(old, new, mtimes=mtimes, epoch=epoch)
            if how:
                changes.append(Change("changed", path, old, new, tuple(how)))
    return changes


def entry_changes(
    old: Entry, new: Entry, *, mtimes: bool = False, epoch: int | None = None
) -> list[str]:
    if old.kind != new.kind:
        return [f"type {old.kind} -> {new.kind}"]
    how = []
    if old.kind == "file":
        if old.size != new.size:
            how.append(f"size {old.size} -> {new.size}")
        elif old.host and new.host and not filecmp.cmp(old.host, new.host, shallow=False):
            how.append(f"content differs (same size, {old.size} B)")
    if old.target != new.target:
        how.append(f"symlink target {old.target} -> {new.target}")
    if old.mode != new.mode:
        how.append(f"mode {old.mode:04o} -> {new.mode:04o}")
    if (old.uid, old.gid) != (new.uid, new.gid):
        how.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
    if mtimes and old.kind != "dir":
        a, b = old.mtime, new.mtime
        if epoch is not None:
            a, b = min(a, epoch), min(b, epoch)
        if a != b:
            how.append(f"mtime {a} -> {b}")
    return how


def summary(changes: list[Change]) -> str:
    counts = {w: sum(1 for c in changes if c.what == w) for w in ("added", "removed", "changed")}
    return ", ".join(f"{n} {w}" for w, n in counts.items())
