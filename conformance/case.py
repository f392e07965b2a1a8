"""How a conformance case is written.

A case is a Dockerfile (its FROM lines say ``{busybox}`` or ``{debian}``; each builder
gets its own spelling of the same local OCI layout), the context files, build args, a
target, secrets, and files served over HTTP on 127.0.0.1 (``{http}`` in the Dockerfile).

By default the two builders must produce the same flattened filesystem and the same
config fields. A case with ``expect`` is compared instead against a result written from
the BuildKit reference (``reason`` says why buildah 1.28 cannot serve as the reference):
``files`` is then the *whole* difference from the base image, ``config`` exact values.
A case with ``error`` must fail to build, with that text in the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.layout import Entry


@dataclass(frozen=True)
class File:
    content: bytes | str = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Link:
    target: str


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


Spec = File | Link | Dir | str | bytes


@dataclass
class Expect:
    files: dict[str, Entry | None] = field(default_factory=dict)  # None: must be absent
    config: dict[str, Any] = field(default_factory=dict)
    exact: bool = True  # files is the whole difference from the base image


@dataclass
class Case:
    name: str
    dockerfile: str
    files: dict[str, Spec] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    http: dict[str, bytes] = field(default_factory=dict)
    dockerfile_name: str = "Dockerfile"
    setup: Callable[[Path], None] | None = None
    expect: Expect | None = None
    reason: str = ""  # why this case is compared against a written expectation
    error: str | None = None  # the build must fail with this text
    base: str = "busybox"  # the base image the flattened diff is taken against


def f(content: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    data = content.encode() if isinstance(content, str) else content
    return Entry("file", mode, uid, gid, hashlib.sha256(data).hexdigest())


def d(mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry("dir", mode, uid, gid)


def ln(target: str, uid: int = 0, gid: int = 0) -> Entry:
    return Entry("symlink", 0o777, uid, gid, link=target)
