"""Registries: references, credentials, pull and push (through oras)."""

from __future__ import annotations

from ocibuild.registry.auth import Credentials, find_credentials
from ocibuild.registry.errors import (
    AuthError,
    DigestMismatch,
    NotFoundError,
    RegistryError,
    Unreachable,
)
from ocibuild.registry.pull import PullResult, find_local, pull
from ocibuild.registry.push import PushResult, push
from ocibuild.registry.reference import Reference, parse_reference
from ocibuild.registry.transfer import RegistryOptions

__all__ = [
    "AuthError",
    "Credentials",
    "DigestMismatch",
    "NotFoundError",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryError",
    "RegistryOptions",
    "Unreachable",
    "find_credentials",
    "find_local",
    "parse_reference",
    "pull",
    "push",
]
