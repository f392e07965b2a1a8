"""sha256 digests in the ``sha256:<64 hex>`` form OCI uses."""

from __future__ import annotations

import hashlib
import re

from ocibuild.errors import StoreError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """``sha256:`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    """``sha256:`` digest of a file's content, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def validate_digest(digest: str) -> str:
    """``digest`` itself when it is ``sha256:`` + 64 lowercase hex; else StoreError.

    Every digest read from a file or a user goes through here before it names a path.
    """
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise StoreError(
            f"invalid digest {digest!r}",
            hint="expected 'sha256:' followed by 64 lowercase hex digits",
        )
    return digest


def hexpart(digest: str) -> str:
    """The hex after ``sha256:`` (validated)."""
    return validate_digest(digest)[len("sha256:") :]
