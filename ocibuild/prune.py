"""``ocibuild prune``: remove what a process that died left behind (and, with ``all``,
layers and blobs no image uses)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal

from ocibuild import _native
from ocibuild._record import dataclass, field
from ocibuild.errors import StoreError
from ocibuild.image.fsck import (
    check_blobs,
    check_layers,
    check_tags,
    host_mounts_under,
    runtime_states,
    stale_scratch_dirs,
)
from ocibuild.image.store import Store
from ocibuild.observe.records import remove_kept_failures
from ocibuild.runtime.runner import Runner


@dataclass
class PruneReport:
    containers: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # kept by build --keep-failed

    cache_mounts: list[str] = field(default_factory=list)  # RUN --mount=type=cache dirs

    def lines(self) -> list[str]:
        out = []
        for what, items in self.__dict__.items():
            if what != "notes":
                out += [f"removed {_SINGULAR[what]} {item}" for item in items]
        out += [f"note: {note}" for note in self.notes]
        return out


_SINGULAR = {
    "containers": "container",
    "mounts": "mount",
    "scratch": "scratch directory",
    "tags": "tag",
    "layers": "layer",
    "blobs": "blob",
    "failures": "failure",
    "cache_mounts": "cache mount",
}


def kill_container(state_root: str, container_id: str) -> None:
    """SIGKILL the container's init (from its state.json), then let the runtimes
    forget it. Works for runc's and crun's state alike."""
    path = os.path.join(state_root, container_id, "state.json")
    try:
        with open(path) as f:
            state = json.load(f)
        pid = int(state.get("init_process_pid") or state.get("pid") or 0)
    except (OSError, ValueError):
        pid = 0
    if pid > 1:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for runtime in ("runc", "crun"):
        if shutil.which(runtime):
            Runner(runtime, state_root=state_root).delete(container_id)


def prune_cache_mounts(store: Store, report: PruneReport) -> None:
    """Remove every ``RUN --mount=type=cache`` directory no build is using now (a build
    holds the directory's lock while its step runs)."""
    base = os.path.join(store.root, "cache-mounts")
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(base, name)
        if name.endswith(".lock") or not os.path.isdir(path):
            continue
        fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                report.notes.append(f"cache mount {path} is in use by a build: kept")
                continue
            shutil.rmtree(path, ignore_errors=True)
            report.cache_mounts.append(path)
        finally:
            os.close(fd)


def prune(store: Store, *, everything: bool = False, cache_mounts: bool = False) -> PruneReport:
    """What dead processes left behind; ``everything``: also what no image uses and the
    cache mounts; ``cache_mounts``: also the cache mounts."""
    report = PruneReport()
    for path in stale_scratch_dirs(store):
        for root, cid in runtime_states(path):
            kill_container(root, cid)
            report.containers.append(cid)
    for point in sorted(host_mounts_under(store.root), key=len, reverse=True):
        try:
            _native.umount(point, detach=True)
            report.mounts.append(point)
        except OSError:
            pass
    for path in stale_scratch_dirs(store):
        shutil.rmtree(path, ignore_errors=True)
        report.scratch.append(path)
    for finding in check_layers(store):
        shutil.rmtree(finding.subject, ignore_errors=True)
        report.layers.append(finding.subject)
    for finding in check_blobs(store):
        path = finding.subject if finding.kind == "stray-file" else store.blob_path(finding.subject)
        os.unlink(path)
        report.blobs.append(finding.subject)
    for finding in check_tags(store, full=False):
        if finding.kind == "broken-tag" and finding.subject not in report.tags:
            store.untag(finding.subject)
            report.tags.append(finding.subject)
    report.failures += remove_kept_failures(store.root)
    if everything or cache_mounts:
        prune_cache_mounts(store, report)
    if everything:
        try:
            report.layers += store.gc(tmp_age=0)
        except StoreError as exc:
            report.notes.append(exc.format())
    return report
