"""Image references, normalised exactly as Docker does (pure, no I/O).

Grammar and rules from distribution/reference (``ParseNormalizedNamed``):

* the first ``/``-separated component is a registry host when it contains ``.`` or ``:``,
  is ``localhost``, or has an upper-case letter; otherwise the host is ``docker.io``;
* ``index.docker.io`` is ``docker.io``; a one-component path on ``docker.io`` gets
  ``library/`` in front (``debian`` -> ``docker.io/library/debian``);
* path components are lower-case ``[a-z0-9]+`` joined by ``.``, ``_``, ``__`` or dashes;
  a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; a digest is ``algorithm:hex``;
* a name without tag or digest gets ``:latest``; with a digest it stays digest-only;
* a bare 64-hex-digit name is refused (it is an image ID, not a name).
"""

from __future__ import annotations

import re

from ocibuild._record import dataclass
from ocibuild.errors import OcibuildError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:.]+(?:%[a-zA-Z0-9]+)?\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ReferenceError(OcibuildError):
    """An image reference that Docker would not accept."""


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/debian``"""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short name Docker shows: ``debian``, ``user/app``, ``host:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and "/" not in self.path[8:]:
                return self.path[len(OFFICIAL_PREFIX) :]
            return self.path
        return self.name

    @property
    def reference(self) -> str:
        """The tag or digest to ask the registry for (the digest wins)."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """The host to talk to (Docker Hub's API is not at docker.io)."""
        return DOCKER_HUB_API if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def local_tag(self) -> str | None:
        """The name:tag kept in the local store (None for a digest-only reference)."""
        return f"{self.familiar_name}:{self.tag}" if self.tag else None

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def familiar(self) -> str:
        text = self.familiar_name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text`` like ``docker pull`` does.

    ``default_tag``: add ``:latest`` when there is neither tag nor digest.
    """
    hint = "write NAME[:TAG][@DIGEST], e.g. debian:bookworm or 127.0.0.1:5000/team/app:1"
    if not text or any(c.isspace() for c in text):
        raise ReferenceError(f"invalid image reference {text!r}", hint=hint)
    if _HEX64.fullmatch(text):
        raise ReferenceError(
            f"invalid repository name {text!r}: a 64-hex-digit string is an image ID",
            hint=hint,
        )
    rest, at, digest = text.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise ReferenceError(f"invalid digest {digest!r} in {text!r}", hint=hint)
        if digest.startswith("sha256:") and not _SHA256.fullmatch(digest):
            raise ReferenceError(
                f"invalid digest {digest!r} in {text!r}: sha256 needs 64 lower-case hex digits"
            )
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag: str | None = None
    name = rest
    if colon > last_slash:
        name, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ReferenceError(f"invalid tag {tag!r} in {text!r}", hint=hint)
    domain, path = _split_domain(name)
    if not _DOMAIN.fullmatch(domain):
        raise ReferenceError(f"invalid registry host {domain!r} in {text!r}", hint=hint)
    if not _PATH.fullmatch(path):
        lower = path.lower()
        why = "repository name must be lowercase" if _PATH.fullmatch(lower) else "invalid name"
        raise ReferenceError(f"invalid reference format {text!r}: {why}", hint=hint)
    if len(domain) + 1 + len(path) > MAX_NAME:
        raise ReferenceError(f"repository name {text!r} is longer than {MAX_NAME} characters")
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``, with or without a port."""
    if host.startswith("["):
        addr = host[1 : host.find("]")] if "]" in host else host[1:]
    else:
        addr = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if addr == "localhost" or addr.endswith(".localhost"):
        return True
    import ipaddress  # (only for a registry named by its address)

    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False
