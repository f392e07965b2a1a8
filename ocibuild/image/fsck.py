"""``ocibuild fsck``: is every blob what its name says, every tag a complete image,
and is anything left over from a process that died (scratch dirs, containers, mounts)?"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.layers.compress import DigestingSink
from ocibuild.layers.tarwriter import write_tree

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Finding:
    kind: str  # corrupt-blob, broken-tag, incomplete-layer, corrupt-layer, stale-scratch, ...
    subject: str
    message: str
    fix: str  # what removes it: usually `ocibuild prune`

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.message} (fix: {self.fix})"


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_blobs(store: Store) -> Iterator[Finding]:
    for name in sorted(os.listdir(store.blobs)):
        path = os.path.join(store.blobs, name)
        if len(name) != 64 or not set(name) <= _HEX:
            yield Finding("stray-file", path, "not a blob name", "ocibuild prune")
        elif _sha256_file(path) != name:
            yield Finding(
                "corrupt-blob", f"sha256:{name}", "content does not match", "ocibuild prune"
            )


def check_layer(store: Store, diff_id: str, *, full: bool) -> Finding | None:
    if not store.has_layer(diff_id):
        return Finding("missing-layer", diff_id, "not in the store", "rebuild or re-pull")
    info = store.layer_info(diff_id)
    if info.get("diff_id") != diff_id or not os.path.isdir(store.layer_dir(diff_id)):
        return Finding("corrupt-layer", diff_id, "layer.json does not match", "ocibuild prune")
    if full:
        sink = DigestingSink()
        epoch = info.get("source_date_epoch")
        write_tree(
            store.layer_dir(diff_id),
            sink,
            mode="upper",
            source_date_epoch=epoch if isinstance(epoch, int) else None,
        )
        sink.close()
        if sink.diff_id != diff_id and info.get("blob") is None:
            return Finding(
                "corrupt-layer", diff_id, f"content hashes to {sink.diff_id}", "ocibuild prune"
            )
    return None


def check_layers(store: Store) -> Iterator[Finding]:
    for name in sorted(os.listdir(store.layers)):
        path = os.path.join(store.layers, name)
        if not os.path.isfile(os.path.join(path, "layer.json")):
            yield Finding("incomplete-layer", path, "no layer.json", "ocibuild prune")


def check_tags(store: Store, *, full: bool) -> Iterator[Finding]:
    checked: dict[str, Finding | None] = {}
    for tag, image_id in sorted(store.tags().items()):
        try:
            image = store.get_image(image_id)
        except OcibuildError as exc:
            yield Finding("broken-tag", tag, exc.message, "ocibuild prune (removes the tag)")
            continue
        for diff_id in image.diff_ids:
            if diff_id not in checked:
                checked[diff_id] = check_layer(store, diff_id, full=full)
            bad = checked[diff_id]
            if bad is not None:
                yield Finding("broken-tag", tag, f"layer {diff_id}: {bad.message}", bad.fix)
                break


def lock_is_free(path: str) -> bool:
    """True when no live process holds the flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def stale_scratch_dirs(store: Store) -> list[str]:
    """Scratch dirs of processes that died (their lock is free)."""
    out = []
    for name in sorted(os.listdir(store.tmp)):
        path = os.path.join(store.tmp, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        lock = os.path.join(path, ".lock")
        if name.startswith(".init-") or (os.path.exists(lock) and lock_is_free(lock)):
            out.append(path)
    return out


def runtime_states(top: str) -> list[tuple[str, str]]:
    """(state root, container id) of runtime state left under ``top``."""
    found = []
    for dirpath, _dirs, files in os.walk(top):
        if "state.json" in files:
            found.append((os.path.dirname(dirpath), os.path.basename(dirpath)))
    return found


def host_mounts_under(path: str) -> list[str]:
    """Mount points under ``path`` visible in this process's mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path.rstrip("/") + "/"):
                out.append(point)
    return out


def check_leftovers(store: Store) -> Iterator[Finding]:
    for path in stale_scratch_dirs(store):
        for root, cid in runtime_states(path):
            yield Finding(
                "leftover-container", cid, f"runtime state in {root}", "ocibuild prune (kills it)"
            )
        yield Finding("stale-scratch", path, "left by a process that died", "ocibuild prune")
    for point in host_mounts_under(store.root):
        yield Finding("leftover-mount", point, "still mounted", "ocibuild prune (unmounts it)")


def fsck(store: Store, *, full: bool = False) -> list[Finding]:
    """Every problem found; empty means consistent. ``full`` re-hashes every layer."""
    findings = [*check_blobs(store), *check_layers(store), *check_tags(store, full=full)]
    findings += list(check_leftovers(store))
    return findings


def to_json(findings: list[Finding]) -> str:
    return json.dumps([f.__dict__ for f in findings], indent=2)
