"""RUN --mount: the one parser of the flag's value (BuildKit's ``commands_runmount.go``).

Two phases, as in BuildKit: at parse time (:func:`parse_mount_flag`) the value is split
into its comma-separated ``key[=value]`` fields, keys normalised, values kept as written
(the ``from=`` stage reference is never expanded); at dispatch (:func:`resolve_mount`),
with the step's ARG/ENV values, each value is expanded and checked into a typed
:class:`MountSpec`. Pure: no I/O. Errors carry no position: the caller adds the
instruction's.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from ocibuild._record import dataclass, field
from ocibuild.errors import DockerfileError

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_KEYS = {
    "type": "type", "from": "from", "source": "source", "src": "source",
    "target": "target", "dst": "target", "destination": "target",
    "readonly": "readonly", "ro": "readonly", "readwrite": "readwrite", "rw": "readwrite",
    "id": "id", "sharing": "sharing", "mode": "mode", "uid": "uid", "gid": "gid",
    "required": "required", "size": "size", "env": "env",
}  # fmt: skip


@dataclass(frozen=True)
class MountFlag:
    """One ``--mount=...`` as parsed: its fields in order, values unexpanded.

    ``fields`` holds ``(key, value)`` with the key lower-cased and stripped and the value
    None for a bare word (``ro``); ``from_`` is the last ``from=`` (a stage or image
    reference: never expanded, BuildKit refuses a variable there)."""

    raw: str
    fields: tuple[tuple[str, str | None], ...] = ()
    parts: tuple[str, ...] = ()  # each field as written, for error messages

    @property
    def from_(self) -> str:
        found = ""
        for key, value in self.fields:
            if key == "from" and value is not None:
                found = value
        return found

    @property
    def from_refs(self) -> tuple[str, ...]:
        """Every non-empty ``from=`` value, as written."""
        return tuple(v for k, v in self.fields if k == "from" and v)


@dataclass
class MountSpec:
    """A ``--mount`` after expansion and checks: what the step mounts."""

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


def parse_mount_flag(raw: str) -> MountFlag:
    """Split a ``--mount`` value into its fields (nothing is expanded or refused here)."""
    fields: list[tuple[str, str | None]] = []
    parts = [part for part in raw.split(",") if part]
    for part in parts:
        key, eq, value = part.partition("=")
        fields.append((key.strip().lower(), value if eq else None))
    return MountFlag(raw, tuple(fields), tuple(parts))


def _bool(key: str, value: str | None) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise DockerfileError(
        f"invalid value for {key}: {value}", hint=f"use {key}, {key}=true or false"
    )


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise DockerfileError(f"invalid value {value!r} for {key}") from None


def parse_size(value: str) -> int:
    """A tmpfs size: bytes, or with a k/m/g suffix (docker's units.RAMInBytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?", value)
    if m is None:
        raise DockerfileError(f"invalid size {value!r} for tmpfs mount", hint="e.g. size=64m")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2].lower()]
    return int(float(m[1]) * mult)


def resolve_mount(flag: MountFlag, expand: Callable[[str], str], workdir: str) -> MountSpec:
    """The typed mount of ``flag``: each value expanded with ``expand`` and checked; a
    relative target is taken from ``workdir``. Raises DockerfileError (no position)."""
    spec = MountSpec(raw=flag.raw)
    for (key, raw), part in zip(flag.fields, flag.parts, strict=True):
        name = _KEYS.get(key)
        if name is None:
            raise DockerfileError(
                f"unexpected key '{key}' in '{part}'",
                hint="--mount takes type, source, target, from, ro/rw, id, sharing, mode, "
                "uid, gid, required, size, env",
            )
        val = None if raw is None else expand(raw)
        if name in ("readonly", "readwrite", "required"):
            on = _bool(key, val)
            if name == "required":
                spec.required = on
            else:
                spec.readonly = on if name == "readonly" else not on
            continue
        if val is None:
            raise DockerfileError(f"invalid field '{part}' must be a key=value pair")
        spec.options[name] = val
        _set(spec, name, key, val)
    _finish(spec, workdir)
    return spec


def _set(spec: MountSpec, name: str, key: str, val: str) -> None:
    if name == "type":
        if val not in MOUNT_TYPES:
            raise DockerfileError(
                f"unsupported mount type {val!r}", hint="use bind, cache, tmpfs, secret or ssh"
            )
        spec.type = val
    elif name == "sharing":
        if val not in ("shared", "private", "locked"):
            raise DockerfileError(
                f"unsupported sharing value {val!r}", hint="shared, private or locked"
            )
        spec.sharing = val
    elif name == "mode":
        spec.mode = _int(key, val, 8)
    elif name in ("uid", "gid"):
        setattr(spec, name, _int(key, val))
    elif name == "size":
        spec.size = parse_size(val)
    else:  # target, source, from, id, env
        setattr(spec, "from_" if name == "from" else name, val)


def _finish(spec: MountSpec, workdir: str) -> None:
    """Defaults and checks that need every field (ids, targets)."""
    if spec.type == "ssh":  # BuildKit's default id; the target is numbered when prepared
        spec.id = spec.id or "default"
    if spec.type == "secret":
        if not spec.id and not spec.target and not spec.env:
            raise DockerfileError("secret mount requires an id or a target")
        spec.id = spec.id or posixpath.basename(spec.target)
        if not spec.target and not spec.env:
            spec.target = "/run/secrets/" + spec.id
    elif not spec.target and spec.type != "ssh":
        raise DockerfileError(
            f"mount type {spec.type!r} requires a target", hint="add target=/path"
        )
    if spec.type == "cache":
        spec.id = spec.id or spec.target
    if spec.target and not spec.target.startswith("/"):
        spec.target = posixpath.join("/", workdir, spec.target)
    if spec.target:
        spec.target = posixpath.normpath(spec.target)
    if spec.type == "tmpfs" and (spec.source or spec.from_):
        raise DockerfileError("tmpfs mounts take no source or from")
