"""Registries: references, credentials, pull and push (through oras).

The names below load on first use: oras (and requests under it) cost ~0.1 s to
import, which every ``ocibuild`` command would otherwise pay. The functions ``pull``
and ``push`` share their modules' names: import them from ``ocibuild.registry.pull``
and ``ocibuild.registry.push``.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Credentials": "auth",
    "find_credentials": "auth",
    "AuthError": "errors",
    "DigestMismatch": "errors",
    "NotFoundError": "errors",
    "RegistryError": "errors",
    "Unreachable": "errors",
    "PullResult": "pull",
    "find_local": "pull",
    "PushResult": "push",
    "Reference": "reference",
    "parse_reference": "reference",
    "RegistryOptions": "transfer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"ocibuild.registry.{module}"), name)
