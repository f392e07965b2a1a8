"""Write a runtime bundle: ``config.json`` plus the generated /etc files beside it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ocibuild.fs.atomic import write_atomic
from ocibuild.runtime import etcfiles

CONFIG_NAME = "config.json"


def _write(path: str, data: bytes, mode: int) -> None:
    """Not durable (fs/atomic.py): a bundle lives as long as its step (and a kept one is
    rewritten by a re-run), so an fsync buys nothing here."""
    write_atomic(path, data, mode=mode, durable=False)


def write_bundle(bundle_dir: str, spec: Mapping[str, Any]) -> str:
    """Write ``config.json`` into ``bundle_dir`` (created if needed); returns its path."""
    os.makedirs(bundle_dir, mode=0o700, exist_ok=True)
    path = os.path.join(bundle_dir, CONFIG_NAME)
    data = json.dumps(spec, indent=2, sort_keys=True).encode() + b"\n"
    _write(path, data, 0o600)
    return path


def write_etc_files(
    bundle_dir: str,
    *,
    hostname: str = etcfiles.DEFAULT_HOSTNAME,
    network: etcfiles.Network = "host",
    extra_hosts: Sequence[tuple[str, str]] = (),
    include_hostname: bool = False,
    host_resolv: str | None = None,
) -> dict[str, str]:
    """Generate hosts and resolv.conf (and /etc/hostname if asked) under ``bundle_dir``.

    Returns the ``etc_files`` mapping for :func:`ocibuild.runtime.spec.make_spec`
    (container path → host path). BuildKit binds only hosts and resolv.conf; Docker's
    classic builder also binds /etc/hostname (``include_hostname=True``).
    ``host_resolv`` overrides the host's resolv.conf text (tests, ``--dns``).
    """
    etc_dir = os.path.join(bundle_dir, "etc")
    os.makedirs(etc_dir, mode=0o755, exist_ok=True)
    if host_resolv is None:
        host_resolv = etcfiles.host_resolv_conf(network)
    files = {
        "/etc/resolv.conf": etcfiles.resolv_conf_content(host_resolv, network),
        "/etc/hosts": etcfiles.hosts_content(hostname, extra_hosts),
    }
    if include_hostname:
        files["/etc/hostname"] = etcfiles.hostname_content(hostname)
    out: dict[str, str] = {}
    for dest, text in files.items():
        path = os.path.join(etc_dir, os.path.basename(dest))
        _write(path, text.encode("utf-8", "surrogateescape"), 0o644)
        out[dest] = path
    return out
