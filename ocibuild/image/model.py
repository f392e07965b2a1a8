"""OCI image documents (pure): media types, the image config model, manifests, indexes.

The image config is :class:`ImageConfig`; manifests, indexes and descriptors are plain
dicts, and every function here returns a new dict and never mutates its arguments.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any, Self

from ocibuild._record import dataclass, field

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


def history_entry(
    created: str, created_by: str, *, comment: str | None = None, empty_layer: bool = False
) -> JSON:
    """One ``history`` item; ``comment`` and ``empty_layer`` only appear when set."""
    entry: JSON = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if empty_layer:
        entry["empty_layer"] = True
    return entry


# The top-level fields ImageConfig models; any other one (``os.version``, Docker's
# ``container_config`` ...) is kept in ``extra`` as it was read.
_MODELLED = frozenset(
    {"created", "author", "architecture", "os", "variant", "config", "rootfs", "history"}
)


@dataclass
class ImageConfig:
    """An OCI image config (Docker's field names in ``config``): the one model the
    builder, the store, export, inspect and the tests read and write.

    ``to_json`` gives the document whose canonical JSON is the image ID: ``created``
    first, ``author`` only when set, ``architecture``, ``os``, ``variant`` only when
    set, ``config`` without empty values (as Docker and BuildKit leave them out),
    ``rootfs`` and ``history``. ``from_json`` reads any config (a pulled one too);
    fields it does not model stay in ``extra`` and are written back, so reading and
    writing an image changes nothing. The builder starts a stage from a base without
    them (:meth:`derived`), as BuildKit does.
    """

    config: JSON = field(default_factory=dict)  # the "config" section: Env, Cmd, ...
    diff_ids: list[str] = field(default_factory=list)  # bottom-most first
    history: list[JSON] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"
    author: str = ""
    variant: str = ""  # the platform's (arm/v7); "" for none
    created: str = ""  # RFC 3339 (format_created); "" until the image is finished
    extra: JSON = field(default_factory=dict)

    @classmethod
    def from_json(cls, image: Any) -> Self:
        """The model of a config document (ValueError names a malformed field)."""
        if not isinstance(image, dict):
            raise ValueError("an image config must be a JSON object")
        config = image.get("config") or {}
        rootfs = image.get("rootfs") or {}
        history = image.get("history") or []
        if not isinstance(config, dict):
            raise ValueError("the image config's 'config' is not an object")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids") or [], list):
            raise ValueError("the image config's 'rootfs.diff_ids' is not a list")
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise ValueError("the image config's 'history' is not a list of objects")
        return cls(
            config=copy.deepcopy(config),
            diff_ids=[str(d) for d in rootfs.get("diff_ids") or []],
            history=copy.deepcopy(history),
            architecture=str(image.get("architecture", "amd64")),
            os=str(image.get("os", "linux")),
            author=str(image.get("author") or ""),
            variant=str(image.get("variant") or ""),
            created=str(image.get("created") or ""),
            extra={k: copy.deepcopy(v) for k, v in image.items() if k not in _MODELLED},
        )

    def to_json(self, created: str | None = None) -> JSON:
        """The config document; ``created`` (when given) replaces the model's."""
        image: JSON = {"created": self.created if created is None else created}
        if self.author:
            image["author"] = self.author
        image["architecture"] = self.architecture
        image["os"] = self.os
        if self.variant:
            image["variant"] = self.variant
        image["config"] = {k: v for k, v in self.config.items() if v not in (None, [], {}, "")}
        image["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        image["history"] = [dict(h) for h in self.history]
        for key, value in self.extra.items():
            image.setdefault(key, value)
        return image

    def to_bytes(self, created: str | None = None) -> bytes:
        """The canonical JSON whose sha256 is the image ID."""
        return canonical_json(self.to_json(created))

    def copy(self) -> Self:
        """A deep copy: changing it leaves this one as it was."""
        return copy.deepcopy(self)

    def derived(self) -> Self:
        """A new image built on this one: its config, layers, history and platform,
        without the fields the model does not know (``extra``) or its ``created``."""
        image = self.copy()
        image.extra = {}
        image.created = ""
        return image

    def add_layer(self, diff_id: str, created: str, created_by: str, *, comment: str = "") -> None:
        """One more layer on top, with its history entry."""
        self.diff_ids.append(diff_id)
        self.history.append(history_entry(created, created_by, comment=comment))

    def add_history(
        self, created: str, created_by: str, *, empty_layer: bool, comment: str = ""
    ) -> None:
        """One more history entry (``empty_layer``: the step added no layer)."""
        self.history.append(
            history_entry(created, created_by, comment=comment, empty_layer=empty_layer)
        )

    @property
    def platform(self) -> JSON:
        """``{"os", "architecture"[, "variant"]}`` as an index descriptor names it."""
        out: JSON = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out


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
