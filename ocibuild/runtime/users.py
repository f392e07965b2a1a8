"""Resolve a Dockerfile ``USER`` against the *image's* /etc/passwd and /etc/group.

Semantics follow BuildKit (executor/oci/user.go + runc's libcontainer/user GetExecUser):

- ``uid:gid`` both numeric (or ``root``): taken as is, files not read, no extra groups;
- ``name`` / ``uid``: the passwd entry gives uid, gid and home; a numeric uid with no entry
  runs with gid 0 and home "/"; an unknown name is an error;
- with no group given, the user's memberships in /etc/group become supplementary gids;
- an explicit group (name or gid) replaces the primary gid and adds no supplementary one;
- the primary gid is always the first supplementary gid (BuildKit's ensureAdditionalGids,
  from containerd), so ``id`` in a RUN shows ``groups=GID,...``.

The files are opened *inside* the rootfs (openat2 RESOLVE_IN_ROOT), so an image whose
/etc/passwd is a symlink to an absolute path never makes us read the host's file.
"""

from __future__ import annotations

import errno
import os

from ocibuild import _record
from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError
from ocibuild.fs.rootpath import open_in_root

MAX_ID = 2**32 - 2


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str
    name: str


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _parse_id(text: str, what: str) -> int | None:
    """A decimal id, None when ``text`` is not a number; range errors raise."""
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise OcibuildError(
            f"{what} {text} out of range: uids and gids must be in range 0-{MAX_ID}"
        )
    return value


def _read_image_file(rootfs: str, path: str) -> str | None:
    try:
        fd = open_in_root(rootfs, path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EXDEV, errno.ELOOP):
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def _records(text: str, fields: int) -> list[list[str]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < fields:
            parts += [""] * (fields - len(parts))
        out.append(parts)
    return out


def parse_passwd(text: str) -> list[_Passwd]:
    entries = []
    for p in _records(text, 7):
        if p[2].isdigit() and p[3].isdigit():
            entries.append(_Passwd(p[0], int(p[2]), int(p[3]), p[5]))
    return entries


def parse_group(text: str) -> list[_Group]:
    entries = []
    for p in _records(text, 4):
        if p[2].isdigit():
            members = tuple(m.strip() for m in p[3].split(",") if m.strip())
            entries.append(_Group(p[0], int(p[2]), members))
    return entries


def _fast_id(text: str) -> int | None:
    return 0 if text == "root" else _parse_id(text, "id")


def resolve_user(rootfs: str, user: str) -> ResolvedUser:
    """Resolve ``USER`` (``name``, ``uid``, ``name:group``, ``uid:gid``, ...) in ``rootfs``."""
    found = _resolve(rootfs, user)
    if found.gid in found.additional_gids:
        return found
    return _record.replace(found, additional_gids=(found.gid, *found.additional_gids))


def _resolve(rootfs: str, user: str) -> ResolvedUser:
    if user == "":
        return ResolvedUser(0, 0, (), "/", "root")
    user_part, sep, group_part = user.partition(":")
    user_part = user_part or "0"  # ":group" means root with that group
    if sep:
        fuid, fgid = _fast_id(user_part), _fast_id(group_part)
        if fuid is not None and fgid is not None:
            return ResolvedUser(fuid, fgid, (), "/", user_part)

    uid_arg = _parse_id(user_part, "uid")
    passwd = parse_passwd(_read_image_file(rootfs, "etc/passwd") or "")
    match = next(
        (e for e in passwd if e.name == user_part or (uid_arg is not None and e.uid == uid_arg)),
        None,
    )
    if match is None:
        if uid_arg is None:
            raise OcibuildError(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid, gid, home, name = uid_arg, 0, "/", ""
    else:
        uid, gid, home, name = match.uid, match.gid, match.home or "/", match.name

    if not sep and match is None:
        return ResolvedUser(uid, gid, (), home, name)

    groups = parse_group(_read_image_file(rootfs, "etc/group") or "")
    if not sep:
        sgids = tuple(g.gid for g in groups if name in g.members)
        return ResolvedUser(uid, gid, sgids, home, name)

    gid_arg = _parse_id(group_part, "gid")
    found = next(
        (g for g in groups if (g.gid == gid_arg if gid_arg is not None else g.name == group_part)),
        None,
    )
    if found is not None:
        gid = found.gid
    elif gid_arg is not None:
        gid = gid_arg
    else:
        raise OcibuildError(f"unable to find group {group_part}: no matching entries in group file")
    return ResolvedUser(uid, gid, (), home, name)


def resolve_owner(rootfs: str, spec: str) -> tuple[int, int]:
    """The owner BuildKit gives files a file operation creates for ``spec`` (COPY/ADD
    ``--chown``, WORKDIR under a USER): its ``readUser``, not the RUN rules.

    - a numeric user (or ``root``) is that uid, and the gid too when no group is given
      (``1001`` -> 1001:1001 even when passwd gives uid 1001 another group);
    - a user name is looked up by name in the image's /etc/passwd: its uid and primary
      gid; a name that is not there is uid 0 and gid 0 (no error: BuildKit v0.11.6 and
      current BuildKit, solver/llbsolver/ops/user_linux.go);
    - a numeric group (or ``root``) is that gid; a group name is looked up in
      /etc/group, and one that is not there leaves the gid the user part gave.
    """
    user, sep, group = spec.partition(":")
    uid = _fast_id(user)
    if uid is not None:
        gid = uid
    else:
        passwd = parse_passwd(_read_image_file(rootfs, "etc/passwd") or "")
        entry = next((e for e in passwd if e.name == user), None)
        uid, gid = (entry.uid, entry.gid) if entry is not None else (0, 0)
    if sep:
        gid_arg = _fast_id(group)
        if gid_arg is not None:
            gid = gid_arg
        else:
            groups = parse_group(_read_image_file(rootfs, "etc/group") or "")
            found = next((g for g in groups if g.name == group), None)
            if found is not None:
                gid = found.gid
    return uid, gid


def unknown_owner_names(rootfs: str, spec: str) -> list[str]:
    """The names in ``spec`` (``user[:group]``) that the image's /etc/passwd or
    /etc/group does not have (``resolve_owner`` takes them as id 0 / the user's gid)."""
    user, sep, group = spec.partition(":")
    out = []
    if _fast_id(user) is None:
        passwd = parse_passwd(_read_image_file(rootfs, "etc/passwd") or "")
        if not any(e.name == user for e in passwd):
            out.append(f"user {user!r} (not in /etc/passwd: uid 0, gid 0)")
    if sep and _fast_id(group) is None:
        groups = parse_group(_read_image_file(rootfs, "etc/group") or "")
        if not any(g.name == group for g in groups):
            out.append(f"group {group!r} (not in /etc/group: the user's gid)")
    return out
