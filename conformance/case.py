"""How a conformance case is written.

A case is a Dockerfile (its FROM lines say ``{busybox}`` or ``{debian}``; each builder
gets its own spelling of the same base image: ocibuild reads the local OCI layout,
BuildKit pulls the byte-identical copy from the local registry), the context files, build
args, a target, secrets, and files served over HTTP on 127.0.0.1 (``{http}``).

The reference of record is the real BuildKit (v0.11.6 here): its result for each case is
recorded in ``conformance/goldens/CASE.json`` (what the image adds, changes and removes
relative to its base, and the config fields) by ``python -m conformance.regen``, and
ocibuild must produce the same. Written expectations exist only where BuildKit v0.11.6
cannot be the reference, each with its one-line ``reason``:

- ``newer``: current BuildKit differs from v0.11.6 (cite the change); the golden is
  checked with these entries/config fields replaced;
- ``expect``: v0.11.6 cannot build the case (newer syntax); ``files`` is then the *whole*
  difference from the base image, ``config`` exact values.

A case with ``error`` must fail to build (BuildKit too), with that text in ocibuild's
message. ``rebuild`` builds twice: the second build must hit the cache and give the same
image ID. ``layers`` also compares the entry names of the image's last layer.

``platform`` builds for other platforms (both builders get ``--platform``; several, comma
separated, make one multi-platform index) and ``pick`` names the architecture whose image
(and base image, from a multi-platform base such as ``{debian-multi}``) is compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.layout import Entry, file_entry


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
    modes: dict[str, int] = field(default_factory=dict)  # newer: only these modes change


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
    expect: Expect | None = None  # v0.11.6 cannot build it: the whole written result
    newer: Expect | None = None  # current BuildKit differs from v0.11.6: golden patched
    reason: str = ""  # why a written expectation (expect or newer) is used
    error: str | None = None  # the build must fail with this text
    base: str = "busybox"  # the base image the flattened diff is taken against
    rebuild: bool = False  # a second build must be a cache hit with the same image ID
    layers: bool = False  # compare the last layer's entry names too
    source: str = ""  # where the case comes from (a BuildKit or buildah test)
    platform: str = ""  # --platform for both builders (empty: this machine's)
    pick: str = ""  # the architecture compared (from the index of a multi-platform build)

    @property
    def written(self) -> bool:
        """Whether part of the expected result is written rather than BuildKit's."""
        return self.expect is not None or self.newer is not None


def f(content: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    data = content.encode() if isinstance(content, str) else content
    return file_entry(data, mode, uid, gid)


HEREDOC_0644 = (
    "v0.11.6 makes COPY/ADD heredoc files 0664; current BuildKit 0644 (143042485, "
    '"dockerfile: heredoc should use 0644 permissions")'
)


def heredoc_files(*paths: str) -> Expect:
    """The current-BuildKit patch for heredoc files created by COPY/ADD (0644)."""
    return Expect(modes={path: 0o644 for path in paths})


def d(mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry("dir", mode, uid, gid)


def ln(target: str, uid: int = 0, gid: int = 0) -> Entry:
    return Entry("symlink", 0o777, uid, gid, link=target)
