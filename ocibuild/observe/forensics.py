"""``--keep-bundles DIR`` and ``--keep-failed``: what a RUN step leaves for study.

The executor sets a :class:`StepHook` as ``ctx.on_bundle`` for each step; ``run_step``
calls :func:`after_run` once the runtime returned (or failed to start), while the rootfs
is still mounted.

* ``--keep-bundles DIR``: ``DIR/step-N/`` gets the step's bundle (``config.json``, the
  generated ``etc/`` files, the runtime's log) and ``command.json`` (the exact runtime
  command line).
* ``--keep-failed``: a failing RUN leaves, in ``ROOT/builds/BUILD/failed/step-N/``, its
  overlay upper dir (``upper/``; ``rootfs/`` for vfs, where the tree is its own upper),
  its lower layers (``lowers/0`` top-most ..., hard-linked copies of the store's layer
  dirs, so ``prune --all`` cannot pull them away), the bundle, the sources of bind mounts
  that lived in the build's scratch space (``mounts/N``; secrets are not kept), and
  ``failure.json`` (the step, the exact runtime command, isolation, storage driver,
  runtime). ``ocibuild debug BUILD`` runs a shell there (:mod:`ocibuild.observe.debug`);
  ``ocibuild prune`` removes it.

Values of ``--secret``\\ s found in the process environment are replaced by ``<secret>``
in kept ``config.json`` files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import write_atomic

if TYPE_CHECKING:
    from ocibuild.builder.step import StepContext
    from ocibuild.storage.base import Rootfs

FAILED_DIR = "failed"
FAILURE_FILE = "failure.json"


class StepHook:
    """``ctx.on_bundle`` for one step: where its bundle and failure go.

    ``read_secret`` returns a ``--secret``'s value by id (None if not given): kept
    ``config.json`` files show ``<secret>`` in its place."""

    def __init__(
        self,
        *,
        build_id: str,
        build_dir: str,
        number: int,
        instruction: str,
        line: int,
        read_secret: Callable[[str], bytes | None],
    ) -> None:
        self.build_id = build_id
        self.build_dir = build_dir
        self.number = number
        self.instruction = instruction
        self.line = line
        self.read_secret = read_secret

    def __call__(self, bundle: str) -> None:
        """Only the bundle is known (a caller that does not pass the rest)."""

    def after_run(
        self, ctx: StepContext, rootfs: Rootfs, work: str, command: list[str], status: int | None
    ) -> str | None:
        bundle = os.path.join(work, "bundle")
        if ctx.options.keep_bundles and os.path.isdir(bundle):
            dest = os.path.join(ctx.options.keep_bundles, f"step-{self.number}")
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(ctx.options.keep_bundles, exist_ok=True)
            shutil.copytree(bundle, dest, symlinks=True)
            self._redact(ctx, os.path.join(dest, "config.json"))
            _write(os.path.join(dest, "command.json"), {"command": command, "status": status})
        if status == 0 or not ctx.options.keep_failed:
            return None
        path = self.keep_failure(ctx, rootfs, work, command, status)
        return (
            f"the failed step is kept in {path}; "
            f"`ocibuild debug {self.build_id}` opens a shell in it"
        )

    def keep_failure(
        self, ctx: StepContext, rootfs: Rootfs, work: str, command: list[str], status: int | None
    ) -> str:
        dest = os.path.join(self.build_dir, FAILED_DIR, f"step-{self.number}")
        shutil.rmtree(dest, ignore_errors=True)
        # 0700: the upper dir may hold a setuid file the step left
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        os.mkdir(dest, 0o700)
        in_place = os.path.realpath(rootfs.upper) == os.path.realpath(rootfs.target)
        if in_place:  # vfs: the whole tree
            _copy_tree(rootfs.target, os.path.join(dest, "rootfs"), link=False)
            lowers: list[str] = []
        else:
            _copy_tree(rootfs.upper, os.path.join(dest, "upper"), link=False)
            lowers = []
            for i, lower in enumerate(ctx.store.lower_dirs(ctx.image.diff_ids)):
                _copy_tree(lower, os.path.join(dest, "lowers", str(i)), link=True)
                lowers.append(f"lowers/{i}")
        bundle = os.path.join(work, "bundle")
        kept_mounts: dict[str, str] = {}
        if os.path.isdir(bundle):
            shutil.copytree(bundle, os.path.join(dest, "bundle"), symlinks=True)
            self._redact(ctx, os.path.join(dest, "bundle", "config.json"))
            kept_mounts = self._keep_mounts(ctx, os.path.join(dest, "bundle", "config.json"), dest)
        meta: dict[str, Any] = {
            "build": self.build_id,
            "step": self.number,
            "instruction": self.instruction,
            "line": self.line,
            "status": status,
            "command": command,
            "runtime": ctx.options.runtime,
            "isolation": ctx.options.isolation,
            "storage_driver": ctx.options.storage_driver,
            "rootfs": rootfs.target,
            "bundle": bundle,
            "vfs": in_place,
            "lowers": lowers,
            "diff_ids": list(ctx.image.diff_ids),
            "mounts": kept_mounts,
            "plan": ctx.step_plan.describe() if ctx.step_plan is not None else [],
        }
        _write(os.path.join(dest, FAILURE_FILE), meta)
        return dest

    def _keep_mounts(self, ctx: StepContext, config: str, dest: str) -> dict[str, str]:
        """Bind sources in the build's scratch space vanish with it: copy them (not
        secrets: their mounts are dropped)."""
        with open(config, encoding="utf-8") as f:
            spec = json.load(f)
        kept: dict[str, str] = {}
        mounts = []
        scratch = os.path.realpath(ctx.tmp) + os.sep
        for i, mount in enumerate(spec.get("mounts") or []):
            source = str(mount.get("source", ""))
            if mount.get("type") != "bind" or not os.path.realpath(source).startswith(scratch):
                mounts.append(mount)
                continue
            if "/bundle/" in source:  # the generated /etc files: in the kept bundle
                mounts.append(mount)
                continue
            if os.path.basename(os.path.dirname(source)).startswith("secret-"):
                continue
            rel = os.path.join("mounts", str(i))
            _copy_tree(source, os.path.join(dest, rel), link=False)
            kept[source] = rel
            mounts.append(mount)
        spec["mounts"] = mounts
        _write(config, spec)
        return kept

    def _redact(self, ctx: StepContext, config: str) -> None:
        values = set()
        for secret_id in ctx.options.secrets:
            with contextlib.suppress(OcibuildError, OSError):
                value = self.read_secret(secret_id)
                if value:
                    values.add(value.decode("utf-8", "surrogateescape"))
        if not values:
            return
        with open(config, encoding="utf-8") as f:
            spec = json.load(f)
        env = spec.get("process", {}).get("env") or []
        spec["process"]["env"] = [
            f"{e.partition('=')[0]}=<secret>" if e.partition("=")[2] in values else e for e in env
        ]
        _write(config, spec)


def after_run(
    ctx: StepContext, rootfs: Rootfs, work: str, command: list[str], status: int | None
) -> str | None:
    """Keep the bundle and/or the failed step as the options say; returns a hint naming
    what was kept (a failure), or None. ``status`` None: the runtime failed to start."""
    hook = ctx.on_bundle
    if not isinstance(hook, StepHook):
        return None
    try:
        return hook.after_run(ctx, rootfs, work, command, status)
    except OSError as exc:  # (CalledProcessError of cp is an OSError below)
        return f"could not keep the failed step: {exc}"


def _copy_tree(src: str, dst: str, *, link: bool) -> None:
    """``cp -a`` (xattrs, devices, owners; ``-l``: hard links) of a dir or a file."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    args = ["cp", "-a", "--no-target-directory"]
    if link:
        args.append("-l")
    import subprocess  # (imported here: only a failed step that is kept needs it)

    proc = subprocess.run([*args, src, dst], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(args)} {src} {dst}: {proc.stderr.strip() or proc.returncode}")


def _write(path: str, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o600, durable=False)
