"""OCI image documents as plain dicts: media types, configs, manifests, indexes (pure).

Every function returns a new dict and never mutates its arguments.
"""

from __future__ import annotations

import json
import time
from typing import Any

JSON = dict[str, Any]

# OCI
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Docker schema 2
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({MT_OCI_MANIFEST, MT_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MT_OCI_INDEX, MT_DOCKER_LIST})
CONFIG_TYPES = frozenset({MT_OCI_CONFIG, MT_DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        MT_OCI_LAYER,
        MT_OCI_LAYER_GZIP,
        MT_OCI_LAYER_ZSTD,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        MT_DOCKER_LAYER_GZIP,
        MT_DOCKER_LAYER_FOREIGN,
    }
)

REF_NAME = "org.opencontainers.image.ref.name"

# Keys of the "config" object an image config may carry (OCI + Docker extensions).
CONFIG_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
)


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, compact separators, UTF-8, no trailing newline."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def format_created(epoch: int | float | None = None) -> str:
    """RFC 3339 UTC timestamp (``1970-01-01T00:00:00Z``); now when ``epoch`` is None."""
    when = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(when)))


def new_config(
    *,
    created: str,
    architecture: str = "amd64",
    os: str = "linux",
    config: JSON | None = None,
    diff_ids: list[str] | None = None,
    history: list[JSON] | None = None,
    author: str | None = None,
) -> JSON:
    """An OCI image config; empty/None fields of ``config`` are left out like Docker does."""
    inner = {k: v for k, v in (config or {}).items() if v not in (None, "", [], {})}
    out: JSON = {
        "created": created,
        "architecture": architecture,
        "os": os,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids or [])},
        "history": [dict(h) for h in history or []],
    }
    if author:
        out["author"] = author
    return out


def history_entry(
    created: str, created_by: str, *, comment: str | None = None, empty_layer: bool = False
) -> JSON:
    """One ``history`` item; ``empty_layer`` only appears when true."""
    entry: JSON = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if empty_layer:
        entry["empty_layer"] = True
    return entry


def add_layer(
    config: JSON, diff_id: str, created: str, created_by: str, *, comment: str | None = None
) -> JSON:
    """``config`` with one more layer and its history entry."""
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
    history = [*config.get("history", []), history_entry(created, created_by, comment=comment)]
    return {**config, "rootfs": rootfs, "history": history}


def add_history(config: JSON, created: str, created_by: str, *, comment: str | None = None) -> JSON:
    """``config`` with one more history entry that adds no layer (``empty_layer``)."""
    entry = history_entry(created, created_by, comment=comment, empty_layer=True)
    return {**config, "history": [*config.get("history", []), entry]}


def diff_ids_of(config: JSON) -> list[str]:
    """The layer diffIDs a config lists (bottom-most first)."""
    rootfs = config.get("rootfs") or {}
    return [str(d) for d in rootfs.get("diff_ids") or []]


def descriptor(
    media_type: str,
    digest: str,
    size: int,
    *,
    annotations: dict[str, str] | None = None,
    platform: JSON | None = None,
) -> JSON:
    """An OCI content descriptor."""
    desc: JSON = {"mediaType": media_type, "digest": digest, "size": size}
    if platform:
        desc["platform"] = dict(platform)
    if annotations:
        desc["annotations"] = dict(annotations)
    return desc


def make_manifest(
    config_desc: JSON, layer_descs: list[JSON], annotations: dict[str, str] | None = None
) -> JSON:
    """An OCI image manifest (schemaVersion 2)."""
    manifest: JSON = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": dict(config_desc),
        "layers": [dict(d) for d in layer_descs],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return manifest


def make_index(manifests: list[JSON], annotations: dict[str, str] | None = None) -> JSON:
    """An OCI image index (the ``index.json`` of a layout, or a multi-platform image)."""
    index: JSON = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [dict(m) for m in manifests],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return index


def platform_matches(desc: JSON, os: str = "linux", architecture: str = "amd64") -> bool:
    """True when a descriptor's ``platform`` names ``os``/``architecture``."""
    platform = desc.get("platform") or {}
    return bool(platform.get("os") == os and platform.get("architecture") == architecture)
