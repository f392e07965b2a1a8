"""Step results shared through an OCI registry: ``--cache-to`` / ``--cache-from``
``type=registry,ref=REF``.

What lands under ``REF`` (BuildKit's registry cache in its ``image-manifest=true`` form,
with ocibuild's own entry format) is one OCI image manifest:

* ``config``: a JSON blob of media type ``application/vnd.ocibuild.cache.config.v1+json``
  holding the step entries: ``{"version": 1, "entries": [{"key": "sha256:...", "entry":
  {...}}]}``; an entry is exactly what the local index keeps in
  ``ROOT/cache/steps/<key>.json`` (the layers a step added, its history entries, the
  config, ARGs and stage flags after it; see ``ocibuild.builder.cache``);
* ``layers``: every layer those entries add, compressed as ``push`` compresses them
  (``--compression`` or ``compression=`` in the spec), each annotated with its diffID
  (``containerd.io/uncompressed``, as BuildKit does).

Step keys do not depend on the machine: they hash the parent state (diffIDs and config),
the instruction, the ARGs and the *contents* of COPY sources, so a step built on one
machine has the same key on another with the same inputs.

``--cache-to`` exports after a successful build: ``mode=min`` (the default, as in
BuildKit) the steps of the target stage, ``mode=max`` the steps of every stage built.
Blobs already in the registry are not sent again (``HEAD``, then cross-repository mount).

``--cache-from`` (repeatable; earlier refs win) costs nothing until a step misses the
local cache: then the manifest and the config blob of every ref are fetched once; a step
found there is a hit, and only *its* missing layers are downloaded (verified against
digest and diffID, stored as pulled layers) before the entry is replayed and copied into
the local index. A ref that does not exist or cannot be read is a warning, as in
BuildKit; the build goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from ocibuild import _record
from ocibuild._record import dataclass
from ocibuild.builder.cache import KEY_VERSION, CacheEntry
from ocibuild.errors import OcibuildError
from ocibuild.image.model import JSON, MT_OCI_MANIFEST, canonical_json, descriptor, make_manifest
from ocibuild.registry.meta import RegistryMeta
from ocibuild.registry.progress import NoProgress, human_size
from ocibuild.registry.pull import _Puller, resolve_manifest
from ocibuild.registry.push import _compression, _Pusher
from ocibuild.registry.reference import Reference, parse_reference
from ocibuild.registry.transfer import RegistryOptions, connect, run_jobs

if TYPE_CHECKING:
    from ocibuild.image.store import Store
    from ocibuild.observe.log import Reporter

MT_CACHE_CONFIG = "application/vnd.ocibuild.cache.config.v1+json"
ANNOTATION_DIFF_ID = "containerd.io/uncompressed"
CACHE_VERSION = 1
MODES = ("min", "max")
_IGNORED_KEYS = frozenset({"oci-mediatypes", "image-manifest", "ignore-error"})
_HINT = "write type=registry,ref=HOST/REPO:TAG[,mode=min|max]"


@dataclass(frozen=True)
class CacheSpec:
    """One ``--cache-from`` / ``--cache-to`` value."""

    ref: Reference
    mode: str = "min"
    compression: str | None = None
    ignore_error: bool = False


def parse_cache_spec(text: str, *, flag: str) -> CacheSpec:
    """``type=registry,ref=REF[,mode=min|max][,compression=C]``; a bare ``REF`` is
    short for ``type=registry,ref=REF`` (as buildx reads ``--cache-from``)."""
    if "=" not in text:
        return CacheSpec(parse_reference(text.strip()))
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise OcibuildError(f"invalid {flag} {text!r}: {part!r} is not KEY=VALUE", hint=_HINT)
        fields[key.strip().lower()] = value.strip()
    kind = fields.pop("type", "registry")
    if kind != "registry":
        raise OcibuildError(
            f"{flag} type={kind} is not supported: ocibuild shares its cache through "
            "registries only (its local cache is always on)",
            hint=_HINT,
        )
    ref = fields.pop("ref", "")
    if not ref:
        raise OcibuildError(f"{flag} {text!r} has no ref=", hint=_HINT)
    mode = fields.pop("mode", "min")
    if mode not in MODES:
        raise OcibuildError(f"{flag}: unknown mode {mode!r}", hint="use mode=min or mode=max")
    compression = fields.pop("compression", None)
    if compression is not None:
        _compression(compression)
    ignore_error = fields.get("ignore-error", "false").lower() in ("1", "true", "yes")
    unknown = sorted(set(fields) - _IGNORED_KEYS)
    if unknown:
        raise OcibuildError(f"{flag}: unknown key {unknown[0]!r} in {text!r}", hint=_HINT)
    reference = parse_reference(ref)
    if reference.digest:
        raise OcibuildError(f"{flag}: ref {ref!r} must be a tag, not a digest", hint=_HINT)
    return CacheSpec(reference, mode, compression, ignore_error)


@dataclass
class _Source:
    spec: CacheSpec
    puller: _Puller
    entries: dict[str, Any]  # key -> entry JSON
    layers: dict[str, JSON]  # diffID -> blob descriptor


class RemoteCache:
    """The registry side of one build's cache (thread-safe: stages run in parallel)."""

    def __init__(
        self,
        store: Store,
        *,
        sources: list[CacheSpec],
        targets: list[CacheSpec],
        compression: str = "gzip",
        tls_verify: bool | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.sources_specs = sources
        self.targets = targets
        self.compression = compression
        self.ropts = RegistryOptions(tls_verify=tls_verify)
        self.reporter = reporter
        self._lock = threading.Lock()
        self._sources: list[_Source] | None = None  # loaded at the first local miss
        self._recorded: dict[str, tuple[int, CacheEntry]] = {}
        self._layer_locks: dict[str, threading.Lock] = {}
        self.hits = 0
        self.downloaded = 0

    def _say(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter.info(message)

    # -- --cache-from --------------------------------------------------------------------
    def _load(self, spec: CacheSpec) -> _Source | None:
        ref = spec.ref
        name = ref.familiar()
        try:
            # A cache is optional: one retry, not the full backoff series of a pull.
            client = connect(ref, _record.replace(self.ropts, retries=1))
            manifest, _ = resolve_manifest(client, ref)
            config_desc = manifest.get("config") or {}
            if config_desc.get("mediaType") != MT_CACHE_CONFIG:
                self._say(f"warning: --cache-from {name} is not an ocibuild build cache; ignored")
                return None
            downloads = os.path.join(RegistryMeta(self.store).dir, "downloads")
            os.makedirs(downloads, exist_ok=True)
            puller = _Puller(self.store, client, ref, NoProgress(), downloads)
            doc: Any = json.loads(puller.blob(config_desc, f"build cache config of {name}"))
        except (OcibuildError, ValueError) as e:
            text = e.message if isinstance(e, OcibuildError) else str(e)
            self._say(f"warning: --cache-from {name}: {text}; going on without it")
            return None
        entries: dict[str, Any] = {}
        if isinstance(doc, dict) and doc.get("version") == CACHE_VERSION:
            for item in doc.get("entries") or []:
                if isinstance(item, dict) and isinstance(item.get("key"), str):
                    entries.setdefault(item["key"], item.get("entry"))
        layers: dict[str, JSON] = {}
        for desc in manifest.get("layers") or []:
            if isinstance(desc, dict):
                diff_id = (desc.get("annotations") or {}).get(ANNOTATION_DIFF_ID)
                if isinstance(diff_id, str):
                    layers[diff_id] = desc
        return _Source(spec, puller, entries, layers)

    def _loaded(self) -> list[_Source]:
        with self._lock:
            if self._sources is None:
                found = [self._load(spec) for spec in self.sources_specs]
                self._sources = [s for s in found if s is not None]
            return self._sources

    def _layer_lock(self, diff_id: str) -> threading.Lock:
        with self._lock:
            return self._layer_locks.setdefault(diff_id, threading.Lock())

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` from the first source that has it, with its layers in the
        local store (downloaded now when missing); None for a miss."""
        if not self.sources_specs:
            return None
        for source in self._loaded():
            entry = CacheEntry.from_json(source.entries.get(key))
            if entry is None or not self._fetch_layers(source, entry):
                continue
            with self._lock:
                self.hits += 1
            return entry
        return None

    def _fetch_layers(self, source: _Source, entry: CacheEntry) -> bool:
        for diff_id in entry.diff_ids:
            if self.store.has_layer(diff_id):
                continue
            desc = source.layers.get(diff_id)
            if desc is None:
                return False
            with self._layer_lock(diff_id):
                if self.store.has_layer(diff_id):
                    continue
                try:
                    source.puller.layer(desc, diff_id, threading.Event())
                except OcibuildError as e:
                    self._say(
                        f"warning: --cache-from {source.spec.ref.familiar()}: layer "
                        f"{diff_id[7:19]}: {e.message}; the step runs instead"
                    )
                    return False
            with self._lock:
                self.downloaded += 1
            self._say(
                f"  cache: layer {diff_id[7:19]} downloaded from "
                f"{source.spec.ref.familiar()} ({human_size(int(desc.get('size', 0)))})"
            )
        return True

    # -- --cache-to ----------------------------------------------------------------------
    def record(self, stage_index: int, key: str, entry: CacheEntry) -> None:
        """Remember a step's result (hit or built) for the export."""
        if self.targets:
            with self._lock:
                self._recorded[key] = (stage_index, entry)

    def export(self, target_stage: int) -> None:
        """Push the recorded steps to every ``--cache-to`` ref."""
        for spec in self.targets:
            try:
                self._export_one(spec, target_stage)
            except OcibuildError as e:
                if not spec.ignore_error:
                    raise
                self._say(f"warning: --cache-to {spec.ref.familiar()}: {e.message}")

    def _export_one(self, spec: CacheSpec, target_stage: int) -> None:
        with self._lock:
            chosen = [
                (key, entry)
                for key, (stage, entry) in self._recorded.items()
                if spec.mode == "max" or stage == target_stage
            ]
        diff_ids = list(dict.fromkeys(d for _, entry in chosen for d in entry.diff_ids))
        ref = spec.ref if spec.ref.tag else spec.ref.with_tag("latest")
        compression = _compression(spec.compression or self.compression)
        client = connect(ref, self.ropts)
        pusher = _Pusher(self.store, client, ref, compression, NoProgress())
        descs = run_jobs([partial(pusher.layer, d) for d in diff_ids], self.ropts.jobs)
        layers = [
            {**desc, "annotations": {ANNOTATION_DIFF_ID: diff_id}}
            for desc, diff_id in zip(descs, diff_ids, strict=True)
        ]
        doc = {
            "version": CACHE_VERSION,
            "entries": [
                {"key": key, "entry": {"version": KEY_VERSION, **_record.asdict(entry)}}
                for key, entry in chosen
            ],
        }
        config = canonical_json(doc)
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        pusher.small(config, config_digest, "cache config")
        manifest = make_manifest(descriptor(MT_CACHE_CONFIG, config_digest, len(config)), layers)
        body = canonical_json(manifest)
        client.request(
            "PUT",
            f"{ref.path}/manifests/{ref.tag}",
            scope=pusher.scope,
            what=f"build cache {ref.familiar()}",
            headers={"Content-Type": MT_OCI_MANIFEST},
            body=body,
            expect=(201,),
        ).close()
        pusher.meta.record_sources([str(d["digest"]) for d in descs], ref.name)
        actions = [pusher.actions.get(str(d["digest"]), "") for d in descs]
        uploaded = sum(1 for a in actions if a.startswith("uploaded"))
        self._say(
            f"cache: exported {len(chosen)} steps and {len(diff_ids)} layers "
            f"({uploaded} uploaded) to {ref.familiar()} (mode={spec.mode})"
        )


def remote_cache(
    store: Store,
    *,
    cache_from: tuple[str, ...],
    cache_to: tuple[str, ...],
    compression: str,
    tls_verify: bool | None,
    reporter: Reporter | None,
) -> RemoteCache | None:
    """The remote cache of a build (None when neither flag is given); specs are parsed
    here, so a bad one fails before the first step."""
    if not cache_from and not cache_to:
        return None
    return RemoteCache(
        store,
        sources=[parse_cache_spec(t, flag="--cache-from") for t in cache_from],
        targets=[parse_cache_spec(t, flag="--cache-to") for t in cache_to],
        compression=compression,
        tls_verify=tls_verify,
        reporter=reporter,
    )


__all__ = [
    "MT_CACHE_CONFIG",
    "CacheSpec",
    "RemoteCache",
    "parse_cache_spec",
    "remote_cache",
]
