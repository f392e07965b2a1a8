"""RUN --mount=type=bind|cache|tmpfs|secret: parse the flag, prepare what gets mounted.

Parsing follows BuildKit (``instructions/commands_runmount.go``): comma-separated
``key=value`` fields, ``type`` defaulting to ``bind``, relative targets taken from the
working directory, ``ro``/``rw`` as bare words. Preparation turns each mount into a
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
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from ocibuild.builder.context import SourceTree
from ocibuild.builder.rootfs import mounted, workspace
from ocibuild.builder.step import StepContext, fail
from ocibuild.dockerfile.instructions import Instruction
from ocibuild.errors import OcibuildError
from ocibuild.image.store import private_dir
from ocibuild.options import Secret

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_KEYS = {
    "type": "type", "from": "from", "source": "source", "src": "source",
    "target": "target", "dst": "target", "destination": "target",
    "readonly": "readonly", "ro": "readonly", "readwrite": "readwrite", "rw": "readwrite",
    "id": "id", "sharing": "sharing", "mode": "mode", "uid": "uid", "gid": "gid",
    "required": "required", "size": "size", "env": "env",
}  # fmt: skip
SECRET_ENV_PREFIX = "OCIBUILD_SECRET_"


@dataclass
class MountSpec:
    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool | None = None
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    size: int | None = None
    env: str = ""
    raw: str = ""
    options: dict[str, str] = field(default_factory=dict)


def _bool(instr: Instruction, key: str, value: str | None) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise fail(instr, f"invalid value for {key}: {value}", hint=f"use {key}, {key}=true or false")


def _int(instr: Instruction, key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise fail(instr, f"invalid value {value!r} for {key}") from None


def parse_size(instr: Instruction, value: str) -> int:
    """A tmpfs size: bytes, or with a k/m/g suffix (docker's units.RAMInBytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?", value)
    if m is None:
        raise fail(instr, f"invalid size {value!r} for tmpfs mount", hint="e.g. size=64m")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2].lower()]
    return int(float(m[1]) * mult)


def parse_mount(ctx: StepContext, instr: Instruction, raw: str) -> MountSpec:
    spec = MountSpec(raw=raw)
    for part in raw.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        name = _KEYS.get(key)
        if name is None:
            raise fail(
                instr,
                f"unexpected key '{key}' in '{part}'",
                hint="--mount takes type, source, target, from, ro/rw, id, sharing, mode, "
                "uid, gid, required, size, env",
            )
        val: str | None = ctx.expand(instr, value) if eq else None
        if name in ("readonly", "readwrite", "required"):
            flag = _bool(instr, key, val)
            if name == "readonly":
                spec.readonly = flag
            elif name == "readwrite":
                spec.readonly = not flag
            else:
                spec.required = flag
            continue
        if val is None:
            raise fail(instr, f"invalid field '{part}' must be a key=value pair")
        spec.options[name] = val
        if name == "type":
            if val not in MOUNT_TYPES:
                raise fail(
                    instr,
                    f"unsupported mount type {val!r}",
                    hint="use bind, cache, tmpfs, secret or ssh",
                )
            spec.type = val
        elif name == "target":
            spec.target = val
        elif name == "source":
            spec.source = val
        elif name == "from":
            spec.from_ = val
        elif name == "id":
            spec.id = val
        elif name == "sharing":
            if val not in ("shared", "private", "locked"):
                raise fail(
                    instr, f"unsupported sharing value {val!r}", hint="shared, private or locked"
                )
            spec.sharing = val
        elif name == "mode":
            spec.mode = _int(instr, key, val, 8)
        elif name in ("uid", "gid"):
            setattr(spec, name, _int(instr, key, val))
        elif name == "size":
            spec.size = parse_size(instr, val)
        elif name == "env":
            spec.env = val
    if spec.type == "ssh":  # BuildKit's default id; the target is numbered when prepared
        spec.id = spec.id or "default"
    if spec.type == "secret":
        if not spec.id and not spec.target and not spec.env:
            raise fail(instr, "secret mount requires an id or a target")
        spec.id = spec.id or posixpath.basename(spec.target)
        if not spec.target and not spec.env:
            spec.target = "/run/secrets/" + spec.id
    elif not spec.target and spec.type != "ssh":
        raise fail(instr, f"mount type {spec.type!r} requires a target", hint="add target=/path")
    if spec.type == "cache":
        spec.id = spec.id or spec.target
    if spec.target and not spec.target.startswith("/"):
        spec.target = posixpath.join("/", ctx.image.workdir, spec.target)
    if spec.target:
        spec.target = posixpath.normpath(spec.target)
    if spec.type == "tmpfs" and (spec.source or spec.from_):
        raise fail(instr, "tmpfs mounts take no source or from")
    return spec


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
        from ocibuild.storage.rootpath import resolve_in_root

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
    work = stack.enter_context(workspace(ctx, "secret-"))
    path = os.path.join(work, "secret")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    os.chown(path, spec.uid or 0, spec.gid or 0)
    os.chmod(path, 0o400 if spec.mode is None else spec.mode)
    os.chmod(work, 0o755)
    out.mounts.append(_bind(spec.target, path, True))


def mount_sources(value: str) -> str | None:
    """The ``from=`` of a raw --mount value (for the planner's stage graph)."""
    for part in value.split(","):
        key, _, val = part.partition("=")
        if key.strip().lower() == "from":
            return val
    return None
