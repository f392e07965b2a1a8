"""RUN --mount=type=bind|cache|tmpfs|secret|ssh: prepare what gets mounted.

The flag is parsed once, in ``dockerfile/mounts.py`` (fields at parse time, typed
:class:`MountSpec` after expansion, BuildKit's ``commands_runmount.go``). Preparation
turns each mount into a
runtime-spec mount entry; nothing it mounts ends up in the step's layer (the stubs the
runtime creates for mount points are removed by ``run_process``):

- bind: a copy of the context subtree (``.dockerignore`` applied), or an overlay of a
  stage's or image's layers; read-only unless ``rw`` (then writes are discarded).
- cache: a directory kept in the store under ``cache-mounts/`` across builds, keyed by
  ``id`` (default: the target), created with ``mode``/``uid``/``gid``; ``from`` seeds it.
- tmpfs: a fresh tmpfs (``size`` in bytes).
- secret: a read-only file at ``target`` (default ``/run/secrets/ID``), never part of a
  layer, the config or the history. Values come from ``--secret id=ID,src=FILE|env=VAR``
  or from ``OCIBUILD_SECRET_<ID>`` (a file
  path) in the environment, or ``env=NAME`` puts the value in the RUN's environment.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import shutil
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from ocibuild._record import dataclass
from ocibuild.builder.context import SourceTree
from ocibuild.builder.rootfs import mounted, workspace
from ocibuild.builder.step import StepContext, fail
from ocibuild.dockerfile.instructions import Instruction, Run
from ocibuild.dockerfile.mounts import MountSpec, resolve_mount
from ocibuild.errors import DockerfileError, OcibuildError
from ocibuild.image.store import private_dir
from ocibuild.options import Secret

SECRET_ENV_PREFIX = "OCIBUILD_SECRET_"


def mount_specs(ctx: StepContext, instr: Run) -> list[MountSpec]:
    """The step's ``--mount`` flags (their values expanded before dispatch), checked
    and typed (``dockerfile.mounts``)."""
    try:
        return [resolve_mount(flag, str, ctx.image.workdir) for flag in instr.mounts]
    except DockerfileError as exc:
        if exc.pos is not None:  # an expansion error, already positioned
            raise
        raise fail(instr, exc.message, hint=exc.hint) from None


@dataclass
class Prepared:
    mounts: list[dict[str, Any]]
    env: dict[str, str]


def _bind(dest: str, source: str, readonly: bool) -> dict[str, Any]:
    options = ["rbind", "ro" if readonly else "rw"]
    return {"destination": dest, "type": "bind", "source": source, "options": options}


@contextmanager
def prepare_mounts(
    ctx: StepContext, instr: Instruction, specs: list[MountSpec]
) -> Iterator[Prepared]:
    """Set up every mount; everything set up is torn down when the block ends."""
    out = Prepared([], {})
    ssh_specs = [spec for spec in specs if spec.type == "ssh"]
    for number, spec in enumerate(ssh_specs):
        spec.target = spec.target or f"/run/buildkit/ssh_agent.{number}"
    with ExitStack() as stack:
        for spec in specs:
            if spec.type == "tmpfs":
                opts = ["nosuid", "nodev", "mode=1777"]
                if spec.size:
                    opts.append(f"size={spec.size}")
                out.mounts.append(
                    {
                        "destination": spec.target,
                        "type": "tmpfs",
                        "source": "tmpfs",
                        "options": opts,
                    }
                )
            elif spec.type == "secret":
                _secret(ctx, instr, spec, stack, out)
            elif spec.type == "ssh":
                _ssh(ctx, instr, spec, out)
            elif spec.type == "cache":
                out.mounts.append(
                    _bind(spec.target, _cache_dir(ctx, instr, spec, stack), bool(spec.readonly))
                )
            else:
                source = _source_dir(ctx, instr, spec, stack)
                out.mounts.append(_bind(spec.target, source, spec.readonly is not False))
        yield out


def _source_root(
    ctx: StepContext, instr: Instruction, ref: str, stack: ExitStack
) -> tuple[str, SourceTree | None]:
    """(host dir, filtered tree or None) of the context (``ref`` empty) or a stage/image."""
    if not ref:
        return ctx.context.root, ctx.context
    from ocibuild.builder.copy import source_layers

    diff_ids = source_layers(ctx, instr, ref)
    work = stack.enter_context(workspace(ctx, "mount-"))
    mnt = stack.enter_context(mounted(ctx, diff_ids, work))
    return mnt.target, None


def _source_dir(ctx: StepContext, instr: Instruction, spec: MountSpec, stack: ExitStack) -> str:
    root, tree = _source_root(ctx, instr, spec.from_, stack)
    if tree is None:  # an overlay of a stage: writes land in a throw-away upper dir
        from ocibuild.fs.rootpath import resolve_in_root

        rel = resolve_in_root(root, posixpath.normpath("/" + spec.source).lstrip("/"))
        path = os.path.join(root, rel) if rel else root
        if not os.path.lexists(path):
            raise fail(instr, f"mount source {spec.source!r} not found in {spec.from_!r}")
        return path
    found = tree.match(spec.source or ".")
    if len(found) != 1:
        raise fail(
            instr,
            f"mount source {spec.source!r} not found in the build context",
            hint="source is relative to the context root (and .dockerignore applies)",
        )
    # A private copy: the .dockerignore filter applies and rw writes are discarded.
    from ocibuild.builder.copy import CopyPlan, copy_entry

    work = stack.enter_context(workspace(ctx, "bind-"))
    src = found[0]
    st = os.lstat(src.host_path)
    plan = CopyPlan(None, None, None)
    if os.path.isdir(src.host_path):
        dest = os.path.join(work, "src")
        os.mkdir(dest)
        for host, rel, entry_st in tree.walk(src):
            copy_entry(host, entry_st, dest, rel, plan)
        os.chmod(dest, st.st_mode & 0o7777)
        return dest
    copy_entry(src.host_path, os.stat(src.host_path), work, "src", plan)
    return os.path.join(work, "src")


def cache_identity(ctx: StepContext, instr: Instruction, spec: MountSpec) -> str:
    """What makes two cache mounts one cache: the id, and what BuildKit mounts it from.

    BuildKit keys a cache directory by its id *and* the snapshot it starts from: with
    ``uid``, ``gid`` or ``mode`` given (and no ``source``) that is a directory made with
    those settings (defaults 0, 0, 0755), with ``from`` the stage's or image's result.
    So ``id=k,uid=1000`` and ``id=k`` are two caches, and so is ``id=k,uid=0`` (observed on
    BuildKit v0.11.6).
    """
    doc: dict[str, Any] = {"id": spec.id}
    if spec.from_:
        from ocibuild.builder.copy import source_layers

        doc["from"] = source_layers(ctx, instr, spec.from_)
        doc["source"] = posixpath.normpath("/" + spec.source)
    elif posixpath.normpath("/" + spec.source) == "/" and (
        spec.uid is not None or spec.gid is not None or spec.mode is not None
    ):
        doc["settings"] = [
            spec.uid or 0,
            spec.gid or 0,
            0o755 if spec.mode is None else spec.mode,
        ]
    if len(doc) == 1:
        return spec.id  # the identity older stores used: their caches stay valid
    return json.dumps(doc, sort_keys=True)


def _cache_dir(ctx: StepContext, instr: Instruction, spec: MountSpec, stack: ExitStack) -> str:
    # 0700: a step may leave a setuid file in a cache; no other user may reach it
    base = private_dir(os.path.join(ctx.store.root, "cache-mounts"))
    key = hashlib.sha256(cache_identity(ctx, instr, spec).encode()).hexdigest()[:32]
    path = os.path.join(base, key)
    lock_fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    stack.callback(os.close, lock_fd)
    fcntl.flock(lock_fd, fcntl.LOCK_EX if spec.sharing == "locked" else fcntl.LOCK_SH)
    if not os.path.isdir(path):
        # Parallel stages may want the same new cache: one creates it, under its own
        # lock (the mount lock above is held for the whole RUN).
        create_fd = os.open(path + ".create", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(create_fd, fcntl.LOCK_EX)
            if not os.path.isdir(path):
                _create_cache_dir(ctx, instr, spec, stack, path)
        finally:
            os.close(create_fd)
    return path


def _create_cache_dir(
    ctx: StepContext, instr: Instruction, spec: MountSpec, stack: ExitStack, path: str
) -> None:
    tmp = path + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    if spec.from_:
        seed = _source_dir(ctx, instr, spec, stack)
        shutil.copytree(seed, tmp, symlinks=True)
    else:
        os.mkdir(tmp)
        os.chmod(tmp, 0o755 if spec.mode is None else spec.mode)
        os.chown(tmp, spec.uid or 0, spec.gid or 0)
    os.rename(tmp, path)


def secret_value(
    secret_id: str,
    environ: Mapping[str, str] | None = None,
    secrets: Mapping[str, Secret] | None = None,
) -> bytes | None:
    """The secret ``secret_id``: from ``--secret id=...`` (a file or an environment
    variable), else from ``OCIBUILD_SECRET_<ID>`` (a file path); None if not given."""
    environ = os.environ if environ is None else environ
    given = (secrets or {}).get(secret_id)
    if given is not None and given.kind == "env":
        value = environ.get(given.source)
        if value is None:
            raise OcibuildError(
                f"secret {secret_id!r}: environment variable {given.source} is not set",
                hint=f"export {given.source}=... or use --secret id={secret_id},src=FILE",
            )
        return value.encode()
    path = given.source if given is not None else environ.get(SECRET_ENV_PREFIX + secret_id)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise OcibuildError(
            f"secret {secret_id!r}: cannot read {path}: {exc.strerror}",
            hint="the file given with --secret (or OCIBUILD_SECRET_<ID>) must be readable",
        ) from None


def _ssh(ctx: StepContext, instr: Instruction, spec: MountSpec, out: Prepared) -> None:
    """The ``--ssh`` agent socket, bound at the target; the first one is SSH_AUTH_SOCK."""
    socket = ctx.options.ssh.get(spec.id)
    if socket is None:
        if spec.required:
            raise fail(
                instr,
                f"no SSH agent socket for id {spec.id!r}",
                hint=f"build with --ssh {spec.id} (uses $SSH_AUTH_SOCK) or --ssh {spec.id}=SOCKET",
            )
        return  # BuildKit: an ssh mount is optional unless required=true
    out.mounts.append(_bind(spec.target, socket, False))
    out.env.setdefault("SSH_AUTH_SOCK", spec.target)


def _secret(
    ctx: StepContext, instr: Instruction, spec: MountSpec, stack: ExitStack, out: Prepared
) -> None:
    try:
        value = secret_value(spec.id, secrets=ctx.options.secrets)
    except OcibuildError as exc:
        raise fail(instr, exc.message, hint=exc.hint) from None
    if value is None:
        if spec.required:
            raise fail(
                instr,
                f"secret {spec.id} not found",
                hint=f"provide it: {SECRET_ENV_PREFIX}{spec.id}=/path/to/file ocibuild build ...",
            )
        return  # BuildKit skips a missing optional secret
    if spec.env:
        out.env[spec.env] = value.decode("utf-8", "surrogateescape")
    if not spec.target:
        return
    work = stack.enter_context(workspace(ctx, "secret-", at_once=True))
    path = os.path.join(work, "secret")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    os.chown(path, spec.uid or 0, spec.gid or 0)
    os.chmod(path, 0o400 if spec.mode is None else spec.mode)
    os.chmod(work, 0o755)
    out.mounts.append(_bind(spec.target, path, True))
