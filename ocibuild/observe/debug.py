"""``ocibuild debug BUILD [CMD...]``: a shell (or CMD) in a failed RUN step's environment.

``--keep-failed`` left the step's upper dir, its lower layers, its bundle and the sources
of its scratch-space bind mounts (:mod:`ocibuild.observe.forensics`). Here they are mounted
again: the lowers, the kept upper dir on top of them as one more (read-only) lower, and a
fresh upper dir, so the session sees exactly what the step left and changes nothing that
was kept (``debug`` can be run again and again). The kept ``config.json`` is reused as
is (environment, user, working directory, mounts, namespaces, capabilities, rootless
variant) with only the rootfs path, the bundle's own paths and the process arguments
replaced, and runs through the same runtime or native sandbox the build used. A terminal
on standard input gets a terminal in the container; otherwise the standard streams are
passed through (``ocibuild debug BUILD -- cat /file`` works in scripts).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from ocibuild.builder.scratch import Scratch
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.observe.forensics import FAILED_DIR, FAILURE_FILE
from ocibuild.observe.records import find_build
from ocibuild.runtime import native
from ocibuild.runtime.bundle import write_bundle
from ocibuild.runtime.process import make_process_runner
from ocibuild.storage import driver
from ocibuild.storage.overlay import ensure_mount_namespace


def find_failure(store_root: str, ref: str, step: int | None = None) -> tuple[str, dict[str, Any]]:
    """(dir, failure.json) of the failed step kept for build ``ref``."""
    build_dir = find_build(store_root, ref, failed=True)
    failed = os.path.join(build_dir, FAILED_DIR)
    try:
        names = sorted(os.listdir(failed), key=lambda n: int(n.rpartition("-")[2] or 0))
    except FileNotFoundError:
        names = []
    if step is not None:
        names = [n for n in names if n == f"step-{step}"]
    if not names:
        raise OcibuildError(
            f"build {os.path.basename(build_dir)} kept no failed step"
            + (f" {step}" if step is not None else ""),
            hint="build with --keep-failed to keep a failing RUN step for `ocibuild debug`",
        )
    path = os.path.join(failed, names[0])
    try:
        with open(os.path.join(path, FAILURE_FILE), encoding="utf-8") as f:
            meta: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as exc:
        raise OcibuildError(f"the kept failure in {path} is incomplete: {exc}") from None
    return path, meta


def debug_spec(
    spec: dict[str, Any],
    meta: dict[str, Any],
    *,
    kept: str,
    rootfs: str,
    bundle: str,
    command: Sequence[str],
    terminal: bool,
) -> dict[str, Any]:
    """The kept spec with the rootfs, the bundle's paths, the kept mount sources and the
    process arguments replaced."""
    spec = json.loads(json.dumps(spec))
    old_root = str(spec.get("root", {}).get("path", ""))
    spec["root"] = {**spec.get("root", {}), "path": rootfs}
    for hooks in (spec.get("hooks") or {}).values():  # crun's nodev hook names the rootfs
        for hook in hooks:
            hook["args"] = [rootfs if a == old_root else a for a in hook.get("args") or []]
    old_bundle = str(meta.get("bundle", "")).rstrip("/") + "/"
    moved = {src: os.path.join(kept, rel) for src, rel in (meta.get("mounts") or {}).items()}
    for mount in spec.get("mounts") or []:
        source = str(mount.get("source", ""))
        if source in moved:
            mount["source"] = moved[source]
        elif source.startswith(old_bundle):
            mount["source"] = os.path.join(bundle, source[len(old_bundle) :])
    for namespace in (spec.get("linux") or {}).get("namespaces") or []:
        if namespace.get("path") and not os.path.exists(namespace["path"]):
            del namespace["path"]  # the build's network namespace ended with it: a new one
    process = spec.setdefault("process", {})
    process["args"] = list(command)
    process["terminal"] = terminal
    if terminal:
        process.setdefault("consoleSize", {"height": 24, "width": 80})
    return spec


def run_debug(store: Store, kept: str, meta: dict[str, Any], command: Sequence[str]) -> int:
    """Run ``command`` (default: /bin/sh) in the kept failed step; its exit status."""
    ensure_mount_namespace()
    if meta.get("vfs"):
        lowers = [os.path.join(kept, "rootfs")]
        storage = "vfs"
    else:
        lowers = [os.path.join(kept, "upper")] + [
            os.path.join(kept, rel) for rel in meta.get("lowers") or []
        ]
        storage = "overlay" if meta.get("storage_driver") == "overlay" else "fuse-overlayfs"
        if meta.get("storage_driver") not in ("overlay", "fuse-overlayfs"):
            storage = "overlay"
    with open(os.path.join(kept, "bundle", "config.json"), encoding="utf-8") as f:
        spec = json.load(f)
    runtime = str(meta.get("runtime") or "runc")
    # An OCI runtime gives the shell a terminal of its own; the native sandbox passes
    # the standard streams through (the shell then runs on the caller's terminal).
    terminal = not command and sys.stdin.isatty() and sys.stdout.isatty()
    terminal = terminal and runtime != native.NAME
    scratch = Scratch(store, "debug-")
    try:
        work = scratch.path
        bundle = os.path.join(work, "bundle")
        shutil.copytree(os.path.join(kept, "bundle"), bundle, symlinks=True)
        mount = driver.prepare(storage, lowers, os.path.join(work, "root"))
        with mount:
            spec = debug_spec(
                spec,
                meta,
                kept=kept,
                rootfs=mount.target,
                bundle=bundle,
                command=list(command) or ["/bin/sh"],
                terminal=terminal,
            )
            write_bundle(bundle, spec)
            runner = make_process_runner(runtime, work + "/state")
            argv = runner.command(bundle, "ocibuild-debug-" + secrets.token_hex(4))
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                # crun on a hybrid-cgroup host needs the runner's private mount namespace
                preexec = getattr(runner, "preexec", None)
                rc = subprocess.call(argv, close_fds=True, preexec_fn=preexec)
            except FileNotFoundError:
                raise OcibuildError(
                    f"OCI runtime {argv[0]!r} not found", hint="the build used it; install it"
                ) from None
        return 128 - rc if rc < 0 else rc
    finally:
        scratch.close()
