"""COPY/ADD --chmod: octal (``755``, ``0644``) or symbolic (``u+x,go-w``, ``a=rX``)."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable

Chmod = Callable[[int], int]  # st_mode -> new permission bits (with special bits)

_OCTAL = re.compile(r"[0-7]{1,4}")
_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=][rwxXst]*|[-+=][ugo])+)")
_OP = re.compile(r"([-+=])([ugo]|[rwxXst]*)")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}


def created_dir_mode(value: str | None) -> int:
    """The mode of the directories a COPY/ADD creates on the way to its destination: 0755,
    or an octal --chmod's permission bits (current BuildKit: fsutil 13604323, vendored by
    BuildKit cd3d07569, gives MkdirAll the copy's mode; its testCopyChmod, 75c457afd; v0.11.6
    made them 0755). A symbolic --chmod leaves them 0755 (it never sets that mode)."""
    if value is None or not _OCTAL.fullmatch(value):
        return 0o755
    return int(value, 8) & 0o777


def parse_chmod(value: str) -> Chmod | None:
    """A function giving the new mode bits for a file's ``st_mode``; None if malformed."""
    if _OCTAL.fullmatch(value):
        bits = int(value, 8)
        return lambda _mode: bits
    clauses = value.split(",")
    parsed: list[tuple[int, list[tuple[str, str]]]] = []
    for clause in clauses:
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            return None
        who = m.group(1) or "a"
        mask = 0
        for w in "ugo" if "a" in who else who:
            mask |= _WHO[w]
        parsed.append((mask, _OP.findall(m.group(2))))

    def apply(mode: int) -> int:
        perm = stat.S_IMODE(mode)
        is_dir = stat.S_ISDIR(mode)
        for mask, ops in parsed:
            for op, perms in ops:
                bits = _bits(perms, perm, mask, is_dir)
                if op == "+":
                    perm |= bits & mask
                elif op == "-":
                    perm &= ~(bits & mask)
                else:
                    perm = (perm & ~mask) | (bits & mask)
        return perm

    return apply


def _bits(perms: str, current: int, mask: int, is_dir: bool) -> int:
    if perms in ("u", "g", "o"):
        shift = {"u": 6, "g": 3, "o": 0}[perms]
        rwx = (current >> shift) & 0o7
        return rwx << 6 | rwx << 3 | rwx
    bits = 0
    for ch in perms:
        if ch == "r":
            bits |= 0o444
        elif ch == "w":
            bits |= 0o222
        elif ch == "x":
            bits |= 0o111
        elif ch == "X":
            if is_dir or current & 0o111:
                bits |= 0o111
        elif ch == "s":
            bits |= 0o6000
        elif ch == "t":
            bits |= 0o1000
    return bits
