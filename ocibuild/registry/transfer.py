"""What pull and push share: registry options, connecting, parallel jobs, JSON reads."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

import requests

from ocibuild._record import dataclass
from ocibuild.image.model import (
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
)
from ocibuild.registry.auth import Credentials, find_credentials
from ocibuild.registry.client import DEFAULT_BACKOFF, DEFAULT_RETRIES, Client
from ocibuild.registry.errors import DigestMismatch, RegistryError
from ocibuild.registry.reference import Reference

T = TypeVar("T")
# A registry's word on sizes is not trusted: a manifest or index (by tag, or by a
# descriptor) is at most 4 MiB, as containerd allows; a config at most 32 MiB; a blob is
# cut off as soon as it goes past its descriptor's size.
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 32 << 20
MAX_JSON = MAX_MANIFEST
_MALFORMED = "the registry serves a malformed or hostile manifest; nothing was stored"
MANIFEST_ACCEPT = ", ".join((MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_DOCKER_LIST))
DEFAULT_JOBS = 4


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to registries (not what to transfer)."""

    tls_verify: bool | None = None
    credentials: Credentials | None = None  # --creds; otherwise looked up in auth files
    env: Mapping[str, str] | None = None  # where REGISTRY_AUTH_FILE etc. come from
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    jobs: int = DEFAULT_JOBS


def connect(ref: Reference, ropts: RegistryOptions) -> Client:
    creds = ropts.credentials or find_credentials(ref.domain, ref.path, ropts.env)
    return Client(
        ref.api_host,
        credentials=creds,
        tls_verify=ropts.tls_verify,
        retries=ropts.retries,
        backoff=ropts.backoff,
        pool=max(4, 2 * ropts.jobs),
    )


class Cancelled(Exception):
    """A job stopped because another one failed (never shown: the first error is)."""


def run_jobs(tasks: Sequence[Callable[[threading.Event], T]], jobs: int) -> list[T]:
    """Run ``tasks`` on ``jobs`` threads; the first error cancels the rest and is raised.

    Each task gets an Event it should check between chunks.
    """
    if not tasks:
        return []
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
        futures = [pool.submit(task, cancel) for task in tasks]
        try:
            for fut in as_completed(futures):
                fut.result()
        except BaseException:
            cancel.set()
            for fut in futures:
                fut.cancel()
            raise
    return [fut.result() for fut in futures]


def read_limited(
    resp: requests.Response, what: str, limit: int = MAX_JSON, *, declared: bool = False
) -> bytes:
    """A small document's body (``resp`` made with ``stream=True``), never more than
    ``limit`` bytes buffered; more is an error (``declared``: the limit is the size its
    descriptor gave)."""
    try:
        data = resp.raw.read(limit + 1, decode_content=True)
    except Exception as e:
        raise RegistryError(f"reading {what} failed: {e}") from e
    finally:
        resp.close()
    if len(data) > limit:
        if declared:
            raise DigestMismatch(
                f"{what}: the registry sent more than the {limit} bytes its descriptor says",
                hint="the registry serves corrupt or altered content; nothing was stored",
            )
        raise RegistryError(
            f"{what} is bigger than {limit} bytes, the most a manifest may have",
            hint="is this an image? " + _MALFORMED,
        )
    return bytes(data)


def descriptor_size(desc: Mapping[str, object], what: str, limit: int | None = None) -> int:
    """The ``size`` of a descriptor: a non-negative integer, at most ``limit``."""
    size = desc.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RegistryError(f"{what}: its descriptor has no valid size ({size!r})", hint=_MALFORMED)
    if limit is not None and size > limit:
        raise RegistryError(
            f"{what}: its descriptor says {size} bytes, more than the {limit} allowed",
            hint=_MALFORMED,
        )
    return size


def check_free_space(directory: str, need: int, what: str) -> None:
    """Refuse a download of ``need`` bytes the store's filesystem has no room for."""
    fs = os.statvfs(directory)
    free = fs.f_bavail * fs.f_frsize
    if need > free:
        raise RegistryError(
            f"{what} needs {need} bytes, only {free} are free on the store's filesystem",
            hint="free some space (ocibuild prune) or check the image: nothing was downloaded",
        )


def verify_bytes(data: bytes, digest: str, size: int | None, what: str) -> None:
    if size is not None and len(data) != size:
        raise DigestMismatch(
            f"{what}: {len(data)} bytes received, its descriptor says {size}",
            hint="the registry serves corrupt or altered content; nothing was stored",
        )
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != digest:
        raise DigestMismatch(
            f"{what}: content has digest {got}, expected {digest}",
            hint="the registry serves corrupt or altered content; nothing was stored",
        )
