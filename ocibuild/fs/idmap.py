"""User-namespace id maps: the ones this process runs under, and /etc/subuid ranges.

Parsing is pure; the two readers at the bottom read /proc and /etc.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError

FULL_RANGE = 4294967295  # the initial user namespace maps 0..2^32-2


@dataclass(frozen=True)
class IdRange:
    """``count`` ids from ``inside`` (in the namespace) map to ``outside`` (its parent)."""

    inside: int
    outside: int
    count: int

    def contains(self, value: int) -> bool:
        return self.inside <= value < self.inside + self.count


@dataclass(frozen=True)
class IdMap:
    ranges: tuple[IdRange, ...]

    @property
    def is_initial(self) -> bool:
        """True in the initial user namespace (everything maps to itself)."""
        return any(r.inside == 0 and r.outside == 0 and r.count == FULL_RANGE for r in self.ranges)

    def contains(self, value: int) -> bool:
        return any(r.contains(value) for r in self.ranges)

    def describe(self) -> str:
        return ", ".join(
            f"{r.inside}-{r.inside + r.count - 1}" if r.count > 1 else str(r.inside)
            for r in self.ranges
        )


def parse_id_map(text: str) -> IdMap:
    """/proc/PID/uid_map text ("inside outside count" per line)."""
    ranges = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            ranges.append(IdRange(int(fields[0]), int(fields[1]), int(fields[2])))
    return IdMap(tuple(ranges))


def read_id_maps(pid: str = "self") -> tuple[IdMap, IdMap]:
    """(uid map, gid map) of a process."""
    out = []
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", encoding="ascii") as f:
            out.append(parse_id_map(f.read()))
    return out[0], out[1]


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        uids, _ = read_id_maps()
    except OSError:
        return False
    return not uids.is_initial


@dataclass(frozen=True)
class SubIdRange:
    start: int
    count: int


def parse_subid(text: str, user: str, uid: int) -> list[SubIdRange]:
    """The ranges /etc/subuid (or /etc/subgid) grants ``user`` (by name or by id)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            out.append(SubIdRange(start, count))
    return out


def read_subids(path: str, user: str, uid: int) -> list[SubIdRange]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_subid(f.read(), user, uid)
    except FileNotFoundError:
        return []


def newidmap_args(own_id: int, ranges: Sequence[SubIdRange]) -> list[str]:
    """Arguments after the pid for newuidmap/newgidmap: 0 = the user, then the ranges."""
    args = ["0", str(own_id), "1"]
    inside = 1
    for r in ranges:
        args += [str(inside), str(r.start), str(r.count)]
        inside += r.count
    return args


def check_mapped(what: str, value: int, id_map: IdMap) -> None:
    """Raise when ``value`` has no mapping in this user namespace."""
    if id_map.is_initial or id_map.contains(value):
        return
    raise OcibuildError(
        f"{what} {value} is not mapped in the build's user namespace "
        f"(mapped: {id_map.describe() or 'none'})",
        hint="give the user subordinate ids: "
        f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {_login()}",
    )


def _login() -> str:
    import pwd

    try:
        return os.environ.get("OCIBUILD_ROOTLESS_USER") or pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "USER"
